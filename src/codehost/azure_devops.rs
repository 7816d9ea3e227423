//! Azure DevOps: Services (`https://dev.azure.com/<organisation>`, or the
//! legacy `https://<organisation>.visualstudio.com`) and Server
//! (`https://host[:port]/[tfs/]<collection>`).
//!
//! Repositories are named `project/repository`. Every call goes to
//! `{url}/{project}/_apis/git/repositories/{repository}…` with
//! `api-version=7.0`, the newest version both Services and Server 2022
//! accept (Server 2022 stops at 7.0; 7.1 would shut it out).
//!
//! A personal access token is sent as HTTP Basic `username:token`. Azure
//! ignores the username, but batchcred asks for one (as the reference
//! product does) and sends the one stored with the credential, to the API
//! and to git alike.
//!
//! No API reports a token's scopes, and the token lifecycle API needs a
//! Microsoft Entra token rather than the PAT itself, so the check
//! ([`check`]) works from what the token may do:
//! - who: `GET {url}/_apis/connectionData` names the authenticated user.
//!   An anonymous answer (public projects), a 401, or a 203 with a sign-in
//!   page means the token was not accepted; a 401 quoting "has expired"
//!   says so.
//! - Code read (`vso.code`): listing the collection's repositories. A
//!   refusal means the token certainly lacks `vso.code_write` (which
//!   includes read). Write cannot be probed without writing, so the check
//!   says so in a warning; a push refused later names the missing
//!   permission (Azure's `TF401027 … GenericContribute`).
//! - `vso.profile`: on Services, `GET https://app.vssps.visualstudio.com/
//!   _apis/profile/profiles/me`. A refusal only warns: the account was
//!   already named, and a token scoped to one organisation (which the
//!   profile service refuses) publishes all the same. Server has no
//!   profile service, so there it does not apply.
//! - expiry: not reported, so left unknown.

mod check;
mod pulls;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::http::{self, ApiClient, Call};
use super::{
    CheckOptions, CodeHostApi, Error, PullRequest, PullRequestDraft, PullRequestStatus,
    RepositoryInfo, TokenCheck,
};
use crate::domain::{CodeHostKind, CodeHostUrl};

/// The REST API version of every call but `connectionData`.
const API_VERSION: &str = "7.0";

/// `connectionData` exists only as a preview API.
const CONNECTION_DATA_VERSION: &str = "7.0-preview";

/// Where Azure DevOps Services keeps user profiles, for every
/// organisation.
const SERVICES_PROFILE_URL: &str = "https://app.vssps.visualstudio.com/_apis/profile/profiles/me";

#[derive(Debug, Clone)]
pub struct AzureDevOps {
    api: ApiClient,
    /// The organisation (Services) or collection (Server) URL.
    base: String,
    /// The profile endpoint on Services; `None` on Server.
    profile_url: Option<String>,
    /// Sent with the token; Azure ignores it.
    username: String,
    target: String,
}

/// `GET …/repositories/{repository}`.
#[derive(Deserialize)]
struct Repository {
    name: String,
    #[serde(rename = "remoteUrl")]
    remote_url: Option<String>,
    #[serde(rename = "sshUrl")]
    ssh_url: Option<String>,
    /// `refs/heads/main`; absent for an empty repository.
    #[serde(rename = "defaultBranch")]
    default_branch: Option<String>,
    project: Option<Project>,
}

#[derive(Deserialize)]
struct Project {
    name: String,
}

/// Whether `url` is Azure DevOps Services (as opposed to a Server).
fn is_services(url: &CodeHostUrl) -> bool {
    let host = url.host();
    host == "dev.azure.com" || host.ends_with(".visualstudio.com")
}

/// The path segments after the host.
fn path_segments(url: &CodeHostUrl) -> Vec<&str> {
    let rest = url
        .as_str()
        .split_once("://")
        .map_or(url.as_str(), |(_, r)| r);
    rest.split('/').skip(1).filter(|s| !s.is_empty()).collect()
}

/// Refuses an Azure DevOps code host URL that cannot address the REST API:
/// `https://dev.azure.com` needs the organisation (and nothing more: the
/// project comes with each repository), and a Server URL the collection.
pub fn check_code_host_url(url: &CodeHostUrl) -> Result<(), String> {
    let segments = path_segments(url);
    if url.host() == "dev.azure.com" {
        return match segments.len() {
            1 => Ok(()),
            0 => Err("an Azure DevOps Services URL names the organisation: \
                 https://dev.azure.com/<organisation>"
                .into()),
            _ => Err(
                "an Azure DevOps Services URL names the organisation only, without a project: \
                 https://dev.azure.com/<organisation>"
                    .into(),
            ),
        };
    }
    if !is_services(url) && segments.is_empty() {
        return Err("an Azure DevOps Server URL names the collection: \
             https://<host>/tfs/<collection> or https://<host>/<collection>"
            .into());
    }
    Ok(())
}

