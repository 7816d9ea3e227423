//! Publishing changesets: resolve the credential, push the branch, open or
//! update the pull request, and record each step so that an interrupted
//! run resumes without opening duplicates.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::changeset_jobs::QueueSettings;
use super::{Error, ResolvedCredential, Result, Service};
use crate::auth::Caller;
use crate::codehost::{CodeHostApi, PullRequestDraft};
use crate::domain::{
    ChangesetForm, ChangesetId, ChangesetRecord, ChangesetState, CodeHostConfig, CodeHostKind,
    CodeHostUrl, GitUrlType, JobState, UserId,
};
use crate::publish::git::{self, Change, ChangeId, GitAuth, PushError, PushRequest, PushTarget};
use crate::publish::{Backoff, ChangeSpec, ChangesetSpec, default_git_jobs, remote};

/// The most changesets published at once that a caller may ask for; the
/// git work itself is further bounded by [`PublishSettings::max_git_jobs`]
/// and [`PublishSettings::max_git_jobs_per_user`].
pub const MAX_PUBLISH_CONCURRENCY: usize = 64;

/// How publishing treats the code hosts and the machine.
#[derive(Debug, Clone)]
pub struct PublishSettings {
    /// The least time between two pull requests opened on one GitHub code
    /// host (its secondary rate limits punish bursts).
    pub github_pull_request_interval: Duration,
    pub backoff: Backoff,
    /// Git jobs (fetch, apply, push) running at once on the server, for
    /// every request and user together.
    pub max_git_jobs: usize,
    /// Git jobs running at once for one user.
    pub max_git_jobs_per_user: usize,
    /// The most changesets one API request may carry (the CLI operator's
    /// spec files are not limited).
    pub max_changesets_per_request: usize,
    /// The largest diff accepted, in bytes.
    pub max_patch_bytes: usize,
    /// How the job queue runs.
    pub queue: QueueSettings,
    /// When publishing may run and how fast (`rollout_windows` in the
    /// configuration file); by default not set: never held back.
    pub rollout_windows: crate::domain::RolloutWindows,
}

impl Default for PublishSettings {
    fn default() -> Self {
        Self {
            github_pull_request_interval: Duration::from_secs(1),
            backoff: Backoff::default(),
            max_git_jobs: default_git_jobs(),
            max_git_jobs_per_user: 4,
            max_changesets_per_request: 1000,
            max_patch_bytes: 10 * 1024 * 1024,
            queue: QueueSettings::default(),
            rollout_windows: crate::domain::RolloutWindows::default(),
        }
    }
}

/// What publishing a changeset did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishResult {
    /// A pull request was opened.
    Opened,
    /// The open pull request for the branch was updated.
    Updated,
    /// The same spec was already published: nothing to do.
    Unchanged,
    /// Recorded and queued: a worker publishes it.
    Queued,
}

impl PublishResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Queued => "queued",
        }
    }
}

/// A published changeset.
#[derive(Debug, Clone)]
pub struct PublishedChangeset {
    pub id: ChangesetId,
    pub result: PublishResult,
    pub commit: Option<String>,
    pub pull_request_number: Option<i64>,
    pub pull_request_url: Option<String>,
    /// Whose credential published it (`None` when unchanged and the
    /// earlier run did not record one).
    pub credential_source: Option<String>,
}

/// The outcome of one changeset of a bulk publish.
#[derive(Debug)]
pub struct ChangesetReport {
    /// Its position in the list given.
    pub index: usize,
    pub repository: String,
    pub head_branch: String,
    pub outcome: Result<PublishedChangeset>,
}

/// Called as each changeset finishes (progress output).
pub type OnReport = Arc<dyn Fn(&ChangesetReport) + Send + Sync>;

