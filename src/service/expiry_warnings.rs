//! Expiry warnings: credentials whose token expires within the warning
//! period, or whose last check failed, are shown on every page to whoever
//! must act (the owner; site admins for global credentials), and each is
//! sent once per channel to the notification webhook and by email.
//!
//! "Once" holds across rounds and replicas through `warnings_sent`: a
//! warning is claimed (a row with a unique key) before it is sent and
//! marked sent after. A failed send deletes its claim so the next round
//! retries; a claim whose sender died unsent is taken over once it is
//! older than [`CLAIM_LEASE`]. A warning is therefore sent twice only if
//! a replica dies between sending it and recording that it did.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::Address;
use serde::Serialize;

use super::{Error, Result, Service};
use crate::auth::Caller;
use crate::domain::{CodeHostKind, CodeHostUrl, CredentialId, CredentialOwner, UserId};
use crate::notify::{self, EmailSettings, Mailer, WebhookSender, WebhookSettings};
use crate::store::{FlaggedCredential, WarningChannel, WarningKey, WarningReason};

/// When and where expiry warnings go.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Tokens expiring within this many days are warned about.
    pub expiry_warning_days: u32,
    /// How often the background round runs; `None` runs none.
    pub interval: Option<Duration>,
    pub webhook: Option<WebhookSettings>,
    pub email: Option<EmailSettings>,
    /// Where users reach this instance, for links in emails.
    pub external_url: Option<url::Url>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            expiry_warning_days: 7,
            interval: Some(Duration::from_secs(3600)),
            webhook: None,
            email: None,
            external_url: None,
        }
    }
}

/// The senders built from [`NotifySettings`].
#[derive(Debug, Default)]
pub(crate) struct Notifiers {
    webhook: Option<WebhookSender>,
    mailer: Option<Mailer>,
}

/// How long one delivery may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A claimed warning left unsent this long is taken over by another round
/// (its sender died); far longer than a delivery may take.
const CLAIM_LEASE: chrono::Duration = chrono::Duration::minutes(15);

/// Flagged credentials are read in batches of this many.
const WARNING_BATCH: i64 = 100;

/// The most notices one page shows.
const MAX_NOTICES: i64 = 10;

impl Notifiers {
    pub(crate) fn new(settings: &NotifySettings) -> Result<Self> {
        let invalid = |e: notify::Error| Error::InvalidInput(e.to_string());
        Ok(Self {
            webhook: settings
                .webhook
                .clone()
                .map(|webhook| WebhookSender::new(webhook, SEND_TIMEOUT))
                .transpose()
                .map_err(invalid)?,
            mailer: settings
                .email
                .as_ref()
                .map(|email| Mailer::new(email, SEND_TIMEOUT))
                .transpose()
                .map_err(invalid)?,
        })
    }
}

/// What a round of warnings did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WarningReport {
    pub sent: usize,
    pub failed: usize,
}

/// A credential the signed-in user should act on, for the page notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialNotice {
    pub id: CredentialId,
    /// A global credential (shown to site admins).
    pub site: bool,
    pub kind: CodeHostKind,
    pub url: CodeHostUrl,
    /// What is wrong, in words.
    pub reason: String,
}

/// The webhook body. Never carries the token.
#[derive(Debug, Serialize)]
struct WebhookEvent<'a> {
    event: &'static str,
    credential_id: String,
    /// `user` or `site`.
    owner: &'static str,
    /// The owning user's login; null for site credentials.
    username: Option<&'a str>,
    code_host_kind: &'static str,
    code_host_url: &'a str,
    expires_at: Option<DateTime<Utc>>,
    days_left: Option<i64>,
    last_check_error: Option<&'a str>,
    sent_at: DateTime<Utc>,
}

/// Whole days until `expires_at`, rounded down (negative once expired).
fn days_left(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (expires_at - now).num_seconds().div_euclid(86_400)
}

/// The warnings a flagged credential calls for, with their occasions.
fn reasons(
    credential: &FlaggedCredential,
    expiring_by: DateTime<Utc>,
) -> Vec<(WarningReason, DateTime<Utc>)> {
    let mut reasons = Vec::new();
    if let Some(at) = credential.expires_at.filter(|at| *at <= expiring_by) {
        reasons.push((WarningReason::Expiring, at));
    }
    if credential.last_check_error.is_some()
        && let Some(since) = credential.check_failed_since
    {
        reasons.push((WarningReason::CheckFailed, since));
    }
    reasons
}

/// What is wrong with a flagged credential, in a sentence.
fn describe(credential: &FlaggedCredential, reason: WarningReason, now: DateTime<Utc>) -> String {
    match (reason, credential.expires_at) {
        (WarningReason::Expiring, Some(at)) if at <= now => {
            format!("The token expired on {}.", at.format("%Y-%m-%d"))
        }
        (WarningReason::Expiring, Some(at)) => format!(
            "The token expires on {} ({} day(s) left).",
            at.format("%Y-%m-%d"),
            days_left(at, now)
        ),
        _ => format!(
            "The last check against the code host failed: {}",
            credential
                .last_check_error
                .as_deref()
                .unwrap_or("unknown error")
        ),
    }
}

