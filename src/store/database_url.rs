//! Where the database is: its URL, which may carry a password.

use std::fmt;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::Backend;
use crate::domain::InvalidInput;

/// A database connection URL. It may carry a password, so it is only
/// ever displayed with the password masked.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let scheme = raw.split(':').next().unwrap_or_default();
        if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
            return Err(InvalidInput::new(
                "database URL must start with sqlite: or postgres://",
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// The embedded default: a SQLite file inside the data directory.
    pub fn sqlite_file(path: &Path) -> Self {
        Self(SecretString::from(format!(
            "sqlite://{}?mode=rwc",
            path.display()
        )))
    }

    pub fn backend(&self) -> Backend {
        if self.0.expose_secret().starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// The real URL, for the driver only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.0.expose_secret();
        let Ok(mut url) = url::Url::parse(raw) else {
            return f.write_str("[unparseable database URL]");
        };
        if url.password().is_some() && url.set_password(Some("********")).is_err() {
            return f.write_str("[database URL]");
        }
        f.write_str(url.as_str())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_masks_its_password_everywhere() -> Result<(), InvalidInput> {
        let url = DatabaseUrl::parse("postgres://app:hunter2@db.internal:5432/batchcred")?;
        assert_eq!(
            url.to_string(),
            "postgres://app:********@db.internal:5432/batchcred"
        );
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.backend(), Backend::Postgres);
        assert!(url.expose().contains("hunter2"));
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        Ok(())
    }
}
