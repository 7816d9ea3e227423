//! GitHub App credentials: adding one (an existing App's id and private
//! key), checking it, and the installation tokens every push and API call
//! with it uses, minted from a JWT and cached in memory only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::credentials::{CredentialSecret, GitHubAppSecret, SEAL_VERSION};
use super::{Error, Result, Service, not_found};
use crate::auth::Caller;
use crate::codehost::github::app::{self, AppInfo, Installation};
use crate::codehost::{self, GitHub};
use crate::domain::{
    AuthStrategy, CodeHostConfig, CodeHostKind, CodeHostUrl, CredentialId, CredentialOwner,
    GitHubAppInfo, GitHubAppInstallation, GitUrlType, UserId,
};
use crate::store::{CheckState, NewCredential};

use super::credentials::CredentialView;

/// A request to store a GitHub App credential for an existing App.
pub struct CreateGitHubAppCredential {
    /// `None` stores the global (site) credential.
    pub user: Option<UserId>,
    pub url: String,
    pub app_id: u64,
    /// The App's private key, PEM. Wiped from memory when dropped.
    pub private_key: SecretString,
    /// The installations to use, by id; `None` uses every one.
    pub installations: Option<Vec<u64>>,
}

impl std::fmt::Debug for CreateGitHubAppCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateGitHubAppCredential")
            .field("user", &self.user)
            .field("url", &self.url)
            .field("app_id", &self.app_id)
            .field("installations", &self.installations)
            .finish_non_exhaustive()
    }
}

/// What the manifest conversion returned, for storing as a credential.
pub(crate) struct ConvertedApp {
    pub info: AppInfo,
    pub private_key: SecretString,
    pub client_secret: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
}

/// A minted installation token, kept until shortly before it expires.
struct CachedToken {
    token: SecretString,
    expires_at: DateTime<Utc>,
}

/// Installation tokens are used until this long before they expire.
const REFRESH_BEFORE_EXPIRY: chrono::Duration = chrono::Duration::minutes(5);

/// Installation tokens by credential and installation, in memory only.
/// Each entry has its own lock, held while minting, so concurrent callers
/// for one installation share one mint.
#[derive(Default)]
pub(crate) struct InstallationTokens {
    entries: Mutex<HashMap<(CredentialId, u64), TokenSlot>>,
}

/// One installation's cached token, locked while it is minted.
type TokenSlot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

impl std::fmt::Debug for InstallationTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallationTokens").finish_non_exhaustive()
    }
}

impl InstallationTokens {
    fn entry(&self, key: (CredentialId, u64)) -> TokenSlot {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.entry(key).or_default().clone()
    }
}

/// The App's installations batchcred uses, each with the permissions it
/// lacks: an error naming them when a required one is missing, else the
/// warnings for optional ones.
fn permission_check(
    target: &str,
    installations: &[Installation],
) -> std::result::Result<Vec<String>, codehost::Error> {
    let mut missing = vec![];
    let mut warnings = vec![];
    for installation in installations {
        let (required, optional) = app::missing_permissions(&installation.permissions);
        missing.extend(
            required
                .into_iter()
                .map(|p| format!("{p} (installation on {})", installation.account)),
        );
        if !optional.is_empty() {
            warnings.push(format!(
                "the GitHub App's installation on {} lacks {}: GitHub will refuse changesets \
                 that change files under .github/workflows",
                installation.account,
                optional.join(", ")
            ));
        }
    }
    if missing.is_empty() {
        Ok(warnings)
    } else {
        Err(codehost::Error::MissingScopes {
            target: target.to_owned(),
            missing,
        })
    }
}

fn to_domain(installation: Installation) -> GitHubAppInstallation {
    GitHubAppInstallation {
        id: installation.id,
        account: installation.account,
        permissions: installation.permissions,
    }
}

impl Service {
    /// The GitHub API client for `host`; other kinds have no Apps.
    pub(super) fn github_client(&self, host: &CodeHostConfig) -> Result<GitHub> {
        match self.code_host_client(host, None)? {
            codehost::Client::GitHub(github) => Ok(github),
            _ => Err(Error::InvalidInput(format!(
                "{} {} is not a GitHub code host: only GitHub has Apps",
                host.kind.display_name(),
                host.url
            ))),
        }
    }

