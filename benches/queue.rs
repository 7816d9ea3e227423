//! Queue benchmark: N changesets (a diff each, spread over 20 repositories,
//! one head branch each) are queued in a fresh PostgreSQL database, then
//! published by real `batchcred serve` processes sharing that database and
//! one keyring, against the code host emulator and git's http-backend on
//! loopback:
//!
//! 1. replica A alone, until a fifth of the changesets are done (the
//!    one-replica rate);
//! 2. replica B beside it, until half are done (the two-replica rate);
//! 3. B is killed with SIGKILL, jobs in flight, and started again a few
//!    seconds later; its orphaned jobs are claimed again once their 30 s
//!    lease lapses, and A and the new B finish the queue.
//!
//! Before that, the same work on a sample (bare `git clone`/`apply`/
//! `commit`/`push` plus one `curl` per changeset, at the two replicas'
//! total worker count) measures what the emulator and git server can do at
//! most on this machine: the ceiling both rates are compared with.
//! Each replica's resident memory is sampled from `/proc/<pid>/status`
//! (`VmRSS` every 200 ms, `VmHWM` before it stops).
//!
//! Asserted: every changeset published (its job completed), none failed,
//! one pull request per changeset (none duplicated, none missing), and the
//! kill hit jobs in flight, which were then redone. `cargo bench --bench
//! queue` runs 10,000 changesets and also asserts each replica's peak RSS
//! stays under 200 MB; under `cargo test` (no `--bench` argument) it runs
//! 200 as a smoke test. Cargo builds the server binary with the same
//! profile (`CARGO_BIN_EXE_batchcred`): release for `cargo bench`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use batchcred::app::Server;
use batchcred::app::ServerConfig;
use batchcred::auth::Caller;
use batchcred::config::{DatabaseUrl, StoreConfig};
use batchcred::crypto::Keyring;
use batchcred::domain::{ChangesetId, JobState};
use batchcred::publish::{ChangeSpec, ChangesetSpec};
use batchcred::service::{
    ChangesetQuery, ChangesetStatus, PageRequest, PublishResult, PublishSettings, QueueSettings,
    Service, SignInLimits,
};
use common::{PATCH, TOKEN, baseline_changeset, github_user};
use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;
use support::codehost::{EmulatedRepo, EmulatedToken, Emulator, GITHUB_SCOPES};
use support::git_http::GitHttpServer;