/// `expected_head` is what the push required the branch to be at; `kind`
/// says how to read the code host's words in a refusal.
fn push_error(
    spec: &ChangesetSpec,
    kind: CodeHostKind,
    expected_head: Option<&str>,
    error: PushError,
) -> Error {
    let (head, host, repository) = (&spec.head_branch, &spec.code_host, &spec.repository);
    match (error, expected_head) {
        (PushError::BranchMoved(_), Some(_)) => Error::PublishFailed(format!(
            "branch {head} on {host}:{repository} was changed outside batchcred (it is not at \
             the commit batchcred last pushed); refusing to overwrite it"
        )),
        (PushError::BranchMoved(_), None) => Error::PublishFailed(format!(
            "branch {head} already exists on {host}:{repository} and was not created by \
             batchcred for this changeset; refusing to overwrite it (choose another head branch)"
        )),
        (error @ PushError::Unreachable(_), _) => Error::CodeHostUnavailable(format!(
            "pushing {head} to {host}:{repository} failed: {error}"
        )),
        (error, _) => {
            let hint = crate::codehost::push_failure_hint(kind, error.message())
                .map(|hint| format!(" ({hint})"))
                .unwrap_or_default();
            Error::PublishFailed(format!(
                "pushing {head} to {host}:{repository} failed: {error}{hint}"
            ))
        }
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidInput(message.into())
}

/// A branch name as git and the code hosts compare it: without a
/// `refs/heads/` prefix, and case-insensitively (refs on a case-insensitive
/// file system collide).
fn same_branch(a: &str, b: &str) -> bool {
    let plain = |name: &str| name.strip_prefix("refs/heads/").unwrap_or(name).to_owned();
    plain(a).eq_ignore_ascii_case(&plain(b))
}

/// Refuses a repository name that could turn a code host API path
/// elsewhere (`..`, `?`, `#`, `%`, spaces). Whether it must also name an
/// owner is the code host kind's to say ([`check_repository_owner`]).
pub(super) fn check_repository_name(repository: &str) -> Result<()> {
    let bad = repository.is_empty()
        || repository.starts_with('/')
        || repository.ends_with('/')
        || repository.contains("..")
        || repository
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%'));
    if bad {
        return Err(invalid(format!(
            "repository {repository:?} must look like owner/name"
        )));
    }
    Ok(())
}

/// Refuses a repository name without its owner (`owner/name`,
/// `group/subgroup/project`, `PROJECT/repo`) where the kind names owners
/// (all but Gerrit, whose projects may be a single name).
pub(super) fn check_repository_owner(kind: CodeHostKind, repository: &str) -> Result<()> {
    let descriptor = kind.descriptor();
    if descriptor.repository_has_owner() && !repository.contains('/') {
        return Err(invalid(format!(
            "repository {repository:?} must look like {} on {}",
            descriptor.repository_form, descriptor.display_name
        )));
    }
    Ok(())
}

/// Checks what git and the code host APIs would otherwise choke on, and
/// what could turn a push against the repository, before anything is
/// recorded or any code host asked.
fn validate(spec: &ChangesetSpec, settings: &PublishSettings) -> Result<()> {
    check_repository_name(&spec.repository)?;
    if spec.title.trim().is_empty() {
        return Err(invalid("a changeset needs a title"));
    }
    let head = &spec.head_branch;
    if head.eq_ignore_ascii_case("HEAD") || head.starts_with("refs/") {
        return Err(invalid(format!(
            "head branch {head:?} would be read as another ref; give a plain branch name such as batch/fix"
        )));
    }
    if same_branch(&spec.base_branch, head) {
        return Err(invalid("the head branch must differ from the base branch"));
    }
    if let ChangeSpec::Diff { patch, .. } = &spec.change
        && patch.len() > settings.max_patch_bytes
    {
        return Err(invalid(format!(
            "the diff is {} bytes; at most {} are accepted",
            patch.len(),
            settings.max_patch_bytes
        )));
    }
    Ok(())
}

/// The commit id `rev` names in `repo`, so a moved branch counts as a new
/// spec.
async fn resolve_commit(repo: &std::path::Path, rev: &str) -> Result<String> {
    git::resolve_commit(repo, rev)
        .await
        .map_err(|error| match error {
            PushError::InvalidRequest(message) => invalid(message),
            other => Error::Internal(format!("cannot run git: {other}")),
        })
}

fn another_users_changeset(spec: &ChangesetSpec) -> Error {
    Error::Conflict(format!(
        "{}:{} is another user's changeset; a site admin can hand it over to you",
        spec.repository, spec.head_branch
    ))
}

/// What [`Service::prepare_publish`] settled.
pub(super) enum Preparation {
    /// The same spec is already published.
    Unchanged(PublishedChangeset),
    Ready(Box<Prepared>),
}

pub(super) struct Prepared {
    pub host: CodeHostConfig,
    /// The spec's fingerprint ([`ChangesetSpec::fingerprint`]).
    pub fingerprint: String,
    pub credential: ResolvedCredential,
}

/// A changeset as first recorded, before any work on it.
pub(super) fn new_changeset_record(
    user: UserId,
    host: &CodeHostConfig,
    spec: &ChangesetSpec,
    fingerprint: String,
    now: chrono::DateTime<Utc>,
) -> ChangesetRecord {
    ChangesetRecord {
        id: ChangesetId::new(),
        user_id: user,
        code_host_id: host.id,
        repository: spec.repository.clone(),
        base_branch: spec.base_branch.clone(),
        head_branch: spec.head_branch.clone(),
        spec_hash: fingerprint,
        state: ChangesetState::Pending,
        credential_id: None,
        credential_source: None,
        pushed_commit: None,
        pushing_commit: None,
        pr_number: None,
        pr_url: None,
        error: None,
        attempts: 1,
        created_at: now,
        updated_at: now,
        previous_user_id: None,
        handed_over_by: None,
        handed_over_at: None,
        title: spec.title.clone(),
        job_action: None,
        job_state: JobState::Completed,
        job_attempts: 0,
        job_version: 0,
        process_after: now,
        delete_branch_on_close: false,
        external_state: None,
        review_state: None,
        checks_state: None,
        synced_at: None,
        imported: false,
        change_id: None,
    }
}

impl Service {
    /// Publishes one changeset as `user`, who must be the caller (or the
    /// caller the operator). Never pushes to the repository's default or
    /// base branch, never overwrites a branch batchcred did not push for
    /// this changeset, and refuses another user's changeset.
    #[tracing::instrument(skip_all, fields(repository = %spec.repository, head = %spec.head_branch))]
    pub async fn publish_changeset(
        &self,
        caller: &Caller,
        user: UserId,
        spec: &ChangesetSpec,
    ) -> Result<PublishedChangeset> {
        let outcome = self.publish_changeset_once(caller, user, spec).await;
        crate::telemetry::metrics::changeset_publish(match &outcome {
            Ok(published) => published.result.as_str(),
            Err(_) => "failed",
        });
        outcome
    }

    async fn publish_changeset_once(
        &self,
        caller: &Caller,
        user: UserId,
        spec: &ChangesetSpec,
    ) -> Result<PublishedChangeset> {
        let prepared = match self.prepare_publish(caller, user, spec).await? {
            Preparation::Unchanged(done) => return Ok(done),
            Preparation::Ready(prepared) => *prepared,
        };
        let Prepared {
            host,
            fingerprint,
            credential,
        } = prepared;
        let now = Utc::now();
        let mut record = self
            .store
            .begin_changeset(&new_changeset_record(user, &host, spec, fingerprint, now))
            .await
            .map_err(|error| match error {
                // Someone else recorded it since the check above.
                crate::store::Error::Conflict(_) => another_users_changeset(spec),
                other => other.into(),
            })?;
        let outcome = self
            .publish_steps(user, spec, &host, &credential, &mut record)
            .await;
        let used = super::audit::by(caller, super::audit::event::CREDENTIAL_USED)
            .user(user)
            .code_host(host.id)
            .credential(credential.credential_id)
            .changeset(record.id)
            .detail(serde_json::json!({
                "action": "publish",
                "source": credential.source.as_str(),
                "repository": spec.repository,
                "head_branch": spec.head_branch,
                "error": outcome.as_ref().err().map(ToString::to_string),
            }));
        let used = if outcome.is_ok() { used } else { used.failed() };
        // The publish's own outcome is what the caller needs; a failure to
        // record it is logged.
        if let Err(error) = self.store.record_audit(&used).await {
            tracing::error!(%error, "could not record the credential's use in the audit log");
        }
        if let Err(error) = &outcome {
            record.state = ChangesetState::Failed;
            record.error = Some(error.to_string());
            record.updated_at = Utc::now();
            // The publish error is what the caller needs; a failure to
            // record it is only logged.
            if let Err(store_error) = self.store.update_changeset(&record).await {
                tracing::error!(error = %store_error, "could not record a failed changeset");
            }
        }
        outcome
    }

    /// Everything decided before a changeset is recorded: the caller may
    /// publish as `user`, the spec is sound, the code host is configured,
    /// the branch is not another user's, and `user` has a credential there
    /// that they may use for the repository. An identical spec already
    /// published comes back as [`Preparation::Unchanged`].
    pub(super) async fn prepare_publish(
        &self,
        caller: &Caller,
        user: UserId,
        spec: &ChangesetSpec,
    ) -> Result<Preparation> {
        caller.require_publishing_as(user)?;
        validate(spec, &self.settings.publish)?;
        let resolved_commit = match &spec.change {
            ChangeSpec::Commit { repo, rev } => {
                // Only whoever runs the CLI may make the service read a
                // repository on its own disk.
                caller.require_operator().map_err(|_| {
                    invalid("commit changes are only accepted from the CLI; send a diff")
                })?;
                Some(resolve_commit(repo, rev).await?)
            }
            ChangeSpec::Diff { patch, .. } if patch.trim().is_empty() => {
                return Err(invalid("the diff is empty"));
            }
            ChangeSpec::Diff { .. } => None,
        };
        let url = CodeHostUrl::parse(&spec.code_host)?;
        let host = self.configured_code_host(&url).await?;
        check_repository_owner(host.kind, &spec.repository)?;
        let fingerprint = spec.fingerprint(resolved_commit.as_deref());
        let existing = self
            .store
            .find_changeset(host.id, &spec.repository, &spec.head_branch)
            .await?;
        // A changeset is its first publisher's; only a hand-over changes
        // that. Refused before any code host is asked.
        if existing.as_ref().is_some_and(|c| !c.claimable_by(user)) {
            return Err(another_users_changeset(spec));
        }
        if let Some(done) = existing.as_ref().filter(|c| {
            c.state == ChangesetState::Published
                && c.spec_hash == fingerprint
                && c.user_id == user
                && !matches!(
                    c.job_state,
                    JobState::Queued | JobState::Processing | JobState::Errored
                )
        }) {
            return Ok(Preparation::Unchanged(PublishedChangeset {
                id: done.id,
                result: PublishResult::Unchanged,
                commit: done.pushed_commit.clone(),
                pull_request_number: done.pr_number,
                pull_request_url: done.pr_url.clone(),
                credential_source: done.credential_source.clone(),
            }));
        }
        // The credential (and the global credential's policy) is settled
        // before anything is recorded, so a user who may not publish there
        // leaves no changeset behind to stand in its owner's way.
        let credential = self
            .resolve_credential(caller, user, &host.url, &spec.repository)
            .await?;
        Ok(Preparation::Ready(Box::new(Prepared {
            host,
            fingerprint,
            credential,
        })))
    }

    pub(super) async fn publish_steps(
        &self,
        user: UserId,
        spec: &ChangesetSpec,
        host: &CodeHostConfig,
        credential: &ResolvedCredential,
        record: &mut ChangesetRecord,
    ) -> Result<PublishedChangeset> {
        record.credential_id = Some(credential.credential_id);
        record.credential_source = Some(credential.source.as_str().to_owned());
        let token = &credential.secret.token;
        let client = self.code_host_client(host, credential.username.as_deref())?;
        let backoff = self.settings.publish.backoff;
        let info = backoff
            .run(|| client.repository(token, &spec.repository), |_| {})
            .await?;
        // A code host that followed a rename or transfer answered for
        // another repository than the one named: the policy and the
        // ownership of the changeset were decided for the name, so nothing
        // is pushed to the other one.
        if let Some(current) = &info.canonical_name
            && !current.eq_ignore_ascii_case(&spec.repository)
        {
            return Err(invalid(format!(
                "{} on {} is now {current} (renamed or transferred); publish to {current} instead",
                spec.repository, host.url
            )));
        }
        if let Some(default) = &info.default_branch
            && same_branch(&spec.head_branch, default)
        {
            return Err(invalid(format!(
                "head branch {} is the default branch of {}; batchcred never pushes to a \
                 repository's default branch",
                spec.head_branch, spec.repository
            )));
        }

        let (remote_url, auth) = match host.git_url_type {
            GitUrlType::Http => (
                info.http_clone_url,
                GitAuth::Https {
                    username: host.kind.descriptor().git_https_username(
                        credential.username.as_deref(),
                        credential.code_host_user.as_deref(),
                    ),
                    token: token.clone(),
                },
            ),
            GitUrlType::Ssh => {
                let remote = info.ssh_clone_url.ok_or_else(|| {
                    Error::PublishFailed(format!(
                        "{} reports no SSH clone URL for {}",
                        host.url, spec.repository
                    ))
                })?;
                let (Some(private_key), Some(public_key)) = (
                    credential.secret.ssh_private_key.clone(),
                    credential.ssh_public_key.clone(),
                ) else {
                    return Err(Error::PublishFailed(
                        "the credential has no SSH key; remove it and add it again".into(),
                    ));
                };
                (
                    remote,
                    GitAuth::Ssh {
                        private_key,
                        public_key,
                        known_hosts: host.ssh_known_hosts.clone().unwrap_or_default(),
                    },
                )
            }
        };
        let change = match &spec.change {
            ChangeSpec::Commit { repo, rev } => Change::Commit {
                repo: repo.clone(),
                rev: rev.clone(),
            },
            ChangeSpec::Diff {
                patch,
                message,
                author_name,
                author_email,
            } => {
                let username = self.store.find_user(user).await?.username;
                // A change for review has no description but its commit
                // message: the body goes there.
                let default_message = match host.kind.descriptor().changeset {
                    ChangesetForm::ReviewChange if !spec.body.trim().is_empty() => {
                        format!("{}\n\n{}", spec.title, spec.body)
                    }
                    _ => spec.title.clone(),
                };
                Change::Diff {
                    patch: patch.clone(),
                    message: message.clone().unwrap_or(default_message),
                    author_name: author_name.clone().unwrap_or_else(|| username.clone()),
                    author_email: author_email
                        .clone()
                        .unwrap_or_else(|| format!("{username}@users.noreply.batchcred")),
                }
            }
        };
        remote::check_clone_url(&host.url, &remote_url).map_err(|reason| {
            Error::PublishFailed(format!(
                "{} reported a clone URL for {} that batchcred will not push to: {reason}",
                host.url, spec.repository
            ))
        })?;
        let target = match host.kind.descriptor().changeset {
            ChangesetForm::ReviewChange => PushTarget::Review {
                change_id: self.change_id_of(record).await?,
                topic: spec.head_branch.clone(),
                work_in_progress: spec.draft,
            },
            ChangesetForm::PullRequest => PushTarget::Branch,
        };
        let change_id = match &target {
            PushTarget::Review { change_id, .. } => Some(change_id.to_string()),
            PushTarget::Branch => None,
        };
        let request = PushRequest {
            remote_url,
            base_branch: spec.base_branch.clone(),
            head_branch: spec.head_branch.clone(),
            expected_head: record.pushed_commit.clone(),
            interrupted_head: record.pushing_commit.clone(),
            change,
            target,
            signing: credential.commit_signing(),
        };
        let (store, id) = (self.store.clone(), record.id);
        let record_commit: git::RecordCommit<'_> = Box::new(move |commit| {
            Box::pin(async move {
                store
                    .record_pushing_commit(id, &commit)
                    .await
                    .map_err(|e| e.to_string())
            })
        });
        let pushed = {
            let _slot = self.git_jobs.start(user).await;
            git::push_recording(&request, &auth, record_commit).await
        }
        .map_err(|e| push_error(spec, host.kind, request.expected_head.as_deref(), e))?;
        record.state = ChangesetState::Pushed;
        record.pushed_commit = Some(pushed.commit.clone());
        record.updated_at = Utc::now();
        self.store.update_changeset(record).await?;

        let draft = PullRequestDraft {
            repository: spec.repository.clone(),
            base_branch: spec.base_branch.clone(),
            head_branch: spec.head_branch.clone(),
            title: spec.title.clone(),
            body: spec.body.clone(),
            draft: spec.draft,
            change_id,
        };
        let interval = match host.kind {
            CodeHostKind::GitHub => self.settings.publish.github_pull_request_interval,
            _ => Duration::ZERO,
        };
        let pull = backoff
            .run(
                || async {
                    self.pacer.wait_turn(&host.id.to_string(), interval).await;
                    client.publish_pull_request(token, &draft).await
                },
                |_| {},
            )
            .await?;
        record.state = ChangesetState::Published;
        record.external_state = Some(
            super::changeset_lifecycle::published_state(spec.draft)
                .as_str()
                .to_owned(),
        );
        record.pr_number = i64::try_from(pull.number).ok();
        record.pr_url = Some(pull.url.clone());
        record.updated_at = Utc::now();
        self.store.update_changeset(record).await?;
        tracing::info!(pull_request = %pull.url, created = pull.created, source = credential.source.as_str(), "changeset published");
        Ok(PublishedChangeset {
            id: record.id,
            result: if pull.created {
                PublishResult::Opened
            } else {
                PublishResult::Updated
            },
            commit: Some(pushed.commit),
            pull_request_number: record.pr_number,
            pull_request_url: Some(pull.url),
            credential_source: Some(credential.source.as_str().to_owned()),
        })
    }

    /// The Change-Id of a Gerrit changeset's change: the one recorded, else
    /// a new one, recorded before anything is pushed so that a publish
    /// interrupted after its push uploads to the same change next time.
    async fn change_id_of(&self, record: &mut ChangesetRecord) -> Result<ChangeId> {
        let stored = match record.change_id.as_deref() {
            Some(stored) => stored.to_owned(),
            None => {
                let candidate = ChangeId::generate()
                    .map_err(|e| Error::Internal(format!("cannot make a Change-Id: {e}")))?;
                self.store
                    .ensure_change_id(record.id, candidate.as_str())
                    .await?
            }
        };
        let change_id = ChangeId::parse(&stored).ok_or_else(|| {
            Error::Internal(format!("changeset {} has an invalid Change-Id", record.id))
        })?;
        record.change_id = Some(stored);
        Ok(change_id)
    }

    /// Refuses more changesets in one request than an API caller may send
    /// (the CLI operator's spec files are not limited).
    pub(super) fn check_request_size(&self, caller: &Caller, count: usize) -> Result<()> {
        let most = self.settings.publish.max_changesets_per_request;
        if count > most && caller.require_operator().is_err() {
            return Err(invalid(format!(
                "{count} changesets in one request; at most {most} are accepted \
                 (use `batchcred publish` on the server for more)"
            )));
        }
        Ok(())
    }

    /// Publishes many changesets, at most `concurrency` at a time. One
    /// failing does not stop the others; every outcome is reported, in
    /// the order given.
    pub async fn publish_changesets(
        &self,
        caller: &Caller,
        user: UserId,
        specs: Vec<ChangesetSpec>,
        concurrency: usize,
        on_report: Option<OnReport>,
    ) -> Result<Vec<ChangesetReport>> {
        caller.require_publishing_as(user)?;
        if !(1..=MAX_PUBLISH_CONCURRENCY).contains(&concurrency) {
            return Err(invalid(format!(
                "concurrency must be between 1 and {MAX_PUBLISH_CONCURRENCY}"
            )));
        }
        self.check_request_size(caller, specs.len())?;
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for (index, spec) in specs.into_iter().enumerate() {
            let (service, caller, permits, on_report) = (
                self.clone(),
                caller.clone(),
                Arc::clone(&permits),
                on_report.clone(),
            );
            // In the caller's span, so that the request id stays on
            // every log line of the publish.
            tasks.spawn(tracing::Instrument::in_current_span(async move {
                let _permit = permits.acquire_owned().await;
                let outcome = service.publish_changeset(&caller, user, &spec).await;
                let report = ChangesetReport {
                    index,
                    repository: spec.repository,
                    head_branch: spec.head_branch,
                    outcome,
                };
                if let Some(on_report) = &on_report {
                    on_report(&report);
                }
                report
            }));
        }
        let mut reports = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            reports.push(joined.map_err(|e| Error::Internal(format!("publish task failed: {e}")))?);
        }
        reports.sort_by_key(|r| r.index);
        Ok(reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gerrit_projects_may_lack_an_owner() {
        assert!(check_repository_owner(CodeHostKind::Gerrit, "api").is_ok());
        assert!(check_repository_owner(CodeHostKind::Gerrit, "team/api").is_ok());
        assert!(check_repository_owner(CodeHostKind::GitHub, "api").is_err());
        assert!(check_repository_name("api").is_ok());
        assert!(check_repository_name("../api").is_err());
    }
}
