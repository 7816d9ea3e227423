//! Changesets as the API shows them: the `changesets` connections (on
//! `User`, and for site admins at the root), `changeset(id)`, and the
//! actions on one changeset.

use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, Utc};

use super::error::IntoGraphql;
use super::types::PageInfo;
use super::{context_parts, ids};
use crate::domain::UserId;
use crate::service::{ChangesetQuery, ChangesetStatus, ChangesetView, Page, PageRequest};

/// A changeset's status: what its job is doing, else what the code host
/// last said of its pull request.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "ChangesetStatus")]
pub enum ChangesetStatusValue {
    /// Recorded, not published (a publish that was interrupted).
    Pending,
    /// Waiting for a worker.
    Queued,
    /// A worker is on it.
    Processing,
    /// An attempt failed; it is tried again after a back-off.
    Retrying,
    /// Its job failed; `error` says why. Retry it with `retryChangeset`.
    Failed,
    Open,
    Draft,
    Merged,
    Closed,
    /// The pull request no longer exists on the code host.
    Deleted,
}

impl From<ChangesetStatus> for ChangesetStatusValue {
    fn from(status: ChangesetStatus) -> Self {
        match status {
            ChangesetStatus::Pending => Self::Pending,
            ChangesetStatus::Queued => Self::Queued,
            ChangesetStatus::Processing => Self::Processing,
            ChangesetStatus::Retrying => Self::Retrying,
            ChangesetStatus::Failed => Self::Failed,
            ChangesetStatus::Open => Self::Open,
            ChangesetStatus::Draft => Self::Draft,
            ChangesetStatus::Merged => Self::Merged,
            ChangesetStatus::Closed => Self::Closed,
            ChangesetStatus::Deleted => Self::Deleted,
        }
    }
}

impl From<ChangesetStatusValue> for ChangesetStatus {
    fn from(status: ChangesetStatusValue) -> Self {
        match status {
            ChangesetStatusValue::Pending => Self::Pending,
            ChangesetStatusValue::Queued => Self::Queued,
            ChangesetStatusValue::Processing => Self::Processing,
            ChangesetStatusValue::Retrying => Self::Retrying,
            ChangesetStatusValue::Failed => Self::Failed,
            ChangesetStatusValue::Open => Self::Open,
            ChangesetStatusValue::Draft => Self::Draft,
            ChangesetStatusValue::Merged => Self::Merged,
            ChangesetStatusValue::Closed => Self::Closed,
            ChangesetStatusValue::Deleted => Self::Deleted,
        }
    }
}

/// A changeset: one head branch of a repository, its pull request, and
/// the job that publishes, closes, reopens or syncs it.
pub struct Changeset(pub ChangesetView);

#[Object]
impl Changeset {
    async fn id(&self) -> ID {
        ids::changeset_id(self.0.record.id)
    }

    #[graphql(name = "codeHostURL")]
    async fn code_host_url(&self) -> &str {
        &self.0.code_host_url
    }

    async fn repository(&self) -> &str {
        &self.0.record.repository
    }

    async fn base_branch(&self) -> &str {
        &self.0.record.base_branch
    }

    async fn head_branch(&self) -> &str {
        &self.0.record.head_branch
    }

    async fn title(&self) -> &str {
        &self.0.record.title
    }

    async fn status(&self) -> ChangesetStatusValue {
        self.0.status.into()
    }

    /// How far publishing got: `pending`, `pushed`, `published` or
    /// `failed`.
    async fn state(&self) -> &str {
        self.0.record.state.as_str()
    }

    /// The job last asked for: `publish`, `close`, `reopen` or `sync`.
    async fn job_action(&self) -> Option<&str> {
        self.0.record.job_action.map(|a| a.as_str())
    }

    /// `queued`, `processing`, `completed`, `errored` (retried later) or
    /// `failed`.
    async fn job_state(&self) -> &str {
        self.0.record.job_state.as_str()
    }

    /// Attempts at the current job so far.
    async fn attempts(&self) -> i64 {
        self.0.record.job_attempts
    }

    /// The last error, if the last attempt failed.
    async fn error(&self) -> Option<&str> {
        self.0.record.error.as_deref()
    }

    /// `approved`, `changes_requested` or `pending`, where the code host
    /// reports reviews.
    async fn review_state(&self) -> Option<&str> {
        self.0.record.review_state.as_deref()
    }

    /// `passed`, `failed` or `pending`, where the code host reports CI.
    async fn checks_state(&self) -> Option<&str> {
        self.0.record.checks_state.as_deref()
    }

    async fn synced_at(&self) -> Option<DateTime<Utc>> {
        self.0.record.synced_at
    }

    async fn pull_request_number(&self) -> Option<i64> {
        self.0.record.pr_number
    }

    #[graphql(name = "pullRequestURL")]
    async fn pull_request_url(&self) -> Option<&str> {
        self.0.record.pr_url.as_deref()
    }

