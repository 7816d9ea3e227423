//! Gerrit Code Review.
//!
//! Gerrit differs from the other code hosts: a changeset is a *change*,
//! uploaded by pushing one commit to `refs/for/<base>` whose message ends
//! with a `Change-Id` trailer (see `publish::git` for the upload), not a
//! branch with a pull request. The change's number plays the pull
//! request's number, and its topic carries the changeset's head branch.
//!
//! Authentication is HTTP Basic with the account's username and HTTP
//! password on the `/a/` REST paths (git over HTTPS uses the same pair),
//! and every JSON answer starts with Gerrit's `)]}'` line.
//!
//! Gerrit has no token scopes and HTTP passwords do not expire, so the
//! check probes what it can:
//! - the account works: `GET /a/accounts/self` answers its username (401:
//!   the password is rejected);
//! - with [`CheckOptions::repository`], the project is visible to the
//!   account (`GET /a/projects/{name}`), which takes the Read right.
//!
//! What cannot be probed without changing anything: the rights to upload
//! changes (Push on `refs/for/*`) and to abandon and restore them
//! (Abandon). They are known only when publishing or closing, and those
//! failures name the missing right (Gerrit's "prohibited by Gerrit: not
//! permitted: create change on refs/heads/main" for an upload).

mod changes;

use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::gitlab::urlencode_path;
use super::http::{self, ApiClient, Call};
use super::{
    CheckOptions, CodeHostApi, Error, PullRequest, PullRequestDraft, PullRequestStatus,
    RepositoryInfo, TokenCheck,
};
use crate::domain::{CodeHostKind, CodeHostUrl};

/// The access rights batchcred needs, as Gerrit names them.
pub const RIGHT_READ: &str = "Read";
pub const RIGHT_PUSH_FOR_REVIEW: &str = "Push to refs/for/*";
pub const RIGHT_ABANDON: &str = "Abandon";

/// What Gerrit's words in a refused upload mean: "prohibited by Gerrit:
/// not permitted: create change on refs/heads/main" is the account lacking
/// the Push right on `refs/for/refs/heads/main`.
pub fn push_failure_hint(message: &str) -> Option<&'static str> {
    let lower = message.to_lowercase();
    (lower.contains("prohibited by gerrit") || lower.contains("not permitted")).then_some(
        "the Gerrit account lacks the \"Push to refs/for/*\" right on refs/for/ of the base \
         branch; ask a project owner to grant it",
    )
}

#[derive(Debug, Clone)]
pub struct Gerrit {
    api: ApiClient,
    /// The code host URL, under which the REST API (`/a/…`), git (`/a/{project}`)
    /// and the web pages (`/c/…`) live.
    root: String,
    /// The account the HTTP password belongs to.
    username: String,
    target: String,
}

/// `GET /a/accounts/self`.
#[derive(Deserialize)]
struct Account {
    #[serde(rename = "_account_id")]
    account_id: Option<u64>,
    username: Option<String>,
    name: Option<String>,
}

/// `GET /a/config/server/info`: the part naming the SSH clone URL.
#[derive(Deserialize, Default)]
struct ServerInfo {
    #[serde(default)]
    download: Download,
}

#[derive(Deserialize, Default)]
struct Download {
    #[serde(default)]
    schemes: std::collections::HashMap<String, DownloadScheme>,
}

#[derive(Deserialize)]
struct DownloadScheme {
    url: Option<String>,
}

/// A change as `GET /a/changes/` lists it with `o=CURRENT_REVISION`.
#[derive(Deserialize)]
struct ChangeSummary {
    #[serde(rename = "_number")]
    number: u64,
    current_revision: Option<String>,
    #[serde(default)]
    revisions: std::collections::HashMap<String, Revision>,
}

#[derive(Deserialize)]
struct Revision {
    #[serde(rename = "_number")]
    number: u64,
}

impl Gerrit {
    pub fn new(api: ApiClient, url: &CodeHostUrl, username: String, target: String) -> Self {
        Self {
            api,
            root: url.to_string().trim_end_matches('/').to_owned(),
            username,
            target,
        }
    }

