//! Bitbucket Cloud (bitbucket.org).
//!
//! Where the API lives: for `https://bitbucket.org` at
//! `https://api.bitbucket.org/2.0`; for any other code host URL (a proxy,
//! the test emulator) at `<url>/api/2.0`, where bitbucket.org answers too.
//!
//! Authentication is HTTP Basic with the username stored with the
//! credential: the Atlassian account email for an API token, the
//! Bitbucket username for an app password (git's username follows the
//! descriptor's `GitUsername::BitbucketCloud` rule instead).
//!
//! What a check can and cannot learn:
//! - `GET /2.0/user` says whether the pair works and whose account it is.
//!   A 401 does not say why: a wrong, revoked or expired token, or a
//!   username that does not go with it, all look the same. API tokens
//!   expire but Bitbucket does not say when, so the expiry stays unknown.
//! - Where the answer carries `X-OAuth-Scopes`, those are compared with
//!   the descriptor's scopes, app password names counting as their API
//!   token equivalents ([`scopes`]).
//! - Otherwise the scopes are probed by reading: the repositories the
//!   account is a member of (read repository) and, when the check names a
//!   repository, that repository and its pull requests. Bitbucket answers
//!   a read lacking a scope with 403 naming the scopes required, which
//!   become [`Error::MissingScopes`]. Write scopes cannot be probed without
//!   changing something, so the check then warns that pushing and opening
//!   pull requests are first tried at publish.

mod pulls;
mod scopes;

pub(super) use scopes::grants;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::gitlab::urlencode_path;
use super::http::{self, ApiClient, Call, header_str};
use super::{CheckOptions, CodeHostApi, Error, PullRequest, PullRequestDraft, PullRequestStatus};
use super::{RepositoryInfo, TokenCheck};
use crate::domain::{CodeHostKind, CodeHostUrl};

/// The public service's hosts: its API is on a host of its own.
const BITBUCKET_ORG: &str = "bitbucket.org";
const BITBUCKET_ORG_API: &str = "https://api.bitbucket.org/2.0";

#[derive(Debug, Clone)]
pub struct BitbucketCloud {
    api: ApiClient,
    /// `https://api.bitbucket.org/2.0`, or `<url>/api/2.0`.
    base: String,
    /// The code host URL: web pages and git.
    web: String,
    target: String,
    /// Sent with the token in every request (Basic auth).
    username: String,
}

/// `GET /2.0/user`.
#[derive(Deserialize)]
struct User {
    username: Option<String>,
    nickname: Option<String>,
    account_id: Option<String>,
    uuid: Option<String>,
}

/// `GET /2.0/repositories/{workspace}/{slug}`.
#[derive(Deserialize)]
struct Repository {
    full_name: Option<String>,
    mainbranch: Option<Branch>,
    #[serde(default)]
    links: RepositoryLinks,
}

#[derive(Deserialize)]
struct Branch {
    name: String,
}

#[derive(Deserialize, Default)]
struct RepositoryLinks {
    #[serde(default)]
    clone: Vec<CloneLink>,
}

#[derive(Deserialize)]
struct CloneLink {
    name: String,
    href: String,
}

/// Bitbucket Cloud's error body:
/// `{"type": "error", "error": {"message", "detail": {"required", "granted"}}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(Deserialize)]
struct ErrorInner {
    #[serde(default)]
    message: String,
    detail: Option<serde_json::Value>,
}

/// `workspace/slug` → (`workspace`, `slug`).
fn split_repository(repository: &str) -> Option<(&str, &str)> {
    repository
        .split_once('/')
        .filter(|(w, s)| !w.is_empty() && !s.is_empty() && !s.contains('/'))
}

/// A clone URL without the `user@` Bitbucket puts in its HTTPS links: git
/// gets its username from batchcred, never from the URL.
fn without_user(href: &str) -> String {
    match url::Url::parse(href) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            // Both only fail for URLs that cannot carry a user at all.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => href.to_owned(),
    }
}

impl BitbucketCloud {
    pub fn new(api: ApiClient, url: &CodeHostUrl, target: String, username: &str) -> Self {
        let web = url.to_string();
        let base = if url.host() == BITBUCKET_ORG {
            BITBUCKET_ORG_API.to_owned()
        } else {
            format!("{web}/api/2.0")
        };
        Self {
            api,
            base,
            web,
            target,
            username: username.to_owned(),
        }
    }

    fn call(&self, operation: &'static str) -> Call<'_> {
        Call {
            target: &self.target,
            kind: CodeHostKind::BitbucketCloud,
            operation,
        }
    }

    fn request(&self, method: Method, path: &str, token: &SecretString) -> RequestBuilder {
        self.api
            .http()
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.username, Some(token.expose_secret()))
    }

