//! GitLab (gitlab.com and self-managed).

mod merge_requests;

use chrono::{NaiveDate, Utc};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::http::{self, ApiClient, Call};
use super::{
    CheckOptions, CodeHostApi, Error, PullRequest, PullRequestDraft, PullRequestStatus,
    RepositoryInfo, TokenCheck, scopes,
};
use crate::domain::{CodeHostKind, CodeHostUrl};

#[derive(Debug, Clone)]
pub struct GitLab {
    api: ApiClient,
    /// `<url>/api/v4`.
    base: String,
    target: String,
}

/// `GET /personal_access_tokens/self` (GitLab 15.5+).
#[derive(Deserialize)]
struct TokenInfo {
    #[serde(default)]
    active: bool,
    #[serde(default)]
    revoked: bool,
    expires_at: Option<NaiveDate>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize)]
struct User {
    username: String,
}

#[derive(Deserialize)]
struct Project {
    #[serde(default)]
    permissions: Option<ProjectPermissions>,
    path_with_namespace: Option<String>,
    http_url_to_repo: Option<String>,
    ssh_url_to_repo: Option<String>,
    default_branch: Option<String>,
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: u64,
    web_url: String,
}

#[derive(Deserialize)]
struct ProjectPermissions {
    project_access: Option<Access>,
    group_access: Option<Access>,
}

#[derive(Deserialize)]
struct Access {
    access_level: u32,
}

/// GitLab's Developer role, the least that may push branches.
const DEVELOPER_ACCESS: u32 = 30;

impl GitLab {
    pub fn new(api: ApiClient, url: &CodeHostUrl, target: String) -> Self {
        Self {
            api,
            base: format!("{url}/api/v4"),
            target,
        }
    }

    fn request(&self, method: Method, path: &str, token: &SecretString) -> RequestBuilder {
        self.api
            .http()
            .request(method, format!("{}{path}", self.base))
            .header("PRIVATE-TOKEN", token.expose_secret())
    }

    fn call(&self, operation: &'static str) -> Call<'_> {
        Call {
            target: &self.target,
            kind: CodeHostKind::GitLab,
            operation,
        }
    }

    async fn get(
        &self,
        operation: &'static str,
        path: &str,
        token: &SecretString,
    ) -> Result<reqwest::Response, Error> {
        self.api
            .send(
                self.call(operation),
                self.request(Method::GET, path, token),
                token,
            )
            .await
    }

    async fn current_user(&self, token: &SecretString) -> Result<User, Error> {
        let response = self.get("current_user", "/user", token).await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, "/user", response, token).await);
        }
        http::read_json(&self.target, "/user", response).await
    }

    async fn check_push_access(&self, token: &SecretString, repository: &str) -> Result<(), Error> {
        let path = format!("/projects/{}", urlencode_path(repository));
        let response = self.get("check_push_access", &path, token).await?;
        let no_access = |detail: &str| Error::NoRepositoryAccess {
            target: self.target.clone(),
            repository: repository.to_owned(),
            detail: detail.to_owned(),
        };
        match response.status() {
            StatusCode::NOT_FOUND => Err(no_access(
                "GitLab answers 404: no such project, or the token's user cannot see it",
            )),
            status if status.is_success() => {
                let project: Project = http::read_json(&self.target, &path, response).await?;
                let level = project
                    .permissions
                    .map(|p| {
                        [p.project_access, p.group_access]
                            .into_iter()
                            .flatten()
                            .map(|a| a.access_level)
                            .max()
                            .unwrap_or(0)
                    })
                    .unwrap_or(0);
                if level >= DEVELOPER_ACCESS {
                    Ok(())
                } else {
                    Err(no_access(
                        "the token's user is below the Developer role there",
                    ))
                }
            }
            _ => Err(http::unexpected(&self.target, &path, response, token).await),
        }
    }
}

impl GitLab {
    async fn send_json(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: &serde_json::Value,
        token: &SecretString,
    ) -> Result<reqwest::Response, Error> {
        let request = self.request(method, path, token).json(body);
        self.api.send(self.call(operation), request, token).await
    }
}

