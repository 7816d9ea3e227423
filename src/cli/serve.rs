//! `batchcred serve`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use batchcred::app::{DrainSettings, Server};
use batchcred::config::{ConfigFile, ServerConfig, StoreConfig};
use batchcred::publish::Backoff;
use batchcred::service::{
    BackoffPolicy, PublishSettings, QueueSettings, SignInLimits, default_max_concurrent,
};

/// Sessions last this long unless configured otherwise.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Sessions unused for this long end unless configured otherwise.
pub const DEFAULT_SESSION_IDLE_TIMEOUT_HOURS: u64 = 72;

/// `serve`'s settings. None has a clap default: a value missing from the
/// flags and the environment may come from the configuration file, and
/// only then from the defaults below.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:3080].
    #[arg(long, env = "BATCHCRED_LISTEN")]
    listen: Option<SocketAddr>,

    /// Address to serve Prometheus metrics (`/metrics`) on, apart from the
    /// public port [default: none; metrics are not served].
    #[arg(long, env = "BATCHCRED_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,

    /// The URL users reach this instance at; names the instance in SSH key
    /// comments and, when https, marks cookies Secure
    /// [default: http://<listen address>].
    #[arg(long, env = "BATCHCRED_EXTERNAL_URL")]
    external_url: Option<url::Url>,

    /// How long a sign-in lasts, in hours [default: 720].
    #[arg(long, env = "BATCHCRED_SESSION_TTL_HOURS")]
    session_ttl_hours: Option<u64>,

    /// Hours a session may go unused before it must sign in again, 0 to
    /// turn the idle timeout off [default: 72].
    #[arg(long, env = "BATCHCRED_SESSION_IDLE_TIMEOUT_HOURS")]
    session_idle_timeout_hours: Option<u64>,

    /// Seconds one call to a code host may take before it counts as
    /// unreachable [default: 10].
    #[arg(long, env = "BATCHCRED_CODE_HOST_TIMEOUT_SECS")]
    code_host_timeout_secs: Option<u64>,

    /// Hours between background checks of stored credentials against their
    /// code hosts, 0 to turn them off [default: 12].
    #[arg(long, env = "BATCHCRED_RECHECK_INTERVAL_HOURS")]
    recheck_interval_hours: Option<u64>,

    /// Milliseconds between two pull requests opened on one GitHub code
    /// host (GitHub's secondary rate limits punish bursts) [default: 1000].
    #[arg(long, env = "BATCHCRED_GITHUB_PR_INTERVAL_MS")]
    github_pr_interval_ms: Option<u64>,

    /// The longest rate-limit wait a publish sits out, in seconds; a code
    /// host asking for longer fails the changeset instead [default: 900].
    #[arg(long, env = "BATCHCRED_MAX_RATE_LIMIT_WAIT_SECS")]
    max_rate_limit_wait_secs: Option<u64>,

    /// Git jobs (fetch, apply, push) publishing may run at once on this
    /// server, all users together [default: twice the cores, 2 to 32].
    #[arg(long, env = "BATCHCRED_MAX_GIT_JOBS", value_parser = clap::value_parser!(u64).range(1..))]
    max_git_jobs: Option<u64>,

    /// Git jobs one user's publishing may run at once [default: 4].
    #[arg(long, env = "BATCHCRED_MAX_GIT_JOBS_PER_USER", value_parser = clap::value_parser!(u64).range(1..))]
    max_git_jobs_per_user: Option<u64>,

    /// The most changesets one API request may publish [default: 1000].
    #[arg(long, env = "BATCHCRED_MAX_CHANGESETS_PER_REQUEST", value_parser = clap::value_parser!(u64).range(1..))]
    max_changesets_per_request: Option<u64>,

    /// The largest diff a changeset may carry, in KiB [default: 10240].
    #[arg(long, env = "BATCHCRED_MAX_PATCH_KIB", value_parser = clap::value_parser!(u64).range(1..))]
    max_patch_kib: Option<u64>,

    /// Changeset job workers (publish, close, reopen, sync) this server
    /// runs; 0 runs none, leaving the queue to other replicas [default: 8].
    #[arg(long, env = "BATCHCRED_WORKERS")]
    workers: Option<u64>,
    /// Minutes between background syncs of open pull requests from their
    /// code hosts, 0 to turn them off [default: 10].
    #[arg(long, env = "BATCHCRED_SYNC_INTERVAL_MINS")]
    sync_interval_mins: Option<u64>,
    /// Password checks (Argon2, ~19 MiB each) that may run at once; beyond
    /// it sign-in answers 503 at once [default: the number of cores].
    #[arg(long, env = "BATCHCRED_MAX_CONCURRENT_SIGN_INS")]
    max_concurrent_sign_ins: Option<usize>,

    /// Failed sign-ins an account may have before each further attempt
    /// waits (1 s, doubling, up to 15 min); a client address may have four
    /// times as many [default: 5].
    #[arg(long, env = "BATCHCRED_SIGN_IN_FREE_ATTEMPTS")]
    sign_in_free_attempts: Option<u32>,

    /// Reverse proxies or load balancers in front of this server (addresses
    /// or networks, comma-separated, e.g. 10.0.0.0/24): from them the
    /// client address that sign-in throttles is read from X-Forwarded-For
    /// [default: none; the header is ignored].
    #[arg(long, env = "BATCHCRED_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    trusted_proxies: Option<Vec<ipnet::IpNet>>,

    /// Seconds to keep accepting and serving after SIGTERM or SIGINT while
    /// /readyz answers 503, so load balancers move traffic away first; 0
    /// stops accepting at once [default: 5].
    #[arg(long, env = "BATCHCRED_DRAIN_SECS")]
    drain_secs: Option<u64>,

    /// Once no longer accepting, the longest wait in seconds for requests
    /// in flight (publishing included) before exiting anyway [default: 30].
    #[arg(long, env = "BATCHCRED_SHUTDOWN_TIMEOUT_SECS")]
    shutdown_timeout_secs: Option<u64>,
}

