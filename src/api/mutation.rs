//! Mutation root.

use async_graphql::{Context, ID, Object};
use secrecy::SecretString;

use super::context_parts;
use super::error::IntoGraphql;
use super::ids;
use super::types::{
    BatchChangesCredential, CodeHost, CreateAccessTokenResult, EmptyResponse, ExternalServiceKind,
    GitUrlTypeValue, GlobalCredentialUsers, SshKeyAlgorithmValue, User,
};
use crate::service::{AddCodeHost, CreateCredential, PolicyRequest};
use crate::store::CodeHostUpdate;

/// Write operations: these, and publishing ([`super::publish`]).
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "MutationRoot")]
pub struct MutationRoot(CoreMutation, super::publish::PublishMutation);

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
            token: credential,
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

    /// Creates an API access token; the token is shown only in this answer.
    async fn create_access_token(
        &self,
        ctx: &Context<'_>,
        user: ID,
        #[graphql(default)] note: String,
    ) -> async_graphql::Result<CreateAccessTokenResult> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_user_id(&user).gql()?;
        let created = service.create_access_token(caller, id, &note).await.gql()?;
        Ok(CreateAccessTokenResult {
            id: ID(created.id.to_string()),
            token: created.token.expose().to_owned(),
        })
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
