//! What the benchmarks share: the token and diff they publish, and the
//! baseline — the same work done by hand with git and curl — they are
//! measured against.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use batchcred::auth::Caller;
use batchcred::domain::UserAccount;
use batchcred::service::{AddCodeHost, CreateCredential, Service};
use secrecy::SecretString;

/// The token the code host emulator and the git server accept.
pub const TOKEN: &str = "ghp_benchmark";

/// The change every benchmark changeset carries.
pub const PATCH: &str = "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1,2 @@\n hello\n+world\n";

/// What a script would do by hand for one changeset.
/// A site admin `bench` with the benchmark's token for the GitHub code
/// host at `github_url`, which is added too.
pub async fn github_user(service: &Service, github_url: &str) -> UserAccount {
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
                url: github_url.to_owned(),
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
                url: github_url.to_owned(),
                username: None,
                token: TOKEN.into(),
                repository: None,
            },
        )
        .await
        .unwrap();
    user
}

pub async fn baseline_changeset(
    origin: Arc<String>,
    clone_url: String,
    repository: String,
    n: usize,
) {
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