const REPOSITORIES: usize = 20;
/// `serve`'s default worker count, passed explicitly.
const WORKERS: usize = 8;
const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The goal for each replica's peak resident memory.
const RSS_GOAL_KB: u64 = 200 * 1024;
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(200);
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How long the killed replica stays down before it is started again.
const RESTART_AFTER: Duration = Duration::from_secs(3);
/// With no changeset finishing for this long the run is stuck (the lease
/// is 30 s, and A keeps publishing meanwhile): it stops with the logs.
const STALL_LIMIT: Duration = Duration::from_secs(180);
/// The replicas' log, in each one's directory.
const REPLICA_LOG: &str = "serve.log";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let total = if full { 10_000 } else { 200 };
    let sample = (total / 20).clamp(20, 300);

    let work = tempfile::tempdir().unwrap();
    let database = Database::create().await;
    let emulator = Emulator::start().await;
    emulator.add_token(TOKEN, EmulatedToken::new("bench", GITHUB_SCOPES));
    let git = GitHttpServer::start(TOKEN).await;
    for n in 0..REPOSITORIES {
        let name = format!("repo{n}");
        git.create_repo(&name);
        emulator.add_repository(
            &format!("acme/{name}"),
            EmulatedRepo {
                http_clone_url: git.url(&name),
                ssh_clone_url: None,
            },
        );
    }
    let keyring = work.path().join("keyring");
    Keyring::generate().unwrap().write_file(&keyring).unwrap();

    let ceiling_concurrency = 2 * WORKERS;
    let ceiling = run_ceiling(&emulator, &git, sample, ceiling_concurrency).await;
    let ceiling_rate = sample as f64 / ceiling.as_secs_f64();

    let setup = Setup::open(work.path(), &database.url, &keyring, &emulator).await;
    let enqueue_started = Instant::now();
    let ids = setup.enqueue(&emulator, total).await;
    let enqueue_time = enqueue_started.elapsed();

    let env = ReplicaEnv {
        root: work.path().to_owned(),
        database_url: database.url.clone(),
        keyring,
    };
    let progress = Progress::new(&setup.service, total);

    // Phase 1: one replica.
    let mut a = Replica::start("A", &env).await;
    let one_from = progress.now().await;
    let one_to = progress.wait_for(total / 5, &mut [&mut a]).await;
    let one_rate = one_to.rate_since(&one_from);

    // Phase 2: two replicas.
    let mut b = Replica::start("B", &env).await;
    let two_from = progress.now().await;
    let two_to = progress.wait_for(total / 2, &mut [&mut a, &mut b]).await;
    let two_rate = two_to.rate_since(&two_from);

    // Phase 3: B dies with jobs in flight; A goes on; B comes back. Read
    // after the kill, the jobs in flight are A's and all of B's orphans
    // (theirs stay claimed until the lease lapses); read before, B could
    // claim more in between.
    let b_peak_kb = b.kill();
    let killed_at = Instant::now();
    let in_flight = setup.processing(&ids).await;
    tokio::time::sleep(RESTART_AFTER).await;
    let mut b2 = Replica::start("B (restarted)", &env).await;
    let mut in_flight_done: HashMap<ChangesetId, Duration> = HashMap::new();
    loop {
        let done = progress.check(&mut [&mut a, &mut b2]).await;
        for changeset in setup
            .service
            .changesets_by_ids(&Caller::Operator, &in_flight)
            .await
            .unwrap()
        {
            if matches!(changeset.job_state, JobState::Completed | JobState::Failed) {
                in_flight_done
                    .entry(changeset.id)
                    .or_insert_with(|| killed_at.elapsed());
            }
        }
        if done.count >= total && in_flight_done.len() == in_flight.len() {
            break;
        }
        tokio::time::sleep(PROGRESS_EVERY).await;
    }
    let finished_at = Instant::now();
    let a_peak_kb = a.stop();
    let b2_peak_kb = b2.stop();

    // What the database and the code host say.
    let outcome = setup
        .service
        .changesets_by_ids(&Caller::Operator, &ids)
        .await
        .unwrap();
    let completed = outcome
        .iter()
        .filter(|c| c.job_state == JobState::Completed)
        .count();
    let failed: Vec<_> = outcome
        .iter()
        .filter(|c| c.job_state == JobState::Failed)
        .collect();
    let redone: HashSet<ChangesetId> = outcome
        .iter()
        .filter(|c| c.job_attempts > 1)
        .map(|c| c.id)
        .collect();
    let orphaned: Vec<ChangesetId> = in_flight
        .iter()
        .copied()
        .filter(|id| redone.contains(id))
        .collect();
    let orphans_back = orphaned
        .iter()
        .filter_map(|id| in_flight_done.get(id))
        .max()
        .copied()
        .unwrap_or_default();
    let mut pulls_per_head: HashMap<(String, String), usize> = HashMap::new();
    for pull in emulator.pulls() {
        if pull.head.starts_with("batchcred/") {
            *pulls_per_head
                .entry((pull.repository, pull.head))
                .or_default() += 1;
        }
    }
    let duplicates: usize = pulls_per_head.values().map(|n| n - 1).sum();
    let pull_requests = pulls_per_head.len();

    println!(
        "queue: {total} changesets over {REPOSITORIES} repositories, replicas of `batchcred serve` \
         ({WORKERS} workers each) on PostgreSQL, code host emulator and git http-backend on loopback:"
    );
    let defaults = PublishSettings::default();
    println!(
        "  each replica: {WORKERS} workers, {} git jobs at once ({} per user), pull request pacing off",
        defaults.max_git_jobs, defaults.max_git_jobs_per_user
    );
    println!(
        "  ceiling (git + curl, {sample} changesets, {ceiling_concurrency} at a time): {:>7.1} changesets/s",
        ceiling_rate
    );
    println!(
        "  enqueue {total} changesets:        {:>8.2} s  ({:.0} changesets/s)",
        enqueue_time.as_secs_f64(),
        total as f64 / enqueue_time.as_secs_f64()
    );
    println!(
        "  one replica  ({:>5} → {:>5} done): {:>7.1} changesets/s  ({:.2} of the ceiling)",
        one_from.count,
        one_to.count,
        one_rate,
        one_rate / ceiling_rate
    );
    println!(
        "  two replicas ({:>5} → {:>5} done): {:>7.1} changesets/s  ({:.2} of the ceiling)",
        two_from.count,
        two_to.count,
        two_rate,
        two_rate / ceiling_rate
    );
    println!(
        "  B killed (SIGKILL) at {} done; jobs in flight then: {} (A's and B's), {} of them B's \
         (claimed again); B restarted after {} s",
        two_to.count,
        in_flight.len(),
        orphaned.len(),
        RESTART_AFTER.as_secs()
    );
    println!(
        "  killed replica's jobs all done again {:.1} s after the kill (lease {} s)",
        orphans_back.as_secs_f64(),
        QueueSettings::default().lease.as_secs()
    );
    println!(
        "  kill → all {total} done:            {:>8.2} s",
        finished_at.duration_since(killed_at).as_secs_f64()
    );
    println!(
        "  published (jobs completed):    {completed:>6}   failed: {}   jobs run more than once: {}",
        failed.len(),
        redone.len()
    );
    println!(
        "  pull requests opened:          {pull_requests:>6}   duplicate pull requests: {duplicates}"
    );
    println!(
        "  peak RSS: A {:.1} MB, B {:.1} MB (killed), B {:.1} MB (restarted); goal < {} MB",
        mb(a_peak_kb),
        mb(b_peak_kb),
        mb(b2_peak_kb),
        RSS_GOAL_KB / 1024
    );

    for changeset in &failed {
        eprintln!(
            "{}:{} failed: {}",
            changeset.repository,
            changeset.head_branch,
            changeset.error.as_deref().unwrap_or("")
        );
    }
    assert_eq!(completed, total, "every changeset published");
    assert!(failed.is_empty(), "no changeset failed");
    assert_eq!(duplicates, 0, "no pull request opened twice");
    assert_eq!(pull_requests, total, "one pull request per changeset");
    assert!(
        !orphaned.is_empty(),
        "the kill hit jobs in flight, which were claimed again"
    );
    if full {
        for (name, peak) in [
            ("A", a_peak_kb),
            ("B", b_peak_kb),
            ("restarted B", b2_peak_kb),
        ] {
            assert!(peak < RSS_GOAL_KB, "replica {name}'s peak RSS {peak} kB");
        }
    }
}