    /// Sends a request: a 403 naming missing scopes becomes
    /// [`Error::MissingScopes`], a 401 a rejection that says what it may
    /// mean.
    async fn send(
        &self,
        operation: &'static str,
        request: RequestBuilder,
        token: &SecretString,
    ) -> Result<Response, Error> {
        let response = self
            .api
            .send_reading_forbidden(self.call(operation), request, token)
            .await
            .map_err(|error| match error {
                // Only a 401 gets here as a rejection.
                Error::Rejected { target, detail } => Error::Rejected {
                    target,
                    detail: format!(
                        "{detail}: the token is wrong, revoked or expired (Bitbucket does not \
                         say which), or it does not belong to {}; API tokens go with the \
                         Atlassian account email, app passwords with the Bitbucket username",
                        self.username
                    ),
                },
                other => other,
            })?;
        if response.status() == StatusCode::FORBIDDEN {
            return Err(self.forbidden(response, token).await);
        }
        Ok(response)
    }

    /// A 403: the scopes Bitbucket says are required, or a refusal.
    async fn forbidden(&self, response: Response, token: &SecretString) -> Error {
        let body: Option<ErrorBody> = http::read_json(&self.target, "", response).await.ok();
        let (message, detail) = body.map_or_else(
            || ("Forbidden".to_owned(), None),
            |b| (b.error.message, b.error.detail),
        );
        let required: Vec<String> = detail
            .as_ref()
            .and_then(|d| d.get("required"))
            .and_then(|r| r.as_array())
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str())
                    .map(scopes::required_name)
                    .collect()
            })
            .unwrap_or_default();
        if required.is_empty() {
            Error::Rejected {
                target: self.target.clone(),
                detail: http::redact(&message, token),
            }
        } else {
            Error::MissingScopes {
                target: self.target.clone(),
                missing: required,
            }
        }
    }

    fn split<'a>(&self, repository: &'a str) -> Result<(&'a str, &'a str), Error> {
        split_repository(repository).ok_or_else(|| Error::RepositoryNotFound {
            target: self.target.clone(),
            repository: format!("{repository} (expected workspace/repository)"),
        })
    }

    /// `/repositories/{workspace}/{slug}`.
    fn repository_path(&self, repository: &str) -> Result<String, Error> {
        let (workspace, slug) = self.split(repository)?;
        Ok(format!(
            "/repositories/{}/{}",
            urlencode_path(workspace),
            urlencode_path(slug)
        ))
    }

    /// The repository, or `None` when Bitbucket answers 404.
    async fn find_repository(
        &self,
        operation: &'static str,
        token: &SecretString,
        repository: &str,
    ) -> Result<Option<Repository>, Error> {
        let path = self.repository_path(repository)?;
        let request = self.request(Method::GET, &path, token);
        let response = self.send(operation, request, token).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                Ok(Some(http::read_json(&self.target, &path, response).await?))
            }
            _ => Err(http::unexpected(&self.target, &path, response, token).await),
        }
    }

    /// Reads `path` for its status only: a probe of the scope it needs.
    async fn probe(
        &self,
        operation: &'static str,
        path: &str,
        query: &[(&str, &str)],
        token: &SecretString,
    ) -> Result<StatusCode, Error> {
        let request = self.request(Method::GET, path, token).query(query);
        let response = self.send(operation, request, token).await?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(status)
        } else {
            Err(http::unexpected(&self.target, path, response, token).await)
        }
    }

    /// Whether the token may see `repository` and its pull requests.
    async fn check_repository(&self, token: &SecretString, repository: &str) -> Result<(), Error> {
        let no_access = |detail: &str| Error::NoRepositoryAccess {
            target: self.target.clone(),
            repository: repository.to_owned(),
            detail: detail.to_owned(),
        };
        if split_repository(repository).is_none() {
            return Err(no_access("expected workspace/repository"));
        }
        if self
            .find_repository("check_repository", token, repository)
            .await?
            .is_none()
        {
            return Err(no_access(
                "Bitbucket answers 404: the repository does not exist or the account cannot see it",
            ));
        }
        let path = format!("{}/pullrequests", self.repository_path(repository)?);
        self.probe(
            "probe_pull_requests",
            &path,
            &[("state", "OPEN"), ("pagelen", "1")],
            token,
        )
        .await?;
        Ok(())
    }
}