    /// Checks an App's key and installations: the key signs a JWT GitHub
    /// accepts for this App, and every chosen installation grants what
    /// batchcred needs. Returns the App, the chosen installations and the
    /// warnings.
    async fn check_github_app(
        &self,
        host: &CodeHostConfig,
        app_id: u64,
        private_key: &SecretString,
        chosen: Option<&[u64]>,
    ) -> Result<(AppInfo, Vec<Installation>, Vec<String>)> {
        let github = self.github_client(host)?;
        let _turn = self
            .token_checks
            .acquire()
            .await
            .map_err(|_| Error::Internal("the token check bound was closed".into()))?;
        let outcome = async {
            let jwt = github.sign_app_jwt(app_id, private_key)?;
            let info = github.app(&jwt).await?;
            let all = github.app_installations(&jwt).await?;
            Ok::<_, codehost::Error>((info, all))
        }
        .await;
        crate::telemetry::metrics::credential_check(match &outcome {
            Ok(_) => "ok",
            Err(error) => error.metric_label(),
        });
        let (info, all) = outcome?;
        if info.id != app_id {
            return Err(Error::InvalidInput(format!(
                "{} {} answered for GitHub App {} while {app_id} was given",
                host.kind.display_name(),
                host.url,
                info.id
            )));
        }
        let installations: Vec<Installation> = match chosen {
            None => all,
            Some(ids) => {
                if let Some(unknown) = ids.iter().find(|id| !all.iter().any(|i| i.id == **id)) {
                    return Err(Error::InvalidInput(format!(
                        "GitHub App {} has no installation {unknown} on {}",
                        info.name, host.url
                    )));
                }
                all.into_iter().filter(|i| ids.contains(&i.id)).collect()
            }
        };
        if installations.is_empty() {
            return Err(Error::InvalidInput(format!(
                "GitHub App {} is not installed anywhere on {}: install it on the \
                 organisations or users whose repositories batchcred publishes to",
                info.name, host.url
            )));
        }
        let target = format!("{} {}", host.kind.display_name(), host.url);
        let warnings = permission_check(&target, &installations)?;
        Ok((info, installations, warnings))
    }

    /// Lists an App's installations (to choose from before adding it).
    pub async fn github_app_installations(
        &self,
        caller: &Caller,
        url: &str,
        app_id: u64,
        private_key: &SecretString,
    ) -> Result<Vec<GitHubAppInstallation>> {
        caller.require_signed_in()?;
        let host = self.configured_code_host(&CodeHostUrl::parse(url)?).await?;
        let github = self.github_client(&host)?;
        let jwt = github.sign_app_jwt(app_id, private_key)?;
        let all = github.app_installations(&jwt).await?;
        Ok(all.into_iter().map(to_domain).collect())
    }

    /// Stores a GitHub App credential for an existing App, once its key
    /// and installations check out; nothing is stored otherwise.
    #[tracing::instrument(skip(self, caller, request), fields(url = %request.url, app_id = request.app_id, site = request.user.is_none()))]
    pub async fn create_github_app_credential(
        &self,
        caller: &Caller,
        request: CreateGitHubAppCredential,
    ) -> Result<CredentialView> {
        let owner = self.credential_owner(caller, request.user).await?;
        let host = self.github_app_host(&request.url, owner).await?;
        let (info, installations, warnings) = self
            .check_github_app(
                &host,
                request.app_id,
                &request.private_key,
                request.installations.as_deref(),
            )
            .await?;
        let converted = ConvertedApp {
            info,
            private_key: request.private_key,
            client_secret: None,
            webhook_secret: None,
        };
        self.store_github_app_credential(
            caller,
            owner,
            &host,
            converted,
            installations,
            warnings,
            false,
        )
        .await
    }

    /// Who a new credential belongs to, once the caller may add it.
    pub(super) async fn credential_owner(
        &self,
        caller: &Caller,
        user: Option<UserId>,
    ) -> Result<CredentialOwner> {
        match user {
            Some(user_id) => {
                caller.require_acting_for(user_id)?;
                self.store
                    .find_user(user_id)
                    .await
                    .map_err(not_found("user"))?;
                Ok(CredentialOwner::User(user_id))
            }
            None => {
                caller.require_site_admin()?;
                Ok(CredentialOwner::Site)
            }
        }
    }

