//! Clients for the code hosts' own APIs: checking that a token works and
//! carries the scopes batch changes need, publishing pull requests and
//! following them until they are merged or closed. One module per kind of
//! code host, all behind [`CodeHostApi`], sharing one HTTP client
//! ([`http`]); [`webhook`] reads what code hosts send back.

mod azure_devops;
mod bitbucket_cloud;
mod bitbucket_server;
mod gerrit;
pub mod github;
mod gitlab;
mod http;
pub mod scopes;
mod status;
pub mod webhook;

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::domain::{CodeHostKind, CodeHostUrl};

pub use azure_devops::AzureDevOps;
pub use bitbucket_cloud::BitbucketCloud;
pub use bitbucket_server::BitbucketServer;
pub use gerrit::Gerrit;
pub use github::GitHub;
pub use github::{CommitOnBranch, CommitOnBranchError, CreatedCommit, FileAddition, FileChanges};
pub use gitlab::GitLab;
pub use http::ApiClient;
pub use status::{ChecksState, PullRequestState, PullRequestStatus, ReviewState};

/// How long one call to a code host may take before it counts as
/// unreachable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a code host answered about a token that works and has every
/// required scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCheck {
    /// The code host account the token belongs to.
    pub user: String,
    /// The scopes it carries; `None` where the code host does not say
    /// (GitHub fine-grained tokens, GitLab before 15.5).
    pub scopes: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Things that do not stop the token from being stored but that its
    /// owner should know (a missing optional scope, unknown scopes).
    pub warnings: Vec<String>,
}

/// Extra things a check may look at.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// `owner/name` (or `PROJECT/repo`): also check that the token may
    /// push there. The only way to check a GitHub fine-grained token.
    pub repository: Option<String>,
}

/// Why a check (or any code host call) failed. Messages name the code
/// host and never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{target} rejected this token: {detail}")]
    Rejected { target: String, detail: String },
    #[error("the token for {target} is missing required scopes: {}", missing.join(", "))]
    MissingScopes {
        target: String,
        missing: Vec<String>,
    },
    #[error("the token for {target} expired on {on}")]
    Expired { target: String, on: String },
    #[error("the token for {target} cannot push to {repository}: {detail}")]
    NoRepositoryAccess {
        target: String,
        repository: String,
        detail: String,
    },
    #[error("could not reach {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("{target} is rate limiting requests{}", retry_hint(*retry_after))]
    RateLimited {
        target: String,
        retry_after: Option<Duration>,
    },
    #[error(
        "{target} redirected the request to {location}; batchcred never sends a token to another host"
    )]
    Redirected { target: String, location: String },
    #[error("{target} answered {status} to {endpoint}: {detail}")]
    Unexpected {
        target: String,
        status: u16,
        endpoint: String,
        detail: String,
    },
    #[error("repository {repository} was not found on {target} (or the token cannot see it)")]
    RepositoryNotFound { target: String, repository: String },
    /// The code host offers no way to do this at all (Bitbucket Cloud
    /// cannot reopen a declined pull request): trying again cannot help.
    #[error("{target} cannot {action}: {reason}")]
    NotPossible {
        target: String,
        action: String,
        reason: String,
    },
    /// The pull request is gone (deleted, or its repository is): it will
    /// never come back, so its changeset is shown as deleted.
    #[error("pull request #{number} in {repository} no longer exists on {target}")]
    PullRequestNotFound {
        target: String,
        repository: String,
        number: u64,
    },
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!("; try again in {} s", wait.as_secs().max(1)),
        None => "; try again later".into(),
    }
}

impl Error {
    /// A short fixed name for what went wrong, as metrics label it.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "rejected",
            Self::MissingScopes { .. } => "missing_scopes",
            Self::Expired { .. } => "expired",
            Self::NoRepositoryAccess { .. } => "no_repository_access",
            Self::Unreachable { .. } => "unreachable",
            Self::RateLimited { .. } => "rate_limited",
            Self::Redirected { .. } => "redirected",
            Self::Unexpected { .. } => "unexpected_answer",
            Self::RepositoryNotFound { .. } => "repository_not_found",
            Self::PullRequestNotFound { .. } => "pull_request_not_found",
            Self::NotPossible { .. } => "not_possible",
        }
    }

    /// Whether the token itself is at fault (as opposed to the code host
    /// being unreachable or busy).
    pub fn is_token_problem(&self) -> bool {
        matches!(
            self,
            Self::Rejected { .. }
                | Self::MissingScopes { .. }
                | Self::Expired { .. }
                | Self::NoRepositoryAccess { .. }
        )
    }
}

