//! GitHub and GitHub Enterprise (whose API lives under `/api/v3`).

pub mod app;
mod commits;
mod pulls;

pub use commits::{CommitOnBranch, CommitOnBranchError, CreatedCommit, FileAddition, FileChanges};

use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::http::{self, ApiClient, Call, header_str};
use super::{
    CheckOptions, CodeHostApi, Error, PullRequest, PullRequestDraft, PullRequestStatus,
    RepositoryInfo, TokenCheck, scopes,
};
use crate::domain::{CodeHostKind, CodeHostUrl};

#[derive(Debug, Clone)]
pub struct GitHub {
    api: ApiClient,
    /// `https://api.github.com`, or `<url>/api/v3` for Enterprise.
    base: String,
    target: String,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct Repository {
    #[serde(default)]
    permissions: Option<Permissions>,
    full_name: Option<String>,
    clone_url: Option<String>,
    ssh_url: Option<String>,
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct Pull {
    number: u64,
    html_url: String,
}

#[derive(Deserialize)]
struct Permissions {
    #[serde(default)]
    push: bool,
}

/// Fine-grained tokens start with this and carry no `X-OAuth-Scopes`.
const FINE_GRAINED_PREFIX: &str = "github_pat_";

impl GitHub {
    pub fn new(api: ApiClient, url: &CodeHostUrl, target: String) -> Self {
        let base = if url.host() == "github.com" {
            "https://api.github.com".to_owned()
        } else {
            format!("{url}/api/v3")
        };
        Self { api, base, target }
    }

    /// The web (and git) base URL: the code host URL itself.
    fn web_base(&self) -> &str {
        if self.base == "https://api.github.com" {
            "https://github.com"
        } else {
            self.base.trim_end_matches("/api/v3")
        }
    }

    fn call(&self, operation: &'static str) -> Call<'_> {
        Call {
            target: &self.target,
            kind: CodeHostKind::GitHub,
            operation,
        }
    }

    fn request(&self, method: Method, path: &str, token: &SecretString) -> RequestBuilder {
        self.api
            .http()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token.expose_secret())
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    }

    /// Whether the token may push to `repository` (`owner/name`).
    async fn check_push_access(&self, token: &SecretString, repository: &str) -> Result<(), Error> {
        let endpoint = format!("/repos/{repository}");
        let response = self
            .api
            .send(
                self.call("check_push_access"),
                self.request(Method::GET, &endpoint, token),
                token,
            )
            .await?;
        let no_access = |detail: &str| Error::NoRepositoryAccess {
            target: self.target.clone(),
            repository: repository.to_owned(),
            detail: detail.to_owned(),
        };
        match response.status() {
            StatusCode::NOT_FOUND => Err(no_access(
                "GitHub answers 404: the repository does not exist or the token was not granted access to it",
            )),
            status if status.is_success() => {
                let repo: Repository = http::read_json(&self.target, &endpoint, response).await?;
                if repo.permissions.is_some_and(|p| p.push) {
                    Ok(())
                } else {
                    Err(no_access(
                        "it may read but not push (a fine-grained token needs Contents: read and write)",
                    ))
                }
            }
            _ => Err(http::unexpected(&self.target, &endpoint, response, token).await),
        }
    }
}

impl GitHub {
    /// The open pull request for `owner:head`, if any.
    async fn find_open_pull(
        &self,
        token: &SecretString,
        draft: &PullRequestDraft,
    ) -> Result<Option<Pull>, Error> {
        let endpoint = format!("/repos/{}/pulls", draft.repository);
        let owner = draft.repository.split('/').next().unwrap_or_default();
        let request = self.request(Method::GET, &endpoint, token).query(&[
            ("head", format!("{owner}:{}", draft.head_branch)),
            ("state", "open".to_owned()),
        ]);
        let response = self
            .api
            .send(self.call("find_pull_request"), request, token)
            .await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, &endpoint, response, token).await);
        }
        let pulls: Vec<Pull> = http::read_json(&self.target, &endpoint, response).await?;
        Ok(pulls.into_iter().next())
    }
}

