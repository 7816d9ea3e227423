//! Bitbucket Server and Data Center.
//!
//! Bitbucket has no "describe this token" endpoint, so the check works from
//! what the REST API does offer:
//! - who: the `X-AUSERNAME` header of an authenticated call. Anonymous
//!   access can make a bad token answer 200, so a 200 without the header
//!   means the token was not accepted.
//! - write access: `GET /projects?permission=PROJECT_WRITE` and
//!   `GET /repos?permission=REPO_WRITE` list what the caller may write, and
//!   a token's permissions cap what its user may do, so an empty list means
//!   the token (or its user) lacks that permission everywhere. This is
//!   stricter than strictly needed on an instance with no projects yet, and
//!   cannot tell a read-only token on one project from a write token on
//!   another; checking a given repository (`CheckOptions::repository`)
//!   narrows it to the place that matters.
//! - expiry: not offered for the token at hand (the access-token listing
//!   cannot say which entry is this token), so it is left unknown.

mod pulls;

use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::http::{self, ApiClient, Call, header_str};
use super::{
    CheckOptions, CodeHostApi, Error, PullRequest, PullRequestDraft, PullRequestState,
    PullRequestStatus, RepositoryInfo, TokenCheck,
};
use crate::domain::{BITBUCKET_PROJECT_WRITE, BITBUCKET_REPO_WRITE, CodeHostKind, CodeHostUrl};

#[derive(Debug, Clone)]
pub struct BitbucketServer {
    api: ApiClient,
    /// `<url>/rest/api/1.0`.
    base: String,
    target: String,
}

#[derive(Deserialize)]
struct Repository {
    #[serde(default)]
    links: Links,
}

#[derive(Deserialize, Default)]
struct Links {
    #[serde(default)]
    clone: Vec<Link>,
    #[serde(default, rename = "self")]
    self_: Vec<Link>,
}

#[derive(Deserialize)]
struct Link {
    href: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Pull {
    id: u64,
    version: i64,
    #[serde(default)]
    links: Links,
}

/// `GET …/branches/default`.
#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "displayId")]
    display_id: String,
}

/// A 409 answer to creating a pull request that already exists.
#[derive(Deserialize)]
struct Conflict {
    #[serde(default)]
    errors: Vec<ConflictError>,
}

#[derive(Deserialize)]
struct ConflictError {
    #[serde(rename = "existingPullRequest")]
    existing_pull_request: Option<Pull>,
}

/// `PROJECT/repo` → (`PROJECT`, `repo`).
fn split_repository(repository: &str) -> Option<(&str, &str)> {
    repository
        .split_once('/')
        .filter(|(p, r)| !p.is_empty() && !r.is_empty() && !r.contains('/'))
}

/// The part of a paged listing the check reads.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    size: u64,
}

impl BitbucketServer {
    pub fn new(api: ApiClient, url: &CodeHostUrl, target: String) -> Self {
        Self {
            api,
            base: format!("{url}/rest/api/1.0"),
            target,
        }
    }

    fn call(&self, operation: &'static str) -> Call<'_> {
        Call {
            target: &self.target,
            kind: CodeHostKind::BitbucketServer,
            operation,
        }
    }

    fn request(&self, method: Method, path: &str, token: &SecretString) -> RequestBuilder {
        self.request_url(method, format!("{}{path}", self.base), token)
    }

    /// A request outside the core REST API (build status, branch utils).
    fn request_url(&self, method: Method, url: String, token: &SecretString) -> RequestBuilder {
        self.api
            .http()
            .request(method, url)
            .bearer_auth(token.expose_secret())
    }

    /// The code host URL, under which every REST API lives.
    fn root(&self) -> &str {
        self.base.trim_end_matches("/rest/api/1.0")
    }

    async fn get(
        &self,
        operation: &'static str,
        path: &str,
        query: &[(&str, &str)],
        token: &SecretString,
    ) -> Result<reqwest::Response, Error> {
        let request = self.request(Method::GET, path, token).query(query);
        let response = self.api.send(self.call(operation), request, token).await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, path, response, token).await);
        }
        Ok(response)
    }

    /// Whether the listing at `path` has at least one entry.
    async fn lists_any(
        &self,
        operation: &'static str,
        path: &str,
        query: &[(&str, &str)],
        token: &SecretString,
    ) -> Result<bool, Error> {
        let response = self.get(operation, path, query, token).await?;
        let page: Page = http::read_json(&self.target, path, response).await?;
        Ok(page.size > 0)
    }
}