impl CodeHostApi for BitbucketCloud {
    async fn check_token(
        &self,
        token: &SecretString,
        options: &CheckOptions,
    ) -> Result<TokenCheck, Error> {
        let request = self.request(Method::GET, "/user", token);
        let response = self.send("current_user", request, token).await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, "/user", response, token).await);
        }
        let granted =
            header_str(response.headers(), "x-oauth-scopes").map(super::scopes::parse_header);
        let user: User = http::read_json(&self.target, "/user", response).await?;
        let account = [user.username, user.nickname, user.account_id, user.uuid]
            .into_iter()
            .flatten()
            .find(|name| !name.is_empty())
            .ok_or_else(|| Error::Unexpected {
                target: self.target.clone(),
                status: 200,
                endpoint: "/user".into(),
                detail: "the answer names no account".into(),
            })?;

        let mut warnings = vec![];
        match &granted {
            Some(granted) => {
                let missing = super::scopes::missing(CodeHostKind::BitbucketCloud, granted);
                if !missing.is_empty() {
                    return Err(Error::MissingScopes {
                        target: self.target.clone(),
                        missing,
                    });
                }
            }
            None => {
                // Needs read:repository: a 403 names it as missing.
                self.probe(
                    "probe_repositories",
                    "/repositories",
                    &[("role", "member"), ("pagelen", "1")],
                    token,
                )
                .await?;
                let pulls = if options.repository.is_some() {
                    ""
                } else {
                    ", nor reading pull requests (name a repository to check that too)"
                };
                warnings.push(format!(
                    "Bitbucket Cloud does not report this token's scopes: reading repositories \
                     was checked, but not pushing ({}) or opening pull requests ({}){pulls}; \
                     a missing one shows at the first publish",
                    scopes::WRITE_REPOSITORY,
                    scopes::WRITE_PULL_REQUESTS,
                ));
            }
        }
        if let Some(repository) = &options.repository {
            self.check_repository(token, repository).await?;
        }
        Ok(TokenCheck {
            user: account,
            scopes: granted,
            // API tokens expire, but Bitbucket does not say when.
            expires_at: None,
            warnings,
        })
    }

    async fn repository(
        &self,
        token: &SecretString,
        repository: &str,
    ) -> Result<RepositoryInfo, Error> {
        let repo = self
            .find_repository("repository", token, repository)
            .await?
            .ok_or_else(|| Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: repository.to_owned(),
            })?;
        let clone = |name: &str| {
            repo.links
                .clone
                .iter()
                .find(|link| link.name == name)
                .map(|link| link.href.clone())
        };
        let http_clone_url = clone("https").map_or_else(
            || format!("{}/{repository}.git", self.web),
            |href| without_user(&href),
        );
        Ok(RepositoryInfo {
            canonical_name: repo.full_name.clone(),
            http_clone_url,
            // `git@bitbucket.org:…`: that user is SSH's, and right.
            ssh_clone_url: clone("ssh"),
            default_branch: repo.mainbranch.map(|branch| branch.name),
        })
    }

    async fn publish_pull_request(
        &self,
        token: &SecretString,
        draft: &PullRequestDraft,
    ) -> Result<PullRequest, Error> {
        self.publish(token, draft).await
    }

    async fn pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        self.pull_status(token, repository, number).await
    }

    async fn close_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        self.decline(token, repository, number).await
    }

    async fn reopen_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        self.reopen(token, repository, number).await
    }

    async fn delete_branch(
        &self,
        token: &SecretString,
        repository: &str,
        branch: &str,
    ) -> Result<(), Error> {
        self.delete_head_branch(token, repository, branch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> BitbucketCloud {
        let api = ApiClient::new(std::time::Duration::from_secs(1)).expect("client");
        let url = CodeHostUrl::parse(url).expect("url");
        BitbucketCloud::new(api, &url, "Bitbucket Cloud".into(), "al@example.com")
    }

    #[test]
    fn bitbucket_org_has_its_api_on_its_own_host_others_under_api() {
        assert_eq!(
            client("https://bitbucket.org").base,
            "https://api.bitbucket.org/2.0"
        );
        assert_eq!(
            client("http://127.0.0.1:8080/bb").base,
            "http://127.0.0.1:8080/bb/api/2.0"
        );
    }

    #[test]
    fn repositories_are_workspace_slash_slug() {
        assert_eq!(split_repository("acme/api"), Some(("acme", "api")));
        assert_eq!(split_repository("acme/api/x"), None);
        assert_eq!(split_repository("acme/"), None);
    }

    #[test]
    fn clone_links_lose_their_user() {
        assert_eq!(
            without_user("https://alice@bitbucket.org/acme/api.git"),
            "https://bitbucket.org/acme/api.git"
        );
        assert_eq!(
            without_user("https://bitbucket.org/acme/api.git"),
            "https://bitbucket.org/acme/api.git"
        );
        assert_eq!(
            without_user("git@bitbucket.org:acme/api.git"),
            "git@bitbucket.org:acme/api.git"
        );
    }
}
