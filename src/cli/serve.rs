//! `batchcred serve`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use batchcred::app::Server;
use batchcred::config::{ServerConfig, StoreConfig};
use batchcred::publish::Backoff;
use batchcred::service::PublishSettings;

/// Sessions last this long unless configured otherwise.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BATCHCRED_LISTEN", default_value = "127.0.0.1:3080")]
    listen: SocketAddr,

    /// The URL users reach this instance at; names the instance in SSH key
    /// comments and, when https, marks cookies Secure.
    /// Default: http://<listen address>.
    #[arg(long, env = "BATCHCRED_EXTERNAL_URL")]
    external_url: Option<url::Url>,

    /// How long a sign-in lasts, in hours.
    #[arg(long, env = "BATCHCRED_SESSION_TTL_HOURS", default_value_t = 720)]
    session_ttl_hours: u64,

    /// Seconds one call to a code host may take before it counts as
    /// unreachable.
    #[arg(long, env = "BATCHCRED_CODE_HOST_TIMEOUT_SECS", default_value_t = 10)]
    code_host_timeout_secs: u64,

    /// Hours between background checks of stored credentials against their
    /// code hosts (0 turns them off).
    #[arg(long, env = "BATCHCRED_RECHECK_INTERVAL_HOURS", default_value_t = 12)]
    recheck_interval_hours: u64,

    /// Milliseconds between two pull requests opened on one GitHub code
    /// host (GitHub's secondary rate limits punish bursts).
    #[arg(long, env = "BATCHCRED_GITHUB_PR_INTERVAL_MS", default_value_t = 1000)]
    github_pr_interval_ms: u64,

    /// The longest rate-limit wait a publish sits out, in seconds; a code
    /// host asking for longer fails the changeset instead.
    #[arg(
        long,
        env = "BATCHCRED_MAX_RATE_LIMIT_WAIT_SECS",
        default_value_t = 900
    )]
    max_rate_limit_wait_secs: u64,
}

/// The instance name used by CLI commands, which have no external URL.
pub fn default_instance_name() -> String {
    let host = std::env::var("BATCHCRED_EXTERNAL_URL")
        .ok()
        .and_then(|raw| url::Url::parse(&raw).ok());
    match host {
        Some(url) => batchcred::config::instance_name(&url),
        None => "batchcred@localhost".to_owned(),
    }
}

pub async fn run(store: &StoreConfig, args: ServeArgs) -> Result<()> {
    let external_url = match args.external_url {
        Some(url) => url,
        None => url::Url::parse(&format!("http://{}", args.listen))
            .context("building the default external URL")?,
    };
    let config = ServerConfig {
        listen: args.listen,
        external_url,
        session_ttl: Duration::from_secs(args.session_ttl_hours.saturating_mul(3600)),
        code_host_timeout: Duration::from_secs(args.code_host_timeout_secs.max(1)),
        recheck_interval: (args.recheck_interval_hours > 0)
            .then(|| Duration::from_secs(args.recheck_interval_hours.saturating_mul(3600))),
        publish: PublishSettings {
            github_pull_request_interval: Duration::from_millis(args.github_pr_interval_ms),
            backoff: Backoff {
                max_wait: Duration::from_secs(args.max_rate_limit_wait_secs),
                ..Backoff::default()
            },
        },
    };
    let server = Server::build(store, &config).await?;
    server.run(shutdown_signal()).await.context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
