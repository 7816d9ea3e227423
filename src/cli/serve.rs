//! `batchcred serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use batchcred::app::ServerConfig;
use batchcred::app::{DrainSettings, Server};
use batchcred::config::{ConfigFile, StoreConfig};
use batchcred::service::Backoff;
use batchcred::service::{
    BackoffPolicy, NotifySettings, PublishSettings, QueueSettings, SignInLimits,
    default_max_concurrent,
};
use batchcred::service::{EmailSettings, WebhookSettings};
use secrecy::SecretString;

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
    /// Days audit entries are kept; older ones are removed hourly
    /// [default: none; kept forever].
    #[arg(long, env = "BATCHCRED_AUDIT_RETENTION_DAYS", value_parser = clap::value_parser!(u64).range(1..))]
    audit_retention_days: Option<u64>,

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

    /// Tokens expiring within this many days are flagged on every page and
    /// warned about [default: 7].
    #[arg(long, env = "BATCHCRED_EXPIRY_WARNING_DAYS")]
    expiry_warning_days: Option<u32>,

    /// Minutes between rounds sending expiry warnings to the webhook and
    /// by email, 0 to send none [default: 60].
    #[arg(long, env = "BATCHCRED_EXPIRY_WARNING_INTERVAL_MINS")]
    expiry_warning_interval_mins: Option<u64>,

    /// Where expiry warnings are posted as signed JSON; the signing secret
    /// comes from BATCHCRED_NOTIFY_WEBHOOK_SECRET or
    /// --notify-webhook-secret-file [default: none].
    #[arg(long, env = "BATCHCRED_NOTIFY_WEBHOOK_URL")]
    notify_webhook_url: Option<url::Url>,

    /// A file holding the webhook signing secret.
    #[arg(long, env = "BATCHCRED_NOTIFY_WEBHOOK_SECRET_FILE")]
    notify_webhook_secret_file: Option<PathBuf>,

    /// The SMTP server expiry warnings are mailed through:
    /// smtp://[login@]host[:port] (add ?tls=required for STARTTLS) or
    /// smtps://[login@]host[:port]; the password comes from
    /// BATCHCRED_SMTP_PASSWORD or --smtp-password-file [default: none].
    #[arg(long, env = "BATCHCRED_SMTP_URL")]
    smtp_url: Option<url::Url>,

    /// A file holding the SMTP password.
    #[arg(long, env = "BATCHCRED_SMTP_PASSWORD_FILE")]
    smtp_password_file: Option<PathBuf>,

    /// The sender address of warning emails (needed with --smtp-url).
    #[arg(long, env = "BATCHCRED_NOTIFY_FROM")]
    notify_from: Option<String>,
}

/// Where secrets given in the environment are read from; never flags.
const WEBHOOK_SECRET_ENV: &str = "BATCHCRED_NOTIFY_WEBHOOK_SECRET";
const SMTP_PASSWORD_ENV: &str = "BATCHCRED_SMTP_PASSWORD";

/// A secret from the environment variable `env` or the file `file` (one
/// of them at most); errors name the file, never what it holds.
fn secret_from(
    env: Option<String>,
    env_name: &str,
    file: Option<&Path>,
    file_key: &str,
) -> Result<Option<SecretString>> {
    match (env.filter(|value| !value.is_empty()), file) {
        (Some(_), Some(_)) => anyhow::bail!("set either {env_name} or {file_key}, not both"),
        (Some(value), None) => Ok(Some(SecretString::from(value))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {file_key} {}", path.display()))?;
            let value = text.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!value.is_empty(), "{file_key} {} is empty", path.display());
            Ok(Some(SecretString::from(value.to_owned())))
        }
        (None, None) => Ok(None),
    }
}