impl CodeHostApi for GitHub {
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
        self.set_state(token, repository, number, "closed", "close_pull_request")
            .await
    }

    async fn reopen_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        self.set_state(token, repository, number, "open", "reopen_pull_request")
            .await
    }

    async fn delete_branch(
        &self,
        token: &SecretString,
        repository: &str,
        branch: &str,
    ) -> Result<(), Error> {
        self.delete_head_branch(token, repository, branch).await
    }

    async fn repository(
        &self,
        token: &SecretString,
        repository: &str,
    ) -> Result<RepositoryInfo, Error> {
        let endpoint = format!("/repos/{repository}");
        let response = self
            .api
            .send(
                self.call("repository"),
                self.request(Method::GET, &endpoint, token),
                token,
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: repository.to_owned(),
            });
        }
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, &endpoint, response, token).await);
        }
        let repo: Repository = http::read_json(&self.target, &endpoint, response).await?;
        Ok(RepositoryInfo {
            canonical_name: repo.full_name,
            http_clone_url: repo
                .clone_url
                .unwrap_or_else(|| format!("{}/{repository}.git", self.web_base())),
            ssh_clone_url: repo.ssh_url,
            default_branch: repo.default_branch,
        })
    }

    async fn publish_pull_request(
        &self,
        token: &SecretString,
        draft: &PullRequestDraft,
    ) -> Result<PullRequest, Error> {
        let endpoint = format!("/repos/{}/pulls", draft.repository);
        let body = serde_json::json!({
            "title": draft.title,
            "body": draft.body,
            "head": draft.head_branch,
            "base": draft.base_branch,
            "draft": draft.draft,
        });
        let request = self.request(Method::POST, &endpoint, token).json(&body);
        let response = self
            .api
            .send(self.call("create_pull_request"), request, token)
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => {
                let pull: Pull = http::read_json(&self.target, &endpoint, response).await?;
                Ok(PullRequest {
                    number: pull.number,
                    url: pull.html_url,
                    created: true,
                })
            }
            // "A pull request already exists for owner:branch."
            StatusCode::UNPROCESSABLE_ENTITY => {
                let error = http::unexpected(&self.target, &endpoint, response, token).await;
                let Some(existing) = self.find_open_pull(token, draft).await? else {
                    return Err(error);
                };
                let endpoint = format!("/repos/{}/pulls/{}", draft.repository, existing.number);
                let update = serde_json::json!({
                    "title": draft.title,
                    "body": draft.body,
                    "base": draft.base_branch,
                });
                let request = self.request(Method::PATCH, &endpoint, token).json(&update);
                let response = self
                    .api
                    .send(self.call("update_pull_request"), request, token)
                    .await?;
                if !response.status().is_success() {
                    return Err(http::unexpected(&self.target, &endpoint, response, token).await);
                }
                Ok(PullRequest {
                    number: existing.number,
                    url: existing.html_url,
                    created: false,
                })
            }
            StatusCode::NOT_FOUND => Err(Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: draft.repository.clone(),
            }),
            _ => Err(http::unexpected(&self.target, &endpoint, response, token).await),
        }
    }

    async fn check_token(
        &self,
        token: &SecretString,
        options: &CheckOptions,
    ) -> Result<TokenCheck, Error> {
        let response = self
            .api
            .send(
                self.call("current_user"),
                self.request(Method::GET, "/user", token),
                token,
            )
            .await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, "/user", response, token).await);
        }
        let headers = response.headers();
        let granted = header_str(headers, "x-oauth-scopes").map(super::scopes::parse_header);
        let expires_at =
            header_str(headers, "github-authentication-token-expiration").and_then(parse_expiry);
        let user: User = http::read_json(&self.target, "/user", response).await?;

        if let Some(expires_at) = expires_at.filter(|at| *at <= Utc::now()) {
            return Err(Error::Expired {
                target: self.target.clone(),
                on: expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            });
        }
        let mut warnings = vec![];
        match &granted {
            Some(granted) => {
                let missing = scopes::missing(CodeHostKind::GitHub, granted);
                if !missing.is_empty() {
                    return Err(Error::MissingScopes {
                        target: self.target.clone(),
                        missing,
                    });
                }
                if !scopes::covers(CodeHostKind::GitHub, granted, "workflow") {
                    warnings.push(
                        "the token lacks the workflow scope: GitHub will refuse changesets that \
                         change files under .github/workflows"
                            .to_owned(),
                    );
                }
            }
            None if token.expose_secret().starts_with(FINE_GRAINED_PREFIX) => {
                warnings.push(format!(
                    "fine-grained token: GitHub does not report its permissions, so batchcred \
                     could only check that it works{}; it needs Contents, Pull requests and \
                     Discussions read and write, and Members and Email addresses read, on the \
                     repositories you publish to",
                    if options.repository.is_some() {
                        " and can push to the given repository"
                    } else {
                        ""
                    }
                ));
            }
            None => warnings.push(
                "GitHub did not report this token's scopes (not a classic personal access \
                 token?): batchcred could only check that it works"
                    .to_owned(),
            ),
        }
        if let Some(repository) = &options.repository {
            self.check_push_access(token, repository).await?;
        }
        Ok(TokenCheck {
            user: user.login,
            scopes: granted,
            expires_at,
            warnings,
        })
    }
}

/// `GitHub-Authentication-Token-Expiration`: `2026-12-01 00:00:00 UTC`
/// or with a numeric offset, `2026-12-01 09:00:00 +0900`.
fn parse_expiry(value: &str) -> Option<DateTime<Utc>> {
    if let Some(naive) = value.strip_suffix(" UTC") {
        return NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(|n| n.and_utc());
    }
    DateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S %z")
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_expiry_header_forms_parse() {
        let utc = parse_expiry("2026-12-01 00:00:00 UTC").map(|d| d.to_rfc3339());
        assert_eq!(utc.as_deref(), Some("2026-12-01T00:00:00+00:00"));
        let offset = parse_expiry("2026-12-01 09:00:00 +0900").map(|d| d.to_rfc3339());
        assert_eq!(offset.as_deref(), Some("2026-12-01T00:00:00+00:00"));
        assert_eq!(parse_expiry("next tuesday"), None);
    }

    #[test]
    fn scope_headers_split_on_commas() {
        assert_eq!(
            super::scopes::parse_header("repo, read:org,user"),
            ["repo", "read:org", "user"]
        );
        assert!(super::scopes::parse_header("").is_empty());
    }

    #[test]
    fn enterprise_api_lives_under_api_v3() -> Result<(), Box<dyn std::error::Error>> {
        let api = ApiClient::new(std::time::Duration::from_secs(1))?;
        let dotcom = GitHub::new(
            api.clone(),
            &CodeHostUrl::parse("https://github.com")?,
            String::new(),
        );
        assert_eq!(dotcom.base, "https://api.github.com");
        let ghe = GitHub::new(
            api,
            &CodeHostUrl::parse("https://ghe.example.com/")?,
            String::new(),
        );
        assert_eq!(ghe.base, "https://ghe.example.com/api/v3");
        Ok(())
    }
}
