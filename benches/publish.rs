//! Publishing benchmark: batchcred publishes N changesets (diff applied on
//! `main`, pushed over HTTPS to git's http-backend, pull request opened
//! through the code host emulator), then a baseline does the same work
//! with bare `git clone`/`apply`/`commit`/`push` plus one `curl` per
//! changeset, at the same concurrency, against the same loopback servers.
//!
//! `cargo bench --bench publish` runs 200 changesets; under `cargo test`
//! (no `--bench` argument) it runs a few, as a smoke test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchcred::app::Server;
use batchcred::auth::Caller;
use batchcred::config::{ServerConfig, StoreConfig};
use batchcred::publish::{Backoff, ChangeSpec, ChangesetSpec};
use batchcred::service::{AddCodeHost, CreateCredential, PublishSettings, SignInLimits};
use secrecy::SecretString;
use support::codehost::{EmulatedRepo, EmulatedToken, Emulator, GITHUB_SCOPES};
use support::git_http::GitHttpServer;

const TOKEN: &str = "ghp_benchmark";
const REPOSITORIES: usize = 10;
const CONCURRENCY: usize = 8;
const PATCH: &str = "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1,2 @@\n hello\n+world\n";

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
    let operator = Caller::Operator;
    let user = service
        .create_user(
            &operator,
            "bench",
            SecretString::from("bench password"),
            true,
        )
        .await
        .unwrap();
    service
        .add_code_host(
            &operator,
            AddCodeHost {
                kind: "GITHUB".parse().unwrap(),
                url: emulator.url("github"),
                git_url_type: "http".parse().unwrap(),
                ssh_known_hosts: None,
                ssh_key_algorithm: "ed25519".parse().unwrap(),
            },
        )
        .await
        .unwrap();
    service
        .create_credential(
            &operator,
            CreateCredential {
                user: Some(user.id),
                kind: "GITHUB".parse().unwrap(),
                url: emulator.url("github"),
                username: None,
                token: TOKEN.into(),
                repository: None,
            },
        )
        .await
        .unwrap();
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
        .publish_changesets(&operator, user.id, specs, CONCURRENCY, None)
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

/// What a script would do by hand for one changeset.
async fn baseline_changeset(origin: Arc<String>, clone_url: String, repository: String, n: usize) {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let header = format!("Authorization: Basic {}", basic(TOKEN));
    let git = |args: Vec<String>, cwd: &Path| {
        let mut command = tokio::process::Command::new("git");
        command
            .current_dir(cwd)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_0", &header)
            .env("GIT_AUTHOR_NAME", "bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com");
        command
    };
    let run = |mut command: tokio::process::Command| async move {
        let output = command.output().await.unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let head = format!("baseline/{n}");
    run(git(
        vec![
            "clone".into(),
            "--quiet".into(),
            "--depth=1".into(),
            "--branch=main".into(),
            clone_url,
            "repo".into(),
        ],
        dir,
    ))
    .await;
    let repo = dir.join("repo");
    std::fs::write(dir.join("change.patch"), PATCH).unwrap();
    run(git(
        vec!["apply".into(), "--index".into(), "../change.patch".into()],
        &repo,
    ))
    .await;
    run(git(
        vec![
            "commit".into(),
            "--quiet".into(),
            "-m".into(),
            format!("Change {n}"),
        ],
        &repo,
    ))
    .await;
    run(git(
        vec![
            "push".into(),
            "--quiet".into(),
            "--force".into(),
            "origin".into(),
            format!("HEAD:refs/heads/{head}"),
        ],
        &repo,
    ))
    .await;
    let body = serde_json::json!({"title": format!("Change {n}"), "head": head, "base": "main", "body": ""});
    let mut curl = tokio::process::Command::new("curl");
    curl.args([
        "-sS",
        "-f",
        "-o",
        "/dev/null",
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {TOKEN}"),
        "-d",
    ])
    .arg(body.to_string())
    .arg(format!("{origin}/github/api/v3/repos/{repository}/pulls"));
    run(curl).await;
}

fn basic(token: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
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