/// Expiry warning settings from flags and environment over the file, over
/// the defaults; `env` reads an environment variable (the secrets).
fn notify_settings(
    args: &ServeArgs,
    file: &ConfigFile,
    env: impl Fn(&str) -> Option<String>,
) -> Result<NotifySettings> {
    let defaults = NotifySettings::default();
    let webhook_secret = secret_from(
        env(WEBHOOK_SECRET_ENV),
        WEBHOOK_SECRET_ENV,
        args.notify_webhook_secret_file
            .as_deref()
            .or(file.notify_webhook_secret_file.as_deref()),
        "notify_webhook_secret_file",
    )?;
    let webhook = match (
        args.notify_webhook_url
            .clone()
            .or(file.notify_webhook_url.clone()),
        webhook_secret,
    ) {
        (Some(url), Some(secret)) => Some(WebhookSettings { url, secret }),
        (Some(_), None) => anyhow::bail!(
            "--notify-webhook-url needs a signing secret: set {WEBHOOK_SECRET_ENV} or \
             notify_webhook_secret_file"
        ),
        (None, _) => None,
    };
    let smtp_password = secret_from(
        env(SMTP_PASSWORD_ENV),
        SMTP_PASSWORD_ENV,
        args.smtp_password_file
            .as_deref()
            .or(file.smtp_password_file.as_deref()),
        "smtp_password_file",
    )?;
    let email = match args.smtp_url.clone().or(file.smtp_url.clone()) {
        Some(smtp_url) => Some(EmailSettings {
            smtp_url,
            password: smtp_password,
            from: args
                .notify_from
                .clone()
                .or(file.notify_from.clone())
                .context("--smtp-url needs --notify-from, the sender address")?,
        }),
        None => None,
    };
    Ok(NotifySettings {
        expiry_warning_days: args
            .expiry_warning_days
            .or(file.expiry_warning_days)
            .unwrap_or(defaults.expiry_warning_days),
        interval: match args
            .expiry_warning_interval_mins
            .or(file.expiry_warning_interval_mins)
        {
            None => defaults.interval,
            Some(0) => None,
            Some(minutes) => Some(Duration::from_secs(minutes.saturating_mul(60))),
        },
        webhook,
        email,
        external_url: None,
    })
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
        Some(url) => batchcred::app::instance_name(url),
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
    let notify = notify_settings(&args, &file, |name| std::env::var(name).ok())?;
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
        audit_retention: args
            .audit_retention_days
            .or(file.audit_retention_days)
            .map(|days| Duration::from_secs(days.saturating_mul(86_400))),
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
        notify,
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
    use super::{
        ConfigFile, DrainSettings, Duration, ServeArgs, drain_settings, notify_settings,
        parse_network,
    };
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
    fn notification_settings_take_secrets_from_the_environment_or_files_only()
    -> Result<(), Box<dyn std::error::Error>> {
        use secrecy::ExposeSecret;
        let parse = |flags: &[&str]| {
            Serve::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))
        };
        let none = |_: &str| None;
        let defaults = notify_settings(&parse(&[])?.args, &ConfigFile::default(), none)?;
        assert_eq!(defaults.expiry_warning_days, 7);
        assert_eq!(defaults.interval, Some(Duration::from_secs(3600)));
        assert!(defaults.webhook.is_none() && defaults.email.is_none());

        let hook = parse(&["--notify-webhook-url", "https://hooks.example.com/x"])?;
        let error = notify_settings(&hook.args, &ConfigFile::default(), none)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("BATCHCRED_NOTIFY_WEBHOOK_SECRET"), "{error}");
        let env =
            |name: &str| (name == "BATCHCRED_NOTIFY_WEBHOOK_SECRET").then(|| "from-env".to_owned());
        let settings = notify_settings(&hook.args, &ConfigFile::default(), env)?;
        let secret = settings
            .webhook
            .map(|w| w.secret.expose_secret().to_owned());
        assert_eq!(secret.as_deref(), Some("from-env"));

        let dir = tempfile::tempdir()?;
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, "from-file\n")?;
        let file = ConfigFile::parse(&format!(
            "notify_webhook_url = \"https://hooks.example.com/y\"\n\
             notify_webhook_secret_file = {:?}\nexpiry_warning_days = 3\n\
             expiry_warning_interval_mins = 0\nsmtp_url = \"smtps://me@mail.example.com\"",
            secret_file.display().to_string()
        ))?;
        assert!(
            notify_settings(&parse(&[])?.args, &file, none).is_err(),
            "no sender"
        );
        let settings = notify_settings(
            &parse(&["--notify-from", "b@example.com"])?.args,
            &file,
            none,
        )?;
        assert_eq!(settings.expiry_warning_days, 3);
        assert_eq!(settings.interval, None);
        let secret = settings
            .webhook
            .map(|w| w.secret.expose_secret().to_owned());
        assert_eq!(secret.as_deref(), Some("from-file"));
        assert!(
            notify_settings(&parse(&[])?.args, &file, env).is_err(),
            "env and file both"
        );
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