impl Service {
    fn expiring_by(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::days(i64::from(self.settings.notify.expiry_warning_days))
    }

    /// The credentials the caller should act on, for the notice on every
    /// page: their own and, for site admins, the global ones. Empty for
    /// callers who are not signed-in users. One query.
    pub async fn credential_notices(&self, caller: &Caller) -> Result<Vec<CredentialNotice>> {
        let Some(user) = caller.user() else {
            return Ok(Vec::new());
        };
        let now = Utc::now();
        let flagged = self
            .store
            .list_flagged_credentials_for(
                user.id,
                caller.may_see_site_credential_details(),
                self.expiring_by(now),
                MAX_NOTICES,
            )
            .await?;
        Ok(flagged
            .iter()
            .map(|credential| {
                let reason = if credential.last_check_error.is_some() {
                    WarningReason::CheckFailed
                } else {
                    WarningReason::Expiring
                };
                CredentialNotice {
                    id: credential.id,
                    site: credential.owner == CredentialOwner::Site,
                    kind: credential.code_host_kind,
                    url: credential.code_host_url.clone(),
                    reason: describe(credential, reason, now),
                }
            })
            .collect())
    }

    /// Sets where a user's warnings are mailed (`None` or blank: nowhere).
    /// The user themselves or a site admin. Answers the address stored.
    pub async fn set_user_email(
        &self,
        caller: &Caller,
        user: UserId,
        email: Option<&str>,
    ) -> Result<Option<String>> {
        caller.require_acting_for(user)?;
        let email = match email.map(str::trim).filter(|e| !e.is_empty()) {
            None => None,
            Some(raw) if raw.len() > 254 => {
                return Err(Error::InvalidInput(
                    "an email address has at most 254 characters".into(),
                ));
            }
            Some(raw) => Some(
                notify::email::parse_address(raw)
                    .map_err(|_| Error::InvalidInput(format!("{raw:?} is not an email address")))?
                    .to_string(),
            ),
        };
        self.store
            .set_user_email(user, email.as_deref())
            .await
            .map_err(super::not_found("user"))?;
        Ok(email)
    }

