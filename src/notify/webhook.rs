//! The outgoing webhook: a JSON POST signed with HMAC-SHA256 of the body,
//! so the receiver can tell it came from this instance.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::Error;

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Batchcred-Signature";
/// When the delivery was sent, in Unix seconds (also `sent_at` in the body,
/// which the signature covers).
pub const TIMESTAMP_HEADER: &str = "X-Batchcred-Timestamp";

/// Where warnings are posted and the secret they are signed with.
#[derive(Clone)]
pub struct WebhookSettings {
    pub url: url::Url,
    pub secret: SecretString,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("host", &self.url.host_str())
            .finish_non_exhaustive()
    }
}

/// Posts signed JSON to the configured URL.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    settings: WebhookSettings,
}

/// The value of [`SIGNATURE_HEADER`] for `body`; `None` only if the HMAC
/// refused the key, which it does for no length.
pub fn signature(secret: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(body);
    Some(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

impl WebhookSender {
    pub fn new(settings: WebhookSettings, timeout: Duration) -> Result<Self, Error> {
        if !matches!(settings.url.scheme(), "http" | "https") {
            return Err(Error::Config(
                "the notification webhook URL must be http:// or https://".into(),
            ));
        }
        if settings.secret.expose_secret().is_empty() {
            return Err(Error::Config(
                "the notification webhook needs a secret: set BATCHCRED_NOTIFY_WEBHOOK_SECRET \
                 or notify_webhook_secret_file"
                    .into(),
            ));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("batchcred/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            // A redirect would resend the signed body somewhere unchecked.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, settings })
    }

    /// Posts `body` (JSON) signed; any answer but 2xx is a failure.
    pub async fn send(&self, body: Vec<u8>, sent_at: DateTime<Utc>) -> Result<(), Error> {
        let host = self.settings.url.host_str().unwrap_or("?").to_owned();
        let signed = signature(self.settings.secret.expose_secret().as_bytes(), &body)
            .ok_or_else(|| Error::Config("the webhook secret is not a usable HMAC key".into()))?;
        let response = self
            .http
            .post(self.settings.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signed)
            .header(TIMESTAMP_HEADER, sent_at.timestamp().to_string())
            .body(body)
            .send()
            .await
            // The URL's path or query may itself be a secret.
            .map_err(|e| Error::Webhook(format!("{host}: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Error::Webhook(format!("{host} answered {status}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?").as_deref(),
            Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn settings_never_show_the_secret_or_the_path() -> Result<(), url::ParseError> {
        let settings = WebhookSettings {
            url: "https://hooks.example.com/T0/B0/secretpath".parse()?,
            secret: SecretString::from("s3cr3t-value"),
        };
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("s3cr3t-value") && !shown.contains("secretpath"),
            "{shown}"
        );
        assert!(
            WebhookSender::new(
                WebhookSettings {
                    secret: SecretString::from(""),
                    ..settings
                },
                Duration::from_secs(1)
            )
            .is_err()
        );
        Ok(())
    }
}