impl BitbucketServer {
    /// The repository's default branch (the repository API does not say);
    /// `None` for an empty repository, or a server without the endpoint.
    async fn default_branch(
        &self,
        repository_path: &str,
        token: &SecretString,
    ) -> Result<Option<String>, Error> {
        let path = format!("{repository_path}/branches/default");
        let request = self.request(Method::GET, &path, token);
        let response = self
            .api
            .send(self.call("default_branch"), request, token)
            .await?;
        match response.status() {
            reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::NO_CONTENT => Ok(None),
            status if status.is_success() => {
                let branch: Branch = http::read_json(&self.target, &path, response).await?;
                Ok(Some(branch.display_id))
            }
            _ => Err(http::unexpected(&self.target, &path, response, token).await),
        }
    }

    fn split<'a>(&self, repository: &'a str) -> Result<(&'a str, &'a str), Error> {
        split_repository(repository).ok_or_else(|| Error::RepositoryNotFound {
            target: self.target.clone(),
            repository: format!("{repository} (expected PROJECT/repository)"),
        })
    }

    fn pull_url(&self, pull: &Pull, project: &str, slug: &str) -> String {
        self.web_url(&pull.links, pull.id, project, slug)
    }

    fn web_url(&self, links: &Links, id: u64, project: &str, slug: &str) -> String {
        links.self_.first().map_or_else(
            || {
                format!(
                    "{}/projects/{project}/repos/{slug}/pull-requests/{id}",
                    self.root()
                )
            },
            |link| link.href.clone(),
        )
    }
}

