//! GraphQL object types and enums.

use async_graphql::{Context, Enum, ID, Interface, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::commit_signing::CommitSigningConfiguration;
use super::error::IntoGraphql;
use super::ssh_signing::CommitSigningKeySource;
use super::{context_parts, ids};
use crate::domain::{
    AccessTokenInfo, CodeHostConfig, CodeHostKind, GitUrlType, PolicyMode, SshKeyAlgorithm,
    UserAccount,
};
use crate::service::{CodeHostView, CredentialView, Page, PageRequest, PolicyView};

/// Sourcegraph's `ExternalServiceKind`, limited to the kinds batchcred models.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "ExternalServiceKind")]
pub enum ExternalServiceKind {
    #[graphql(name = "GITHUB")]
    GitHub,
    #[graphql(name = "GITLAB")]
    GitLab,
    #[graphql(name = "BITBUCKETSERVER")]
    BitbucketServer,
    #[graphql(name = "BITBUCKETCLOUD")]
    BitbucketCloud,
    #[graphql(name = "AZUREDEVOPS")]
    AzureDevOps,
    #[graphql(name = "GERRIT")]
    Gerrit,
}

impl From<CodeHostKind> for ExternalServiceKind {
    fn from(kind: CodeHostKind) -> Self {
        match kind {
            CodeHostKind::GitHub => Self::GitHub,
            CodeHostKind::GitLab => Self::GitLab,
            CodeHostKind::BitbucketServer => Self::BitbucketServer,
            CodeHostKind::BitbucketCloud => Self::BitbucketCloud,
            CodeHostKind::AzureDevOps => Self::AzureDevOps,
            CodeHostKind::Gerrit => Self::Gerrit,
        }
    }
}

impl From<ExternalServiceKind> for CodeHostKind {
    fn from(kind: ExternalServiceKind) -> Self {
        match kind {
            ExternalServiceKind::GitHub => Self::GitHub,
            ExternalServiceKind::GitLab => Self::GitLab,
            ExternalServiceKind::BitbucketServer => Self::BitbucketServer,
            ExternalServiceKind::BitbucketCloud => Self::BitbucketCloud,
            ExternalServiceKind::AzureDevOps => Self::AzureDevOps,
            ExternalServiceKind::Gerrit => Self::Gerrit,
        }
    }
}

/// How git reaches a code host.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "GitURLType")]
pub enum GitUrlTypeValue {
    #[graphql(name = "HTTP")]
    Http,
    #[graphql(name = "SSH")]
    Ssh,
}

impl From<GitUrlType> for GitUrlTypeValue {
    fn from(value: GitUrlType) -> Self {
        match value {
            GitUrlType::Http => Self::Http,
            GitUrlType::Ssh => Self::Ssh,
        }
    }
}

impl From<GitUrlTypeValue> for GitUrlType {
    fn from(value: GitUrlTypeValue) -> Self {
        match value {
            GitUrlTypeValue::Http => Self::Http,
            GitUrlTypeValue::Ssh => Self::Ssh,
        }
    }
}

/// The algorithm of keypairs generated for an SSH code host.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "SSHKeyAlgorithm")]
pub enum SshKeyAlgorithmValue {
    #[graphql(name = "ED25519")]
    Ed25519,
    #[graphql(name = "RSA_4096")]
    Rsa4096,
}

impl From<SshKeyAlgorithm> for SshKeyAlgorithmValue {
    fn from(value: SshKeyAlgorithm) -> Self {
        match value {
            SshKeyAlgorithm::Ed25519 => Self::Ed25519,
            SshKeyAlgorithm::Rsa4096 => Self::Rsa4096,
        }
    }
}

impl From<SshKeyAlgorithmValue> for SshKeyAlgorithm {
    fn from(value: SshKeyAlgorithmValue) -> Self {
        match value {
            SshKeyAlgorithmValue::Ed25519 => Self::Ed25519,
            SshKeyAlgorithmValue::Rsa4096 => Self::Rsa4096,
        }
    }
}

/// Who may publish with a code host's global credential.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum GlobalCredentialUsers {
    /// Anyone without a token of their own (the default).
    #[graphql(name = "EVERYONE")]
    Everyone,
    #[graphql(name = "NOBODY")]
    Nobody,
    /// Only the users listed in `users`.
    #[graphql(name = "SELECTED")]
    Selected,
}

