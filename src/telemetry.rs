//! Logging setup. Log lines never contain secrets: secrets are wrapped in
//! redacting types, and functions that take them skip them in spans.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs a subscriber writing to stderr, filtered by `RUST_LOG`, or
/// at `default_level` when it is unset (the server logs at `info`; one-shot
/// CLI commands only show warnings).
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // `try_init` fails only if a subscriber is already set (tests): fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