/// `project/repository` → (`project`, `repository`).
fn split_repository(repository: &str) -> Option<(&str, &str)> {
    repository
        .split_once('/')
        .filter(|(p, r)| !p.is_empty() && !r.is_empty() && !r.contains('/'))
}

/// `refs/heads/main` → `main`.
fn branch_name(reference: &str) -> &str {
    reference.strip_prefix("refs/heads/").unwrap_or(reference)
}

/// A clone URL without the `user@` Azure puts in it
/// (`https://acme@dev.azure.com/acme/…`): git sends the credential's
/// username instead.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

impl AzureDevOps {
    pub fn new(api: ApiClient, url: &CodeHostUrl, username: Option<&str>, target: String) -> Self {
        Self {
            api,
            base: url.as_str().to_owned(),
            profile_url: is_services(url).then(|| SERVICES_PROFILE_URL.to_owned()),
            username: username.unwrap_or_default().to_owned(),
            target,
        }
    }

    fn call(&self, operation: &'static str) -> Call<'_> {
        Call {
            target: &self.target,
            kind: CodeHostKind::AzureDevOps,
            operation,
        }
    }

    /// A request to `url` carrying the token, with `api-version`.
    fn request_url(
        &self,
        method: Method,
        url: &str,
        version: &str,
        token: &SecretString,
    ) -> RequestBuilder {
        self.api
            .http()
            .request(method, url)
            .query(&[("api-version", version)])
            .basic_auth(&self.username, Some(token.expose_secret()))
    }

    /// A request to `path` under the organisation or collection.
    fn request(&self, method: Method, path: &str, token: &SecretString) -> RequestBuilder {
        self.request_url(method, &format!("{}{path}", self.base), API_VERSION, token)
    }

    /// Sends a request. Besides what [`ApiClient::send`] turns into errors,
    /// a 203 is Azure's sign-in page, served to a token it did not accept.
    async fn send(
        &self,
        operation: &'static str,
        request: RequestBuilder,
        token: &SecretString,
    ) -> Result<Response, Error> {
        let response = self.api.send(self.call(operation), request, token).await?;
        if response.status() == StatusCode::NON_AUTHORITATIVE_INFORMATION {
            return Err(Error::Rejected {
                target: self.target.clone(),
                detail: "it answered with its sign-in page (203)".into(),
            });
        }
        Ok(response)
    }

    fn split<'a>(&self, repository: &'a str) -> Result<(&'a str, &'a str), Error> {
        split_repository(repository).ok_or_else(|| Error::RepositoryNotFound {
            target: self.target.clone(),
            repository: format!("{repository} (expected project/repository)"),
        })
    }

    /// `/{project}/_apis/git/repositories/{repository}`, each part escaped.
    fn repository_path(&self, repository: &str) -> Result<String, Error> {
        let (project, name) = self.split(repository)?;
        Ok(format!(
            "/{}/_apis/git/repositories/{}",
            super::gitlab::urlencode_path(project),
            super::gitlab::urlencode_path(name)
        ))
    }

    /// The web page of a pull request.
    fn pull_url(&self, project: &str, repository: &str, id: u64) -> String {
        format!(
            "{}/{}/_git/{}/pullrequest/{id}",
            self.base,
            super::gitlab::urlencode_path(project),
            super::gitlab::urlencode_path(repository)
        )
    }

    /// The repository as Azure answers for it: 404 means it is not there
    /// (or the token's user cannot see it).
    async fn fetch_repository(
        &self,
        operation: &'static str,
        token: &SecretString,
        repository: &str,
    ) -> Result<Repository, Error> {
        let path = self.repository_path(repository)?;
        let request = self.request(Method::GET, &path, token);
        let response = self.send(operation, request, token).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Err(Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: repository.to_owned(),
            }),
            status if status.is_success() => http::read_json(&self.target, &path, response).await,
            _ => Err(http::unexpected(&self.target, &path, response, token).await),
        }
    }
}

impl CodeHostApi for AzureDevOps {
    async fn check_token(
        &self,
        token: &SecretString,
        options: &CheckOptions,
    ) -> Result<TokenCheck, Error> {
        self.check(token, options).await
    }

