//! Resolving where the data lives: the database URL and the keyring, with
//! the file work the embedded default needs (its private data directory,
//! a keyring generated on first start). Configuration itself only holds
//! what was asked for; this is where it meets the disk.

use std::path::{Path, PathBuf};

use crate::config::{ConfigError, DatabaseUrl, StoreConfig};
use crate::crypto::{KeySource, Keyring};

/// The embedded default's file names inside the data directory.
pub const KEYRING_FILE: &str = "keyring";
pub const SQLITE_FILE: &str = "batchcred.db";

/// The resolved store settings.
#[derive(Debug)]
pub struct ResolvedStore {
    pub database_url: DatabaseUrl,
    pub key_source: KeySource,
    /// Set when a keyring was generated just now (the caller logs it).
    pub generated_keyring: Option<PathBuf>,
}

/// Picks the database and keyring. The embedded default creates the
/// data directory and a keyring file in it. With an external database
/// a key must be given, so all replicas share it.
pub fn resolve_store(config: &StoreConfig) -> Result<ResolvedStore, ConfigError> {
    let embedded = config.database_url.is_none();
    if embedded {
        create_private_dir(&config.data_dir)?;
    }
    let database_url = config
        .database_url
        .clone()
        .unwrap_or_else(|| DatabaseUrl::sqlite_file(&config.data_dir.join(SQLITE_FILE)));

    let (key_source, generated_keyring) =
        match (&config.encryption_key_file, &config.encryption_key) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "set either --encryption-key-file or BATCHCRED_ENCRYPTION_KEY, not both".into(),
                ));
            }
            (Some(path), None) => (KeySource::File(path.clone()), None),
            (None, Some(inline)) => (KeySource::Inline(inline.clone()), None),
            (None, None) if embedded => {
                let path = config.data_dir.join(KEYRING_FILE);
                let (_, created) =
                    Keyring::load_or_create_file(&path).map_err(|e| ConfigError(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Backend;

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
        let first = resolve_store(&config)?;
        assert_eq!(first.database_url.backend(), Backend::Sqlite);
        assert!(first.generated_keyring.is_some());
        assert!(
            resolve_store(&config)?.generated_keyring.is_none(),
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
        let err = resolve_store(&config)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("BATCHCRED_ENCRYPTION_KEY"), "{err}");
    }
}