/// Where git reaches a repository, as the code host reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryInfo {
    /// The name the code host knows the repository by now (GitHub's
    /// `full_name`, GitLab's `path_with_namespace`). It differs from the
    /// name asked for when the code host followed a rename or transfer;
    /// `None` where the code host does not say.
    pub canonical_name: Option<String>,
    pub http_clone_url: String,
    pub ssh_clone_url: Option<String>,
    pub default_branch: Option<String>,
}

/// A pull (merge) request to open, or to update if one is already open
/// for the head branch.
#[derive(Debug, Clone)]
pub struct PullRequestDraft {
    /// `owner/name` (GitHub), `group/project` (GitLab), `PROJECT/repo`
    /// (Bitbucket Server), `workspace/slug` (Bitbucket Cloud).
    pub repository: String,
    pub base_branch: String,
    pub head_branch: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
    /// Gerrit: the `Change-Id` the upload carried, by which the change is
    /// found. `None` for every other kind.
    pub change_id: Option<String>,
}

/// An open pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// GitHub's number, GitLab's `iid`, Bitbucket Server's id.
    pub number: u64,
    pub url: String,
    /// Whether this call opened it (as opposed to updating an open one).
    pub created: bool,
}

/// The operations every kind of code host offers.
pub trait CodeHostApi {
    /// Checks that `token` works and has every scope batch changes need.
    fn check_token(
        &self,
        token: &SecretString,
        options: &CheckOptions,
    ) -> impl Future<Output = Result<TokenCheck, Error>> + Send;

    /// The clone URLs of a repository.
    fn repository(
        &self,
        token: &SecretString,
        repository: &str,
    ) -> impl Future<Output = Result<RepositoryInfo, Error>> + Send;

    /// Opens the pull request, or finds the one already open for the head
    /// branch and updates its title, body and base: publishing twice never
    /// opens two.
    fn publish_pull_request(
        &self,
        token: &SecretString,
        draft: &PullRequestDraft,
    ) -> impl Future<Output = Result<PullRequest, Error>> + Send;

    /// Where pull request `number` stands: its state, what its reviewers
    /// said and how the checks on its head commit went.
    /// [`Error::PullRequestNotFound`] when it no longer exists.
    fn pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> impl Future<Output = Result<PullRequestStatus, Error>> + Send;

    /// Closes (Bitbucket: declines) the pull request without merging it,
    /// and answers where it stands then. Closing a closed one is a no-op.
    fn close_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> impl Future<Output = Result<PullRequestStatus, Error>> + Send;

    /// Reopens a closed pull request, and answers where it stands then.
    /// Reopening an open one is a no-op.
    fn reopen_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> impl Future<Output = Result<PullRequestStatus, Error>> + Send;

