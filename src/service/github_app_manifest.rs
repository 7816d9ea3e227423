//! Creating a GitHub App through GitHub's manifest flow: batchcred builds
//! the manifest (with the permissions it needs), the browser posts it to
//! GitHub with a one-time `state`, GitHub sends the browser back with a
//! `code`, and batchcred converts the code into the App's id, private key
//! and secrets and stores them as a GitHub App credential.
//!
//! The state lives in memory only, bound to the browser session that
//! started the flow, used once, and expires after an hour (as GitHub's own
//! code does). A restarted server, or another replica, answers "start
//! again".

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::github_app::ConvertedApp;
use super::{Error, Result, Service};
use crate::auth::Caller;
use crate::codehost::github::app::AppInfo;
use crate::crypto::{RandomToken, sha256_hex};
use crate::domain::{CodeHostId, CredentialOwner, UserId};

use super::credentials::CredentialView;

/// How long a started manifest flow may take.
const STATE_LIFETIME: chrono::Duration = chrono::Duration::hours(1);

/// Where GitHub sends the browser back to.
pub const CALLBACK_PATH: &str = "/user/settings/batch-changes/github-app/callback";

/// A manifest flow started and not yet finished.
struct Pending {
    /// Who started it: the same browser session must finish it.
    session: String,
    owner: CredentialOwner,
    code_host: CodeHostId,
    expires_at: DateTime<Utc>,
}

/// Started manifest flows by state.
#[derive(Default)]
pub(crate) struct ManifestStates {
    pending: Mutex<HashMap<String, Pending>>,
}

impl std::fmt::Debug for ManifestStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestStates").finish_non_exhaustive()
    }
}

/// What the browser posts to GitHub.
#[derive(Debug, Clone)]
pub struct ManifestStart {
    /// The form's action, with the state in its query.
    pub form_url: String,
    /// The `manifest` field: JSON.
    pub manifest: String,
    pub state: String,
}

impl Service {
    /// Starts the manifest flow for a GitHub App credential of `user` (or
    /// the global one) on the GitHub code host at `url`, owned by
    /// `organization` when given; `session` is the browser session's token
    /// (only its hash is kept; the callback must come from the same one).
    pub async fn start_github_app_manifest(
        &self,
        caller: &Caller,
        session: &str,
        url: &str,
        user: Option<UserId>,
        organization: Option<&str>,
    ) -> Result<ManifestStart> {
        if session.is_empty() {
            return Err(Error::InvalidInput(
                "the manifest flow must be started from a signed-in browser session".into(),
            ));
        }
        let session = sha256_hex(session);
        let owner = self.credential_owner(caller, user).await?;
        let host = self.github_app_host(url, owner).await?;
        if let Some(org) = organization
            && (org.is_empty()
                || !org
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(Error::InvalidInput(format!(
                "{org:?} is not a GitHub organisation name"
            )));
        }
        let external = self.settings.notify.external_url.clone().ok_or_else(|| {
            Error::InvalidInput("the server has no external URL to send GitHub back to".into())
        })?;
        let base = external.as_str().trim_end_matches('/');
        let state = RandomToken::generate("")?;
        let state = state.expose().to_owned();
        let suffix = &state[..6];
        let manifest = serde_json::json!({
            "name": format!("batchcred {} {suffix}", self.settings.instance_name)
                .chars()
                .take(34)
                .collect::<String>(),
            "url": base,
            "redirect_url": format!("{base}{CALLBACK_PATH}"),
            "hook_attributes": {"url": format!("{base}/.api/webhooks/{}", host.id), "active": false},
            "public": false,
            "default_permissions": {
                "contents": "write",
                "pull_requests": "write",
                "metadata": "read",
                "workflows": "write",
            },
            "default_events": [],
        });
        let github = self.github_client(&host)?;
        let form_url = format!("{}?state={state}", github.manifest_form_url(organization));
        let now = Utc::now();
        let mut pending = self
            .manifest_states
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.retain(|_, p| p.expires_at > now);
        pending.insert(
            state.clone(),
            Pending {
                session,
                owner,
                code_host: host.id,
                expires_at: now + STATE_LIFETIME,
            },
        );
        Ok(ManifestStart {
            form_url,
            manifest: manifest.to_string(),
            state,
        })
    }

    /// Finishes the manifest flow: the state must be one this session
    /// started (each is used once, wrong or not), then GitHub's code is
    /// converted into the App, whose key is checked before the credential
    /// is stored. Nothing is stored on any failure.
    pub async fn finish_github_app_manifest(
        &self,
        caller: &Caller,
        session: &str,
        state: &str,
        code: &str,
    ) -> Result<CredentialView> {
        caller.require_signed_in()?;
        let pending = self
            .manifest_states
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(state);
        let refused = || {
            Error::InvalidInput(
                "this GitHub App creation was not started here, was already finished, or took \
                 over an hour: start again"
                    .into(),
            )
        };
        let pending = pending.ok_or_else(refused)?;
        if session.is_empty()
            || pending.session != sha256_hex(session)
            || pending.expires_at <= Utc::now()
        {
            return Err(refused());
        }
        let host = self.store.find_code_host(pending.code_host).await?;
        let user = match pending.owner {
            CredentialOwner::User(user) => Some(user),
            CredentialOwner::Site => None,
        };
        let owner = self.credential_owner(caller, user).await?;
        let github = self.github_client(&host)?;
        let converted = github.convert_manifest(code).await?;
        let info = AppInfo {
            id: converted.id,
            slug: converted.slug,
            name: converted.name,
            client_id: converted.client_id,
            html_url: converted.html_url,
        };
        // The key GitHub just made must work (and be this App's).
        let jwt = github.sign_app_jwt(info.id, &converted.pem)?;
        let checked = github.app(&jwt).await?;
        if checked.id != info.id {
            return Err(Error::InvalidInput(format!(
                "{} answered for another App than the one just created",
                host.url
            )));
        }
        let installations = github.app_installations(&jwt).await?;
        let warnings = if installations.is_empty() {
            vec![format!(
                "GitHub App {} is not installed yet: install it on the organisations or users \
                 whose repositories batchcred publishes to, then check the credential",
                info.name
            )]
        } else {
            vec![]
        };
        let app = ConvertedApp {
            info,
            private_key: converted.pem,
            client_secret: converted.client_secret,
            webhook_secret: converted.webhook_secret,
        };
        tracing::info!(code_host = %host.url, "GitHub App created through the manifest flow");
        self.store_github_app_credential(caller, owner, &host, app, installations, warnings, true)
            .await
    }
}
