//! The audit log in GraphQL: `auditLog` (site admins see every entry; a
//! user sees the entries about them or done by them).

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::error::IntoGraphql;
use super::types::PageInfo;
use super::{context_parts, ids};
use crate::domain::{AuditRecord, UserId};
use crate::service::{AuditQuery, Page, PageRequest};

/// One audit entry.
pub struct AuditLogEntry(pub AuditRecord);

#[Object]
impl AuditLogEntry {
    /// Its place in the hash chain.
    async fn seq(&self) -> i64 {
        self.0.seq
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }

    /// `user:<id>`, `operator` (the CLI, or the server's own background
    /// work), `system` (the job workers) or `anonymous`.
    async fn actor(&self) -> &str {
        &self.0.actor
    }

    /// The acting user's name at the time.
    async fn actor_name(&self) -> Option<&str> {
        self.0.actor_name.as_deref()
    }

    /// Such as `credential.created`, `sign_in`, `credential.used`.
    async fn event(&self) -> &str {
        &self.0.event
    }

    /// `success` or `failure`.
    async fn outcome(&self) -> &str {
        &self.0.outcome
    }

    /// The user the event is about.
    async fn user(&self) -> Option<ID> {
        self.0
            .user_id
            .as_deref()
            .and_then(|id| id.parse::<UserId>().ok())
            .map(ids::user_id)
    }

    async fn credential_id(&self) -> Option<&str> {
        self.0.credential_id.as_deref()
    }

    async fn changeset(&self) -> Option<ID> {
        self.0
            .changeset_id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .map(ids::changeset_id)
    }

    /// The rest of the entry, a JSON object (never a secret).
    async fn detail(&self) -> &str {
        &self.0.detail
    }

    /// SHA-256 over the entry and the hash of the one before it.
    async fn hash(&self) -> &str {
        &self.0.hash
    }
}

/// A page of audit entries, newest first.
pub struct AuditLogConnection(pub Page<AuditRecord>);

#[Object]
impl AuditLogConnection {
    async fn total_count(&self) -> i64 {
        self.0.total_count
    }

    async fn page_info(&self) -> PageInfo {
        PageInfo::from(&self.0)
    }

    async fn nodes(&self) -> Vec<AuditLogEntry> {
        self.0.items.iter().cloned().map(AuditLogEntry).collect()
    }
}

/// Lists entries for the root `auditLog` field.
#[allow(clippy::too_many_arguments)]
pub(super) async fn list(
    ctx: &Context<'_>,
    user: Option<ID>,
    event: Option<String>,
    code_host_url: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    page: PageRequest,
) -> async_graphql::Result<AuditLogConnection> {
    let (service, caller) = context_parts(ctx)?;
    let query = AuditQuery {
        user: user.map(|id| ids::parse_user_id(&id)).transpose().gql()?,
        event,
        code_host: code_host_url,
        since,
        until,
    };
    let page = service.audit_log(caller, &query, &page).await.gql()?;
    Ok(AuditLogConnection(page))
}
