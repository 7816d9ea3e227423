//! GitHub App credentials: adding one for an existing App (its id and
//! private key), listing an App's installations to choose from, and
//! starting the manifest flow that creates an App. A credential shows its
//! strategy (`authenticationStrategy`) and App (`gitHubApp`).

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::commit_signing::GitHubApp;
use super::context_parts;
use super::error::IntoGraphql;
use super::ids;
use super::types::BatchChangesCredential;
use crate::domain::{AuthStrategy, GitHubAppInfo, GitHubAppInstallation as Installation};
use crate::service::{CreateGitHubAppCredential, CredentialView};

/// How a credential authenticates to its code host.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "BatchChangesCredentialAuthenticationStrategy")]
pub enum AuthenticationStrategy {
    /// A personal access token.
    PersonalAccessToken,
    /// A GitHub App: installation tokens minted for each use.
    #[graphql(name = "GITHUB_APP")]
    GitHubApp,
}

impl From<AuthStrategy> for AuthenticationStrategy {
    fn from(strategy: AuthStrategy) -> Self {
        match strategy {
            AuthStrategy::PersonalAccessToken => Self::PersonalAccessToken,
            AuthStrategy::GitHubApp => Self::GitHubApp,
        }
    }
}

/// One installation of a GitHub App: the account (namespace) it covers and
/// the permissions it grants there.
#[derive(SimpleObject, Clone)]
#[graphql(name = "GitHubAppInstallation", rename_fields = "camelCase")]
pub struct GitHubAppInstallation {
    #[graphql(name = "id")]
    pub id: ID,
    pub account: String,
    /// `name:level`, e.g. `contents:write`.
    pub permissions: Vec<String>,
}

impl From<&Installation> for GitHubAppInstallation {
    fn from(installation: &Installation) -> Self {
        Self {
            id: ID(installation.id.to_string()),
            account: installation.account.clone(),
            permissions: installation
                .permissions
                .iter()
                .map(|(name, level)| format!("{name}:{level}"))
                .collect(),
        }
    }
}

/// The `GitHubApp` shown for an App credential.
pub fn github_app(view: &CredentialView, app: &GitHubAppInfo) -> GitHubApp {
    GitHubApp {
        id: ID(format!("{}:{}", view.url.as_str(), app.app_id)),
        app_id: i32::try_from(app.app_id).unwrap_or(i32::MAX),
        name: app.name.clone(),
        slug: app.slug.clone().unwrap_or_default(),
        base_url: view.url.as_str().to_owned(),
        app_url: app.html_url.clone().unwrap_or_default(),
        client_id: app.client_id.clone().unwrap_or_default(),
        logo: String::new(),
        created_at: view.created_at,
        updated_at: view.created_at,
        installations: app.installations.iter().map(Into::into).collect(),
    }
}

fn parse_installation_ids(ids: Option<Vec<ID>>) -> async_graphql::Result<Option<Vec<u64>>> {
    ids.map(|ids| {
        ids.iter()
            .map(|id| {
                id.parse::<u64>().map_err(|_| {
                    async_graphql::Error::new(format!("not an installation id: {}", id.0))
                })
            })
            .collect()
    })
    .transpose()
}

fn parse_app_id(app_id: i32) -> async_graphql::Result<u64> {
    u64::try_from(app_id)
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| async_graphql::Error::new("appID must be a positive number"))
}

/// What the browser posts to GitHub to create an App from batchcred's
/// manifest: a form to `formURL` (which carries the state) with the field
/// `manifest`.
#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct GitHubAppManifest {
    #[graphql(name = "formURL")]
    pub form_url: String,
    pub manifest: String,
}

/// Adding GitHub App credentials.
#[derive(Default)]
pub struct GitHubAppMutation;

#[Object]
impl GitHubAppMutation {
    /// Lists where an existing App is installed, to choose from before
    /// adding it. The private key (PEM) is used to sign a JWT and dropped.
    async fn list_git_hub_app_installations(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "externalServiceURL")] external_service_url: String,
        #[graphql(name = "appID")] app_id: i32,
        #[graphql(secret)] private_key: String,
    ) -> async_graphql::Result<Vec<GitHubAppInstallation>> {
        let (service, caller) = context_parts(ctx)?;
        let key = SecretString::from(Zeroizing::new(private_key).as_str());
        let list = service
            .github_app_installations(caller, &external_service_url, parse_app_id(app_id)?, &key)
            .await
            .gql()?;
        Ok(list.iter().map(Into::into).collect())
    }

    /// Starts creating a GitHub App through GitHub's manifest flow, for
    /// `user` (or the global credential), owned by `organization` when
    /// given. Only from a signed-in browser session (cookie): GitHub sends
    /// that browser back to batchcred's callback, which must see the same
    /// session; the state is single use and expires after an hour.
    async fn start_git_hub_app_manifest(
        &self,
        ctx: &Context<'_>,
        user: Option<ID>,
        #[graphql(name = "externalServiceURL")] external_service_url: String,
        organization: Option<String>,
    ) -> async_graphql::Result<GitHubAppManifest> {
        use secrecy::ExposeSecret;
        let (service, caller) = context_parts(ctx)?;
        let user = user.as_ref().map(ids::parse_user_id).transpose().gql()?;
        let session = ctx
            .data_opt::<super::CurrentSession>()
            .and_then(|current| current.0.as_ref())
            .map(|secret| secret.expose_secret().to_owned())
            .unwrap_or_default();
        let started = service
            .start_github_app_manifest(
                caller,
                &session,
                &external_service_url,
                user,
                organization.as_deref(),
            )
            .await
            .gql()?;
        Ok(GitHubAppManifest {
            form_url: started.form_url,
            manifest: started.manifest,
        })
    }

    /// Adds a GitHub App credential (for `user`, or the global one) for an
    /// existing App: its id and private key (PEM), and the installations
    /// to use (every one when omitted). The key must work for the App and
    /// each installation must grant contents and pull requests write and
    /// metadata read; nothing is stored otherwise.
    async fn create_batch_changes_git_hub_app_credential(
        &self,
        ctx: &Context<'_>,
        user: Option<ID>,
        #[graphql(name = "externalServiceURL")] external_service_url: String,
        #[graphql(name = "appID")] app_id: i32,
        #[graphql(secret)] private_key: String,
        #[graphql(name = "installationIDs")] installation_ids: Option<Vec<ID>>,
    ) -> async_graphql::Result<BatchChangesCredential> {
        let (service, caller) = context_parts(ctx)?;
        let user = user.as_ref().map(ids::parse_user_id).transpose().gql()?;
        let request = CreateGitHubAppCredential {
            user,
            url: external_service_url,
            app_id: parse_app_id(app_id)?,
            private_key: SecretString::from(Zeroizing::new(private_key).as_str()),
            installations: parse_installation_ids(installation_ids)?,
        };
        Ok(BatchChangesCredential(
            service
                .create_github_app_credential(caller, request)
                .await
                .gql()?,
        ))
    }
}
