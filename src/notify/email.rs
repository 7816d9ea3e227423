//! Email over SMTP (lettre, rustls): `smtp://host[:port]` (plain, or with
//! `?tls=required` for STARTTLS), `smtps://host[:port]` (TLS from the
//! start). A login goes in the URL's user part; its password never does:
//! it is given apart (`BATCHCRED_SMTP_PASSWORD` or a file).

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use super::Error;

/// The SMTP server, its login password and the sender address.
#[derive(Clone)]
pub struct EmailSettings {
    pub smtp_url: url::Url,
    pub password: Option<SecretString>,
    pub from: String,
}

impl std::fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("host", &self.smtp_url.host_str())
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Sends plain-text mail through one SMTP server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .field("from", &self.from.email.to_string())
            .finish_non_exhaustive()
    }
}

/// Parses one email address (`name@example.com`, no display name).
pub fn parse_address(raw: &str) -> Result<Address, Error> {
    raw.trim()
        .parse::<Address>()
        .map_err(|_| Error::Config(format!("{:?} is not an email address", raw.trim())))
}

impl Mailer {
    pub fn new(settings: &EmailSettings, timeout: Duration) -> Result<Self, Error> {
        let url = &settings.smtp_url;
        if url.password().is_some() {
            return Err(Error::Config(
                "the SMTP URL must not carry a password: set BATCHCRED_SMTP_PASSWORD or \
                 smtp_password_file"
                    .into(),
            ));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
            .map_err(|e| Error::Config(format!("SMTP URL: {e}")))?
            .timeout(Some(timeout));
        if let Some(password) = &settings.password {
            let login = percent_encoding::percent_decode_str(url.username())
                .decode_utf8()
                .map_err(|_| Error::Config("the SMTP login is not UTF-8".into()))?;
            if login.is_empty() {
                return Err(Error::Config(
                    "an SMTP password needs a login in the URL (smtp://login@host)".into(),
                ));
            }
            builder = builder.credentials(Credentials::new(
                login.into_owned(),
                password.expose_secret().to_owned(),
            ));
        }
        let from = Mailbox::new(Some("batchcred".into()), parse_address(&settings.from)?);
        Ok(Self {
            transport: builder.build(),
            from,
            host,
        })
    }

    /// Sends one plain-text message to every address in `to`.
    pub async fn send(&self, to: &[Address], subject: &str, body: String) -> Result<(), Error> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for address in to {
            message = message.to(Mailbox::new(None, address.clone()));
        }
        let message = message
            .body(body)
            .map_err(|e| Error::Email(format!("cannot build the message: {e}")))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| Error::Email(format!("{}: {e}", self.host)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> EmailSettings {
        EmailSettings {
            smtp_url: url.parse().expect("url"),
            password: Some(SecretString::from("hunter2")),
            from: "batchcred@example.com".into(),
        }
    }

    #[test]
    fn a_password_in_the_url_or_a_password_without_login_is_refused() {
        let error = Mailer::new(
            &settings("smtp://me:pw@mail.example.com"),
            Duration::from_secs(1),
        )
        .expect_err("password in URL");
        assert!(
            error.to_string().contains("BATCHCRED_SMTP_PASSWORD"),
            "{error}"
        );
        assert!(!error.to_string().contains("pw@"), "{error}");
        assert!(Mailer::new(&settings("smtp://mail.example.com"), Duration::from_secs(1)).is_err());
        let mailer = Mailer::new(
            &settings("smtps://me@mail.example.com"),
            Duration::from_secs(1),
        )
        .expect("valid");
        assert!(!format!("{mailer:?}").contains("hunter2"));
    }

    #[test]
    fn addresses_are_checked() {
        assert!(parse_address(" someone@example.com ").is_ok());
        assert!(parse_address("not an address").is_err());
        assert!(parse_address("a@b@c").is_err());
    }
}