    async fn commit(&self) -> Option<&str> {
        self.0.record.pushed_commit.as_deref()
    }

    /// `user` (the owner's own token) or `site` (the global one).
    async fn credential_source(&self) -> Option<&str> {
        self.0.record.credential_source.as_deref()
    }

    /// Tracked by number, not published by batchcred.
    async fn imported(&self) -> bool {
        self.0.record.imported
    }

    /// The user it belongs to: the only one who may publish it.
    async fn owner(&self) -> ID {
        ids::user_id(self.0.record.user_id)
    }

    /// Set by a hand-over: the owner before it.
    async fn previous_owner(&self) -> Option<ID> {
        self.0.record.previous_user_id.map(ids::user_id)
    }

    /// The site admin who handed it over (null with `handedOverAt` set:
    /// the local operator, from the CLI).
    async fn handed_over_by(&self) -> Option<ID> {
        self.0.record.handed_over_by.map(ids::user_id)
    }

    async fn handed_over_at(&self) -> Option<DateTime<Utc>> {
        self.0.record.handed_over_at
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.record.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.record.updated_at
    }
}

/// A page of changesets, newest first.
pub struct ChangesetConnection(pub Page<ChangesetView>);

#[Object]
impl ChangesetConnection {
    async fn total_count(&self) -> i64 {
        self.0.total_count
    }

    async fn page_info(&self) -> PageInfo {
        PageInfo::from(&self.0)
    }

    async fn nodes(&self) -> Vec<Changeset> {
        self.0.items.iter().cloned().map(Changeset).collect()
    }
}

/// Lists changesets for the `changesets` fields.
pub(super) async fn list(
    ctx: &Context<'_>,
    user: Option<UserId>,
    status: Option<ChangesetStatusValue>,
    code_host: Option<String>,
    page: PageRequest,
) -> async_graphql::Result<ChangesetConnection> {
    let (service, caller) = context_parts(ctx)?;
    let query = ChangesetQuery {
        user,
        code_host,
        status: status.map(Into::into),
    };
    let page = service.list_changesets(caller, &query, &page).await.gql()?;
    Ok(ChangesetConnection(page))
}

#[derive(Default)]
pub struct ChangesetActionsMutation;

#[Object]
impl ChangesetActionsMutation {
    /// Queues a failed changeset's job again at once, with its attempts
    /// reset (its owner only).
    async fn retry_changeset(
        &self,
        ctx: &Context<'_>,
        changeset: ID,
    ) -> async_graphql::Result<Changeset> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_changeset_id(&changeset).gql()?;
        service.retry_changeset(caller, id).await.gql()?;
        Ok(Changeset(service.changeset(caller, id).await.gql()?))
    }

    /// Queues closing the changeset's pull request (its owner only); with
    /// `deleteBranch`, also deletes the head branch batchcred pushed.
    async fn close_changeset(
        &self,
        ctx: &Context<'_>,
        changeset: ID,
        #[graphql(default)] delete_branch: bool,
    ) -> async_graphql::Result<Changeset> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_changeset_id(&changeset).gql()?;
        service
            .close_changeset(caller, id, delete_branch)
            .await
            .gql()?;
        Ok(Changeset(service.changeset(caller, id).await.gql()?))
    }

    /// Queues reopening the changeset's closed pull request (its owner
    /// only).
    async fn reopen_changeset(
        &self,
        ctx: &Context<'_>,
        changeset: ID,
    ) -> async_graphql::Result<Changeset> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_changeset_id(&changeset).gql()?;
        service.reopen_changeset(caller, id).await.gql()?;
        Ok(Changeset(service.changeset(caller, id).await.gql()?))
    }

    /// Queues reading the changeset's pull request state from its code
    /// host now (its owner or a site admin).
    async fn sync_changeset(
        &self,
        ctx: &Context<'_>,
        changeset: ID,
    ) -> async_graphql::Result<Changeset> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_changeset_id(&changeset).gql()?;
        service.sync_changeset(caller, id).await.gql()?;
        Ok(Changeset(service.changeset(caller, id).await.gql()?))
    }

    /// Tracks pull request `number` of `repository`, opened outside
    /// batchcred, as the caller's changeset (read with their credential,
    /// else the global one where its policy allows them).
    async fn import_changeset(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "codeHostURL")] code_host_url: String,
        repository: String,
        number: i32,
    ) -> async_graphql::Result<Changeset> {
        let (service, caller) = context_parts(ctx)?;
        let user = caller
            .user()
            .map(|u| u.id)
            .ok_or_else(|| crate::service::Error::Unauthenticated("sign in first".into()))
            .gql()?;
        let number = u64::try_from(number)
            .map_err(|_| {
                crate::service::Error::InvalidInput("a pull request number is positive".into())
            })
            .gql()?;
        let record = service
            .import_changeset(caller, user, &code_host_url, &repository, number)
            .await
            .gql()?;
        Ok(Changeset(service.changeset(caller, record.id).await.gql()?))
    }
}
