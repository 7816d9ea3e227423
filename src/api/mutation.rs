//! Mutation root.

use std::time::Duration;

use async_graphql::{Context, ID, Object};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::error::IntoGraphql;
use super::ids;
use super::types::{
    BatchChangesCredential, CodeHost, CreateAccessTokenResult, EmptyResponse, ExternalServiceKind,
    GitUrlTypeValue, GlobalCredentialUsers, SshKeyAlgorithmValue, User,
};
use super::{CurrentSession, context_parts};
use crate::domain::CodeHostUpdate;
use crate::service::{AddCodeHost, CreateCredential, Error, PolicyRequest};

/// Write operations: these, and publishing ([`super::publish`]).
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "MutationRoot")]
pub struct MutationRoot(
    CoreMutation,
    super::publish::PublishMutation,
    super::publish::ChangesetMutation,
    super::changesets::ChangesetActionsMutation,
    super::webhooks::WebhookMutation,
    super::ssh_signing::SshSigningMutation,
    super::github_app::GitHubAppMutation,
);

/// Accounts, code hosts and credentials.
#[derive(Default)]
pub struct CoreMutation;

#[Object]
impl CoreMutation {
    /// Stores a code host token for a user, or with no `user` the global
    /// credential (site admins). On SSH code hosts a keypair is generated
    /// and its public key returned in `sshPublicKey`. The token is checked
    /// against the code host first (it must work and carry the required
    /// scopes); with `repository` (`owner/name`) also that it may push
    /// there, the only check possible for GitHub fine-grained tokens.
    // One parameter per GraphQL argument, as Sourcegraph's schema has them.
    #[allow(clippy::too_many_arguments)]
    async fn create_batch_changes_credential(
        &self,
        ctx: &Context<'_>,
        user: Option<ID>,
        username: Option<String>,
        external_service_kind: ExternalServiceKind,
        #[graphql(name = "externalServiceURL")] external_service_url: String,
        #[graphql(secret)] credential: String,
        repository: Option<String>,
    ) -> async_graphql::Result<BatchChangesCredential> {
        let (service, caller) = context_parts(ctx)?;
        let user = user.as_ref().map(ids::parse_user_id).transpose().gql()?;
        let request = CreateCredential {
            user,
            kind: external_service_kind.into(),
            url: external_service_url,
            username,
            // The argument's own buffer is wiped as it is dropped here.
            token: SecretString::from(Zeroizing::new(credential).as_str()),
            repository,
        };
        Ok(BatchChangesCredential(
            service.create_credential(caller, request).await.gql()?,
        ))
    }