impl From<PolicyMode> for GlobalCredentialUsers {
    fn from(mode: PolicyMode) -> Self {
        match mode {
            PolicyMode::Everyone => Self::Everyone,
            PolicyMode::Nobody => Self::Nobody,
            PolicyMode::Selected => Self::Selected,
        }
    }
}

impl From<GlobalCredentialUsers> for PolicyMode {
    fn from(value: GlobalCredentialUsers) -> Self {
        match value {
            GlobalCredentialUsers::Everyone => Self::Everyone,
            GlobalCredentialUsers::Nobody => Self::Nobody,
            GlobalCredentialUsers::Selected => Self::Selected,
        }
    }
}

/// Who may publish with a code host's global credential, and where.
pub struct GlobalCredentialPolicy(pub PolicyView);

#[Object]
impl GlobalCredentialPolicy {
    async fn allowed_users(&self) -> GlobalCredentialUsers {
        self.0.mode.into()
    }

    /// The usernames allowed when `allowedUsers` is `SELECTED`.
    async fn users(&self) -> &[String] {
        &self.0.usernames
    }

    /// Glob patterns over repository names (`acme/*`; `*` does not cross
    /// `/`); empty means any repository.
    async fn repositories(&self) -> &[String] {
        &self.0.repositories
    }
}

/// Sourcegraph's `EmptyResponse`: mutations with nothing to return.
#[derive(SimpleObject, Default)]
pub struct EmptyResponse {
    pub always_nil: Option<String>,
}

/// Relay page information.
#[derive(SimpleObject)]
pub struct PageInfo {
    pub end_cursor: Option<String>,
    pub has_next_page: bool,
}

impl<T> From<&Page<T>> for PageInfo {
    fn from(page: &Page<T>) -> Self {
        Self {
            end_cursor: page.end_cursor.clone(),
            has_next_page: page.has_next_page,
        }
    }
}

/// Anything with a global ID, resolvable through `node(id:)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub enum Node {
    User(User),
    BatchChangesCredential(BatchChangesCredential),
    AccessToken(AccessToken),
}