    fn call(&self, operation: &'static str) -> Call<'_> {
        Call {
            target: &self.target,
            kind: CodeHostKind::Gerrit,
            operation,
        }
    }

    /// A request to the authenticated REST API: `path` starts after `/a`.
    fn request(&self, method: Method, path: &str, token: &SecretString) -> RequestBuilder {
        self.api
            .http()
            .request(method, format!("{}/a{path}", self.root))
            .basic_auth(&self.username, Some(token.expose_secret()))
    }

    /// Sends a request; rate limits, rejections and server errors become
    /// errors (see [`ApiClient::send`]).
    async fn send(
        &self,
        operation: &'static str,
        request: RequestBuilder,
        token: &SecretString,
    ) -> Result<reqwest::Response, Error> {
        self.api.send(self.call(operation), request, token).await
    }

    /// Reads a successful JSON answer, or explains the failure.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        response: reqwest::Response,
        token: &SecretString,
    ) -> Result<T, Error> {
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, path, response, token).await);
        }
        http::read_json(&self.target, path, response).await
    }

    /// `/projects/{name}`, the name escaped into one path segment.
    fn project_path(project: &str) -> String {
        format!("/projects/{}", urlencode_path(project))
    }

    /// Whether the account can see `project` (404 when it cannot, as when
    /// it does not exist).
    async fn project_visible(&self, project: &str, token: &SecretString) -> Result<bool, Error> {
        let path = Self::project_path(project);
        let request = self.request(Method::GET, &path, token);
        let response = self.send("project", request, token).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, &path, response, token).await);
        }
        Ok(true)
    }

    /// The branch `HEAD` names; `None` when Gerrit does not say.
    async fn default_branch(
        &self,
        project: &str,
        token: &SecretString,
    ) -> Result<Option<String>, Error> {
        let path = format!("{}/HEAD", Self::project_path(project));
        let request = self.request(Method::GET, &path, token);
        let response = self.send("default_branch", request, token).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let head: String = self.json(&path, response, token).await?;
        Ok(Some(
            head.strip_prefix("refs/heads/").unwrap_or(&head).to_owned(),
        ))
    }

    /// The SSH clone URL of `project`, from the server's download schemes;
    /// `None` when SSH is not offered.
    async fn ssh_clone_url(
        &self,
        project: &str,
        token: &SecretString,
    ) -> Result<Option<String>, Error> {
        let path = "/config/server/info";
        let request = self.request(Method::GET, path, token);
        let response = self.send("server_info", request, token).await?;
        let info: ServerInfo = self.json(path, response, token).await?;
        Ok(info
            .download
            .schemes
            .get("ssh")
            .and_then(|scheme| scheme.url.as_deref())
            .map(|template| ssh_url(template, project, &self.username)))
    }

    /// `{url}/c/{project}/+/{number}`, the change's page.
    fn change_url(&self, project: &str, number: u64) -> String {
        format!("{}/c/{project}/+/{number}", self.root)
    }

    /// `project~number`, the unambiguous change id in paths.
    fn change_path(project: &str, number: u64) -> String {
        format!("/changes/{}~{number}", urlencode_path(project))
    }
}

/// The SSH clone URL from Gerrit's template (`ssh://host:29418/${project}`),
/// with the account's username when the template names none: Gerrit's SSH
/// daemon knows accounts by username, not by the local user's name.
fn ssh_url(template: &str, project: &str, username: &str) -> String {
    let url = template.replace("${project}", project);
    match url.strip_prefix("ssh://") {
        Some(rest) if !rest.split('/').next().unwrap_or_default().contains('@') => {
            format!("ssh://{username}@{rest}")
        }
        _ => url,
    }
}

impl CodeHostApi for Gerrit {
    async fn check_token(
        &self,
        token: &SecretString,
        options: &CheckOptions,
    ) -> Result<TokenCheck, Error> {
        let path = "/accounts/self";
        let request = self.request(Method::GET, path, token);
        let response = self.send("current_user", request, token).await?;
        let account: Account = self.json(path, response, token).await?;
        let user = account
            .username
            .or(account.name)
            .or_else(|| account.account_id.map(|id| id.to_string()))
            .unwrap_or_else(|| self.username.clone());
        let mut warnings = vec![format!(
            "Gerrit has no token scopes: whether this account may upload changes ({RIGHT_PUSH_FOR_REVIEW}) \
             and abandon them ({RIGHT_ABANDON}) is only known when publishing"
        )];
        if let Some(project) = &options.repository {
            if !self.project_visible(project, token).await? {
                return Err(Error::NoRepositoryAccess {
                    target: self.target.clone(),
                    repository: project.clone(),
                    detail: format!(
                        "the project does not exist or the account lacks the {RIGHT_READ} right on it"
                    ),
                });
            }
            warnings = vec![format!(
                "the account can read {project}; its {RIGHT_PUSH_FOR_REVIEW} and {RIGHT_ABANDON} \
                 rights are only known when publishing"
            )];
        }
        Ok(TokenCheck {
            user,
            scopes: None,
            expires_at: None,
            warnings,
        })
    }