    /// Deletes a branch (a changeset's head branch once it is merged or
    /// closed). A branch that is already gone counts as deleted, so this
    /// can be retried.
    fn delete_branch(
        &self,
        token: &SecretString,
        repository: &str,
        branch: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// A client for one code host.
#[derive(Debug, Clone)]
pub enum Client {
    GitHub(GitHub),
    GitLab(GitLab),
    BitbucketServer(BitbucketServer),
    AzureDevOps(AzureDevOps),
    BitbucketCloud(BitbucketCloud),
    Gerrit(Gerrit),
}

impl Client {
    /// The client for the code host of `kind` at `url`, calling it as
    /// `username` where the kind authenticates a username with the token.
    pub fn new(
        api: &ApiClient,
        kind: CodeHostKind,
        url: &CodeHostUrl,
        username: Option<&str>,
    ) -> Result<Self, Error> {
        let target = format!("{} {}", kind.display_name(), url);
        match kind {
            CodeHostKind::GitHub => Ok(Self::GitHub(GitHub::new(api.clone(), url, target))),
            CodeHostKind::GitLab => Ok(Self::GitLab(GitLab::new(api.clone(), url, target))),
            CodeHostKind::BitbucketServer => Ok(Self::BitbucketServer(BitbucketServer::new(
                api.clone(),
                url,
                target,
            ))),
            CodeHostKind::AzureDevOps => Ok(Self::AzureDevOps(AzureDevOps::new(
                api.clone(),
                url,
                username,
                target,
            ))),
            CodeHostKind::BitbucketCloud => {
                // Bitbucket Cloud authenticates the username with the
                // token; the service requires one for this kind.
                let username = username.ok_or_else(|| Error::Rejected {
                    target: target.clone(),
                    detail: "no username is stored with the credential (Bitbucket Cloud needs \
                             the Atlassian account email for an API token, the Bitbucket \
                             username for an app password)"
                        .into(),
                })?;
                Ok(Self::BitbucketCloud(BitbucketCloud::new(
                    api.clone(),
                    url,
                    target,
                    username,
                )))
            }
            CodeHostKind::Gerrit => {
                // The HTTP password authenticates only with its account's
                // username.
                let username = username.ok_or_else(|| Error::Rejected {
                    target: target.clone(),
                    detail: "a Gerrit HTTP password needs the account's username".into(),
                })?;
                Ok(Self::Gerrit(Gerrit::new(
                    api.clone(),
                    url,
                    username.to_owned(),
                    target,
                )))
            }
        }
    }
}

/// Refuses a code host URL its kind's API cannot be reached under (an
/// Azure DevOps URL without its organisation or collection), saying what
/// the URL should look like.
pub fn check_code_host_url(kind: CodeHostKind, url: &CodeHostUrl) -> Result<(), String> {
    match kind {
        CodeHostKind::AzureDevOps => azure_devops::check_code_host_url(url),
        _ => Ok(()),
    }
}

/// What the code host's own words in a refused push mean, where they
/// name a permission rather than the token scope behind it.
pub fn push_failure_hint(kind: CodeHostKind, message: &str) -> Option<&'static str> {
    match kind {
        CodeHostKind::AzureDevOps => azure_devops::push_failure_hint(message),
        CodeHostKind::Gerrit => gerrit::push_failure_hint(message),
        _ => None,
    }
}

/// Calls the same method on whichever client `$client` holds.
macro_rules! dispatch {
    ($client:expr, $inner:ident => $call:expr) => {
        match $client {
            Client::GitHub($inner) => $call,
            Client::GitLab($inner) => $call,
            Client::BitbucketServer($inner) => $call,
            Client::AzureDevOps($inner) => $call,
            Client::BitbucketCloud($inner) => $call,
            Client::Gerrit($inner) => $call,
        }
    };
}

impl CodeHostApi for Client {
    async fn check_token(
        &self,
        token: &SecretString,
        options: &CheckOptions,
    ) -> Result<TokenCheck, Error> {
        dispatch!(self, client => client.check_token(token, options).await)
    }

    async fn repository(
        &self,
        token: &SecretString,
        repository: &str,
    ) -> Result<RepositoryInfo, Error> {
        dispatch!(self, client => client.repository(token, repository).await)
    }

    async fn publish_pull_request(
        &self,
        token: &SecretString,
        draft: &PullRequestDraft,
    ) -> Result<PullRequest, Error> {
        dispatch!(self, client => client.publish_pull_request(token, draft).await)
    }

    async fn pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        dispatch!(self, client => client.pull_request(token, repository, number).await)
    }

    async fn close_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        dispatch!(self, client => client.close_pull_request(token, repository, number).await)
    }

    async fn reopen_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        dispatch!(self, client => client.reopen_pull_request(token, repository, number).await)
    }

    async fn delete_branch(
        &self,
        token: &SecretString,
        repository: &str,
        branch: &str,
    ) -> Result<(), Error> {
        dispatch!(self, client => client.delete_branch(token, repository, branch).await)
    }
}

/// Whether a token expiring at `expires_at` should be flagged now: it
/// expires within a week.
pub fn expires_soon(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    expires_at - now <= chrono::Duration::days(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_code_host_and_what_is_missing() {
        let error = Error::MissingScopes {
            target: "GitHub https://github.com".into(),
            missing: vec!["read:org".into(), "user:email".into()],
        };
        assert_eq!(
            error.to_string(),
            "the token for GitHub https://github.com is missing required scopes: read:org, user:email"
        );
        assert!(error.is_token_problem());
        let busy = Error::RateLimited {
            target: "GitLab https://gitlab.com".into(),
            retry_after: Some(Duration::from_secs(30)),
        };
        assert!(busy.to_string().ends_with("try again in 30 s"));
        assert!(!busy.is_token_problem());
    }

    #[test]
    fn every_kind_has_an_api_client() {
        let api = ApiClient::new(DEFAULT_TIMEOUT).expect("HTTP client");
        let url = CodeHostUrl::parse("https://code.example.com/org").expect("url");
        for kind in CodeHostKind::ALL {
            let client = Client::new(&api, kind, &url, Some("someone"));
            assert!(client.is_ok(), "{kind:?} has no API client");
        }
    }

    #[test]
    fn tokens_are_flagged_a_week_before_they_expire() {
        let now = Utc::now();
        assert!(expires_soon(now + chrono::Duration::days(6), now));
        assert!(!expires_soon(now + chrono::Duration::days(8), now));
    }
}