/// A fresh PostgreSQL database, dropped at the end (also on a panic).
struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Self {
        let name = format!("batchcred_bench_{}", uuid::Uuid::new_v4().simple());
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(POSTGRES_ADMIN_URL)
            .await
            .expect("PostgreSQL must run on 127.0.0.1:5432 (see README)");
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        pool.close().await;
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Self { name, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        // Outside the async context: a throwaway runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                if let Ok(pool) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(POSTGRES_ADMIN_URL)
                    .await
                {
                    let _ = pool
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// The library service on the benchmark's database: it runs the
/// migrations, creates the user, code host and credential, queues the
/// changesets and follows them. It runs no workers.
struct Setup {
    service: Service,
    user: batchcred::domain::UserId,
    /// Keeps the listener `Server::build` bound (never served).
    _server: Server,
}

impl Setup {
    async fn open(root: &Path, database_url: &str, keyring: &Path, emulator: &Emulator) -> Self {
        let store = StoreConfig {
            data_dir: root.join("setup"),
            database_url: Some(DatabaseUrl::parse(database_url).unwrap()),
            encryption_key_file: Some(keyring.to_owned()),
            encryption_key: None,
        };
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: None,
            external_url: "http://batchcred.bench".parse().unwrap(),
            session_ttl: Duration::from_secs(3600),
            session_idle_timeout: None,
            code_host_timeout: Duration::from_secs(30),
            recheck_interval: None,
            audit_retention: None,
            publish: PublishSettings {
                queue: QueueSettings {
                    workers: 0,
                    sync_interval: None,
                    ..QueueSettings::default()
                },
                ..PublishSettings::default()
            },
            sign_in: SignInLimits::default(),
            trusted_proxies: Vec::new(),
            notify: batchcred::service::NotifySettings::default(),
        };
        let server = Server::build(&store, &config).await.unwrap();
        let service = server.service().clone();
        let user = github_user(&service, &emulator.url("github")).await;
        Self {
            service,
            user: user.id,
            _server: server,
        }
    }

    /// Queues `total` changesets; their ids, in order.
    async fn enqueue(&self, emulator: &Emulator, total: usize) -> Vec<ChangesetId> {
        let specs = (0..total)
            .map(|n| ChangesetSpec {
                code_host: emulator.url("github"),
                repository: format!("acme/repo{}", n % REPOSITORIES),
                base_branch: "main".into(),
                head_branch: format!("batchcred/{n}"),
                title: format!("Change {n}"),
                body: String::new(),
                draft: false,
                change: ChangeSpec::Diff {
                    patch: PATCH.into(),
                    message: None,
                    author_name: None,
                    author_email: None,
                },
            })
            .collect();
        let reports = self
            .service
            .enqueue_changesets(&Caller::Operator, self.user, specs)
            .await
            .unwrap();
        reports
            .into_iter()
            .map(|report| match report.outcome {
                Ok(queued) if queued.result == PublishResult::Queued => queued.id,
                Ok(other) => panic!("{} was not queued: {:?}", report.head_branch, other.result),
                Err(error) => panic!("{} was refused: {error}", report.head_branch),
            })
            .collect()
    }

    /// Those of `ids` whose job a worker holds right now.
    async fn processing(&self, ids: &[ChangesetId]) -> Vec<ChangesetId> {
        self.service
            .changesets_by_ids(&Caller::Operator, ids)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.job_state == JobState::Processing)
            .map(|c| c.id)
            .collect()
    }
}

/// How many changesets are done (published or failed), at an instant.
struct Done {
    count: usize,
    at: Instant,
}

impl Done {
    fn rate_since(&self, earlier: &Done) -> f64 {
        (self.count - earlier.count) as f64 / self.at.duration_since(earlier.at).as_secs_f64()
    }
}

/// Follows the queue through the service, counting changesets by status
/// (two `COUNT`s, where reading every changeset would weigh on the run).
struct Progress<'a> {
    service: &'a Service,
    total: usize,
    last_change: std::sync::Mutex<(usize, Instant)>,
}

