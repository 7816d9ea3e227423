//! Zero-downtime restarts: two real `batchcred serve` replicas on one
//! PostgreSQL database behind HAProxy (health-checking `/readyz`) are
//! restarted one after the other under steady load, and not one request
//! fails.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use batchcred::crypto::Keyring;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::cli::run_to_end;
use crate::helpers::{PASSWORD, create_postgres_database, drop_postgres_database};

/// How long a replica keeps serving after SIGTERM while reporting not-ready.
const DRAIN_SECS: &str = "3";
const CLIENTS: usize = 4;

/// Drops the test's database however the test ends.
struct Database(String);

impl Drop for Database {
    fn drop(&mut self) {
        drop_postgres_database(self.0.clone());
    }
}

/// What every `batchcred` process of the test shares: database and keyring
/// (in the environment, never in argv).
struct Instance {
    database_url: String,
    keyring: String,
    dir: PathBuf,
}

impl Instance {
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_batchcred"));
        for (name, _) in std::env::vars() {
            if name.starts_with("BATCHCRED_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        command
            .env("BATCHCRED_DATABASE_URL", &self.database_url)
            .env("BATCHCRED_ENCRYPTION_KEY", &self.keyring)
            .env("BATCHCRED_DATA_DIR", self.dir.join("data"));
        command
    }

    /// Runs a CLI command to its end and returns its stdout.
    fn cli(&self, args: &[&str], stdin: &str) -> String {
        let mut command = self.command();
        command.args(args);
        let output = run_to_end(command, stdin);
        assert!(
            output.status.success(),
            "batchcred {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// One `batchcred serve` child on a fixed port, logging to a file.
struct Replica {
    name: &'static str,
    port: u16,
    log: PathBuf,
    child: tokio::process::Child,
}

impl Replica {
    fn start(instance: &Instance, name: &'static str, port: u16) -> Self {
        let log = instance.dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut command = instance.command();
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--drain-secs", DRAIN_SECS, "--recheck-interval-hours", "0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .spawn()
            .expect("start batchcred serve");
        Self {
            name,
            port,
            log,
            child,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn status(&self, client: &reqwest::Client, path: &str) -> Option<u16> {
        let response = client.get(self.url(path)).send().await.ok()?;
        Some(response.status().as_u16())
    }

    async fn wait_ready(&self, client: &reqwest::Client) {
        let started = Instant::now();
        while self.status(client, "/readyz").await != Some(200) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "replica {} never became ready:\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn terminate(&self) {
        let pid = self.child.id().expect("running").to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
    }
}

/// HAProxy's view of each server, from its CSV statistics page.
async fn haproxy_status(client: &reqwest::Client, stats_port: u16, server: &str) -> String {
    let Ok(response) = client
        .get(format!("http://127.0.0.1:{stats_port}/stats;csv"))
        .send()
        .await
    else {
        return "no statistics".to_owned();
    };
    let csv = response.text().await.unwrap_or_default();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let column = |name: &str| header.iter().position(|h| *h == name);
    let (Some(proxy), Some(name), Some(status)) =
        (column("pxname"), column("svname"), column("status"))
    else {
        return format!("unreadable statistics: {csv}");
    };
    lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .find(|row| row.get(proxy) == Some(&"replicas") && row.get(name) == Some(&server))
        .and_then(|row| row.get(status).map(|s| (*s).to_owned()))
        .unwrap_or_else(|| format!("server {server} not listed"))
}

async fn wait_haproxy(client: &reqwest::Client, stats_port: u16, server: &str, up: bool) {
    let started = Instant::now();
    loop {
        let status = haproxy_status(client, stats_port, server).await;
        if (status == "UP") == up && (up || status.starts_with("DOWN")) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "HAProxy never saw server {server} {}: {status}",
            if up { "up" } else { "down" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn haproxy_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file());
    on_path
        .expect("haproxy is required: run scripts/install-test-deps.sh (apt-get install haproxy)")
}

fn haproxy_config(front: u16, stats: u16, a: u16, b: u16) -> String {
    format!(
        "defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout check 1s

frontend front
    bind 127.0.0.1:{front}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    retries 3
    retry-on conn-failure empty-response
    option redispatch
    server a 127.0.0.1:{a} check inter 200ms fall 1 rise 2
    server b 127.0.0.1:{b} check inter 200ms fall 1 rise 2

listen stats
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
"
    )
}

/// Requests sent through the load balancer, and what went wrong.
#[derive(Default)]
struct Load {
    sent: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

/// One client: alternately liveness and an authenticated GraphQL query,
/// until `stop`.
async fn drive(front: String, token: String, load: Arc<Load>, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut liveness = false;
    while !stop.load(Ordering::SeqCst) {
        liveness = !liveness;
        let outcome = if liveness {
            match client.get(format!("{front}/healthz")).send().await {
                Ok(response) if response.status() == 200 => Ok(()),
                Ok(response) => Err(format!("GET /healthz: {}", response.status())),
                Err(error) => Err(format!("GET /healthz: {error}")),
            }
        } else {
            let sent = client
                .post(format!("{front}/.api/graphql"))
                .header("Authorization", format!("token {token}"))
                .json(&json!({ "query": "{ currentUser { id } }" }))
                .send()
                .await;
            match sent {
                Ok(response) if response.status() == 200 => {
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if body["data"]["currentUser"]["id"].is_string() {
                        Ok(())
                    } else {
                        Err(format!("GraphQL: {body}"))
                    }
                }
                Ok(response) => Err(format!("GraphQL: {}", response.status())),
                Err(error) => Err(format!("GraphQL: {error}")),
            }
        };
        load.sent.fetch_add(1, Ordering::SeqCst);
        if let Err(failure) = outcome {
            load.failures.lock().await.push(failure);
        }
    }
}

/// SIGTERM, check the drain is seen (not-ready, HAProxy takes the replica
/// out while it still runs), wait for exit 0, start it again on its port.
async fn restart(
    instance: &Instance,
    mut replica: Replica,
    client: &reqwest::Client,
    stats_port: u16,
) -> Replica {
    let name = replica.name;
    replica.terminate();
    // Draining: alive, not ready, and out of HAProxy's rotation, while
    // the process still runs.
    let started = Instant::now();
    while replica.status(client, "/readyz").await != Some(503) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "replica {name} still ready after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(replica.status(client, "/healthz").await, Some(200));
    wait_haproxy(client, stats_port, name, false).await;
    assert!(
        replica.child.try_wait().unwrap().is_none(),
        "replica {name} exited before HAProxy took it out"
    );
    let exit = tokio::time::timeout(Duration::from_secs(15), replica.child.wait())
        .await
        .unwrap_or_else(|_| panic!("replica {name} did not exit after SIGTERM"))
        .unwrap();
    assert!(
        exit.success(),
        "replica {name} exited with {exit}:\n{}",
        replica.logs()
    );
    let restarted = Replica::start(instance, name, replica.port);
    restarted.wait_ready(client).await;
    wait_haproxy(client, stats_port, name, true).await;
    restarted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_behind_haproxy_drops_no_request() {
    let haproxy = haproxy_binary();
    let database = Database(create_postgres_database().await);
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance {
        database_url: format!("postgres://postgres@127.0.0.1:5432/{}", database.0),
        keyring: Keyring::generate().unwrap().to_text().as_str().to_owned(),
        dir: dir.path().to_owned(),
    };
    // The schema comes with the first command; the user and token the
    // load authenticates with, beforehand.
    instance.cli(
        &["users", "create", "--admin", "alice"],
        &format!("{PASSWORD}\n"),
    );
    let token = instance
        .cli(
            &["tokens", "create", "--user", "alice", "--note", "load"],
            "",
        )
        .trim()
        .to_owned();

    let (front, stats) = (free_port(), free_port());
    let a = Replica::start(&instance, "a", free_port());
    let b = Replica::start(&instance, "b", free_port());
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    a.wait_ready(&probe).await;
    b.wait_ready(&probe).await;

    let config = dir.path().join("haproxy.cfg");
    std::fs::write(&config, haproxy_config(front, stats, a.port, b.port)).unwrap();
    let mut balancer = tokio::process::Command::new(haproxy)
        .arg("-f")
        .arg(&config)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start haproxy");
    wait_haproxy(&probe, stats, "a", true).await;
    wait_haproxy(&probe, stats, "b", true).await;

    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(drive(
                format!("http://127.0.0.1:{front}"),
                token.clone(),
                Arc::clone(&load),
                Arc::clone(&stop),
            ))
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let a = restart(&instance, a, &probe, stats).await;
    let b = restart(&instance, b, &probe, stats).await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let sent = load.sent.load(Ordering::SeqCst);
    let failures = load.failures.lock().await.clone();
    eprintln!(
        "{} failed of {sent} requests through HAProxy during two rolling restarts ({:.1} s)",
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(sent > 0, "no load was driven");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed: {:?}\n--- a ---\n{}\n--- b ---\n{}",
        failures.len(),
        failures.iter().take(10).collect::<Vec<_>>(),
        a.logs(),
        b.logs()
    );
    let _ = balancer.kill().await;
}
