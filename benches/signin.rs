//! Sign-in flood benchmark: starts the real `batchcred serve` binary on a
//! temporary SQLite instance, creates the site admin, then fires N
//! concurrent sign-ins with wrong passwords (all from 127.0.0.1, each for
//! another name) while sampling the server's resident memory
//! (`VmRSS` in `/proc/<pid>/status`), and finally signs the admin in from
//! 127.0.0.2 ("another client"), which must succeed.
//!
//! `cargo bench --bench signin` fires 1,000, three times over, and asserts
//! the server stays under 300 MB during and after the floods; under `cargo test` (no
//! `--bench` argument) it fires 20 as a smoke test and asserts nothing
//! about memory or time. Cargo builds the server binary with the same
//! profile (`CARGO_BIN_EXE_batchcred`): release for `cargo bench`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

const PASSWORD: &str = "bench admin password";
const RSS_LIMIT_KB: u64 = 300 * 1024;
/// Floods one after the other: memory must not grow from one to the next.
const ROUNDS: usize = 3;
/// The server's log, in the temporary directory: every 503 is an error
/// line there (the HTTP trace layer's rule), too many to print.
const SERVER_LOG: &str = "server.log";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let flood = if full { 1000 } else { 20 };

    let data = tempfile::tempdir().unwrap();
    let address = free_loopback_address();
    let mut server = Server::start(data.path(), address);
    let base = format!("http://{address}");
    wait_until_healthy(&base, &data.path().join(SERVER_LOG)).await;

    let created = reqwest::Client::new()
        .post(format!("{base}/-/site-init"))
        .json(&json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "site admin created");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kb = rss_kb(server.pid());

    let peak_kb = Arc::new(AtomicU64::new(idle_kb));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak_kb, sampling, pid) = (peak_kb.clone(), sampling.clone(), server.pid());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak_kb.fetch_max(rss_kb(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let started = Instant::now();
        let counts = flood_once(&client, &base, round, flood).await;
        let flood_time = started.elapsed();
        // Let the last checks finish and the allocator settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        rounds.push((counts, flood_time, rss_kb(server.pid())));
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let after_kb = rounds.last().map_or(0, |round| round.2);
    let peak_kb = peak_kb.load(Ordering::Relaxed).max(after_kb);

    let elsewhere = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    let signed_in = Instant::now();
    let status = elsewhere
        .post(format!("{base}/-/sign-in"))
        .json(&json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .status();
    let sign_in_time = signed_in.elapsed();
    server.stop();

    println!(
        "{ROUNDS} floods of {flood} concurrent wrong sign-ins from 127.0.0.1, server RSS sampled every 5 ms:"
    );
    for (n, (counts, time, rss)) in rounds.iter().enumerate() {
        println!(
            "  flood {}: {:>4} × 401, {:>4} × 429, {:>4} × 503 in {:.2} s; RSS 2 s later {:.1} MB",
            n + 1,
            counts.unauthorized,
            counts.throttled,
            counts.busy,
            time.as_secs_f64(),
            mb(*rss)
        );
    }
    println!("  RSS idle:      {:>7.1} MB", mb(idle_kb));
    println!("  RSS peak:      {:>7.1} MB", mb(peak_kb));
    println!("  RSS at the end: {:>6.1} MB", mb(after_kb));
    println!(
        "  admin from 127.0.0.2 afterwards: {status} in {} ms",
        sign_in_time.as_millis()
    );

    assert_eq!(status, 200, "a right sign-in from elsewhere succeeds");
    for (counts, _, _) in &rounds {
        assert_eq!(counts.other + counts.errors, 0, "only 401, 429 and 503");
        assert_eq!(counts.total(), flood);
    }
    if full {
        assert!(peak_kb < RSS_LIMIT_KB, "peak RSS {peak_kb} kB");
        assert!(after_kb < RSS_LIMIT_KB, "RSS after {after_kb} kB");
    }
}

/// Fires `flood` concurrent wrong sign-ins, each for another name.
async fn flood_once(client: &reqwest::Client, base: &str, round: usize, flood: usize) -> Tally {
    let mut attempts = tokio::task::JoinSet::new();
    for n in 0..flood {
        let (client, url) = (client.clone(), format!("{base}/-/sign-in"));
        attempts.spawn(async move {
            client
                .post(url)
                .json(&json!({ "username": format!("user{round}-{n}"), "password": "wrong password" }))
                .send()
                .await
                .map(|response| response.status().as_u16())
        });
    }
    let mut counts = Tally::default();
    for answer in attempts.join_all().await {
        counts.add(answer);
    }
    counts
}

#[derive(Default)]
struct Tally {
    unauthorized: usize,
    throttled: usize,
    busy: usize,
    other: usize,
    errors: usize,
}

impl Tally {
    fn add(&mut self, answer: reqwest::Result<u16>) {
        match answer {
            Ok(401) => self.unauthorized += 1,
            Ok(429) => self.throttled += 1,
            Ok(503) => self.busy += 1,
            Ok(status) => {
                eprintln!("unexpected status {status}");
                self.other += 1;
            }
            Err(error) => {
                eprintln!("request failed: {error}");
                self.errors += 1;
            }
        }
    }

    fn total(&self) -> usize {
        self.unauthorized + self.throttled + self.busy + self.other + self.errors
    }
}

/// The server process, stopped when dropped.
struct Server(Child);

impl Server {
    fn start(data_dir: &std::path::Path, address: SocketAddr) -> Self {
        let log = std::fs::File::create(data_dir.join(SERVER_LOG)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_batchcred"))
            .arg("serve")
            .env_clear()
            .env("BATCHCRED_DATA_DIR", data_dir.join("data"))
            .env("BATCHCRED_LISTEN", address.to_string())
            .env("BATCHCRED_RECHECK_INTERVAL_HOURS", "0")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start batchcred serve");
        Self(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port nobody listens on (freed just before the server binds
/// it).
fn free_loopback_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn wait_until_healthy(base: &str, log: &std::path::Path) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("the server did not become healthy in 30 s:\n{log}");
}

/// The process's resident set size in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}