/// A user account.
pub struct User(pub UserAccount);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ids::user_id(self.0.id)
    }

    async fn username(&self) -> &str {
        &self.0.username
    }

    async fn site_admin(&self) -> bool {
        self.0.site_admin
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Every code host with this user's credential, or the global one
    /// (`isSiteCredential: true`) where the user has none.
    async fn batch_changes_code_hosts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<BatchChangesCodeHostConnection> {
        let (service, caller) = context_parts(ctx)?;
        let page = PageRequest { first, after };
        let page = service
            .user_code_hosts(caller, self.0.id, &page)
            .await
            .gql()?;
        Ok(BatchChangesCodeHostConnection(page))
    }

    /// The user's changesets, newest first (to themselves and site
    /// admins).
    async fn changesets(
        &self,
        ctx: &Context<'_>,
        status: Option<super::changesets::ChangesetStatusValue>,
        #[graphql(name = "codeHostURL")] code_host_url: Option<String>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<super::changesets::ChangesetConnection> {
        super::changesets::list(
            ctx,
            Some(self.0.id),
            status,
            code_host_url,
            PageRequest { first, after },
        )
        .await
    }

    /// The user's API access tokens (to themselves and site admins); the
    /// tokens themselves are never shown again after creation.
    async fn access_tokens(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<AccessTokenConnection> {
        let (service, caller) = context_parts(ctx)?;
        let page = PageRequest { first, after };
        let page = service
            .list_access_tokens(caller, self.0.id, &page)
            .await
            .gql()?;
        Ok(AccessTokenConnection(page))
    }
}

/// A page of users.
pub struct UserConnection(pub Page<UserAccount>);

#[Object]
impl UserConnection {
    async fn total_count(&self) -> i64 {
        self.0.total_count
    }

    async fn page_info(&self) -> PageInfo {
        PageInfo::from(&self.0)
    }

    async fn nodes(&self) -> Vec<User> {
        self.0.items.iter().cloned().map(User).collect()
    }
}

/// A code host as batch changes sees it, with the applicable credential.
pub struct BatchChangesCodeHost(pub CodeHostView);

#[Object]
impl BatchChangesCodeHost {
    async fn external_service_kind(&self) -> ExternalServiceKind {
        self.0.code_host.kind.into()
    }

    #[graphql(name = "externalServiceURL")]
    async fn external_service_url(&self) -> &str {
        self.0.code_host.url.as_str()
    }

    async fn credential(&self) -> Option<BatchChangesCredential> {
        self.0.credential.clone().map(BatchChangesCredential)
    }

    /// The GitHub App credential where one is stored besides a token
    /// (`credential` shows the token then; an App alone is `credential`).
    async fn git_hub_app_credential(&self) -> Option<BatchChangesCredential> {
        self.0.github_app.clone().map(BatchChangesCredential)
    }

    /// Whether git pushes over SSH, so credentials carry a keypair.
    #[graphql(name = "requiresSSH")]
    async fn requires_ssh(&self) -> bool {
        self.0.code_host.git_url_type == GitUrlType::Ssh
    }

    /// Whether a credential needs a username besides the token.
    async fn requires_username(&self) -> bool {
        self.0.code_host.kind.requires_username()
    }

    /// Whether a webhook secret is set up, so the code host can tell
    /// batchcred when a pull request changes (`setUpCodeHostWebhook`).
    async fn has_webhooks(&self) -> bool {
        self.0.has_webhook
    }

    /// Whether batchcred can sign the commits it creates here: true for
    /// GitHub and GitLab, which verify SSH-signed commits (see
    /// `enableBatchChangesCredentialCommitSigning`).
    async fn supports_commit_signing(&self) -> bool {
        self.0.code_host.kind.descriptor().supports_ssh_signing
    }

    /// The GitHub App that signs commits on this code host: always null,
    /// as batchcred has no GitHub App integration yet.
    async fn commit_signing_configuration(&self) -> Option<CommitSigningConfiguration> {
        None
    }
}

/// A page of code hosts.
pub struct BatchChangesCodeHostConnection(pub Page<CodeHostView>);

#[Object]
impl BatchChangesCodeHostConnection {
    async fn total_count(&self) -> i64 {
        self.0.total_count
    }

    async fn page_info(&self) -> PageInfo {
        PageInfo::from(&self.0)
    }

    async fn nodes(&self) -> Vec<BatchChangesCodeHost> {
        self.0
            .items
            .iter()
            .cloned()
            .map(BatchChangesCodeHost)
            .collect()
    }
}

/// A stored credential. Its secret is never exposed.
pub struct BatchChangesCredential(pub CredentialView);

#[Object]
impl BatchChangesCredential {
    async fn id(&self) -> ID {
        ids::credential_id(self.0.id, self.0.owner)
    }

    /// A personal access token, or a GitHub App.
    async fn authentication_strategy(&self) -> super::github_app::AuthenticationStrategy {
        self.0.auth_strategy.into()
    }

    /// The App of a GitHub App credential, with its installations; null
    /// for tokens.
    #[graphql(name = "gitHubApp")]
    async fn git_hub_app(&self) -> Option<super::commit_signing::GitHubApp> {
        self.0
            .github_app
            .as_ref()
            .map(|app| super::github_app::github_app(&self.0, app))
    }

    async fn external_service_kind(&self) -> ExternalServiceKind {
        self.0.kind.into()
    }

    #[graphql(name = "externalServiceURL")]
    async fn external_service_url(&self) -> &str {
        self.0.url.as_str()
    }

    /// The public key to add to the code host, for SSH code hosts.
    async fn ssh_public_key(&self) -> Option<&str> {
        self.0.ssh_public_key.as_deref()
    }

    /// True when the keypair was generated after the credential was added
    /// (its code host switched to SSH): the key still has to be added to
    /// the code host.
    #[graphql(name = "sshKeyPending")]
    async fn ssh_key_pending(&self) -> bool {
        self.0.ssh_key_pending
    }

    /// The public key the credential signs commits with, to upload to
    /// the code host as a signing key; null while signing is off.
    async fn signing_public_key(&self) -> Option<&str> {
        self.0.signing.as_ref().map(|s| s.public_key.as_str())
    }

    /// Where the signing key came from; null while signing is off.
    async fn signing_key_source(&self) -> Option<CommitSigningKeySource> {
        self.0.signing.as_ref().map(|s| s.source.into())
    }

    /// The code host username, where the kind needs one.
    async fn username(&self) -> Option<&str> {
        self.0.username.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn is_site_credential(&self) -> bool {
        self.0.is_site_credential()
    }

    /// The code host account the token belongs to, as the code host said
    /// at the last successful check.
    async fn code_host_user(&self) -> Option<&str> {
        self.0.code_host_user.as_deref()
    }

    /// The token's scopes; null where the code host does not report them
    /// (GitHub fine-grained tokens, GitLab before 15.5).
    async fn scopes(&self) -> Option<&[String]> {
        self.0.scopes.as_deref()
    }

    /// When the token expires, where the code host says.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    /// Things its owner should know that did not stop it being stored,
    /// e.g. a missing `workflow` scope on GitHub.
    async fn warnings(&self) -> &[String] {
        &self.0.warnings
    }

    async fn last_checked_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_checked_at
    }

    /// Why the last check against the code host failed; null if it passed.
    async fn last_check_error(&self) -> Option<&str> {
        self.0.last_check_error.as_deref()
    }

    /// True when the token expires within 7 days or its last check failed.
    async fn needs_attention(&self) -> bool {
        self.0.needs_attention()
    }
}

/// A configured code host, as site admins manage it.
pub struct CodeHost(pub CodeHostConfig);

#[Object]
impl CodeHost {
    async fn id(&self) -> ID {
        ids::code_host_id(self.0.id)
    }

    async fn kind(&self) -> ExternalServiceKind {
        self.0.kind.into()
    }

    async fn url(&self) -> &str {
        self.0.url.as_str()
    }

    #[graphql(name = "gitURLType")]
    async fn git_url_type(&self) -> GitUrlTypeValue {
        self.0.git_url_type.into()
    }

    /// `known_hosts` lines pinning the host's SSH key.
    #[graphql(name = "sshKnownHosts")]
    async fn ssh_known_hosts(&self) -> Option<&str> {
        self.0.ssh_known_hosts.as_deref()
    }

    #[graphql(name = "sshKeyAlgorithm")]
    async fn ssh_key_algorithm(&self) -> SshKeyAlgorithmValue {
        self.0.ssh_key_algorithm.into()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Who may publish with this code host's global credential, and to
    /// which repositories.
    async fn global_credential_policy(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<GlobalCredentialPolicy> {
        let (service, caller) = context_parts(ctx)?;
        Ok(GlobalCredentialPolicy(
            service
                .global_credential_policy(caller, &self.0)
                .await
                .gql()?,
        ))
    }
}

/// A page of code hosts (site admin view).
pub struct CodeHostConnection(pub Page<CodeHostConfig>);

#[Object]
impl CodeHostConnection {
    async fn total_count(&self) -> i64 {
        self.0.total_count
    }

    async fn page_info(&self) -> PageInfo {
        PageInfo::from(&self.0)
    }

    async fn nodes(&self) -> Vec<CodeHost> {
        self.0.items.iter().cloned().map(CodeHost).collect()
    }
}

/// A new API access token, shown once.
#[derive(SimpleObject)]
pub struct CreateAccessTokenResult {
    pub id: ID,
    pub token: String,
    /// When it stops working; null: until revoked.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An API access token, as its owner sees it: never the token itself.
pub struct AccessToken(pub AccessTokenInfo);

#[Object]
impl AccessToken {
    async fn id(&self) -> ID {
        ids::access_token_id(self.0.id)
    }

    /// The token's first characters (kind prefix and 8 more), to recognise
    /// it; null for tokens created before prefixes were kept.
    async fn token_prefix(&self) -> Option<&str> {
        self.0.prefix.as_deref()
    }

    async fn note(&self) -> &str {
        &self.0.note
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the token was last used, to the minute.
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }

    /// When the token stops working; null: until revoked.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    /// Whether the token is past its expiry (and refused).
    async fn expired(&self) -> bool {
        self.0.is_expired(Utc::now())
    }
}

/// A page of access tokens.
pub struct AccessTokenConnection(pub Page<AccessTokenInfo>);

#[Object]
impl AccessTokenConnection {
    async fn total_count(&self) -> i64 {
        self.0.total_count
    }

    async fn page_info(&self) -> PageInfo {
        PageInfo::from(&self.0)
    }

    async fn nodes(&self) -> Vec<AccessToken> {
        self.0.items.iter().cloned().map(AccessToken).collect()
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::resolver_utils::EnumType;

    use super::*;

    #[test]
    fn every_kind_has_its_graphql_name() {
        for kind in CodeHostKind::ALL {
            let exposed = ExternalServiceKind::from(kind);
            let item = ExternalServiceKind::items()
                .iter()
                .find(|item| item.value == exposed);
            assert_eq!(item.map(|i| i.name), Some(kind.descriptor().name));
            assert_eq!(CodeHostKind::from(exposed), kind);
        }
    }
}