    /// Sends every due warning not sent yet, on each configured channel.
    /// Site admins only (the background task runs it as the operator).
    pub async fn send_expiry_warnings(&self, caller: &Caller) -> Result<WarningReport> {
        caller.require_site_admin()?;
        let mut report = WarningReport::default();
        if self.notifiers.webhook.is_none() && self.notifiers.mailer.is_none() {
            return Ok(report);
        }
        let now = Utc::now();
        let expiring_by = self.expiring_by(now);
        // Read once per round, only if a site credential is flagged.
        let mut admin_addresses: Option<Vec<Address>> = None;
        let mut after = None;
        loop {
            let batch = self
                .store
                .list_flagged_credentials(expiring_by, after, WARNING_BATCH)
                .await?;
            let Some(last) = batch.last() else {
                break;
            };
            after = Some(last.id);
            for credential in &batch {
                for (reason, occasion) in reasons(credential, expiring_by) {
                    if self.notifiers.webhook.is_some() {
                        let key = WarningKey {
                            credential_id: credential.id,
                            reason,
                            occasion,
                            channel: WarningChannel::Webhook,
                        };
                        self.deliver(&key, credential, &[], &mut report).await?;
                    }
                    if self.notifiers.mailer.is_some() {
                        let recipients = match credential.owner {
                            CredentialOwner::User(_) => credential
                                .owner_email
                                .as_deref()
                                .and_then(|raw| notify::email::parse_address(raw).ok())
                                .into_iter()
                                .collect(),
                            CredentialOwner::Site => match &admin_addresses {
                                Some(addresses) => addresses.clone(),
                                None => {
                                    let addresses: Vec<Address> = self
                                        .store
                                        .site_admin_emails()
                                        .await?
                                        .iter()
                                        .filter_map(|raw| notify::email::parse_address(raw).ok())
                                        .collect();
                                    admin_addresses = Some(addresses.clone());
                                    addresses
                                }
                            },
                        };
                        // Nobody to mail: left unclaimed, so it is sent once
                        // someone gives an address.
                        if recipients.is_empty() {
                            continue;
                        }
                        let key = WarningKey {
                            credential_id: credential.id,
                            reason,
                            occasion,
                            channel: WarningChannel::Email,
                        };
                        self.deliver(&key, credential, &recipients, &mut report)
                            .await?;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Claims, sends and records one warning; a failed send is logged,
    /// counted and released for the next round.
    async fn deliver(
        &self,
        key: &WarningKey,
        credential: &FlaggedCredential,
        recipients: &[Address],
        report: &mut WarningReport,
    ) -> Result<()> {
        let claim = uuid::Uuid::new_v4().to_string();
        let now = Utc::now();
        if !self
            .store
            .claim_warning(key, &claim, now, now - CLAIM_LEASE)
            .await?
        {
            return Ok(());
        }
        let sent = match key.channel {
            WarningChannel::Webhook => self.post_warning(key.reason, credential, now).await,
            WarningChannel::Email => {
                self.mail_warning(key.reason, credential, recipients, now)
                    .await
            }
        };
        match sent {
            Ok(()) => {
                self.store
                    .mark_warning_sent(key, &claim, Utc::now())
                    .await?;
                report.sent += 1;
            }
            Err(error) => {
                tracing::warn!(
                    credential = %credential.id,
                    channel = key.channel.as_str(),
                    reason = key.reason.as_str(),
                    %error,
                    "sending an expiry warning failed; the next round retries"
                );
                self.store.release_warning(key, &claim).await?;
                report.failed += 1;
            }
        }
        Ok(())
    }

    async fn post_warning(
        &self,
        reason: WarningReason,
        credential: &FlaggedCredential,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), notify::Error> {
        let Some(webhook) = &self.notifiers.webhook else {
            return Ok(());
        };
        let event = WebhookEvent {
            event: match reason {
                WarningReason::Expiring => "credential.expiring",
                WarningReason::CheckFailed => "credential.check_failed",
            },
            credential_id: credential.id.to_string(),
            owner: match credential.owner {
                CredentialOwner::User(_) => "user",
                CredentialOwner::Site => "site",
            },
            username: credential.owner_username.as_deref(),
            code_host_kind: credential.code_host_kind.as_str(),
            code_host_url: credential.code_host_url.as_str(),
            expires_at: credential.expires_at,
            days_left: credential.expires_at.map(|at| days_left(at, now)),
            last_check_error: credential.last_check_error.as_deref(),
            sent_at: now,
        };
        let body = serde_json::to_vec(&event)
            .map_err(|e| notify::Error::Webhook(format!("cannot encode the event: {e}")))?;
        webhook.send(body, now).await
    }

    async fn mail_warning(
        &self,
        reason: WarningReason,
        credential: &FlaggedCredential,
        recipients: &[Address],
        now: DateTime<Utc>,
    ) -> std::result::Result<(), notify::Error> {
        let Some(mailer) = &self.notifiers.mailer else {
            return Ok(());
        };
        let kind = credential.code_host_kind.display_name();
        let url = credential.code_host_url.as_str();
        let (whose, page) = match credential.owner {
            CredentialOwner::User(_) => ("Your", "/user/settings/batch-changes"),
            CredentialOwner::Site => ("The global (site)", "/site-admin/batch-changes"),
        };
        let subject = match reason {
            WarningReason::Expiring => format!("[batchcred] {kind} token for {url} expires soon"),
            WarningReason::CheckFailed => {
                format!("[batchcred] {kind} credential for {url} failed its check")
            }
        };
        let link = match &self.settings.notify.external_url {
            Some(base) => base
                .join(page)
                .map_or_else(|_| page.to_owned(), |u| u.to_string()),
            None => page.to_owned(),
        };
        let body = format!(
            "{whose} {kind} credential for {url} needs attention.\n\n{}\n\n\
             Replace or check it on the batch changes settings page:\n{link}\n",
            describe(credential, reason, now)
        );
        mailer.send(recipients, &subject, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(expires_at: Option<DateTime<Utc>>, error: Option<&str>) -> FlaggedCredential {
        FlaggedCredential {
            id: CredentialId::new(),
            owner: CredentialOwner::Site,
            owner_username: None,
            owner_email: None,
            code_host_kind: CodeHostKind::GitHub,
            code_host_url: CodeHostUrl::parse("https://github.com").expect("url"),
            expires_at,
            last_check_error: error.map(str::to_owned),
            check_failed_since: error.map(|_| Utc::now()),
        }
    }

    #[test]
    fn days_left_round_down_and_go_negative_once_expired() {
        let now = Utc::now();
        assert_eq!(days_left(now + chrono::Duration::hours(60), now), 2);
        assert_eq!(days_left(now - chrono::Duration::hours(1), now), -1);
    }

    #[test]
    fn a_credential_is_warned_about_for_each_reason_it_has() {
        let now = Utc::now();
        let by = now + chrono::Duration::days(7);
        let soon = Some(now + chrono::Duration::days(3));
        let later = Some(now + chrono::Duration::days(30));
        let kinds = |c: &FlaggedCredential| -> Vec<WarningReason> {
            reasons(c, by).into_iter().map(|(r, _)| r).collect()
        };
        assert_eq!(kinds(&flagged(soon, None)), [WarningReason::Expiring]);
        assert_eq!(
            kinds(&flagged(later, Some("401"))),
            [WarningReason::CheckFailed]
        );
        assert_eq!(
            kinds(&flagged(soon, Some("401"))),
            [WarningReason::Expiring, WarningReason::CheckFailed]
        );
        assert!(kinds(&flagged(later, None)).is_empty());
    }
}