/// A network (`10.0.0.0/24`) or a single address (`10.0.0.5`).
fn parse_network(raw: &str) -> std::result::Result<ipnet::IpNet, String> {
    let raw = raw.trim();
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{raw:?} is not an address or network such as 10.0.0.0/24"))
}

const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    3080,
));

/// The instance name used by CLI commands, which have no listen address.
pub fn default_instance_name(file: &ConfigFile) -> String {
    let from_env = std::env::var("BATCHCRED_EXTERNAL_URL")
        .ok()
        .and_then(|raw| url::Url::parse(&raw).ok());
    match from_env.as_ref().or(file.external_url.as_ref()) {
        Some(url) => batchcred::config::instance_name(url),
        None => "batchcred@localhost".to_owned(),
    }
}

/// How `serve` stops, from flags and environment over the file, over the
/// defaults.
fn drain_settings(args: &ServeArgs, file: &ConfigFile) -> DrainSettings {
    let defaults = DrainSettings::default();
    let seconds =
        |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_secs);
    DrainSettings {
        period: seconds(args.drain_secs.or(file.drain_secs), defaults.period),
        shutdown_timeout: seconds(
            args.shutdown_timeout_secs.or(file.shutdown_timeout_secs),
            defaults.shutdown_timeout,
        ),
    }
}

