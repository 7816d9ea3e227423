//! After publishing: closing and reopening a changeset's pull request,
//! reading its state back from the code host (sync), and importing a pull
//! request opened by hand. Each is a job on the queue, run by a worker
//! with the owner's credential (else the global one), like publishing.

use chrono::Utc;

use super::{Error, Result, Service};
use crate::auth::Caller;
use crate::codehost::{self, CodeHostApi, PullRequestState, PullRequestStatus};
use crate::domain::{
    ChangesetId, ChangesetRecord, ChangesetState, CodeHostUrl, JobAction, JobState, UserId,
};
use crate::store::{ClaimedJob, PullRequestSnapshot};

/// How many stale changesets one background sync round queues at most.
const SYNC_ROUND: i64 = 1000;

/// Whether a changeset's pull request is open, as far as batchcred knows.
fn has_open_pull_request(changeset: &ChangesetRecord) -> bool {
    changeset.pr_number.is_some()
        && matches!(
            changeset.external_state.as_deref(),
            None | Some("open") | Some("draft")
        )
}

impl Service {
    /// Queues closing the changeset's pull request and, with
    /// `delete_branch`, deleting the head branch batchcred pushed for it.
    /// Its owner only.
    pub async fn close_changeset(
        &self,
        caller: &Caller,
        id: ChangesetId,
        delete_branch: bool,
    ) -> Result<ChangesetRecord> {
        let changeset = self.visible_changeset(caller, id).await?;
        caller.require_publishing_as(changeset.user_id)?;
        if !has_open_pull_request(&changeset) {
            return Err(Error::Conflict(format!(
                "{}:{} has no open pull request to close",
                changeset.repository, changeset.head_branch
            )));
        }
        if delete_branch && (changeset.imported || changeset.pushed_commit.is_none()) {
            return Err(Error::InvalidInput(format!(
                "batchcred did not push {} to {}; it only deletes branches it pushed",
                changeset.head_branch, changeset.repository
            )));
        }
        self.request_job(&changeset, JobAction::Close, delete_branch)
            .await
    }

    /// Queues reopening the changeset's closed pull request. Its owner
    /// only.
    pub async fn reopen_changeset(
        &self,
        caller: &Caller,
        id: ChangesetId,
    ) -> Result<ChangesetRecord> {
        let changeset = self.visible_changeset(caller, id).await?;
        caller.require_publishing_as(changeset.user_id)?;
        if changeset.pr_number.is_none() || changeset.external_state.as_deref() != Some("closed") {
            return Err(Error::Conflict(format!(
                "{}:{} has no closed pull request to reopen",
                changeset.repository, changeset.head_branch
            )));
        }
        self.request_job(&changeset, JobAction::Reopen, false).await
    }

    /// Queues reading the changeset's pull request state from its code
    /// host now. Its owner or a site admin.
    pub async fn sync_changeset(
        &self,
        caller: &Caller,
        id: ChangesetId,
    ) -> Result<ChangesetRecord> {
        let changeset = self.visible_changeset(caller, id).await?;
        if changeset.pr_number.is_none() {
            return Err(Error::Conflict(format!(
                "{}:{} has no pull request yet",
                changeset.repository, changeset.head_branch
            )));
        }
        self.request_job(&changeset, JobAction::Sync, false).await
    }

    async fn request_job(
        &self,
        changeset: &ChangesetRecord,
        action: JobAction,
        delete_branch: bool,
    ) -> Result<ChangesetRecord> {
        let queued = self
            .store
            .enqueue_job(changeset.id, action, delete_branch, true, Utc::now())
            .await
            .map_err(|error| match error {
                crate::store::Error::NotFound => Error::Conflict(format!(
                    "{}:{} has a {} job that has not ended; try again when it has",
                    changeset.repository,
                    changeset.head_branch,
                    changeset.job_action.map_or("", |a| a.as_str())
                )),
                other => other.into(),
            })?;
        crate::telemetry::metrics::changeset_job(action.as_str(), "queued");
        self.job_signal.notify_waiters();
        Ok(queued)
    }

