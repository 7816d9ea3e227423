//! Checking credentials against their code hosts: on add (see
//! `create_credential`), on request, and periodically in the background.

use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;

use super::{Error, Result, Service};
use crate::auth::Caller;
use crate::codehost::{self, CheckOptions, CodeHostApi, TokenCheck};
use crate::domain::{CodeHostConfig, CredentialId};
use crate::store::{CheckState, CredentialRecord};

use super::credentials::CredentialView;

/// What a round of background re-checks did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecheckReport {
    pub passed: usize,
    pub failed: usize,
}

/// Re-checks are read in batches of this many credentials.
const RECHECK_BATCH: i64 = 100;

impl Service {
    /// The API client for `host`, calling it as `username` (the one
    /// stored with the credential) where the kind needs one.
    pub(crate) fn code_host_client(
        &self,
        host: &CodeHostConfig,
        username: Option<&str>,
    ) -> Result<codehost::Client> {
        Ok(codehost::Client::new(
            &self.code_hosts,
            host.kind,
            &host.url,
            username,
        )?)
    }

    /// Asks the code host whether `token` works and carries every
    /// required scope.
    pub(crate) async fn check_token(
        &self,
        host: &CodeHostConfig,
        username: Option<&str>,
        token: &SecretString,
        options: &CheckOptions,
    ) -> Result<TokenCheck> {
        let client = self.code_host_client(host, username)?;
        let _turn = self
            .token_checks
            .acquire()
            .await
            .map_err(|_| super::Error::Internal("the token check bound was closed".into()))?;
        let check = client.check_token(token, options).await;
        crate::telemetry::metrics::credential_check(match &check {
            Ok(_) => "ok",
            Err(error) => error.metric_label(),
        });
        let check = check?;
        tracing::debug!(code_host = %host.url, user = %check.user, "token accepted by the code host");
        Ok(check)
    }

    /// Checks a stored credential again and records the outcome; an error
    /// says why it no longer works.
    pub async fn check_credential(
        &self,
        caller: &Caller,
        id: CredentialId,
        options: &CheckOptions,
    ) -> Result<CredentialView> {
        let (record, host) = self.accessible_credential(caller, id).await?;
        let audit = super::audit::by(caller, super::audit::event::CREDENTIAL_CHECKED);
        let (state, outcome) = self.recheck(audit, &record, &host, options).await?;
        let mut record = record;
        record.check = state;
        outcome.map(|()| CredentialView::new(&record, &host))
    }

    /// Checks one credential and stores what was found. The outer result
    /// fails only when the check could not be recorded; the inner one is
    /// the check's own outcome.
    async fn recheck(
        &self,
        audit: crate::store::AuditEntry,
        record: &CredentialRecord,
        host: &CodeHostConfig,
        options: &CheckOptions,
    ) -> Result<(CheckState, Result<()>)> {
        // A record that does not match its seal is flagged; the code host
        // is not asked (the token may be bound for someone else).
        let secret = match self.open_secret(record, host) {
            Err(Error::SealMismatch) => {
                let state = self.flag_seal_mismatch(record).await?;
                return Ok((state, Err(Error::SealMismatch)));
            }
            opened => opened?,
        };
        let outcome = match &record.github_app {
            Some(app) => match self.recheck_github_app(host, app, &secret).await {
                Ok((updated, warnings)) => {
                    if &updated != app {
                        self.store
                            .update_credential_github_app(record.id, &updated)
                            .await?;
                    }
                    Ok(TokenCheck {
                        user: updated.slug.clone().unwrap_or(updated.name.clone()),
                        scopes: None,
                        expires_at: None,
                        warnings,
                    })
                }
                Err(error) => Err(error),
            },
            None => {
                self.check_token(host, record.username.as_deref(), &secret.token, options)
                    .await
            }
        };
        let now = Some(Utc::now());
        let (state, outcome) = match outcome {
            Ok(check) => (
                CheckState {
                    code_host_user: Some(check.user),
                    scopes: check.scopes,
                    expires_at: check.expires_at,
                    warnings: check.warnings,
                    last_checked_at: now,
                    last_check_error: None,
                },
                Ok(()),
            ),
            Err(error) => (
                CheckState {
                    last_checked_at: now,
                    last_check_error: Some(error.to_string()),
                    ..record.check.clone()
                },
                Err(error),
            ),
        };
        let audit = super::audit::about_credential(audit, record, host);
        let audit = match &outcome {
            Ok(()) => audit,
            Err(error) => {
                let mut failed = audit.failed();
                failed.detail["error"] = error.to_string().into();
                failed
            }
        };
        self.store
            .record_credential_check(&audit, record.id, &state)
            .await?;
        Ok((state, outcome))
    }

    /// Re-checks every credential not checked within `max_age`, one at a
    /// time so as not to burst requests at the code hosts. Site admins only
    /// (the background task and the CLI run it as the operator).
    pub async fn recheck_stale_credentials(
        &self,
        caller: &Caller,
        max_age: Duration,
    ) -> Result<RecheckReport> {
        caller.require_site_admin()?;
        let started = Utc::now();
        let cutoff = started
            - chrono::Duration::from_std(max_age).unwrap_or_else(|_| chrono::Duration::zero());
        let mut report = RecheckReport::default();
        loop {
            let batch = self
                .store
                .list_credentials_checked_before(cutoff, RECHECK_BATCH)
                .await?;
            if batch.is_empty() {
                break;
            }
            for record in batch {
                let host = self.store.find_code_host(record.code_host_id).await?;
                let audit = super::audit::by(caller, super::audit::event::CREDENTIAL_CHECKED);
                let (_, outcome) = self
                    .recheck(audit, &record, &host, &CheckOptions::default())
                    .await?;
                match outcome {
                    Ok(()) => report.passed += 1,
                    Err(error) => {
                        tracing::warn!(credential = %record.id, code_host = %host.url, %error, "credential check failed");
                        report.failed += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}