    async fn repository(
        &self,
        token: &SecretString,
        repository: &str,
    ) -> Result<RepositoryInfo, Error> {
        if !self.project_visible(repository, token).await? {
            return Err(Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: repository.to_owned(),
            });
        }
        Ok(RepositoryInfo {
            // Gerrit projects are not renamed behind a redirect.
            canonical_name: None,
            http_clone_url: format!("{}/a/{repository}", self.root),
            ssh_clone_url: self.ssh_clone_url(repository, token).await?,
            default_branch: self.default_branch(repository, token).await?,
        })
    }

    /// The change was uploaded by the push; this finds it by its
    /// Change-Id, project and branch and says whether this upload created
    /// it (its only patch set) or added a patch set.
    async fn publish_pull_request(
        &self,
        token: &SecretString,
        draft: &PullRequestDraft,
    ) -> Result<PullRequest, Error> {
        let change_id = draft
            .change_id
            .as_deref()
            .ok_or_else(|| Error::Unexpected {
                target: self.target.clone(),
                status: 0,
                endpoint: "/changes/".into(),
                detail: "a Gerrit change is found by its Change-Id, and none was given".into(),
            })?;
        let path = "/changes/";
        let query = format!(
            "change:{change_id} project:{} branch:{}",
            draft.repository, draft.base_branch
        );
        let request = self
            .request(Method::GET, path, token)
            .query(&[("q", query.as_str()), ("o", "CURRENT_REVISION")]);
        let response = self.send("find_change", request, token).await?;
        let found: Vec<ChangeSummary> = self.json(path, response, token).await?;
        let change = found.into_iter().next().ok_or_else(|| Error::Unexpected {
            target: self.target.clone(),
            status: 200,
            endpoint: path.into(),
            detail: format!(
                "no change {change_id} on {} in {} after uploading it",
                draft.base_branch, draft.repository
            ),
        })?;
        let patch_set = change
            .current_revision
            .as_ref()
            .and_then(|sha| change.revisions.get(sha))
            .map_or(1, |revision| revision.number);
        Ok(PullRequest {
            number: change.number,
            url: self.change_url(&draft.repository, change.number),
            created: patch_set <= 1,
        })
    }

    async fn pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        self.change_status(token, repository, number).await
    }

    async fn close_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        self.transition(token, repository, number, changes::Transition::Abandon)
            .await
    }

    async fn reopen_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        self.transition(token, repository, number, changes::Transition::Restore)
            .await
    }

    /// A change has no branch of its own to delete.
    async fn delete_branch(
        &self,
        _token: &SecretString,
        _repository: &str,
        _branch: &str,
    ) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_fill_in_the_project_and_the_account() {
        assert_eq!(
            ssh_url(
                "ssh://review.example.com:29418/${project}",
                "team/api",
                "al"
            ),
            "ssh://al@review.example.com:29418/team/api"
        );
        assert_eq!(
            ssh_url("ssh://git@review.example.com:29418/${project}", "api", "al"),
            "ssh://git@review.example.com:29418/api"
        );
    }

    #[test]
    fn changes_are_addressed_by_project_and_number() {
        assert_eq!(Gerrit::change_path("team/api", 7), "/changes/team%2Fapi~7");
        assert_eq!(Gerrit::project_path("team/api"), "/projects/team%2Fapi");
    }

    #[test]
    fn refused_uploads_name_the_missing_right() {
        let message = "! [remote rejected] c -> refs/for/main%topic=b,ready \
                       (prohibited by Gerrit: not permitted: create change on refs/heads/main)";
        let hint = push_failure_hint(message).unwrap_or_default();
        assert!(
            hint.contains("lacks the \"Push to refs/for/*\" right"),
            "{hint}"
        );
        assert_eq!(
            push_failure_hint("! [remote rejected] (hook declined)"),
            None
        );
    }
}