    /// Queues a sync of every published changeset whose pull request is
    /// open and was not synced within `interval` (the background sync;
    /// replicas doing it at once queue each changeset once). Returns how
    /// many were queued.
    pub async fn queue_stale_syncs(
        &self,
        caller: &Caller,
        interval: std::time::Duration,
    ) -> Result<u64> {
        caller.require_operator()?;
        let now = Utc::now();
        let stale_before =
            now - chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::days(1));
        let queued = self
            .store
            .enqueue_stale_syncs(stale_before, now, SYNC_ROUND)
            .await?;
        if queued > 0 {
            self.job_signal.notify_waiters();
        }
        Ok(queued)
    }

    /// Starts tracking pull request `number` of `repository` on the code
    /// host at `code_host`, opened outside batchcred, as a changeset of
    /// `user` (the caller, acting for themselves), read with their
    /// credential (else the global one, where its policy lets them).
    /// batchcred never pushes to an imported changeset's branch.
    pub async fn import_changeset(
        &self,
        caller: &Caller,
        user: UserId,
        code_host: &str,
        repository: &str,
        number: u64,
    ) -> Result<ChangesetRecord> {
        caller.require_publishing_as(user)?;
        super::publish::check_repository_name(repository)?;
        let host = self
            .configured_code_host(&CodeHostUrl::parse(code_host)?)
            .await?;
        super::publish::check_repository_owner(host.kind, repository)?;
        let credential = self
            .resolve_credential(caller, user, &host.url, repository)
            .await?;
        let client = self.code_host_client(&host, credential.username.as_deref())?;
        let backoff = self.settings.publish.backoff;
        let status = backoff
            .run(
                || client.pull_request(&credential.secret.token, repository, number),
                |_| {},
            )
            .await
            .map_err(|error| match error {
                codehost::Error::PullRequestNotFound { .. } => Error::NotFound(error.to_string()),
                other => other.into(),
            })?;
        let now = Utc::now();
        let record = ChangesetRecord {
            id: ChangesetId::new(),
            user_id: user,
            code_host_id: host.id,
            repository: repository.to_owned(),
            base_branch: status.base_branch.clone(),
            head_branch: status.head_branch.clone(),
            spec_hash: String::new(),
            state: ChangesetState::Published,
            credential_id: Some(credential.credential_id),
            credential_source: Some(credential.source.as_str().to_owned()),
            pushed_commit: None,
            pushing_commit: None,
            pr_number: i64::try_from(status.number).ok(),
            pr_url: Some(status.url.clone()),
            error: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
            previous_user_id: None,
            handed_over_by: None,
            handed_over_at: None,
            title: status.title.clone(),
            job_action: None,
            job_state: JobState::Completed,
            job_attempts: 0,
            job_version: 0,
            process_after: now,
            delete_branch_on_close: false,
            external_state: Some(status.state.as_str().to_owned()),
            review_state: status.review.map(|r| r.as_str().to_owned()),
            checks_state: status.checks.map(|c| c.as_str().to_owned()),
            synced_at: Some(now),
            imported: true,
            change_id: None,
        };
        let imported = self
            .store
            .import_changeset(&record)
            .await
            .map_err(|error| match error {
                crate::store::Error::Conflict(_) => Error::Conflict(format!(
                    "{repository}:{} is already tracked by batchcred",
                    status.head_branch
                )),
                other => other.into(),
            })?;
        tracing::info!(changeset = %imported.id, pull_request = %status.url, "pull request imported");
        Ok(imported)
    }

    /// Runs a close, reopen or sync job: asks the code host with the
    /// owner's credential (else the global one) and records what it
    /// answers. A pull request gone from the code host is recorded as
    /// deleted.
    pub(super) async fn execute_pull_request_job(
        &self,
        job: &ClaimedJob,
        action: JobAction,
        used: &mut Option<super::changeset_jobs::CredentialUse>,
    ) -> Result<()> {
        let changeset = &job.changeset;
        let number = changeset
            .pr_number
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| Error::Conflict("the changeset has no pull request".into()))?;
        let host = self.store.find_code_host(changeset.code_host_id).await?;
        let credential = self
            .resolve_credential(
                &Caller::Operator,
                changeset.user_id,
                &host.url,
                &changeset.repository,
            )
            .await?;
        *used = Some(super::changeset_jobs::CredentialUse::of(&credential));
        let client = self.code_host_client(&host, credential.username.as_deref())?;
        let (token, repository) = (&credential.secret.token, changeset.repository.as_str());
        let backoff = self.settings.publish.backoff;
        let answer = match action {
            JobAction::Close => {
                let closed = backoff
                    .run(
                        || client.close_pull_request(token, repository, number),
                        |_| {},
                    )
                    .await;
                if closed.is_ok() && changeset.delete_branch_on_close {
                    backoff
                        .run(
                            || client.delete_branch(token, repository, &changeset.head_branch),
                            |_| {},
                        )
                        .await?;
                }
                closed
            }
            JobAction::Reopen => {
                backoff
                    .run(
                        || client.reopen_pull_request(token, repository, number),
                        |_| {},
                    )
                    .await
            }
            JobAction::Sync => {
                backoff
                    .run(|| client.pull_request(token, repository, number), |_| {})
                    .await
            }
            JobAction::Publish => {
                return Err(Error::Internal(
                    "a publish job reached the wrong runner".into(),
                ));
            }
        };
        let now = Utc::now();
        match answer {
            Ok(status) => {
                self.store
                    .record_pull_request_status(changeset.id, &snapshot(&status), now)
                    .await?;
                tracing::info!(
                    state = status.state.as_str(),
                    action = action.as_str(),
                    "pull request state recorded"
                );
                Ok(())
            }
            Err(codehost::Error::PullRequestNotFound { .. }) => {
                let gone = PullRequestSnapshot {
                    state: "deleted",
                    review: None,
                    checks: None,
                    title: None,
                };
                self.store
                    .record_pull_request_status(changeset.id, &gone, now)
                    .await?;
                match action {
                    JobAction::Sync => Ok(()),
                    _ => Err(Error::NotFound(format!(
                        "pull request #{number} of {repository} no longer exists"
                    ))),
                }
            }
            Err(other) => Err(other.into()),
        }
    }
}

fn snapshot(status: &PullRequestStatus) -> PullRequestSnapshot<'_> {
    PullRequestSnapshot {
        state: status.state.as_str(),
        review: status.review.map(|r| r.as_str()),
        checks: status.checks.map(|c| c.as_str()),
        title: Some(&status.title),
    }
}

/// The state a published pull request starts in.
pub(super) fn published_state(draft: bool) -> PullRequestState {
    if draft {
        PullRequestState::Draft
    } else {
        PullRequestState::Open
    }
}
