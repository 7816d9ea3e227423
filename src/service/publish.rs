//! Publishing changesets: resolve the credential, push the branch, open or
//! update the pull request, and record each step so that an interrupted
//! run resumes without opening duplicates.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::{Error, Result, Service};
use crate::auth::Caller;
use crate::codehost::{self, CodeHostApi, PullRequestDraft};
use crate::domain::{ChangesetId, CodeHostKind, CodeHostUrl, GitUrlType, UserId};
use crate::publish::git::{self, Change, GitAuth, PushError, PushRequest};
use crate::publish::{Backoff, ChangeSpec, ChangesetSpec};
use crate::store::{ChangesetRecord, ChangesetState, CodeHostRecord};

/// How publishing treats the code hosts.
#[derive(Debug, Clone, Copy)]
pub struct PublishSettings {
    /// The least time between two pull requests opened on one GitHub code
    /// host (its secondary rate limits punish bursts).
    pub github_pull_request_interval: Duration,
    pub backoff: Backoff,
}

impl Default for PublishSettings {
    fn default() -> Self {
        Self {
            github_pull_request_interval: Duration::from_secs(1),
            backoff: Backoff::default(),
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
}

impl PublishResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
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

fn push_error(spec: &ChangesetSpec, error: PushError) -> Error {
    let message = format!(
        "pushing {} to {}:{} failed: {error}",
        spec.head_branch, spec.code_host, spec.repository
    );
    match error {
        PushError::Unreachable(_) => Error::CodeHostUnavailable(message),
        _ => Error::PublishFailed(message),
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidInput(message.into())
}

/// Checks what git and the code host APIs would otherwise choke on.
fn validate(spec: &ChangesetSpec) -> Result<()> {
    let bad_repo = spec.repository.is_empty()
        || spec.repository.starts_with('/')
        || spec.repository.ends_with('/')
        || spec.repository.contains("..")
        || !spec.repository.contains('/')
        || spec
            .repository
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%'));
    if bad_repo {
        return Err(invalid(format!(
            "repository {:?} must look like owner/name",
            spec.repository
        )));
    }
    if spec.title.trim().is_empty() {
        return Err(invalid("a changeset needs a title"));
    }
    if spec.base_branch == spec.head_branch {
        return Err(invalid("the head branch must differ from the base branch"));
    }
    Ok(())
}

/// The commit id `rev` names in `repo`, so a moved branch counts as a new
/// spec.
async fn resolve_commit(repo: &std::path::Path, rev: &str) -> Result<String> {
    if rev.starts_with('-') {
        return Err(invalid(format!("invalid revision {rev:?}")));
    }
    let output = tokio::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--verify", "--end-of-options"])
        .arg(format!("{rev}^{{commit}}"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C")
        .output()
        .await
        .map_err(|e| Error::Internal(format!("cannot run git: {e}")))?;
    if !output.status.success() {
        return Err(invalid(format!(
            "{rev:?} is not a commit in {}: {}",
            repo.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

impl Service {
    /// Publishes one changeset on `user`'s behalf.
    #[tracing::instrument(skip_all, fields(repository = %spec.repository, head = %spec.head_branch))]
    pub async fn publish_changeset(
        &self,
        caller: &Caller,
        user: UserId,
        spec: &ChangesetSpec,
    ) -> Result<PublishedChangeset> {
        caller.require_acting_for(user)?;
        validate(spec)?;
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
        let host = self
            .store
            .find_code_host_by_url(&url)
            .await
            .map_err(|e| match e {
                crate::store::Error::NotFound => Error::NotFound(format!(
                    "unknown code host: no code host is configured at {url}"
                )),
                other => other.into(),
            })?;
        let fingerprint = spec.fingerprint(resolved_commit.as_deref());
        let existing = self
            .store
            .find_changeset(host.id, &spec.repository, &spec.head_branch)
            .await?;
        if let Some(done) = existing.as_ref().filter(|c| {
            c.state == ChangesetState::Published && c.spec_hash == fingerprint && c.user_id == user
        }) {
            return Ok(PublishedChangeset {
                id: done.id,
                result: PublishResult::Unchanged,
                commit: done.pushed_commit.clone(),
                pull_request_number: done.pr_number,
                pull_request_url: done.pr_url.clone(),
                credential_source: done.credential_source.clone(),
            });
        }
        let now = Utc::now();
        let mut record = self
            .store
            .begin_changeset(&ChangesetRecord {
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
                pr_number: None,
                pr_url: None,
                error: None,
                attempts: 1,
                created_at: now,
                updated_at: now,
            })
            .await?;
        let outcome = self
            .publish_steps(caller, user, spec, &host, &mut record)
            .await;
        if let Err(error) = &outcome {
            record.state = ChangesetState::Failed;
            record.error = Some(error.to_string());
            record.updated_at = Utc::now();
            self.store.update_changeset(&record).await?;
        }
        outcome
    }

    async fn publish_steps(
        &self,
        caller: &Caller,
        user: UserId,
        spec: &ChangesetSpec,
        host: &CodeHostRecord,
        record: &mut ChangesetRecord,
    ) -> Result<PublishedChangeset> {
        let credential = self
            .resolve_credential(caller, user, &host.url, &spec.repository)
            .await?;
        record.credential_id = Some(credential.credential_id);
        record.credential_source = Some(credential.source.as_str().to_owned());
        let token = &credential.secret.token;
        let client = self.code_host_client(host)?;
        let backoff = self.settings.publish.backoff;
        let info = backoff
            .run(|| client.repository(token, &spec.repository), |_| {})
            .await?;

        let (remote_url, auth) = match host.git_url_type {
            GitUrlType::Http => (
                info.http_clone_url,
                GitAuth::Https {
                    username: codehost::git_https_username(
                        host.kind,
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
                Change::Diff {
                    patch: patch.clone(),
                    message: message.clone().unwrap_or_else(|| spec.title.clone()),
                    author_name: author_name.clone().unwrap_or_else(|| username.clone()),
                    author_email: author_email
                        .clone()
                        .unwrap_or_else(|| format!("{username}@users.noreply.batchcred")),
                }
            }
        };
        let request = PushRequest {
            remote_url,
            base_branch: spec.base_branch.clone(),
            head_branch: spec.head_branch.clone(),
            change,
        };
        let pushed = git::push(&request, &auth)
            .await
            .map_err(|e| push_error(spec, e))?;
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
        caller.require_acting_for(user)?;
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for (index, spec) in specs.into_iter().enumerate() {
            let (service, caller, permits, on_report) = (
                self.clone(),
                caller.clone(),
                Arc::clone(&permits),
                on_report.clone(),
            );
            tasks.spawn(async move {
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
            });
        }
        let mut reports = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            reports.push(joined.map_err(|e| Error::Internal(format!("publish task failed: {e}")))?);
        }
        reports.sort_by_key(|r| r.index);
        Ok(reports)
    }
}
