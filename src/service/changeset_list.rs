//! Listing changesets with what people need to follow them: status,
//! review and CI state, pull request, credential used, last error.

use std::collections::HashMap;

use super::{Error, Page, PageRequest, Result, Service};
use crate::auth::Caller;
use crate::domain::{ChangesetId, ChangesetRecord, CodeHostId, CodeHostKind, CodeHostUrl, UserId};
use crate::store::ChangesetFilter;

/// A changeset's status as people see it: what its job is doing, else
/// what the code host last said of its pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangesetStatus {
    /// Recorded, not published (a publish that was interrupted).
    Pending,
    Queued,
    Processing,
    /// An attempt failed; it is tried again after a back-off.
    Retrying,
    Failed,
    Open,
    Draft,
    Merged,
    Closed,
    /// The pull request no longer exists on the code host.
    Deleted,
}

impl ChangesetStatus {
    pub const ALL: [Self; 10] = [
        Self::Pending,
        Self::Queued,
        Self::Processing,
        Self::Retrying,
        Self::Failed,
        Self::Open,
        Self::Draft,
        Self::Merged,
        Self::Closed,
        Self::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Open => "open",
            Self::Draft => "draft",
            Self::Merged => "merged",
            Self::Closed => "closed",
            Self::Deleted => "deleted",
        }
    }
}

impl std::str::FromStr for ChangesetStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown changeset status {s:?}; use one of {}",
                    Self::ALL.map(Self::as_str).join(", ")
                ))
            })
    }
}

/// A changeset with its status and code host, for listing.
#[derive(Debug, Clone)]
pub struct ChangesetView {
    pub record: ChangesetRecord,
    pub status: ChangesetStatus,
    pub code_host_url: String,
    pub code_host_kind: CodeHostKind,
}

/// Which changesets to list.
#[derive(Debug, Clone, Default)]
pub struct ChangesetQuery {
    /// One user's; `None`: everyone's (site admins only).
    pub user: Option<UserId>,
    /// The code host's URL.
    pub code_host: Option<String>,
    pub status: Option<ChangesetStatus>,
}

impl Service {
    /// A page of changesets, newest first. Users list their own; site
    /// admins anyone's, or everyone's.
    pub async fn list_changesets(
        &self,
        caller: &Caller,
        query: &ChangesetQuery,
        page: &PageRequest,
    ) -> Result<Page<ChangesetView>> {
        match query.user {
            Some(user) => caller.require_acting_for(user)?,
            None => caller.require_site_admin()?,
        }
        let code_host = match &query.code_host {
            Some(url) => Some(
                self.configured_code_host(&CodeHostUrl::parse(url)?)
                    .await?
                    .id,
            ),
            None => None,
        };
        let filter = ChangesetFilter {
            user: query.user,
            code_host,
            status: query.status.map(|s| s.as_str().to_owned()),
        };
        let limit = page.limit()?;
        let rows = self
            .store
            .list_changesets(&filter, page.after_id()?, limit)
            .await?;
        let total = self.store.count_changesets(&filter).await?;
        let hosts = self.code_host_names().await?;
        let views = rows
            .into_iter()
            .map(|(record, status)| view(record, &status, &hosts))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(views, limit, total, |v| {
            v.record.id.to_string()
        }))
    }

    /// One changeset the caller may see.
    pub async fn changeset(&self, caller: &Caller, id: ChangesetId) -> Result<ChangesetView> {
        let record = self.visible_changeset(caller, id).await?;
        let status = self.store.changeset_status(id).await?;
        view(record, &status, &self.code_host_names().await?)
    }

    /// Every configured code host's URL and kind, by id (a handful).
    async fn code_host_names(&self) -> Result<HashMap<CodeHostId, (String, CodeHostKind)>> {
        let hosts = self.store.list_code_hosts(None, i64::MAX).await?;
        Ok(hosts
            .into_iter()
            .map(|h| (h.id, (h.url.to_string(), h.kind)))
            .collect())
    }
}

fn view(
    record: ChangesetRecord,
    status: &str,
    hosts: &HashMap<CodeHostId, (String, CodeHostKind)>,
) -> Result<ChangesetView> {
    let status = status
        .parse()
        .map_err(|_| Error::Internal(format!("changeset {} has status {status:?}", record.id)))?;
    let (code_host_url, code_host_kind) = hosts
        .get(&record.code_host_id)
        .cloned()
        .ok_or_else(|| Error::Internal(format!("changeset {} has no code host", record.id)))?;
    Ok(ChangesetView {
        record,
        status,
        code_host_url,
        code_host_kind,
    })
}