impl CodeHostApi for BitbucketServer {
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
        self.transition(
            token,
            repository,
            number,
            "decline",
            &[PullRequestState::Closed],
        )
        .await
    }

    async fn reopen_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        self.transition(
            token,
            repository,
            number,
            "reopen",
            &[PullRequestState::Open, PullRequestState::Draft],
        )
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
        let (project, slug) = self.split(repository)?;
        let path = format!("/projects/{project}/repos/{slug}");
        let request = self.request(Method::GET, &path, token);
        let response = self
            .api
            .send(self.call("repository"), request, token)
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: repository.to_owned(),
            });
        }
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, &path, response, token).await);
        }
        let repo: Repository = http::read_json(&self.target, &path, response).await?;
        let clone = |name: &str| {
            repo.links
                .clone
                .iter()
                .find(|l| l.name.as_deref() == Some(name))
                .map(|l| l.href.clone())
        };
        Ok(RepositoryInfo {
            // Bitbucket Server answers only under the current project key
            // and slug (no redirects for renamed repositories), so the
            // name asked for is the name.
            canonical_name: None,
            http_clone_url: clone("http").unwrap_or_else(|| {
                format!(
                    "{}/scm/{}/{slug}.git",
                    self.root(),
                    project.to_ascii_lowercase()
                )
            }),
            ssh_clone_url: clone("ssh"),
            default_branch: self.default_branch(&path, token).await?,
        })
    }

    async fn publish_pull_request(
        &self,
        token: &SecretString,
        draft: &PullRequestDraft,
    ) -> Result<PullRequest, Error> {
        let (project, slug) = self.split(&draft.repository)?;
        let path = format!("/projects/{project}/repos/{slug}/pull-requests");
        let reference = |branch: &str| {
            serde_json::json!({
                "id": format!("refs/heads/{branch}"),
                "repository": {"slug": slug, "project": {"key": project}},
            })
        };
        let body = serde_json::json!({
            "title": draft.title,
            "description": draft.body,
            "draft": draft.draft,
            "fromRef": reference(&draft.head_branch),
            "toRef": reference(&draft.base_branch),
        });
        let request = self.request(Method::POST, &path, token).json(&body);
        let response = self
            .api
            .send(self.call("create_pull_request"), request, token)
            .await?;
        match response.status() {
            reqwest::StatusCode::CREATED | reqwest::StatusCode::OK => {
                let pull: Pull = http::read_json(&self.target, &path, response).await?;
                Ok(PullRequest {
                    number: pull.id,
                    url: self.pull_url(&pull, project, slug),
                    created: true,
                })
            }
            // DuplicatePullRequestException names the open one.
            reqwest::StatusCode::CONFLICT => {
                let conflict: Conflict = http::read_json(&self.target, &path, response).await?;
                let existing = conflict
                    .errors
                    .into_iter()
                    .find_map(|e| e.existing_pull_request)
                    .ok_or_else(|| Error::Unexpected {
                        target: self.target.clone(),
                        status: 409,
                        endpoint: path.clone(),
                        detail: "conflict without an existing pull request".into(),
                    })?;
                let path = format!("{path}/{}", existing.id);
                let update = serde_json::json!({
                    "version": existing.version,
                    "title": draft.title,
                    "description": draft.body,
                    "toRef": reference(&draft.base_branch),
                });
                let request = self.request(Method::PUT, &path, token).json(&update);
                let response = self
                    .api
                    .send(self.call("update_pull_request"), request, token)
                    .await?;
                if !response.status().is_success() {
                    return Err(http::unexpected(&self.target, &path, response, token).await);
                }
                let pull: Pull = http::read_json(&self.target, &path, response).await?;
                Ok(PullRequest {
                    number: pull.id,
                    url: self.pull_url(&pull, project, slug),
                    created: false,
                })
            }
            reqwest::StatusCode::NOT_FOUND => Err(Error::RepositoryNotFound {
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
        let response = self
            .get("current_user", "/users", &[("limit", "1")], token)
            .await?;
        let user = header_str(response.headers(), "x-ausername")
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Error::Rejected {
                target: self.target.clone(),
                detail: "it answered as for an anonymous visitor (no X-AUSERNAME header)".into(),
            })?;

        let mut missing = vec![];
        if !self
            .lists_any(
                "writable_projects",
                "/projects",
                &[("permission", "PROJECT_WRITE"), ("limit", "1")],
                token,
            )
            .await?
        {
            missing.push(format!("write on projects ({BITBUCKET_PROJECT_WRITE})"));
        }
        if !self
            .lists_any(
                "writable_repositories",
                "/repos",
                &[("permission", "REPO_WRITE"), ("limit", "1")],
                token,
            )
            .await?
        {
            missing.push(format!("write on repositories ({BITBUCKET_REPO_WRITE})"));
        }
        if !missing.is_empty() {
            return Err(Error::MissingScopes {
                target: self.target.clone(),
                missing,
            });
        }
        if let Some(repository) = &options.repository {
            let (project, slug) =
                split_repository(repository).ok_or_else(|| Error::NoRepositoryAccess {
                    target: self.target.clone(),
                    repository: repository.clone(),
                    detail: "expected PROJECT/repository".into(),
                })?;
            let query = [
                ("projectname", project),
                ("name", slug),
                ("permission", "REPO_WRITE"),
                ("limit", "1"),
            ];
            if !self
                .lists_any("check_push_access", "/repos", &query, token)
                .await?
            {
                return Err(Error::NoRepositoryAccess {
                    target: self.target.clone(),
                    repository: repository.clone(),
                    detail: "it is not among the repositories the token may write".into(),
                });
            }
        }
        Ok(TokenCheck {
            user,
            scopes: Some(vec![
                BITBUCKET_PROJECT_WRITE.to_owned(),
                BITBUCKET_REPO_WRITE.to_owned(),
            ]),
            expires_at: None,
            warnings: vec![],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_project_slash_slug() {
        assert_eq!(split_repository("ACME/api"), Some(("ACME", "api")));
        assert_eq!(split_repository("ACME/api/x"), None);
        assert_eq!(split_repository("/api"), None);
    }
}
