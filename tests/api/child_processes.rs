//! Nothing a push starts outlives batchcred: a `batchcred publish` killed
//! with SIGKILL while git talks to the code host leaves no git, no
//! `git-remote-http` and no credential helper running, and the next start
//! removes the work directory it left.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::cli::{batchcred, ok};
use crate::publish::PATCH;
use crate::support::codehost::{EmulatedRepo, EmulatedToken, Emulator, GITHUB_SCOPES};

const TOKEN: &str = "ghp_childPROCESStoken";

/// A git HTTP "server" that holds every request until released, then asks
/// for credentials (401) forever. While held, git is mid-request; once
/// released, a git that survived batchcred would ask its credential helper,
/// whose reader would then wait on a pipe nobody writes: the hang seen in
/// the field.
struct HeldGitServer {
    address: std::net::SocketAddr,
    requests: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl HeldGitServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let counter = Arc::clone(&requests);
        let server = tokio::spawn(async move {
            while let Ok((mut connection, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                let mut released = released.clone();
                tokio::spawn(async move {
                    // Read the request head; the body (if any) is ignored.
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match connection.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    if released.wait_for(|released| *released).await.is_err() {
                        return;
                    }
                    let _ = connection
                        .write_all(
                            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
                              Content-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                    let _ = connection.shutdown().await;
                });
            }
        });
        Self {
            address,
            requests,
            release,
            server,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/repo.git", self.address)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for HeldGitServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Live processes (not zombies) whose environment mentions `needle`, as
/// `pid: command line`. Every process a push starts has its work directory,
/// under the temporary folder, as `HOME`, and inherits `TMPDIR`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let read = |file: &str| std::fs::read(entry.path().join(file)).unwrap_or_default();
        let stat = String::from_utf8_lossy(&read("stat")).into_owned();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned));
        if matches!(state.as_deref(), None | Some("Z" | "X")) {
            continue;
        }
        let environ = read("environ");
        if environ
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
        {
            let cmdline = String::from_utf8_lossy(&read("cmdline")).replace('\0', " ");
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}

/// The work directories under `root`.
fn work_dirs(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(batchcred::publish::git::WORK_DIR_PREFIX))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_publish_leaves_no_process_and_its_work_dir_is_swept() {
    let emulator = Emulator::start().await;
    emulator.add_token(TOKEN, EmulatedToken::new("alice-gh", GITHUB_SCOPES));
    let git = HeldGitServer::start().await;
    emulator.add_repository(
        "acme/held",
        EmulatedRepo {
            http_clone_url: git.url(),
            ssh_clone_url: None,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The temporary folder of the batchcred runs below: a unique path, so
    // their processes and work directories can be told from any other's.
    let scratch = dir.path().join("tmp");
    std::fs::create_dir(&scratch).unwrap();
    let scratch_text = scratch.to_str().unwrap().to_owned();
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
    let spec = dir.path().join("spec.json");
    let changeset = json!({
        "code_host": code_host, "repository": "acme/held", "base_branch": "main",
        "head_branch": "batch/held", "title": "Held",
        "change": {"diff": {"patch": PATCH}}
    });
    std::fs::write(&spec, json!({ "changesets": [changeset] }).to_string()).unwrap();
    let publish = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_batchcred"));
        command
            .args(["publish", "--user", "alice"])
            .arg(&spec)
            .arg("--data-dir")
            .arg(&data)
            .env("TMPDIR", &scratch)
            .env_remove("BATCHCRED_DATABASE_URL")
            .env_remove("BATCHCRED_ENCRYPTION_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };

    // A run killed while git waits on the code host.
    let mut first = publish().spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while git.requests() == 0 {
        assert!(Instant::now() < deadline, "git never reached the code host");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let running = processes_mentioning(&scratch_text);
    assert!(
        running.iter().any(|process| process.contains("git")),
        "no git process was seen while it ran: {running:?}"
    );
    first.kill().unwrap(); // SIGKILL: no destructor, no signal handler runs
    let killed = first.wait_with_output().unwrap();
    assert!(!killed.status.success());
    // Git would now be told to authenticate, and its helper would wait for
    // an answer that can no longer come.
    git.release.send_replace(true);

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut survivors = processes_mentioning(&scratch_text);
    while !survivors.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        survivors = processes_mentioning(&scratch_text);
    }
    assert!(
        survivors.is_empty(),
        "still running after batchcred was killed: {survivors:?}"
    );
    let left = work_dirs(&scratch);
    assert_eq!(left.len(), 1, "the killed run left {left:?}");

    // The next start removes it (this run's push fails: the code host only
    // answers 401 now; its own work directory is removed as it ends).
    let second = publish().output().unwrap();
    assert!(!second.status.success());
    let summary = String::from_utf8_lossy(&second.stdout);
    assert!(summary.contains("1 failed"), "{summary}");
    assert_eq!(work_dirs(&scratch), Vec::<String>::new());
    assert_eq!(processes_mentioning(&scratch_text), Vec::<String>::new());
}
