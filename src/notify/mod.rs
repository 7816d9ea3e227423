//! Sending expiry warnings out: a signed JSON webhook ([`webhook`]) and
//! email over SMTP ([`email`]). Transports only: what to send and when is
//! decided by `service::expiry_warnings`, and nothing here knows storage.

pub mod email;
pub mod webhook;

pub use email::{EmailSettings, Mailer};
pub use webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSender, WebhookSettings, signature};

/// Why a warning could not be sent. Messages name the receiving host at
/// most: never a secret, nor a webhook URL's path (which can be one).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid notification setting: {0}")]
    Config(String),
    #[error("webhook delivery failed: {0}")]
    Webhook(String),
    #[error("sending email failed: {0}")]
    Email(String),
}