    /// The GitHub code host at `url`, where `owner` has no App yet.
    pub(super) async fn github_app_host(
        &self,
        url: &str,
        owner: CredentialOwner,
    ) -> Result<CodeHostConfig> {
        let host = self.configured_code_host(&CodeHostUrl::parse(url)?).await?;
        if host.kind != CodeHostKind::GitHub {
            return Err(Error::InvalidInput(format!(
                "the code host at {} is {}: only GitHub has Apps",
                host.url, host.kind
            )));
        }
        if host.git_url_type == GitUrlType::Ssh {
            return Err(Error::InvalidInput(format!(
                "{} pushes over SSH; GitHub App installation tokens push over HTTPS only",
                host.url
            )));
        }
        if self
            .store
            .find_credential_with(host.id, owner, AuthStrategy::GitHubApp)
            .await?
            .is_some()
        {
            return Err(Error::Conflict(
                "a GitHub App credential for this code host already exists; remove it first".into(),
            ));
        }
        Ok(host)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn store_github_app_credential(
        &self,
        caller: &Caller,
        owner: CredentialOwner,
        host: &CodeHostConfig,
        app: ConvertedApp,
        installations: Vec<Installation>,
        warnings: Vec<String>,
        from_manifest: bool,
    ) -> Result<CredentialView> {
        let id = CredentialId::new();
        let secret = CredentialSecret {
            token: SecretString::from(String::new()),
            ssh_private_key: None,
            signing_private_key: None,
            github_app: Some(GitHubAppSecret {
                private_key: app.private_key,
                client_secret: app.client_secret,
                webhook_secret: app.webhook_secret,
            }),
        };
        let now = Utc::now();
        let record = NewCredential {
            id,
            code_host_id: host.id,
            owner,
            username: None,
            secret: self.seal_secret(id, owner, host, &secret)?,
            seal_version: SEAL_VERSION,
            ssh_public_key: None,
            ssh_key_pending: false,
            signing: None,
            auth_strategy: AuthStrategy::GitHubApp,
            github_app: Some(GitHubAppInfo {
                app_id: app.info.id,
                slug: app.info.slug.clone(),
                name: app.info.name.clone(),
                client_id: app.info.client_id.clone(),
                html_url: app.info.html_url.clone(),
                from_manifest,
                installations: installations.into_iter().map(to_domain).collect(),
            }),
            created_at: now,
            updated_at: now,
            check: CheckState {
                code_host_user: app.info.slug.clone().or(Some(app.info.name.clone())),
                scopes: None,
                expires_at: None,
                warnings,
                last_checked_at: Some(now),
                last_check_error: None,
            },
        };
        let mut audit = super::audit::about_credential(
            super::audit::by(caller, super::audit::event::CREDENTIAL_CREATED),
            &record,
            host,
        );
        audit.detail["auth_strategy"] = AuthStrategy::GitHubApp.as_str().into();
        audit.detail["github_app_id"] = app.info.id.into();
        self.store.insert_credential(&audit, &record).await?;
        tracing::info!(credential = %id, app_id = app.info.id, "GitHub App credential created");
        Ok(CredentialView::new(&record, host))
    }

    /// Checks a stored App credential again: its key, its installations
    /// (those it uses that are gone make it fail) and their permissions.
    /// Returns the new check state, and the App facts to store.
    pub(super) async fn recheck_github_app(
        &self,
        host: &CodeHostConfig,
        app: &GitHubAppInfo,
        secret: &CredentialSecret,
    ) -> Result<(GitHubAppInfo, Vec<String>)> {
        let Some(keys) = &secret.github_app else {
            return Err(Error::Internal(
                "GitHub App credential without its key".into(),
            ));
        };
        let ids: Vec<u64> = app.installations.iter().map(|i| i.id).collect();
        // An App created through the manifest flow before it was installed
        // takes every installation it has by its next check.
        let chosen = (!ids.is_empty()).then_some(ids.as_slice());
        let (info, installations, warnings) = self
            .check_github_app(host, app.app_id, &keys.private_key, chosen)
            .await?;
        let mut updated = app.clone();
        updated.name = info.name;
        updated.slug = info.slug.or(updated.slug);
        updated.installations = installations.into_iter().map(to_domain).collect();
        Ok((updated, warnings))
    }

    /// The installation token for `installation` of the App credential
    /// `id`: the cached one while it has more than five minutes left, else
    /// a new one (one mint for all concurrent callers).
    pub(super) async fn installation_token(
        &self,
        id: CredentialId,
        host: &CodeHostConfig,
        app: &GitHubAppInfo,
        installation: &GitHubAppInstallation,
        secret: &CredentialSecret,
    ) -> Result<SecretString> {
        let entry = self.installation_tokens.entry((id, installation.id));
        let mut cached = entry.lock().await;
        if let Some(token) = cached.as_ref()
            && token.expires_at - REFRESH_BEFORE_EXPIRY > Utc::now()
        {
            return Ok(token.token.clone());
        }
        let Some(keys) = &secret.github_app else {
            return Err(Error::Internal(
                "GitHub App credential without its key".into(),
            ));
        };
        let github = self.github_client(host)?;
        let jwt = github.sign_app_jwt(app.app_id, &keys.private_key)?;
        let minted = github
            .mint_installation_token(&jwt, installation.id)
            .await?;
        tracing::debug!(credential = %id, installation = installation.id, expires_at = %minted.expires_at, "minted a GitHub App installation token");
        let token = minted.token.clone();
        *cached = Some(CachedToken {
            token: minted.token,
            expires_at: minted.expires_at,
        });
        Ok(token)
    }
}

#[cfg(feature = "test-support")]
impl Service {
    /// A GitHub App credential's client and webhook secrets, opened, for
    /// tests that check the manifest flow sealed them.
    pub async fn open_credential_secret_for_tests(
        &self,
        record: &crate::store::CredentialRecord,
    ) -> String {
        use secrecy::ExposeSecret;
        let Ok(host) = self.store.find_code_host(record.code_host_id).await else {
            return String::new();
        };
        let Ok(secret) = self.open_secret(record, &host) else {
            return String::new();
        };
        let Some(app) = secret.github_app else {
            return String::new();
        };
        [app.client_secret, app.webhook_secret]
            .iter()
            .flatten()
            .map(|s| s.expose_secret().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