impl<'a> Progress<'a> {
    fn new(service: &'a Service, total: usize) -> Self {
        Self {
            service,
            total,
            last_change: std::sync::Mutex::new((0, Instant::now())),
        }
    }

    async fn now(&self) -> Done {
        let mut count = 0;
        for status in [ChangesetStatus::Open, ChangesetStatus::Failed] {
            let query = ChangesetQuery {
                status: Some(status),
                ..ChangesetQuery::default()
            };
            let page = PageRequest {
                first: Some(1),
                after: None,
            };
            let page = self
                .service
                .list_changesets(&Caller::Operator, &query, &page)
                .await
                .unwrap();
            count += usize::try_from(page.total_count).unwrap();
        }
        Done {
            count,
            at: Instant::now(),
        }
    }

    /// The count now, after making sure the replicas still run and the
    /// queue still moves.
    async fn check(&self, replicas: &mut [&mut Replica]) -> Done {
        for replica in replicas.iter_mut() {
            replica.assert_running();
        }
        let done = self.now().await;
        let mut last = self.last_change.lock().unwrap();
        if done.count != last.0 {
            *last = (done.count, done.at);
        } else if done.count < self.total && last.1.elapsed() > STALL_LIMIT {
            for replica in replicas.iter() {
                eprintln!("--- replica {} log:\n{}", replica.name, replica.log());
            }
            panic!(
                "no changeset finished for {} s ({} of {} done)",
                STALL_LIMIT.as_secs(),
                done.count,
                self.total
            );
        }
        done
    }