/// Merges flags and environment (already in `args`) over the file, over
/// the defaults.
fn server_config(args: ServeArgs, file: ConfigFile) -> Result<ServerConfig> {
    let rollout_windows = file.rollout_windows()?;
    let listen = args.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN);
    let external_url = match args.external_url.or(file.external_url) {
        Some(url) => url,
        None => url::Url::parse(&format!("http://{listen}"))
            .context("building the default external URL")?,
    };
    let hours = |h: u64| Duration::from_secs(h.saturating_mul(3600));
    let session_ttl = args.session_ttl_hours.or(file.session_ttl_hours);
    let idle_timeout = args
        .session_idle_timeout_hours
        .or(file.session_idle_timeout_hours);
    let timeout = args.code_host_timeout_secs.or(file.code_host_timeout_secs);
    let recheck = args.recheck_interval_hours.or(file.recheck_interval_hours);
    let pr_interval = args.github_pr_interval_ms.or(file.github_pr_interval_ms);
    let max_wait = args
        .max_rate_limit_wait_secs
        .or(file.max_rate_limit_wait_secs);
    let defaults = PublishSettings::default();
    // Zero would stop publishing altogether: treated as 1.
    let count = |value: Option<u64>, default: usize| {
        value.map_or(default, |n| usize::try_from(n.max(1)).unwrap_or(usize::MAX))
    };
    let git_jobs = count(
        args.max_git_jobs.or(file.max_git_jobs),
        defaults.max_git_jobs,
    );
    let git_jobs_per_user = count(
        args.max_git_jobs_per_user.or(file.max_git_jobs_per_user),
        defaults.max_git_jobs_per_user,
    );
    let changesets_per_request = count(
        args.max_changesets_per_request
            .or(file.max_changesets_per_request),
        defaults.max_changesets_per_request,
    );
    let patch_bytes = args
        .max_patch_kib
        .or(file.max_patch_kib)
        .map_or(defaults.max_patch_bytes, |kib| {
            usize::try_from(kib.max(1).saturating_mul(1024)).unwrap_or(usize::MAX)
        });
    let sign_ins = args
        .max_concurrent_sign_ins
        .or(file.max_concurrent_sign_ins);
    let free_attempts = args
        .sign_in_free_attempts
        .or(file.sign_in_free_attempts)
        .unwrap_or(BackoffPolicy::ACCOUNT.free_attempts);
    let trusted_proxies = match args.trusted_proxies {
        Some(networks) => networks,
        None => file
            .trusted_proxies
            .iter()
            .flatten()
            .map(|raw| parse_network(raw).map_err(|e| anyhow::anyhow!("trusted_proxies: {e}")))
            .collect::<Result<_>>()?,
    };
    Ok(ServerConfig {
        listen,
        metrics_listen: args.metrics_listen.or(file.metrics_listen),
        external_url,
        session_ttl: session_ttl.map_or(DEFAULT_SESSION_TTL, hours),
        // 0 hours turns the idle timeout off.
        session_idle_timeout: match idle_timeout.unwrap_or(DEFAULT_SESSION_IDLE_TIMEOUT_HOURS) {
            0 => None,
            h => Some(hours(h)),
        },
        code_host_timeout: Duration::from_secs(timeout.unwrap_or(10).max(1)),
        // 0 hours turns the background check off.
        recheck_interval: match recheck.unwrap_or(12) {
            0 => None,
            h => Some(hours(h)),
        },
        publish: PublishSettings {
            github_pull_request_interval: Duration::from_millis(pr_interval.unwrap_or(1000)),
            backoff: Backoff {
                max_wait: Duration::from_secs(max_wait.unwrap_or(900)),
                ..Backoff::default()
            },
            max_git_jobs: git_jobs,
            max_git_jobs_per_user: git_jobs_per_user,
            max_changesets_per_request: changesets_per_request,
            max_patch_bytes: patch_bytes,
            queue: QueueSettings {
                workers: args
                    .workers
                    .or(file.workers)
                    .map_or(defaults.queue.workers, |n| {
                        usize::try_from(n).unwrap_or(usize::MAX)
                    }),
                sync_interval: match args.sync_interval_mins.or(file.sync_interval_mins) {
                    None => defaults.queue.sync_interval,
                    Some(0) => None,
                    Some(minutes) => Some(Duration::from_secs(minutes.saturating_mul(60))),
                },
                ..defaults.queue
            },
            rollout_windows,
        },
        sign_in: SignInLimits {
            max_concurrent: sign_ins.unwrap_or_else(default_max_concurrent).max(1),
            account: BackoffPolicy {
                free_attempts,
                ..BackoffPolicy::ACCOUNT
            },
            address: BackoffPolicy {
                free_attempts: free_attempts.saturating_mul(4),
                ..BackoffPolicy::ADDRESS
            },
            ..SignInLimits::default()
        },
        trusted_proxies,
    })
}

pub async fn run(store: &StoreConfig, args: ServeArgs, file: ConfigFile) -> Result<()> {
    let drain = drain_settings(&args, &file);
    let config = server_config(args, file)?;
    let server = Server::build(store, &config).await?;
    server
        .run_draining(shutdown_signal(), drain)
        .await
        .context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
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

#[cfg(test)]
mod tests {
    use super::{ConfigFile, DrainSettings, Duration, ServeArgs, drain_settings, parse_network};
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn drain(flags: &[&str], file: &str) -> Result<DrainSettings, Box<dyn std::error::Error>> {
        let args = Serve::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))?;
        Ok(drain_settings(&args.args, &ConfigFile::parse(file)?))
    }

    #[test]
    fn drain_settings_come_from_flags_over_the_file_over_the_defaults()
    -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(drain(&[], "")?, DrainSettings::default());
        assert_eq!(DrainSettings::default().period, Duration::from_secs(5));
        let from_file = drain(&[], "drain_secs = 0\nshutdown_timeout_secs = 7")?;
        assert_eq!(from_file.period, Duration::ZERO);
        assert_eq!(from_file.shutdown_timeout, Duration::from_secs(7));
        let flagged = drain(&["--drain-secs", "2"], "drain_secs = 0")?;
        assert_eq!(flagged.period, Duration::from_secs(2));
        assert_eq!(flagged.shutdown_timeout, Duration::from_secs(30));
        Ok(())
    }

    #[test]
    fn trusted_proxies_are_networks_or_single_addresses() {
        assert_eq!(
            parse_network("10.0.0.0/24").map(|n| n.to_string()),
            Ok("10.0.0.0/24".to_owned())
        );
        assert_eq!(
            parse_network(" 10.0.0.5 ").map(|n| n.to_string()),
            Ok("10.0.0.5/32".to_owned())
        );
        assert_eq!(
            parse_network("::1").map(|n| n.to_string()),
            Ok("::1/128".to_owned())
        );
        assert!(
            parse_network("proxy.internal")
                .unwrap_err()
                .contains("not an address or network")
        );
    }
}
