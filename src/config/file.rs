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
use crate::domain::{RolloutWindow, RolloutWindows};

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
    pub audit_retention_days: Option<u64>,
    pub github_pr_interval_ms: Option<u64>,
    pub max_rate_limit_wait_secs: Option<u64>,
    pub max_git_jobs: Option<u64>,
    pub max_git_jobs_per_user: Option<u64>,
    pub max_changesets_per_request: Option<u64>,
    pub max_patch_kib: Option<u64>,
    pub workers: Option<u64>,
    pub sync_interval_mins: Option<u64>,
    pub max_concurrent_sign_ins: Option<usize>,
    pub sign_in_free_attempts: Option<u32>,
    pub trusted_proxies: Option<Vec<String>>,
    pub drain_secs: Option<u64>,
    pub shutdown_timeout_secs: Option<u64>,
    pub expiry_warning_days: Option<u32>,
    pub expiry_warning_interval_mins: Option<u64>,
    pub notify_webhook_url: Option<url::Url>,
    /// The webhook signing secret itself stays out of this file.
    pub notify_webhook_secret_file: Option<PathBuf>,
    pub smtp_url: Option<url::Url>,
    /// The SMTP password itself stays out of this file.
    pub smtp_password_file: Option<PathBuf>,
    pub notify_from: Option<String>,
    /// `[[rollout_windows]]` tables; see [`ConfigFile::rollout_windows`].
    pub rollout_windows: Option<Vec<RolloutWindowSetting>>,
}

/// One `[[rollout_windows]]` table as written; checked by
/// [`ConfigFile::rollout_windows`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutWindowSetting {
    /// `unlimited`, `0` (also written as the number 0, as in Sourcegraph's
    /// JSON), or `N/second|minute|hour`.
    #[serde(deserialize_with = "text_or_integer")]
    pub rate: String,
    #[serde(default)]
    pub days: Vec<String>,
    pub start: Option<String>,
    pub end: Option<String>,
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

impl ConfigFile {
    /// The rollout windows: none set (publishing never held back) unless
    /// the file has `rollout_windows`. A bad window is one line naming the
    /// key, the window's index and the field, e.g.
    /// `rollout_windows[1].rate: "10/fortnight" is not a rate (…)`.
    pub fn rollout_windows(&self) -> Result<RolloutWindows, ConfigError> {
        let Some(settings) = &self.rollout_windows else {
            return Ok(RolloutWindows::default());
        };
        settings
            .iter()
            .enumerate()
            .map(|(index, window)| {
                RolloutWindow::parse(
                    &window.rate,
                    &window.days,
                    window.start.as_deref(),
                    window.end.as_deref(),
                )
                .map_err(|error| {
                    ConfigError(format!(
                        "rollout_windows[{index}].{}: {}",
                        error.field, error.message
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(RolloutWindows::new)
    }
}

/// A string, or an integer taken as its decimal text.
fn text_or_integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = String;
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a string such as \"10/hour\"")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<String, E> {
            Ok(text.to_owned())
        }
        fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<String, E> {
            Ok(number.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<String, E> {
            Ok(number.to_string())
        }
    }
    deserializer.deserialize_any(Visitor)
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
    fn rollout_windows_are_parsed_and_bad_ones_named_by_index() -> Result<(), ConfigError> {
        assert!(!ConfigFile::parse("")?.rollout_windows()?.is_set());
        let file = ConfigFile::parse(
            r#"
            [[rollout_windows]]
            rate = "unlimited"

            [[rollout_windows]]
            rate = "3/minute"
            days = ["mon", "Tuesday"]
            start = "08:00"
            end = "16:00"

            [[rollout_windows]]
            rate = 0
            days = ["saturday"]
            "#,
        )?;
        let windows = file.rollout_windows()?;
        assert!(windows.is_set());
        let saturday = chrono::DateTime::parse_from_rfc3339("2024-06-01T12:00:00Z")
            .map_err(|e| ConfigError(e.to_string()))?
            .to_utc();
        assert!(matches!(
            windows.rate_at(saturday),
            crate::domain::Decision::Closed { opens_at: Some(_) }
        ));

        let message = |text: &str| match ConfigFile::parse(text).and_then(|f| f.rollout_windows()) {
            Ok(_) => String::new(),
            Err(ConfigError(message)) => message,
        };
        assert_eq!(
            message(
                "[[rollout_windows]]\nrate = \"unlimited\"\n[[rollout_windows]]\nrate = \"10/fortnight\"\n"
            ),
            "rollout_windows[1].rate: \"10/fortnight\" is not a rate (use unlimited, 0, or N/second|minute|hour)"
        );
        let day = message("[[rollout_windows]]\nrate = \"1/hour\"\ndays = [\"funday\"]\n");
        assert!(
            day.starts_with("rollout_windows[0].days[0]: \"funday\""),
            "{day}"
        );
        let half = message("[[rollout_windows]]\nrate = \"1/hour\"\nstart = \"08:00\"\n");
        assert!(
            half.starts_with("rollout_windows[0].end: is missing"),
            "{half}"
        );
        let unknown = message("[[rollout_windows]]\nrate = \"1/hour\"\nbegin = \"08:00\"\n");
        assert!(unknown.contains("unknown field `begin`"), "{unknown}");
        let missing = message("[[rollout_windows]]\ndays = [\"mon\"]\n");
        assert!(missing.contains("missing field `rate`"), "{missing}");
        let wrong_type = message("[[rollout_windows]]\nrate = true\n");
        assert!(wrong_type.contains("10/hour"), "{wrong_type}");
        for text in [day, half, unknown, missing, wrong_type] {
            assert!(!text.contains('\n'), "{text}");
        }
        Ok(())
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
