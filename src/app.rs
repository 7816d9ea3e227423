//! Wiring: opening the store and keyring, and starting the server. Used
//! by `batchcred serve`, by the CLI commands, and by integration tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::{ConfigError, StoreConfig};
use crate::crypto::{self, Encryptor};
use crate::http::{self, AppState, CookieSettings, TrustedProxies};
use crate::service::{self, Service, ServiceSettings};
use crate::store::{self, Store};

mod drain;
mod routes;
mod server_config;
mod store_setup;
mod workers;
pub use drain::DrainSettings;
pub use server_config::{ServerConfig, instance_name};
pub use store_setup::{KEYRING_FILE, ResolvedStore, SQLITE_FILE, resolve_store};
pub use workers::spawn_workers;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the database: {0}")]
    Store(#[from] store::Error),
    #[error("cannot load the encryption keyring: {0}")]
    Crypto(#[from] crypto::Error),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Service(#[from] service::Error),
}

/// Opens the store (running migrations) and the keyring.
pub async fn open_service(
    store_config: &StoreConfig,
    settings: ServiceSettings,
) -> Result<Service, StartupError> {
    let resolved = resolve_store(store_config)?;
    if let Some(path) = &resolved.generated_keyring {
        tracing::warn!(
            path = %path.display(),
            "generated a new encryption keyring; back it up: without it stored credentials cannot be read"
        );
    }
    let store = Store::connect(&resolved.database_url).await?;
    tracing::info!(database = %resolved.database_url, "database ready");
    let encryptor = Encryptor::load(resolved.key_source)?;
    Ok(Service::new(store, Arc::new(encryptor), settings)?)
}

/// Removes the git work directories that a batchcred killed mid-push left
/// in the temporary folder, keeping those of processes still running.
/// Called when `serve` and `publish` start; a failure is only logged.
pub fn sweep_leftover_work_dirs() {
    let root = std::env::temp_dir();
    match crate::publish::git::sweep_work_dirs(&root) {
        Ok(swept) if swept.removed > 0 => tracing::info!(
            removed = swept.removed,
            in_use = swept.in_use,
            root = %root.display(),
            "removed work directories left by an interrupted push"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(
            %error,
            root = %root.display(),
            "could not look for leftover work directories"
        ),
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    /// Serves `/metrics` only, when configured.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    recheck_interval: Option<Duration>,
    audit_retention: Option<Duration>,
    /// How often expiry warnings are sent; `None` when nowhere to send.
    warning_interval: Option<Duration>,
}

/// How often expired sessions are purged.
const SESSION_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

impl Server {
    /// Opens everything and binds the listener; port 0 picks a free port.
    pub async fn build(
        store_config: &StoreConfig,
        server_config: &ServerConfig,
    ) -> Result<Self, StartupError> {
        let listener = TcpListener::bind(server_config.listen)
            .await
            .map_err(|source| StartupError::Listen {
                address: server_config.listen,
                source,
            })?;
        let metrics_listener = match server_config.metrics_listen {
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .map_err(|source| StartupError::Listen { address, source })?;
                // Installed now, so that the metrics count from the start.
                crate::telemetry::metrics::handle();
                Some(listener)
            }
            None => None,
        };
        // An external URL on port 0 (the default one, when listening on a
        // free port) names the port actually bound, as key comments show it.
        let mut external_url = server_config.external_url.clone();
        if external_url.port() == Some(0)
            && let Ok(address) = listener.local_addr()
        {
            // Setting a port fails only on URLs without a host.
            let _ = external_url.set_port(Some(address.port()));
        }
        let settings = ServiceSettings {
            instance_name: instance_name(&external_url),
            session_ttl: server_config.session_ttl,
            session_idle_timeout: server_config.session_idle_timeout,
            code_host_timeout: server_config.code_host_timeout,
            publish: server_config.publish.clone(),
            sign_in: server_config.sign_in,
            notify: crate::service::NotifySettings {
                external_url: Some(external_url.clone()),
                ..server_config.notify.clone()
            },
        };
        let service = open_service(store_config, settings).await?;
        sweep_leftover_work_dirs();
        // Finish key generation a crash may have interrupted.
        service.generate_missing_ssh_keys().await?;
        let cookies = CookieSettings {
            secure: server_config.secure_cookies(),
            max_age: server_config.session_ttl,
        };
        Ok(Self {
            listener,
            metrics_listener,
            state: AppState::new(
                service,
                cookies,
                TrustedProxies::new(server_config.trusted_proxies.clone()),
            ),
            recheck_interval: server_config.recheck_interval,
            audit_retention: server_config.audit_retention,
            warning_interval: server_config.notify.interval.filter(|_| {
                server_config.notify.webhook.is_some() || server_config.notify.email.is_some()
            }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `/metrics` is served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    pub fn service(&self) -> &Service {
        &self.state.service
    }

    /// Serves until `signal`, then drains (see [`DrainSettings`]): reports
    /// not-ready on `/readyz` while still serving for the drain period,
    /// stops accepting, and finishes requests in flight (publishing
    /// included) within the shutdown timeout. Background tasks stop
    /// after that: each step of theirs is a single statement or a
    /// compare-and-swap, so one cut short is redone by a later round or
    /// the next start, and nothing is left half written.
    pub async fn run_draining(
        self,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
        settings: DrainSettings,
    ) -> std::io::Result<()> {
        let (stopping, stopped) = oneshot::channel();
        let stop = drain::stop_accepting(
            signal,
            self.state.readiness.clone(),
            settings.period,
            stopping,
        );
        drain::finish_within(self.run(stop), stopped, settings.shutdown_timeout).await
    }

    /// Serves until `shutdown` resolves, then finishes requests in flight.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let service = self.state.service.clone();
        let purge = tokio::spawn(async move {
            let mut interval = tokio::time::interval(SESSION_PURGE_INTERVAL);
            loop {
                interval.tick().await;
                match service.purge_expired_sessions().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(purged, "purged expired sessions"),
                    Err(error) => tracing::warn!(%error, "purging expired sessions failed"),
                }
                match service.purge_forgotten_sign_in_failures().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(purged, "purged old failed sign-in counts"),
                    Err(error) => tracing::warn!(%error, "purging failed sign-in counts failed"),
                }
            }
        });
        // Rows sealed before the current seal version are re-sealed row by
        // row while the server serves; each is a compare-and-swap, so
        // replicas doing the same at once are safe.
        let service = self.state.service.clone();
        let upgrade_seals = tokio::spawn(async move {
            if let Err(error) = service
                .upgrade_credential_seals(&crate::auth::Caller::Operator)
                .await
            {
                tracing::warn!(%error, "re-sealing credentials failed; the next start retries");
            }
        });
        let sync = self
            .state
            .service
            .queue_settings()
            .sync_interval
            .map(|interval| tokio::spawn(sync_changesets(self.state.service.clone(), interval)));
        let prune = self
            .audit_retention
            .map(|retention| tokio::spawn(prune_audit_log(self.state.service.clone(), retention)));
        let recheck = self.recheck_interval.map(|interval| {
            tokio::spawn(recheck_credentials(self.state.service.clone(), interval))
        });
        let warnings = self.warning_interval.map(|interval| {
            tokio::spawn(send_expiry_warnings(self.state.service.clone(), interval))
        });
        if let Ok(address) = self.local_addr() {
            tracing::info!(%address, "listening");
        }
        let metrics = self.metrics_listener.map(|listener| {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "serving /metrics");
            }
            let service = self.state.service.clone();
            tokio::spawn(async move {
                if let Err(error) = http::serve_metrics(listener, service).await {
                    tracing::warn!(%error, "the metrics listener failed");
                }
            })
        });
        let (stop_workers, stop) = tokio::sync::watch::channel(false);
        let service = self.state.service.clone();
        let mut workers = spawn_workers(&service, service.queue_settings().workers, stop);
        let result = routes::serve(self.listener, self.state, shutdown).await;
        // Requests are done: running jobs get their stop grace, then are
        // handed back to the queue for another replica or the next start.
        let _ = stop_workers.send(true);
        while workers.join_next().await.is_some() {}
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        purge.abort();
        upgrade_seals.abort();
        if let Some(recheck) = recheck {
            recheck.abort();
        }
        if let Some(prune) = prune {
            prune.abort();
        }
        if let Some(sync) = sync {
            sync.abort();
        }
        if let Some(warnings) = warnings {
            warnings.abort();
        }
        result
    }
}

/// Checks every credential against its code host once per `interval`, so
/// revoked or expiring tokens are flagged before a publish fails. Each
/// round only takes credentials not checked within the interval, so
/// replicas sharing a database mostly skip each other's work.
async fn recheck_credentials(service: Service, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let result = service
            .recheck_stale_credentials(&crate::auth::Caller::Operator, interval)
            .await;
        crate::telemetry::metrics::recheck_run(result.is_ok());
        match result {
            Ok(report) if report.passed + report.failed > 0 => {
                tracing::info!(
                    passed = report.passed,
                    failed = report.failed,
                    "re-checked credentials"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "re-checking credentials failed"),
        }
    }
}

/// Sends the expiry warnings due (see `service::expiry_warnings`) once
/// per `interval`. Each warning is claimed in the database before it is
/// sent, so replicas doing the same at once send it once.
async fn send_expiry_warnings(service: Service, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match service
            .send_expiry_warnings(&crate::auth::Caller::Operator)
            .await
        {
            Ok(report) if report.sent + report.failed > 0 => tracing::info!(
                sent = report.sent,
                failed = report.failed,
                "sent expiry warnings"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "sending expiry warnings failed"),
        }
    }
}

/// Queues a sync of every open pull request not synced within `interval`,
/// once per `interval`; the workers then read each from its code host,
/// paced like any job. One statement per round, so replicas doing it at
/// once queue each changeset once.
async fn sync_changesets(service: Service, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match service
            .queue_stale_syncs(&crate::auth::Caller::Operator, interval)
            .await
        {
            Ok(0) => {}
            Ok(queued) => tracing::info!(queued, "queued syncs of open pull requests"),
            Err(error) => tracing::warn!(%error, "queueing pull request syncs failed"),
        }
    }
}

/// How often entries past the audit retention are removed.
const AUDIT_PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Removes audit entries older than `retention`, hourly. Each round is
/// one transaction that also records where the chain now starts, so a
/// round cut short removes nothing.
async fn prune_audit_log(service: Service, retention: Duration) {
    let mut ticks = tokio::time::interval(AUDIT_PRUNE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match service
            .prune_audit_log(&crate::auth::Caller::Operator, retention)
            .await
        {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed audit entries past the retention"),
            Err(error) => tracing::warn!(%error, "removing old audit entries failed"),
        }
    }
}
