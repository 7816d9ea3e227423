//! After publishing: closing and reopening a changeset's pull request,
//! reading its state back from the code host (sync), and importing a pull
//! request opened by hand. Each is a job on the queue, run by a worker
//! with the owner's credential (else the global one), like publishing.

use chrono::Utc;

use super::{Error, Result, Service};
use crate::auth::Caller;
use crate::domain::ChangesetId;
use crate::store::{ChangesetRecord, JobAction};

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
            .enqueue_job(changeset.id, action, delete_branch, Utc::now())
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
}
