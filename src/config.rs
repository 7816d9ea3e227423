//! Typed configuration, built by the CLI from, lowest precedence first,
//! built-in defaults, the optional TOML file ([`ConfigFile`]),
//! `BATCHCRED_*` environment variables and flags.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{KeySource, Keyring};
use crate::store::Backend;

mod file;
pub use file::{ConfigFile, RolloutWindowSetting};

/// A database connection URL. It may carry a password, so it is only
/// ever displayed with the password masked.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let scheme = raw.split(':').next().unwrap_or_default();
        if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
            return Err(ConfigError(
                "database URL must start with sqlite: or postgres://".into(),
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

/// A configuration problem, with a message saying how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where the data lives: shared by `serve` and every CLI command.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Holds the SQLite database and, by default, the keyring.
    pub data_dir: PathBuf,
    /// `None` means the embedded SQLite database in `data_dir`.
    pub database_url: Option<DatabaseUrl>,
    pub encryption_key_file: Option<PathBuf>,
    /// The keyring itself, from `BATCHCRED_ENCRYPTION_KEY`.
    pub encryption_key: Option<SecretString>,
}

/// The resolved store settings.
#[derive(Debug)]
pub struct ResolvedStore {
    pub database_url: DatabaseUrl,
    pub key_source: KeySource,
    /// Set when a keyring was generated just now (the caller logs it).
    pub generated_keyring: Option<PathBuf>,
}

impl StoreConfig {
    pub const KEYRING_FILE: &'static str = "keyring";
    pub const SQLITE_FILE: &'static str = "batchcred.db";

    /// Picks the database and keyring. The embedded default creates the
    /// data directory and a keyring file in it. With an external database
    /// a key must be given, so all replicas share it.
    pub fn resolve(&self) -> Result<ResolvedStore, ConfigError> {
        let embedded = self.database_url.is_none();
        if embedded {
            create_private_dir(&self.data_dir)?;
        }
        let database_url = self
            .database_url
            .clone()
            .unwrap_or_else(|| DatabaseUrl::sqlite_file(&self.data_dir.join(Self::SQLITE_FILE)));

        let (key_source, generated_keyring) =
            match (&self.encryption_key_file, &self.encryption_key) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError(
                        "set either --encryption-key-file or BATCHCRED_ENCRYPTION_KEY, not both"
                            .into(),
                    ));
                }
                (Some(path), None) => (KeySource::File(path.clone()), None),
                (None, Some(inline)) => (KeySource::Inline(inline.clone()), None),
                (None, None) if embedded => {
                    let path = self.data_dir.join(Self::KEYRING_FILE);
                    let (_, created) = Keyring::load_or_create_file(&path)
                        .map_err(|e| ConfigError(e.to_string()))?;
                    (KeySource::File(path.clone()), created.then_some(path))
                }
                (None, None) => {
                    return Err(ConfigError(
                        "with an external database, give the encryption keyring with \
                         --encryption-key-file or BATCHCRED_ENCRYPTION_KEY so every replica \
                         shares it (create one with `batchcred keys generate`)"
                            .into(),
                    ));
                }
            };
        Ok(ResolvedStore {
            database_url,
            key_source,
            generated_keyring,
        })
    }
}

fn create_private_dir(path: &Path) -> Result<(), ConfigError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(|e| {
        ConfigError(format!(
            "cannot create data directory {}: {e}",
            path.display()
        ))
    })
}

/// HTTP server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where `/metrics` is served; `None` (the default) serves it nowhere.
    /// Never the public listener.
    pub metrics_listen: Option<SocketAddr>,
    /// How users reach this instance; names it in SSH key comments and
    /// decides whether cookies are marked `Secure`.
    pub external_url: url::Url,
    pub session_ttl: Duration,
    /// Sessions unused for this long are refused; `None` turns it off.
    pub session_idle_timeout: Option<Duration>,
    /// How long one call to a code host may take.
    pub code_host_timeout: Duration,
    /// How often stored credentials are checked again against their code
    /// hosts; `None` turns the background check off.
    pub recheck_interval: Option<Duration>,
    /// Audit entries older than this are removed; `None` keeps them all.
    pub audit_retention: Option<Duration>,
    pub publish: crate::service::PublishSettings,
    /// Sign-in throttling and the bound on concurrent password checks.
    pub sign_in: crate::service::SignInLimits,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Expiry warnings: the period, how often they are sent, and where.
    pub notify: crate::service::NotifySettings,
}

impl ServerConfig {
    /// The comment put on generated SSH public keys.
    pub fn instance_name(&self) -> String {
        instance_name(&self.external_url)
    }

    pub fn secure_cookies(&self) -> bool {
        self.external_url.scheme() == "https"
    }
}

/// `batchcred@host[:port]`, naming the instance that made a key.
pub fn instance_name(external_url: &url::Url) -> String {
    let host = external_url.host_str().unwrap_or("localhost");
    match external_url.port() {
        Some(port) => format!("batchcred@{host}:{port}"),
        None => format!("batchcred@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_masks_its_password_everywhere() -> Result<(), ConfigError> {
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

    #[test]
    fn embedded_default_creates_private_dir_and_keyring() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let config = StoreConfig {
            data_dir: dir.path().join("data"),
            database_url: None,
            encryption_key_file: None,
            encryption_key: None,
        };
        let first = config.resolve()?;
        assert_eq!(first.database_url.backend(), Backend::Sqlite);
        assert!(first.generated_keyring.is_some());
        assert!(
            config.resolve()?.generated_keyring.is_none(),
            "keyring regenerated"
        );
        Ok(())
    }

    #[test]
    fn external_database_requires_a_shared_key() {
        let config = StoreConfig {
            data_dir: PathBuf::from("unused"),
            database_url: DatabaseUrl::parse("postgres://localhost/x").ok(),
            encryption_key_file: None,
            encryption_key: None,
        };
        let err = config.resolve().err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("BATCHCRED_ENCRYPTION_KEY"), "{err}");
    }

    #[test]
    fn instance_name_includes_non_default_port() -> Result<(), url::ParseError> {
        assert_eq!(
            instance_name(&"https://sg.example.com/".parse()?),
            "batchcred@sg.example.com"
        );
        assert_eq!(
            instance_name(&"http://127.0.0.1:3080".parse()?),
            "batchcred@127.0.0.1:3080"
        );
        Ok(())
    }
}
