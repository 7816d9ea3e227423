//! Query root.

use crate::service::CheckOptions;
use async_graphql::{Context, ID, Object};

use super::changesets::{self, Changeset, ChangesetConnection, ChangesetStatusValue};
use super::error::{IntoGraphql, to_graphql};
use super::ids::{self, NodeRef};
use super::types::{
    AccessToken, BatchChangesCodeHostConnection, BatchChangesCredential, CodeHostConnection,
    EmptyResponse, Node, User, UserConnection,
};
use super::{CheckAllowance, MAX_CHECKS_PER_REQUEST, context_parts};
use crate::service::Caller;
use crate::service::{Error, PageRequest};

/// Read operations.
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The signed-in user, or null for anonymous callers.
    async fn current_user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let (_, caller) = context_parts(ctx)?;
        Ok(match caller {
            Caller::User(user) => Some(User(user.clone())),
            Caller::Anonymous | Caller::Operator => None,
        })
    }

    /// Looks up a user or credential by global ID. Things the caller may
    /// not see are answered as not found.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        let (service, caller) = context_parts(ctx)?;
        caller
            .require_signed_in()
            .map_err(|d| to_graphql(d.into()))?;
        let found = match ids::parse_node_id(&id).gql()? {
            NodeRef::User(user_id) => service
                .user(caller, user_id)
                .await
                .map(|u| Node::User(User(u))),
            NodeRef::Credential(credential_id) => service
                .credential(caller, credential_id)
                .await
                .map(|c| Node::BatchChangesCredential(BatchChangesCredential(c))),
            NodeRef::AccessToken(token_id) => service
                .access_token(caller, token_id)
                .await
                .map(|t| Node::AccessToken(AccessToken(t))),
        };
        match found {
            Ok(node) => Ok(Some(node)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(other) => Err(to_graphql(other)),
        }
    }

    /// Everyone's changesets, newest first (site admins only; users list
    /// their own on `User.changesets`).
    async fn changesets(
        &self,
        ctx: &Context<'_>,
        status: Option<ChangesetStatusValue>,
        #[graphql(name = "codeHostURL")] code_host_url: Option<String>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ChangesetConnection> {
        changesets::list(
            ctx,
            None,
            status,
            code_host_url,
            PageRequest { first, after },
        )
        .await
    }

    /// One changeset, if the caller may see it (its owner, site admins).
    async fn changeset(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<Changeset>> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_changeset_id(&id).gql()?;
        match service.changeset(caller, id).await {
            Ok(view) => Ok(Some(Changeset(view))),
            Err(Error::NotFound(_)) => Ok(None),
            Err(other) => Err(to_graphql(other)),
        }
    }

    /// The audit log, newest first: every entry for site admins; a user
    /// sees the entries about them or done by them (and may only filter on
    /// themselves).
    #[allow(clippy::too_many_arguments)]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        user: Option<ID>,
        event: Option<String>,
        #[graphql(name = "codeHostURL")] code_host_url: Option<String>,
        since: Option<chrono::DateTime<chrono::Utc>>,
        until: Option<chrono::DateTime<chrono::Utc>>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<super::audit::AuditLogConnection> {
        super::audit::list(
            ctx,
            user,
            event,
            code_host_url,
            since,
            until,
            PageRequest { first, after },
        )
        .await
    }

    /// Every code host with its global credential (site admins only).
    async fn batch_changes_code_hosts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<BatchChangesCodeHostConnection> {
        let (service, caller) = context_parts(ctx)?;
        let page = PageRequest { first, after };
        Ok(BatchChangesCodeHostConnection(
            service.site_code_hosts(caller, &page).await.gql()?,
        ))
    }

    /// Checks that a credential still works against its code host and
    /// carries the required scopes; the outcome is recorded on the
    /// credential (`lastCheckedAt`, `lastCheckError`).
    async fn check_batch_changes_credential(
        &self,
        ctx: &Context<'_>,
        batch_changes_credential: ID,
    ) -> async_graphql::Result<EmptyResponse> {
        let (service, caller) = context_parts(ctx)?;
        if !ctx.data::<CheckAllowance>()?.take() {
            return Err(to_graphql(Error::InvalidInput(format!(
                "at most {MAX_CHECKS_PER_REQUEST} credentials can be checked in one request"
            ))));
        }
        let id = ids::parse_credential_id(&batch_changes_credential).gql()?;
        service
            .check_credential(caller, id, &CheckOptions::default())
            .await
            .gql()?;
        Ok(EmptyResponse::default())
    }

    /// All users (site admins only).
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let (service, caller) = context_parts(ctx)?;
        let page = PageRequest { first, after };
        Ok(UserConnection(
            service.list_users(caller, &page).await.gql()?,
        ))
    }

    /// The configured code hosts (site admins only).
    async fn code_hosts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<CodeHostConnection> {
        let (service, caller) = context_parts(ctx)?;
        let page = PageRequest { first, after };
        Ok(CodeHostConnection(
            service.list_code_hosts(caller, &page).await.gql()?,
        ))
    }
}