    /// Waits until at least `count` changesets are done.
    async fn wait_for(&self, count: usize, replicas: &mut [&mut Replica]) -> Done {
        loop {
            let done = self.check(replicas).await;
            if done.count >= count {
                return done;
            }
            tokio::time::sleep(PROGRESS_EVERY).await;
        }
    }
}

/// What every replica shares: the database, the keyring, and a root
/// under which each gets its own directories.
struct ReplicaEnv {
    root: PathBuf,
    database_url: String,
    keyring: PathBuf,
}

/// A running `batchcred serve`, its memory sampled meanwhile; killed when
/// dropped.
struct Replica {
    name: &'static str,
    child: Child,
    dir: PathBuf,
    peak_kb: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Replica {
    /// Starts the replica and waits until it answers `/healthz`.
    async fn start(name: &'static str, env: &ReplicaEnv) -> Self {
        let dir = env.root.join(format!("replica-{}", name.replace(' ', "-")));
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let log = std::fs::File::create(dir.join(REPLICA_LOG)).unwrap();
        let address = free_loopback_address();
        let child = Command::new(env!("CARGO_BIN_EXE_batchcred"))
            .arg("serve")
            .args(["--workers", &WORKERS.to_string()])
            .args(["--github-pr-interval-ms", "0"])
            .args(["--sync-interval-mins", "0"])
            .args(["--recheck-interval-hours", "0"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &dir)
            // Its git work directories, apart from the other replicas'.
            .env("TMPDIR", &tmp)
            .env("BATCHCRED_DATA_DIR", dir.join("data"))
            .env("BATCHCRED_DATABASE_URL", &env.database_url)
            .env("BATCHCRED_ENCRYPTION_KEY_FILE", &env.keyring)
            .env("BATCHCRED_LISTEN", address.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start batchcred serve");
        let pid = child.id();
        let peak_kb = Arc::new(AtomicU64::new(0));
        let sampler = {
            let peak_kb = Arc::clone(&peak_kb);
            tokio::spawn(async move {
                loop {
                    peak_kb.fetch_max(proc_status_kb(pid, "VmRSS:"), Ordering::Relaxed);
                    tokio::time::sleep(RSS_SAMPLE_EVERY).await;
                }
            })
        };
        let mut replica = Self {
            name,
            child,
            dir,
            peak_kb,
            sampler,
        };
        replica.wait_until_healthy(address).await;
        replica
    }

    async fn wait_until_healthy(&mut self, address: SocketAddr) {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            self.assert_running();
            if let Ok(response) = client.get(format!("http://{address}/healthz")).send().await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "replica {} did not become healthy in 30 s:\n{}",
            self.name,
            self.log()
        );
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("replica {} exited ({status}):\n{}", self.name, self.log());
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(REPLICA_LOG)).unwrap_or_default()
    }

    /// Kills it with SIGKILL (what `Child::kill` sends on Unix); returns
    /// its peak resident memory in kB.
    fn kill(&mut self) -> u64 {
        let peak = self.peak_kb();
        self.sampler.abort();
        let _ = self.child.kill();
        let _ = self.child.wait();
        peak
    }

    /// Stops it at the end of the run; returns its peak resident memory.
    fn stop(mut self) -> u64 {
        self.kill()
    }

    /// The highest of the samples and the kernel's own high-water mark.
    fn peak_kb(&self) -> u64 {
        let sampled = self.peak_kb.load(Ordering::Relaxed);
        sampled.max(proc_status_kb(self.child.id(), "VmHWM:"))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.sampler.abort();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on (freed just before a replica binds
/// it).
fn free_loopback_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A `kB` field of `/proc/<pid>/status` (0 once the process is gone).
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// The ceiling: `sample` changesets published by hand, `concurrency` at a
/// time, against the same emulator and git server.
async fn run_ceiling(
    emulator: &Emulator,
    git: &GitHttpServer,
    sample: usize,
    concurrency: usize,
) -> Duration {
    let origin = Arc::new(emulator.origin());
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..sample {
        let name = format!("repo{}", n % REPOSITORIES);
        let (origin, permits, url) = (Arc::clone(&origin), Arc::clone(&permits), git.url(&name));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            baseline_changeset(origin, url, format!("acme/{name}"), n).await;
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    started.elapsed()
}
