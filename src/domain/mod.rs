//! Validated domain types: every value from outside (a URL, a username, a
//! token) is parsed into one of these before the service layer sees it, so
//! the rest of the code never has to re-check its shape.

mod account;
mod audit;
mod changeset;
mod code_host;
mod code_host_kind;
mod github_app;
mod ids;
mod input;
mod policy;
mod rollout;
mod signing;

pub use account::{AccessTokenInfo, CredentialOwner, UserAccount};
pub use audit::AuditRecord;
pub use changeset::{ChangesetRecord, ChangesetState, JobAction, JobState};
pub use code_host::{CodeHostConfig, CodeHostUpdate, CodeHostUrl, GitUrlType, SshKeyAlgorithm};
pub use code_host_kind::{
    BITBUCKET_PROJECT_WRITE, BITBUCKET_REPO_WRITE, ChangesetForm, CodeHostKind, GitUsername,
    KindDescriptor, RequiredScope, TokenPage, UsernameRule,
};
pub use github_app::{AuthStrategy, GitHubAppInfo, GitHubAppInstallation};
pub use ids::{AccessTokenId, ChangesetId, CodeHostId, CredentialId, UserId};
pub use input::{Password, Token, Username};
pub use policy::{
    GlobalCredentialPolicy, PolicyMode, PolicyRefusal, PolicyUsers, RepositoryPattern,
    parse_repository_patterns,
};
pub use rollout::{Decision, LOOKAHEAD_DAYS, Rate, RolloutWindow, RolloutWindows, WindowError};
pub use signing::{SigningKey, SigningKeySource};

/// Why a value from outside was refused. The message is shown to the caller,
/// so it must never echo a secret back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

impl InvalidInput {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
