//! `batchcred publish SPEC`: a bulk run killed halfway resumes where it
//! stopped, opens no duplicates, and leaves no token in its output or on
//! disk.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::{batchcred, ok};
use crate::publish::PATCH;
use crate::support::codehost::{Behaviour, EmulatedRepo, EmulatedToken, Emulator, GITHUB_SCOPES};
use crate::support::git_http::GitHttpServer;

const TOKEN: &str = "ghp_bulkPLANTEDtoken";
const CHANGESETS: usize = 6;

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_bulk_run_resumes_without_duplicates() {
    let emulator = Emulator::start().await;
    emulator.add_token(TOKEN, EmulatedToken::new("alice-gh", GITHUB_SCOPES));
    let git = GitHttpServer::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let scratch = dir.path().join("tmp");
    std::fs::create_dir(&scratch).unwrap();
    let code_host = emulator.url("github");

    ok(&batchcred(
        &data,
        &["users", "create", "--admin", "alice"],
        "correct horse battery\n",
    ));
    ok(&batchcred(
        &data,
        &["codehosts", "add", "--kind", "GITHUB", "--url", &code_host],
        "",
    ));
    ok(&batchcred(
        &data,
        &[
            "credentials",
            "add",
            "--user",
            "alice",
            "--kind",
            "GITHUB",
            "--url",
            &code_host,
        ],
        &format!("{TOKEN}\n"),
    ));
    let mut changesets = Vec::new();
    for n in 0..CHANGESETS {
        let name = format!("repo{n}");
        git.create_repo(&name);
        emulator.add_repository(
            &format!("acme/{name}"),
            EmulatedRepo {
                http_clone_url: git.url(&name),
                ssh_clone_url: None,
            },
        );
        changesets.push(json!({
            "code_host": code_host, "repository": format!("acme/{name}"), "base_branch": "main",
            "head_branch": "batch/bulk", "title": format!("Bulk change {n}"),
            "change": {"diff": {"patch": PATCH}}
        }));
    }
    let spec = dir.path().join("spec.json");
    std::fs::write(&spec, json!({ "changesets": changesets }).to_string()).unwrap();
    let run = |log: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_batchcred"));
        command
            .args(["publish", "--user", "alice", "--concurrency", "1"])
            .arg(&spec)
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", log)
            .env("TMPDIR", &scratch)
            .env_remove("BATCHCRED_DATABASE_URL")
            .env_remove("BATCHCRED_ENCRYPTION_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };

    // First run: slow code host, killed once two pull requests are open.
    emulator.set_behaviour(Behaviour::Slow(Duration::from_millis(300)));
    let mut first = run("trace").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while emulator.pulls().len() < 2 {
        assert!(Instant::now() < deadline, "the first run made no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap();
    let killed = first.wait_with_output().unwrap();
    assert!(!killed.status.success());
    let opened_before = emulator.pulls().len();
    assert!(
        opened_before < CHANGESETS,
        "the run finished before it was killed"
    );

    // Second run: finishes the rest, redoing nothing already recorded.
    emulator.set_behaviour(Behaviour::Normal);
    let second = run("trace").output().unwrap();
    let summary = String::from_utf8_lossy(&second.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&second.stderr).into_owned();
    assert!(second.status.success(), "{summary}\n{stderr}");
    assert!(summary.contains("unchanged"), "{summary}");
    assert!(summary.contains("opened"), "{summary}");
    assert!(summary.contains("/acme/repo5/pull/"), "{summary}");

    // Exactly one pull request per changeset.
    let pulls = emulator.pulls();
    assert_eq!(pulls.len(), CHANGESETS, "{pulls:?}");
    let mut repositories: Vec<_> = pulls.iter().map(|p| p.repository.clone()).collect();
    repositories.sort();
    repositories.dedup();
    assert_eq!(repositories.len(), CHANGESETS);

    // A third run has nothing to do.
    let third = run("warn").output().unwrap();
    let summary = String::from_utf8_lossy(&third.stdout);
    assert!(
        summary.contains(&format!(
            "0 opened, 0 updated, {CHANGESETS} unchanged, 0 failed"
        )),
        "{summary}"
    );

    // The token appears in no output, log line or file.
    for output in [&killed, &second, &third] {
        for stream in [&output.stdout, &output.stderr] {
            assert!(!String::from_utf8_lossy(stream).contains(TOKEN));
        }
    }
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG") || stderr.contains("INFO"),
        "no logs captured: {stderr}"
    );
    assert_eq!(files_containing(dir.path(), TOKEN), Vec::<String>::new());
    // The finished runs cleaned up their scratch directories.
    let left: Vec<_> = std::fs::read_dir(&scratch).unwrap().flatten().collect();
    assert!(left.len() <= 1, "scratch left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_spec_files_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&batchcred(
        &data,
        &["users", "create", "--admin", "alice"],
        "correct horse battery\n",
    ));
    let spec = dir.path().join("spec.json");
    std::fs::write(&spec, "{\"changesets\": [{\"title\": 1}]}").unwrap();
    let out = batchcred(
        &data,
        &["publish", "--user", "alice", spec.to_str().unwrap()],
        "",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.json is not a valid changeset list"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