    /// Deletes a credential and its SSH key for good.
    async fn delete_batch_changes_credential(
        &self,
        ctx: &Context<'_>,
        batch_changes_credential: ID,
    ) -> async_graphql::Result<EmptyResponse> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_credential_id(&batch_changes_credential).gql()?;
        service.delete_credential(caller, id).await.gql()?;
        Ok(EmptyResponse::default())
    }

    /// Records that the credential's public key was added to the code host.
    #[graphql(name = "confirmBatchChangesCredentialSSHKey")]
    async fn confirm_batch_changes_credential_ssh_key(
        &self,
        ctx: &Context<'_>,
        batch_changes_credential: ID,
    ) -> async_graphql::Result<BatchChangesCredential> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_credential_id(&batch_changes_credential).gql()?;
        Ok(BatchChangesCredential(
            service.confirm_ssh_key_added(caller, id).await.gql()?,
        ))
    }

    /// Creates a user (site admins).
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        username: String,
        #[graphql(secret)] password: String,
        #[graphql(default = false)] site_admin: bool,
    ) -> async_graphql::Result<User> {
        let (service, caller) = context_parts(ctx)?;
        let user = service
            .create_user(caller, &username, SecretString::from(password), site_admin)
            .await
            .gql()?;
        Ok(User(user))
    }

    /// Deletes a user with their credentials (site admins).
    async fn delete_user(
        &self,
        ctx: &Context<'_>,
        user: ID,
    ) -> async_graphql::Result<EmptyResponse> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_user_id(&user).gql()?;
        service.delete_user(caller, id).await.gql()?;
        Ok(EmptyResponse::default())
    }

    /// Grants or revokes site admin (site admins; not on themselves).
    async fn set_user_is_site_admin(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "userID")] user_id: ID,
        site_admin: bool,
    ) -> async_graphql::Result<EmptyResponse> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_user_id(&user_id).gql()?;
        service.set_site_admin(caller, id, site_admin).await.gql()?;
        Ok(EmptyResponse::default())
    }

    /// Sets where a user's credential expiry warnings are mailed (the user
    /// themselves, or site admins); null or blank clears it. Answers the
    /// address stored.
    async fn set_user_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "userID")] user_id: ID,
        email: Option<String>,
    ) -> async_graphql::Result<Option<String>> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_user_id(&user_id).gql()?;
        service
            .set_user_email(caller, id, email.as_deref())
            .await
            .gql()
    }

    /// Creates an API access token for your own account (site admins
    /// included: nobody mints tokens for someone else), valid for
    /// `durationSeconds` or, without it, until revoked. The token is shown
    /// only in this answer.
    async fn create_access_token(
        &self,
        ctx: &Context<'_>,
        user: ID,
        #[graphql(default)] note: String,
        duration_seconds: Option<i64>,
    ) -> async_graphql::Result<CreateAccessTokenResult> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_user_id(&user).gql()?;
        let lifetime = duration_seconds
            .map(|seconds| {
                u64::try_from(seconds)
                    .map(Duration::from_secs)
                    .map_err(|_| Error::InvalidInput("durationSeconds must be positive".into()))
            })
            .transpose()
            .gql()?;
        let created = service
            .create_access_token(caller, id, &note, lifetime)
            .await
            .gql()?;
        Ok(CreateAccessTokenResult {
            id: ids::access_token_id(created.record.id),
            token: created.token.expose().to_owned(),
            expires_at: created.record.expires_at,
        })
    }

    /// Revokes an API access token (its owner or a site admin); requests
    /// with it are refused from then on, on every replica.
    async fn delete_access_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "byID")] by_id: ID,
    ) -> async_graphql::Result<EmptyResponse> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_access_token_id(&by_id).gql()?;
        service.delete_access_token(caller, id).await.gql()?;
        Ok(EmptyResponse::default())
    }

    /// Changes your own password, given the current one. Your other
    /// sessions are ended; the one making this call (if any) is kept.
    async fn update_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] old_password: String,
        #[graphql(secret)] new_password: String,
    ) -> async_graphql::Result<EmptyResponse> {
        let (service, caller) = context_parts(ctx)?;
        let session = ctx
            .data_opt::<CurrentSession>()
            .and_then(|current| current.0.as_ref())
            .map(|secret| secret.expose_secret());
        service
            .change_password(
                caller,
                session,
                SecretString::from(old_password),
                SecretString::from(new_password),
            )
            .await
            .gql()?;
        Ok(EmptyResponse::default())
    }

    /// Ends every session of a user, signing them out everywhere: your own,
    /// or any user's for site admins. API access tokens are not affected.
    #[graphql(name = "invalidateSessionsByID")]
    async fn invalidate_sessions_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "userID")] user_id: ID,
    ) -> async_graphql::Result<EmptyResponse> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_user_id(&user_id).gql()?;
        service.end_sessions(caller, id).await.gql()?;
        Ok(EmptyResponse::default())
    }

    /// Sets another user's password and ends all their sessions (site
    /// admins; your own password is changed with `updatePassword`).
    async fn set_user_password(
        &self,
        ctx: &Context<'_>,
        user: ID,
        #[graphql(secret)] new_password: String,
    ) -> async_graphql::Result<EmptyResponse> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_user_id(&user).gql()?;
        service
            .set_user_password(caller, id, SecretString::from(new_password))
            .await
            .gql()?;
        Ok(EmptyResponse::default())
    }

    /// Registers a code host (site admins).
    async fn add_code_host(
        &self,
        ctx: &Context<'_>,
        kind: ExternalServiceKind,
        url: String,
        #[graphql(name = "gitURLType", default_with = "GitUrlTypeValue::Http")]
        git_url_type: GitUrlTypeValue,
        ssh_known_hosts: Option<String>,
        #[graphql(default_with = "SshKeyAlgorithmValue::Ed25519")]
        ssh_key_algorithm: SshKeyAlgorithmValue,
    ) -> async_graphql::Result<CodeHost> {
        let (service, caller) = context_parts(ctx)?;
        let request = AddCodeHost {
            kind: kind.into(),
            url,
            git_url_type: git_url_type.into(),
            ssh_known_hosts,
            ssh_key_algorithm: ssh_key_algorithm.into(),
        };
        Ok(CodeHost(
            service.add_code_host(caller, request).await.gql()?,
        ))
    }

    /// Changes a code host (site admins). Switching `gitURLType` to SSH
    /// generates keypairs for its existing credentials.
    async fn update_code_host(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(name = "gitURLType")] git_url_type: Option<GitUrlTypeValue>,
        ssh_known_hosts: Option<String>,
        ssh_key_algorithm: Option<SshKeyAlgorithmValue>,
    ) -> async_graphql::Result<CodeHost> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_code_host_id(&id).gql()?;
        let update = CodeHostUpdate {
            git_url_type: git_url_type.map(Into::into),
            ssh_known_hosts: ssh_known_hosts.map(Some),
            ssh_key_algorithm: ssh_key_algorithm.map(Into::into),
            ..CodeHostUpdate::default()
        };
        Ok(CodeHost(
            service.update_code_host(caller, id, update).await.gql()?,
        ))
    }

    /// Sets who may publish with a code host's global credential (site
    /// admins): everyone without a token of their own (the default),
    /// nobody, or the `users` named; with `repositories` (glob patterns
    /// such as `acme/*`, where `*` does not cross `/`) only to matching
    /// repositories. Replaces the whole policy.
    async fn set_global_credential_policy(
        &self,
        ctx: &Context<'_>,
        code_host: ID,
        allowed_users: GlobalCredentialUsers,
        users: Option<Vec<String>>,
        repositories: Option<Vec<String>>,
    ) -> async_graphql::Result<CodeHost> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_code_host_id(&code_host).gql()?;
        let request = PolicyRequest {
            mode: allowed_users.into(),
            usernames: users.unwrap_or_default(),
            repositories: repositories.unwrap_or_default(),
        };
        Ok(CodeHost(
            service
                .set_global_credential_policy(caller, id, request)
                .await
                .gql()?,
        ))
    }

    /// Removes a code host and every credential for it (site admins).
    async fn delete_code_host(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<EmptyResponse> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_code_host_id(&id).gql()?;
        service.delete_code_host(caller, id).await.gql()?;
        Ok(EmptyResponse::default())
    }
}