    async fn repository(
        &self,
        token: &SecretString,
        repository: &str,
    ) -> Result<RepositoryInfo, Error> {
        let (project, _) = self.split(repository)?;
        let repo = self
            .fetch_repository("repository", token, repository)
            .await?;
        let project = repo.project.as_ref().map_or(project, |p| p.name.as_str());
        let http_clone_url = match &repo.remote_url {
            Some(url) => without_userinfo(url),
            None => format!(
                "{}/{}/_git/{}",
                self.base,
                super::gitlab::urlencode_path(project),
                super::gitlab::urlencode_path(&repo.name)
            ),
        };
        Ok(RepositoryInfo {
            canonical_name: Some(format!("{project}/{}", repo.name)),
            http_clone_url,
            ssh_clone_url: repo.ssh_url.clone(),
            default_branch: repo
                .default_branch
                .as_deref()
                .map(|b| branch_name(b).to_owned()),
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
        self.set_status(token, repository, number, pulls::Transition::Abandon)
            .await
    }

    async fn reopen_pull_request(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        self.set_status(token, repository, number, pulls::Transition::Reactivate)
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
}

/// What to add to a refused push's message on Azure DevOps: Azure names
/// the missing Git permission (`TF401027: You need the Git
/// 'GenericContribute' permission`), not the token scope behind it.
pub fn push_failure_hint(message: &str) -> Option<&'static str> {
    let lower = message.to_ascii_lowercase();
    if lower.contains("tf401027") || lower.contains("genericcontribute") {
        Some(
            "Azure DevOps refused to let this token write: it needs the Code (Read & write) \
             scope (vso.code_write), and its user the Contribute permission on the repository",
        )
    } else if lower.contains("returned error: 403") {
        Some(
            "Azure DevOps refused the push: the token may lack the Code (Read & write) scope \
             (vso.code_write)",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> CodeHostUrl {
        CodeHostUrl::parse(raw).expect("url")
    }

    #[test]
    fn services_urls_name_exactly_the_organisation() {
        assert!(check_code_host_url(&url("https://dev.azure.com/acme")).is_ok());
        let bare = check_code_host_url(&url("https://dev.azure.com/")).unwrap_err();
        assert!(bare.contains("names the organisation"), "{bare}");
        let project = check_code_host_url(&url("https://dev.azure.com/acme/api")).unwrap_err();
        assert!(project.contains("without a project"), "{project}");
        assert!(check_code_host_url(&url("https://acme.visualstudio.com")).is_ok());
        assert!(check_code_host_url(&url("https://tfs.example.com/tfs/Main")).is_ok());
        assert!(check_code_host_url(&url("https://tfs.example.com:8080/Main")).is_ok());
        let server = check_code_host_url(&url("https://tfs.example.com")).unwrap_err();
        assert!(server.contains("collection"), "{server}");
    }

    #[test]
    fn only_services_has_the_profile_service() {
        let api = ApiClient::new(std::time::Duration::from_secs(1)).expect("client");
        let client = |raw: &str| AzureDevOps::new(api.clone(), &url(raw), Some("al"), raw.into());
        assert!(client("https://dev.azure.com/acme").profile_url.is_some());
        assert!(
            client("https://acme.visualstudio.com")
                .profile_url
                .is_some()
        );
        assert!(
            client("https://tfs.example.com/tfs/Main")
                .profile_url
                .is_none()
        );
    }

    #[test]
    fn clone_urls_lose_their_user_and_branches_their_prefix() {
        assert_eq!(
            without_userinfo("https://acme@dev.azure.com/acme/Web/_git/api"),
            "https://dev.azure.com/acme/Web/_git/api"
        );
        assert_eq!(
            without_userinfo("https://tfs.example.com/tfs/Main/Web/_git/api"),
            "https://tfs.example.com/tfs/Main/Web/_git/api"
        );
        assert_eq!(branch_name("refs/heads/main"), "main");
        assert_eq!(branch_name("develop"), "develop");
        assert_eq!(split_repository("Web/api"), Some(("Web", "api")));
        assert_eq!(split_repository("Web/api/x"), None);
        assert_eq!(split_repository("api"), None);
    }

    #[test]
    fn refused_pushes_name_what_is_missing() {
        let azure = "remote: TF401027: You need the Git 'GenericContribute' permission to \
                     perform this action.; fatal: unable to access: The requested URL returned error: 403";
        assert!(push_failure_hint(azure).is_some_and(|h| h.contains("vso.code_write")));
        assert!(push_failure_hint("returned error: 403").is_some());
        assert_eq!(push_failure_hint("protected branch"), None);
    }
}
