//! The optional TOML configuration file (`--config` / `BATCHCRED_CONFIG`).
//!
//! Its keys are the long flags' names with `_` for `-`; every key is
//! optional. Precedence, lowest first: built-in defaults, this file,
//! `BATCHCRED_*` environment variables, command-line flags. Unknown keys
//! are an error, so a misspelt setting is never silently ignored. Secrets
//! stay out of it: the keyring is named by `encryption_key_file`, and a
//! database password belongs in `BATCHCRED_DATABASE_URL` or the file's
//! permissions.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, DatabaseUrl};

/// Everything the file may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<DatabaseUrl>,
    pub encryption_key_file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    pub external_url: Option<url::Url>,
    pub session_ttl_hours: Option<u64>,
    pub session_idle_timeout_hours: Option<u64>,
    pub code_host_timeout_secs: Option<u64>,
    pub recheck_interval_hours: Option<u64>,
    pub github_pr_interval_ms: Option<u64>,
    pub max_rate_limit_wait_secs: Option<u64>,
    pub max_git_jobs: Option<u64>,
    pub max_git_jobs_per_user: Option<u64>,
    pub max_changesets_per_request: Option<u64>,
    pub max_patch_kib: Option<u64>,
    pub workers: Option<u64>,
    pub max_concurrent_sign_ins: Option<usize>,
    pub sign_in_free_attempts: Option<u32>,
    pub trusted_proxies: Option<Vec<String>>,
    pub drain_secs: Option<u64>,
    pub shutdown_timeout_secs: Option<u64>,
}

impl ConfigFile {
    /// Reads and parses the file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError(format!(
                "cannot read the configuration file {}: {error}",
                path.display()
            ))
        })?;
        Self::parse(&text)
            .map_err(|ConfigError(message)| ConfigError(format!("{}: {message}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError(one_line(text, &error)))
    }
}

/// toml's messages quote the offending line on several lines; a CLI error
/// is one line, so keep the message and say which line.
fn one_line(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end_matches('.');
    match error.span() {
        Some(span) => {
            let line = text
                .get(..span.start)
                .map_or(0, |before| before.matches('\n').count())
                + 1;
            format!("{message} (line {line})")
        }
        None => message.to_owned(),
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_optional() -> Result<(), ConfigError> {
        let empty = ConfigFile::parse("")?;
        assert!(empty.listen.is_none() && empty.data_dir.is_none());
        let file = ConfigFile::parse(
            r#"
            data_dir = "/var/lib/batchcred"
            database_url = "postgres://batchcred@db/batchcred"
            listen = "0.0.0.0:3080"
            metrics_listen = "127.0.0.1:9090"
            external_url = "https://batchcred.example.com"
            recheck_interval_hours = 0
            "#,
        )?;
        assert_eq!(file.data_dir, Some(PathBuf::from("/var/lib/batchcred")));
        assert_eq!(file.listen, "0.0.0.0:3080".parse().ok());
        assert_eq!(file.metrics_listen, "127.0.0.1:9090".parse().ok());
        assert_eq!(file.recheck_interval_hours, Some(0));
        assert_eq!(
            file.external_url.map(String::from).as_deref(),
            Some("https://batchcred.example.com/")
        );
        assert!(file.database_url.is_some());
        Ok(())
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let message = |text: &str| {
            ConfigFile::parse(text)
                .err()
                .map(|e| e.0)
                .unwrap_or_default()
        };
        let unknown = message("lisen = \"127.0.0.1:1\"");
        assert!(unknown.contains("unknown field `lisen`"), "{unknown}");
        assert!(unknown.ends_with("(line 1)"), "{unknown}");
        assert!(!unknown.contains('\n'), "{unknown}");
        let wrong = message("listen = \"127.0.0.1:1\"\nsession_ttl_hours = \"a day\"");
        assert!(wrong.contains("invalid type"), "{wrong}");
        assert!(wrong.ends_with("(line 2)"), "{wrong}");
        let database = message("database_url = \"mysql://x\"");
        assert!(database.contains("sqlite: or postgres://"), "{database}");
    }

    #[test]
    fn a_database_password_is_not_echoed_in_errors() {
        let text = "database_url = \"postgres://app:hunter2@db/x\"\nbogus = 1";
        let message = ConfigFile::parse(text)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(message.contains("bogus"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
