//! Publishing benchmark: batchcred publishes N changesets (diff applied on
//! `main`, pushed over HTTPS to git's http-backend, pull request opened
//! through the code host emulator), then a baseline does the same work
//! with bare `git clone`/`apply`/`commit`/`push` plus one `curl` per
//! changeset, at the same concurrency, against the same loopback servers.
//!
//! `cargo bench --bench publish` runs 200 changesets; under `cargo test`
//! (no `--bench` argument) it runs a few, as a smoke test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use batchcred::app::Server;
use batchcred::app::ServerConfig;
use batchcred::auth::Caller;
use batchcred::config::StoreConfig;
use batchcred::publish::{Backoff, ChangeSpec, ChangesetSpec};
use batchcred::service::{PublishSettings, SignInLimits};
use common::{PATCH, TOKEN, baseline_changeset, github_user};
use support::codehost::{EmulatedRepo, EmulatedToken, Emulator, GITHUB_SCOPES};
use support::git_http::GitHttpServer;

const REPOSITORIES: usize = 10;
const CONCURRENCY: usize = 8;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let changesets = if full { 200 } else { 4 };

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

    let batchcred = run_batchcred(&emulator, changesets).await;
    let baseline = run_baseline(&emulator, &git, changesets).await;
    assert_eq!(
        emulator.pulls().len(),
        2 * changesets,
        "every changeset got its pull request"
    );

    println!("publishing {changesets} changesets, {CONCURRENCY} at a time, over loopback:");
    println!(
        "  batchcred publish:            {:>8.2} s  ({:.1} changesets/s)",
        batchcred.as_secs_f64(),
        changesets as f64 / batchcred.as_secs_f64()
    );
    println!(
        "  baseline (git + curl):        {:>8.2} s  ({:.1} changesets/s)",
        baseline.as_secs_f64(),
        changesets as f64 / baseline.as_secs_f64()
    );
    println!(
        "  ratio batchcred / baseline:   {:>8.2}",
        batchcred.as_secs_f64() / baseline.as_secs_f64()
    );
}

async fn run_batchcred(emulator: &Emulator, changesets: usize) -> Duration {
    let data = tempfile::tempdir().unwrap();
    let store = StoreConfig {
        data_dir: data.path().join("data"),
        database_url: None,
        encryption_key_file: None,
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
        // The emulator has no secondary rate limits to respect.
        publish: PublishSettings {
            github_pull_request_interval: Duration::ZERO,
            backoff: Backoff::default(),
            ..PublishSettings::default()
        },
        sign_in: SignInLimits::default(),
        trusted_proxies: Vec::new(),
        notify: batchcred::service::NotifySettings::default(),
    };
    let server = Server::build(&store, &config).await.unwrap();
    let service = server.service().clone();
    let user = github_user(&service, &emulator.url("github")).await;
    let specs = (0..changesets)
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
    let started = Instant::now();
    let reports = service
        .publish_changesets(&Caller::Operator, user.id, specs, CONCURRENCY, None)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    for report in &reports {
        if let Err(error) = &report.outcome {
            panic!(
                "{}:{} failed: {error}",
                report.repository, report.head_branch
            );
        }
    }
    elapsed
}

async fn run_baseline(emulator: &Emulator, git: &GitHttpServer, changesets: usize) -> Duration {
    let origin = Arc::new(emulator.origin());
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..changesets {
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
