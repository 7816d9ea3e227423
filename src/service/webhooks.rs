//! Code host webhooks: a site admin sets up a secret per code host and
//! configures the code host to send pull request events to
//! `/.api/webhooks/<code host id>`; each event, once its signature (or
//! GitLab's token) checks out, queues a sync of the changeset it names, so
//! its state shows without waiting for the next poll. The event's content
//! is never trusted beyond naming the pull request: the sync reads the
//! state from the code host with the changeset's credential.

use chrono::Utc;

use super::{Error, Result, Service};
use crate::auth::Caller;
use crate::codehost::webhook::{self, WebhookError};
use crate::crypto::RandomToken;
use crate::domain::{CodeHostId, CodeHostUrl, JobAction};

/// A webhook secret just set up: shown once, never again.
#[derive(Debug)]
pub struct WebhookSetup {
    /// Where the code host sends events (a path on this server).
    pub path: String,
    pub secret: secrecy::SecretString,
}

/// What a received webhook did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookReceipt {
    /// An event not about a pull request batchcred tracks: nothing to do.
    Ignored,
    /// A sync of the changeset was queued.
    SyncQueued,
}

/// Binds a sealed webhook secret to its code host.
fn associated_data(code_host: CodeHostId) -> Vec<u8> {
    format!("batchcred webhook secret v1|{code_host}").into_bytes()
}

impl Service {
    /// Creates (or replaces) the webhook secret of the code host at `url`.
    /// Site admins only.
    pub async fn set_up_webhook(&self, caller: &Caller, url: &str) -> Result<WebhookSetup> {
        caller.require_site_admin()?;
        let host = self.configured_code_host(&CodeHostUrl::parse(url)?).await?;
        let secret = RandomToken::generate("")
            .map_err(|e| Error::Internal(format!("cannot generate a secret: {e}")))?;
        let sealed = self
            .encryptor
            .seal(secret.expose().as_bytes(), &associated_data(host.id))?;
        let audit = super::audit::by(caller, super::audit::event::CODE_HOST_WEBHOOK_SET_UP)
            .code_host(host.id);
        self.store
            .set_webhook_secret(&audit, host.id, &sealed, Utc::now())
            .await?;
        tracing::info!(code_host = %host.url, "webhook secret set up");
        Ok(WebhookSetup {
            path: format!("/.api/webhooks/{}", host.id),
            secret: secrecy::SecretString::from(secret.expose().to_owned()),
        })
    }

    /// Removes the webhook secret of the code host at `url`: its webhooks
    /// are refused from then on. Site admins only.
    pub async fn remove_webhook(&self, caller: &Caller, url: &str) -> Result<()> {
        caller.require_site_admin()?;
        let host = self.configured_code_host(&CodeHostUrl::parse(url)?).await?;
        let audit = super::audit::by(caller, super::audit::event::CODE_HOST_WEBHOOK_REMOVED)
            .code_host(host.id);
        if !self.store.delete_webhook_secret(&audit, host.id).await? {
            return Err(Error::NotFound(format!(
                "{} has no webhook set up",
                host.url
            )));
        }
        tracing::info!(code_host = %host.url, "webhook secret removed");
        Ok(())
    }

    /// Checks a webhook from code host `code_host` and queues a sync of
    /// the changeset it names. Anonymous: the signature is the
    /// authentication. A missing or wrong signature is refused
    /// ([`Error::Unauthenticated`]) and changes nothing.
    pub async fn receive_webhook(
        &self,
        code_host: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookReceipt> {
        let unknown = || Error::NotFound("no webhook is set up here".into());
        let id: CodeHostId = code_host.parse().map_err(|_| unknown())?;
        let host = match self.store.find_code_host(id).await {
            Err(crate::store::Error::NotFound) => return Err(unknown()),
            other => other?,
        };
        let sealed = self.store.webhook_secret(id).await?.ok_or_else(unknown)?;
        let secret = self.encryptor.open(&sealed, &associated_data(id))?;
        let event = webhook::verify_and_read(host.kind, headers, body, &secret).map_err(
            |error| match error {
                WebhookError::MissingSignature | WebhookError::BadSignature => {
                    tracing::warn!(code_host = %host.url, %error, "refused a webhook");
                    Error::Unauthenticated(error.to_string())
                }
                WebhookError::Malformed(_) => Error::InvalidInput(error.to_string()),
            },
        )?;
        let Some(event) = event else {
            return Ok(WebhookReceipt::Ignored);
        };
        let number = i64::try_from(event.number).map_err(|_| {
            Error::InvalidInput(format!(
                "pull request number {} is out of range",
                event.number
            ))
        })?;
        let Some(changeset) = self
            .store
            .find_changeset_by_pull_request(id, &event.repository, number)
            .await?
        else {
            return Ok(WebhookReceipt::Ignored);
        };
        // A changeset busy with another job syncs when that one is done.
        match self
            .store
            .enqueue_job(changeset.id, JobAction::Sync, false, false, Utc::now())
            .await
        {
            Ok(_) => {
                crate::telemetry::metrics::changeset_job("sync", "queued");
                self.job_signal.notify_waiters();
                Ok(WebhookReceipt::SyncQueued)
            }
            Err(crate::store::Error::NotFound) => Ok(WebhookReceipt::Ignored),
            Err(other) => Err(other.into()),
        }
    }

    /// Re-seals every webhook secret not under the primary key (part of
    /// `keys reencrypt`); returns how many were.
    pub(super) async fn reseal_webhook_secrets(&self) -> Result<usize> {
        let primary = self.encryptor.primary_key_id();
        let mut resealed = 0;
        for (id, sealed) in self.store.webhook_secrets_not_under(&primary).await? {
            let secret = self.encryptor.open(&sealed, &associated_data(id))?;
            let new = self.encryptor.seal(&secret, &associated_data(id))?;
            if self.store.replace_webhook_secret(id, &sealed, &new).await? {
                resealed += 1;
            }
        }
        Ok(resealed)
    }
}