/// The `iid` in "Another open merge request already exists for this
/// source branch: !12".
fn existing_merge_request(message: &str) -> Option<u64> {
    let (_, after) = message.rsplit_once('!')?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl CodeHostApi for GitLab {
    async fn pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        self.merge_request_status(token, repository, number).await
    }

    async fn close_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        self.set_state(token, repository, number, "close", "close_pull_request")
            .await
    }

    async fn reopen_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        self.set_state(token, repository, number, "reopen", "reopen_pull_request")
            .await
    }

    async fn delete_branch(
        &self,
        token: &SecretString,
        repository: &str,
        branch: &str,
    ) -> Result<(), Error> {
        self.delete_source_branch(token, repository, branch).await
    }

    async fn repository(
        &self,
        token: &SecretString,
        repository: &str,
    ) -> Result<RepositoryInfo, Error> {
        let path = format!("/projects/{}", urlencode_path(repository));
        let response = self.get("repository", &path, token).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: repository.to_owned(),
            });
        }
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, &path, response, token).await);
        }
        let project: Project = http::read_json(&self.target, &path, response).await?;
        Ok(RepositoryInfo {
            canonical_name: project.path_with_namespace,
            http_clone_url: project.http_url_to_repo.unwrap_or_else(|| {
                format!("{}/{repository}.git", self.base.trim_end_matches("/api/v4"))
            }),
            ssh_clone_url: project.ssh_url_to_repo,
            default_branch: project.default_branch,
        })
    }

    async fn publish_pull_request(
        &self,
        token: &SecretString,
        draft: &PullRequestDraft,
    ) -> Result<PullRequest, Error> {
        let project = urlencode_path(&draft.repository);
        let path = format!("/projects/{project}/merge_requests");
        // GitLab marks drafts by the title prefix.
        let title = if draft.draft {
            format!("Draft: {}", draft.title)
        } else {
            draft.title.clone()
        };
        let body = serde_json::json!({
            "source_branch": draft.head_branch,
            "target_branch": draft.base_branch,
            "title": title,
            "description": draft.body,
        });
        let response = self
            .send_json("create_pull_request", Method::POST, &path, &body, token)
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => {
                let mr: MergeRequest = http::read_json(&self.target, &path, response).await?;
                Ok(PullRequest {
                    number: mr.iid,
                    url: mr.web_url,
                    created: true,
                })
            }
            StatusCode::CONFLICT => {
                let message = http::error_detail(response, token).await;
                let iid = existing_merge_request(&message).ok_or_else(|| Error::Unexpected {
                    target: self.target.clone(),
                    status: 409,
                    endpoint: path.clone(),
                    detail: message.clone(),
                })?;
                let path = format!("/projects/{project}/merge_requests/{iid}");
                let update = serde_json::json!({
                    "target_branch": draft.base_branch,
                    "title": title,
                    "description": draft.body,
                });
                let response = self
                    .send_json("update_pull_request", Method::PUT, &path, &update, token)
                    .await?;
                if !response.status().is_success() {
                    return Err(http::unexpected(&self.target, &path, response, token).await);
                }
                let mr: MergeRequest = http::read_json(&self.target, &path, response).await?;
                Ok(PullRequest {
                    number: mr.iid,
                    url: mr.web_url,
                    created: false,
                })
            }
            StatusCode::NOT_FOUND => Err(Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: draft.repository.clone(),
            }),
            _ => Err(http::unexpected(&self.target, &path, response, token).await),
        }
    }

    async fn check_token(
        &self,
        token: &SecretString,
        options: &CheckOptions,
    ) -> Result<TokenCheck, Error> {
        const SELF: &str = "/personal_access_tokens/self";
        let response = self.get("check_token", SELF, token).await?;
        let mut warnings = vec![];
        let (granted, expires_at) = match response.status() {
            // GitLab before 15.5 has no such endpoint: fall back to
            // checking that the token works at all.
            StatusCode::NOT_FOUND => {
                warnings.push(
                    "this GitLab does not offer /personal_access_tokens/self (it is older than \
                     15.5), so batchcred could only check that the token works, not its scopes \
                     or expiry; it needs api, read_repository and write_repository"
                        .to_owned(),
                );
                (None, None)
            }
            status if status.is_success() => {
                let info: TokenInfo = http::read_json(&self.target, SELF, response).await?;
                if info.revoked || !info.active {
                    return Err(Error::Rejected {
                        target: self.target.clone(),
                        detail: if info.revoked {
                            "the token is revoked".into()
                        } else {
                            "the token is not active".into()
                        },
                    });
                }
                // A GitLab token stops working at 00:00 UTC on its date.
                let expires_at = info
                    .expires_at
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|n| n.and_utc());
                if let Some(at) = expires_at.filter(|at| *at <= Utc::now()) {
                    return Err(Error::Expired {
                        target: self.target.clone(),
                        on: at.format("%Y-%m-%d").to_string(),
                    });
                }
                let missing = scopes::missing(CodeHostKind::GitLab, &info.scopes);
                if !missing.is_empty() {
                    return Err(Error::MissingScopes {
                        target: self.target.clone(),
                        missing,
                    });
                }
                (Some(info.scopes), expires_at)
            }
            _ => return Err(http::unexpected(&self.target, SELF, response, token).await),
        };
        let user = self.current_user(token).await?;
        if let Some(repository) = &options.repository {
            self.check_push_access(token, repository).await?;
        }
        Ok(TokenCheck {
            user: user.username,
            scopes: granted,
            expires_at,
            warnings,
        })
    }
}

/// `group/project` → `group%2Fproject`, as GitLab's `:id` wants it.
/// Other characters are escaped too, so the path stays one segment.
pub(super) fn urlencode_path(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_existing_merge_request_is_read_from_the_conflict() {
        let message =
            r#"["Another open merge request already exists for this source branch: !12"]"#;
        assert_eq!(existing_merge_request(message), Some(12));
        assert_eq!(existing_merge_request("conflict"), None);
    }

    #[test]
    fn project_paths_are_encoded_as_one_segment() {
        assert_eq!(
            urlencode_path("group/sub group/proj"),
            "group%2Fsub%20group%2Fproj"
        );
    }
}
