//! Typed configuration, built by the CLI from, lowest precedence first,
//! built-in defaults, the optional TOML file ([`ConfigFile`]),
//! `BATCHCRED_*` environment variables and flags. Only what was asked
//! for: resolving it against the disk is the app's (`app::resolve_store`),
//! and the server's settings are the app's (`app::ServerConfig`).

use std::path::PathBuf;

use secrecy::SecretString;

mod file;
/// Parsed where the database is opened; named here so the CLI can take it.
pub use crate::store::DatabaseUrl;
pub use file::{ConfigFile, RolloutWindowSetting};

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
