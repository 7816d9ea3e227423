//! Pushing branches with `batchcred::publish::git` to real git servers:
//! smart HTTP (`git http-backend`) with a token, and OpenSSH with a
//! generated key.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use batchcred::crypto::generate_ssh_keypair;
use batchcred::domain::SshKeyAlgorithm;
use batchcred::publish::git::{
    Change, CommitSigning, GitAuth, PushError, PushOptions, PushRequest, PushTarget, Pushed,
    push_with,
};
use secrecy::{ExposeSecret, SecretString};

use crate::support::git_http::{
    GitHttpServer, branch_sha, create_bare_repo, git, install_pre_receive_hook,
};
use crate::support::sshd::Sshd;

const TOKEN: &str = "ghp_planted_token_7b1f0c2e9a";

fn https(token: &str) -> GitAuth {
    GitAuth::Https {
        username: "x-access-token".to_owned(),
        token: SecretString::from(token),
    }
}

/// A clone of `bare` with one more commit on top of `main` changing
/// `README.md` to `contents`; returns the clone and the commit.
fn local_commit(bare: &Path, contents: &str) -> (tempfile::TempDir, String) {
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "--quiet", bare.to_str().unwrap(), "."],
    );
    std::fs::write(work.path().join("README.md"), contents).unwrap();
    git(work.path(), &["commit", "--quiet", "-am", "Change README"]);
    let sha = git(work.path(), &["rev-parse", "HEAD"]).trim().to_owned();
    (work, sha)
}

fn commit_request(url: String, repo: &Path, head: &str) -> PushRequest {
    PushRequest {
        remote_url: url,
        base_branch: "main".to_owned(),
        head_branch: head.to_owned(),
        expected_head: None,
        interrupted_head: None,
        change: Change::Commit {
            repo: repo.to_owned(),
            rev: "HEAD".to_owned(),
        },
        target: PushTarget::Branch,
        signing: None,
    }
}

/// A scratch root per test, so its leftovers can be checked in isolation.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn options(&self) -> PushOptions {
        PushOptions {
            scratch_root: self.0.path().to_owned(),
        }
    }

    /// Nothing of the push remains: no files, no FIFO, no agent socket, and
    /// no process (ssh-agent) started with a path inside the scratch root.
    fn assert_clean(&self) {
        let leftovers: Vec<PathBuf> = std::fs::read_dir(self.0.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
        let root = self.0.path().to_string_lossy().into_owned();
        let survivors: Vec<String> = processes()
            .filter(|(_, cmdline, _)| contains(cmdline, root.as_bytes()))
            .map(|(pid, cmdline, _)| format!("{pid}: {}", String::from_utf8_lossy(&cmdline)))
            .collect();
        assert!(survivors.is_empty(), "still running: {survivors:?}");
    }
}

/// Every process's id, command line and environment that can be read.
pub(crate) fn processes() -> impl Iterator<Item = (String, Vec<u8>, Vec<u8>)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .map(|entry| {
            let read = |name: &str| std::fs::read(entry.path().join(name)).unwrap_or_default();
            (
                entry.file_name().to_string_lossy().into_owned(),
                read("cmdline"),
                read("environ"),
            )
        })
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_push_of_a_local_commit_uses_the_given_username() {
    let server = GitHttpServer::start(TOKEN).await;
    let bare = server.create_repo("repo");
    let (work, sha) = local_commit(&bare, "changed\n");
    let scratch = Scratch::new();

    let pushed = push_with(
        &commit_request(server.url("repo"), work.path(), "batch/readme"),
        &https(TOKEN),
        &scratch.options(),
    )
    .await
    .unwrap();

    assert_eq!(
        pushed,
        Pushed {
            commit: sha.clone()
        }
    );
    assert_eq!(branch_sha(&bare, "batch/readme"), Some(sha));
    let usernames = server.usernames();
    assert!(!usernames.is_empty());
    assert!(
        usernames.iter().all(|name| name == "x-access-token"),
        "{usernames:?}"
    );
    // The local repository's configuration was not touched.
    let config = std::fs::read_to_string(work.path().join(".git/config")).unwrap();
    assert!(!config.contains(TOKEN));
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_token_is_an_authentication_failure_with_gits_message() {
    let server = GitHttpServer::start(TOKEN).await;
    let bare = server.create_repo("repo");
    let (work, _) = local_commit(&bare, "changed\n");
    let scratch = Scratch::new();
    let wrong = "ghp_wrong_token_0123456789";

    let error = push_with(
        &commit_request(server.url("repo"), work.path(), "batch/readme"),
        &https(wrong),
        &scratch.options(),
    )
    .await
    .unwrap_err();

    let PushError::AuthenticationFailed(message) = &error else {
        panic!("expected AuthenticationFailed, got {error:?}");
    };
    assert!(message.contains("Authentication failed"), "{message}");
    assert!(
        !message.contains(wrong) && !message.contains(TOKEN),
        "{message}"
    );
    assert!(!error.to_string().contains('\n'));
    assert_eq!(branch_sha(&bare, "batch/readme"), None);
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_is_applied_on_the_base_branch_and_pushed() {
    let server = GitHttpServer::start(TOKEN).await;
    let bare = server.create_repo("repo");
    let main = branch_sha(&bare, "main").unwrap();
    // The patch comes from a clone that is then thrown away.
    let (work, _) = local_commit(&bare, "hello\nfrom a diff\n");
    let patch = git(work.path(), &["diff", "HEAD~1", "HEAD"]);
    drop(work);
    let scratch = Scratch::new();

    let request = PushRequest {
        remote_url: server.url("repo"),
        base_branch: "main".to_owned(),
        head_branch: "batch/diff".to_owned(),
        expected_head: None,
        interrupted_head: None,
        change: Change::Diff {
            patch,
            message: "Apply the batch change\n\nWith a body.".to_owned(),
            author_name: "Ada Lovelace".to_owned(),
            author_email: "ada@example.com".to_owned(),
        },
        target: PushTarget::Branch,
        signing: None,
    };
    let pushed = push_with(&request, &https(TOKEN), &scratch.options())
        .await
        .unwrap();

    assert_eq!(branch_sha(&bare, "batch/diff"), Some(pushed.commit.clone()));
    let git_dir = format!("--git-dir={}", bare.display());
    let show = |what: &str| {
        git(
            Path::new("/"),
            &[&git_dir, "show", "-s", what, &pushed.commit],
        )
    };
    assert_eq!(show("--format=%P").trim(), main);
    assert_eq!(
        show("--format=%an <%ae>").trim(),
        "Ada Lovelace <ada@example.com>"
    );
    assert_eq!(show("--format=%s").trim(), "Apply the batch change");
    let contents = git(Path::new("/"), &[&git_dir, "show", "batch/diff:README.md"]);
    assert_eq!(contents, "hello\nfrom a diff\n");
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diff_that_does_not_apply_is_reported_as_such() {
    let server = GitHttpServer::start(TOKEN).await;
    server.create_repo("repo");
    let scratch = Scratch::new();
    let patch = "--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-not what is there\n+x\n";
    let request = PushRequest {
        remote_url: server.url("repo"),
        base_branch: "main".to_owned(),
        head_branch: "batch/diff".to_owned(),
        expected_head: None,
        interrupted_head: None,
        change: Change::Diff {
            patch: patch.to_owned(),
            message: "m".to_owned(),
            author_name: "A".to_owned(),
            author_email: "a@example.com".to_owned(),
        },
        target: PushTarget::Branch,
        signing: None,
    };
    let error = push_with(&request, &https(TOKEN), &scratch.options())
        .await
        .unwrap_err();
    let PushError::PatchDoesNotApply(message) = &error else {
        panic!("expected PatchDoesNotApply, got {error:?}");
    };
    assert!(message.contains("patch failed"), "{message}");
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn pushing_again_replaces_the_branch() {
    let server = GitHttpServer::start(TOKEN).await;
    let bare = server.create_repo("repo");
    let scratch = Scratch::new();
    let (first, first_sha) = local_commit(&bare, "first\n");
    // An unrelated second commit: not a fast-forward of the first.
    let (second, second_sha) = local_commit(&bare, "second\n");
    let mut expected_head = None;
    for (work, sha) in [(&first, &first_sha), (&second, &second_sha)] {
        let mut request = commit_request(server.url("repo"), work.path(), "batch/readme");
        // Where the previous push left the branch: the lease to replace it.
        request.expected_head = expected_head.take();
        let pushed = push_with(&request, &https(TOKEN), &scratch.options())
            .await
            .unwrap();
        expected_head = Some(pushed.commit.clone());
        assert_eq!(&pushed.commit, sha);
        assert_eq!(branch_sha(&bare, "batch/readme").as_ref(), Some(sha));
    }
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejecting_pre_receive_hook_surfaces_gits_message() {
    let server = GitHttpServer::start(TOKEN).await;
    let bare = server.create_repo("repo");
    install_pre_receive_hook(
        &bare,
        "echo 'GL-HOOK-ERR: You are not allowed to push to protected branch' >&2\nexit 1",
    );
    let (work, _) = local_commit(&bare, "changed\n");
    let scratch = Scratch::new();
    let mut request = commit_request(server.url("repo"), work.path(), "main");
    // The lease allows replacing main, so the push reaches the hook.
    request.expected_head = branch_sha(&bare, "main");

    let error = push_with(&request, &https(TOKEN), &scratch.options())
        .await
        .unwrap_err();

    let PushError::Rejected(message) = &error else {
        panic!("expected Rejected, got {error:?}");
    };
    assert!(message.contains("[remote rejected]"), "{message}");
    assert!(message.contains("pre-receive hook declined"), "{message}");
    assert!(
        message.contains("remote: GL-HOOK-ERR: You are not allowed"),
        "{message}"
    );
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_only_offered_to_the_remote_urls_origin() {
    let server = GitHttpServer::start(TOKEN).await;
    let bare = server.create_repo("repo");
    // Another server that would accept the token, and a local repository
    // whose configuration diverts pushes there.
    let elsewhere = GitHttpServer::start(TOKEN).await;
    elsewhere.create_repo("repo");
    let (work, _) = local_commit(&bare, "changed\n");
    let real_origin = format!("http://{}/", server.address);
    let other_origin = format!("http://{}/", elsewhere.address);
    git(
        work.path(),
        &[
            "config",
            &format!("url.{other_origin}.pushInsteadOf"),
            &real_origin,
        ],
    );
    let scratch = Scratch::new();

    let error = push_with(
        &commit_request(server.url("repo"), work.path(), "batch/readme"),
        &https(TOKEN),
        &scratch.options(),
    )
    .await
    .unwrap_err();

    assert!(
        matches!(error, PushError::AuthenticationFailed(_)),
        "{error:?}"
    );
    assert!(elsewhere.usernames().is_empty(), "the token went elsewhere");
    assert_eq!(
        branch_sha(&elsewhere.repo_path("repo"), "batch/readme"),
        None
    );
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_asks_for_credentials_does_not_hang_the_push() {
    let server = GitHttpServer::start_without_auth().await;
    let bare = server.create_repo("repo");
    let (work, sha) = local_commit(&bare, "changed\n");
    let scratch = Scratch::new();

    let pushed = tokio::time::timeout(
        Duration::from_secs(60),
        push_with(
            &commit_request(server.url("repo"), work.path(), "batch/anonymous"),
            &https(TOKEN),
            &scratch.options(),
        ),
    )
    .await
    .expect("push finished")
    .unwrap();

    assert_eq!(pushed.commit, sha);
    assert!(server.usernames().is_empty());
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_host_is_reported_as_such() {
    // Bind then drop a listener: nothing accepts on that port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bare_dir = tempfile::tempdir().unwrap();
    let bare = bare_dir.path().join("repo.git");
    create_bare_repo(&bare);
    let (work, _) = local_commit(&bare, "changed\n");
    let scratch = Scratch::new();
    let error = push_with(
        &commit_request(
            format!("http://127.0.0.1:{port}/repo.git"),
            work.path(),
            "b",
        ),
        &https(TOKEN),
        &scratch.options(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, PushError::Unreachable(_)), "{error:?}");
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_in_no_process_command_line_or_environment_during_a_push() {
    let server = GitHttpServer::start(TOKEN).await;
    let bare = server.create_repo("repo");
    // The hook holds the push open until the test has looked at /proc.
    let gate = tempfile::tempdir().unwrap();
    let started = gate.path().join("started");
    let release = gate.path().join("release");
    install_pre_receive_hook(
        &bare,
        &format!(
            "touch '{}'\ni=0\nwhile [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\nexit 0",
            started.display(),
            release.display()
        ),
    );
    let (work, sha) = local_commit(&bare, "changed\n");
    let scratch = Scratch::new();
    let mut request = commit_request(server.url("repo"), work.path(), "batch/watched");
    // The commit is signed too: the signing key must not show either.
    let signing_key = generate_ssh_keypair(SshKeyAlgorithm::Ed25519, "signing@test").unwrap();
    let private_lines: Vec<String> = signing_key
        .private_key
        .expose_secret()
        .lines()
        .filter(|line| !line.starts_with("-----") && line.len() > 20)
        .map(str::to_owned)
        .collect();
    assert!(!private_lines.is_empty());
    request.signing = Some(CommitSigning {
        private_key: signing_key.private_key,
        public_key: signing_key.public_key,
    });
    let options = scratch.options();
    let push = tokio::spawn(async move { push_with(&request, &https(TOKEN), &options).await });

    let waiting = Instant::now();
    while !started.exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "the hook never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));
    let url = server.url("repo");
    let mut pushing = Vec::new();
    let mut agents = 0;
    for (pid, cmdline, environ) in processes() {
        let needles = [TOKEN, basic.as_str()]
            .into_iter()
            .chain(private_lines.iter().map(String::as_str));
        for needle in needles {
            assert!(
                !contains(&cmdline, needle.as_bytes()),
                "token in the command line of {pid}"
            );
            assert!(
                !contains(&environ, needle.as_bytes()),
                "token in the environment of {pid}"
            );
        }
        if contains(&cmdline, b"push") && contains(&cmdline, url.as_bytes()) {
            pushing.push(pid);
        }
        let root = scratch.0.path().to_string_lossy().into_owned();
        if contains(&cmdline, b"ssh-agent") && contains(&cmdline, root.as_bytes()) {
            agents += 1;
        }
    }
    // The scan really happened while the client was pushing, with the
    // signing agent holding the key.
    assert!(!pushing.is_empty(), "no git push process was seen");
    assert_eq!(agents, 1, "no signing agent was seen");
    std::fs::write(&release, "").unwrap();

    let pushed = push.await.unwrap().unwrap();
    // A signed copy of the local commit, with the same tree.
    assert_ne!(pushed.commit, sha);
    assert_eq!(
        git(
            &bare,
            &["rev-parse", &format!("{}^{{tree}}", pushed.commit)]
        ),
        git(work.path(), &["rev-parse", &format!("{sha}^{{tree}}")])
    );
    assert!(git(&bare, &["cat-file", "commit", &pushed.commit]).contains("gpgsig"));
    scratch.assert_clean();
}

/// A generated Ed25519 key as batchcred stores it, and sshd trusting it.
fn ssh_setup() -> (GitAuth, Sshd, tempfile::TempDir, PathBuf) {
    let pair = generate_ssh_keypair(SshKeyAlgorithm::Ed25519, "batchcred@test").unwrap();
    let sshd = Sshd::start(&[&pair.public_key]);
    let auth = GitAuth::Ssh {
        private_key: pair.private_key,
        public_key: pair.public_key,
        known_hosts: sshd.known_hosts(),
    };
    let repos = tempfile::tempdir().unwrap();
    let bare = repos.path().join("repo.git");
    create_bare_repo(&bare);
    (auth, sshd, repos, bare)
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_push_with_a_generated_ed25519_key_works() {
    let (auth, sshd, _repos, bare) = ssh_setup();
    let (work, sha) = local_commit(&bare, "over ssh\n");
    let scratch = Scratch::new();

    let result = push_with(
        &commit_request(sshd.url(&bare), work.path(), "batch/ssh"),
        &auth,
        &scratch.options(),
    )
    .await;

    let pushed = result.unwrap_or_else(|error| panic!("{error}\nsshd log:\n{}", sshd.log()));
    assert_eq!(pushed.commit, sha);
    assert_eq!(branch_sha(&bare, "batch/ssh"), Some(sha));
    // The agent is gone and its socket removed with the scratch directory.
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_diff_push_fetches_the_base_over_ssh() {
    let (auth, sshd, _repos, bare) = ssh_setup();
    let (work, _) = local_commit(&bare, "hello\nvia ssh diff\n");
    let patch = git(work.path(), &["diff", "HEAD~1", "HEAD"]);
    let scratch = Scratch::new();
    let request = PushRequest {
        remote_url: sshd.url(&bare),
        base_branch: "main".to_owned(),
        head_branch: "batch/ssh-diff".to_owned(),
        expected_head: None,
        interrupted_head: None,
        change: Change::Diff {
            patch,
            message: "Via SSH".to_owned(),
            author_name: "A".to_owned(),
            author_email: "a@example.com".to_owned(),
        },
        target: PushTarget::Branch,
        signing: None,
    };
    let pushed = push_with(&request, &auth, &scratch.options())
        .await
        .unwrap_or_else(|error| panic!("{error}\nsshd log:\n{}", sshd.log()));
    assert_eq!(branch_sha(&bare, "batch/ssh-diff"), Some(pushed.commit));
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_different_host_key_is_a_host_key_mismatch() {
    let (auth, sshd, _repos, bare) = ssh_setup();
    let GitAuth::Ssh {
        private_key,
        public_key,
        ..
    } = auth
    else {
        unreachable!()
    };
    // Record some other key for the server's address.
    let impostor = generate_ssh_keypair(SshKeyAlgorithm::Ed25519, "impostor").unwrap();
    let impostor_key: Vec<&str> = impostor.public_key.split_whitespace().take(2).collect();
    let auth = GitAuth::Ssh {
        private_key,
        public_key,
        known_hosts: format!("[127.0.0.1]:{} {}\n", sshd.port, impostor_key.join(" ")),
    };
    let (work, _) = local_commit(&bare, "changed\n");
    let scratch = Scratch::new();

    let error = push_with(
        &commit_request(sshd.url(&bare), work.path(), "batch/ssh"),
        &auth,
        &scratch.options(),
    )
    .await
    .unwrap_err();

    let PushError::HostKeyMismatch(message) = &error else {
        panic!("expected HostKeyMismatch, got {error:?}");
    };
    assert!(
        message.contains("Host key verification failed"),
        "{message}"
    );
    assert_eq!(branch_sha(&bare, "batch/ssh"), None);
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unauthorized_ssh_key_is_an_authentication_failure() {
    let (_, sshd, _repos, bare) = ssh_setup();
    let stranger = generate_ssh_keypair(SshKeyAlgorithm::Ed25519, "stranger").unwrap();
    let auth = GitAuth::Ssh {
        private_key: stranger.private_key,
        public_key: stranger.public_key,
        known_hosts: sshd.known_hosts(),
    };
    let (work, _) = local_commit(&bare, "changed\n");
    let scratch = Scratch::new();
    let error = push_with(
        &commit_request(sshd.url(&bare), work.path(), "batch/ssh"),
        &auth,
        &scratch.options(),
    )
    .await
    .unwrap_err();
    let PushError::AuthenticationFailed(message) = &error else {
        panic!("expected AuthenticationFailed, got {error:?}");
    };
    assert!(
        message.contains("Permission denied (publickey)"),
        "{message}"
    );
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn no_recorded_host_key_is_refused_before_connecting() {
    let pair = generate_ssh_keypair(SshKeyAlgorithm::Ed25519, "batchcred@test").unwrap();
    let auth = GitAuth::Ssh {
        private_key: pair.private_key,
        public_key: pair.public_key,
        known_hosts: String::new(),
    };
    let scratch = Scratch::new();
    // Nothing listens there: only a refusal before connecting passes.
    let request = commit_request(
        "ssh://git@127.0.0.1:1/repo.git".to_owned(),
        Path::new("/nonexistent"),
        "batch/ssh",
    );
    let error = push_with(&request, &auth, &scratch.options())
        .await
        .unwrap_err();
    assert_eq!(error, PushError::MissingKnownHosts);
    assert!(error.to_string().contains("known_hosts"), "{error}");
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_test_git_server_accepts_gzipped_requests() {
    // git compresses fetch negotiations over 1 KiB: a clone with many
    // local commits fetching one new remote commit sends a large one.
    let server = GitHttpServer::start(TOKEN).await;
    let bare = server.create_repo("repo");
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "--quiet", bare.to_str().unwrap(), "."],
    );
    // Many local commits in one `git fast-import` run.
    let base = git(work.path(), &["rev-parse", "HEAD"]);
    let mut stream = String::new();
    for n in 0..200 {
        let message = format!("local {n}\n");
        stream += &format!(
            "commit refs/heads/main\ncommitter T <t@example.com> {} +0000\ndata {}\n{message}",
            // Newer than the shared commit, so negotiation sends them first.
            4_000_000_000u64 + n,
            message.len()
        );
        if n == 0 {
            stream += &format!("from {base}");
        }
    }
    let mut import = std::process::Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(work.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut import.stdin.take().unwrap(), stream.as_bytes()).unwrap();
    assert!(import.wait().unwrap().success());
    let (upstream, new_sha) = local_commit(&bare, "new upstream\n");
    git(upstream.path(), &["push", "--quiet", "origin", "HEAD:main"]);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("test:{TOKEN}"));
    let header = format!("http.extraHeader=Authorization: Basic {basic}");
    git(
        work.path(),
        &[
            "-c",
            &header,
            "fetch",
            "--quiet",
            &server.url("repo"),
            "main",
        ],
    );
    assert_eq!(
        git(work.path(), &["rev-parse", "FETCH_HEAD"]).trim(),
        new_sha
    );
    assert!(server.gzipped_requests() > 0, "no request was gzipped");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_private_key_is_refused_and_leaves_nothing_behind() {
    let pair = generate_ssh_keypair(SshKeyAlgorithm::Ed25519, "batchcred@test").unwrap();
    let auth = GitAuth::Ssh {
        private_key: SecretString::from("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n"),
        public_key: pair.public_key,
        known_hosts: "[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPuyMPEazNrS/jlvpqk9o24Ryhr28qC6Ggx5nHC6xy6N\n".to_owned(),
    };
    let scratch = Scratch::new();
    let request = commit_request(
        "ssh://git@127.0.0.1:1/repo.git".to_owned(),
        Path::new("/nonexistent"),
        "batch/ssh",
    );
    let error = push_with(&request, &auth, &scratch.options())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PushError::InvalidRequest(m) if m.contains("private key")),
        "{error:?}"
    );
    scratch.assert_clean();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_cannot_sign_fails_the_push_with_a_signing_error_and_pushes_nothing() {
    let server = GitHttpServer::start(TOKEN).await;
    let bare = server.create_repo("repo");
    let scratch = Scratch::new();
    let loaded = generate_ssh_keypair(SshKeyAlgorithm::Ed25519, "loaded").unwrap();
    let other = generate_ssh_keypair(SshKeyAlgorithm::Ed25519, "other").unwrap();
    let request = PushRequest {
        remote_url: server.url("repo"),
        base_branch: "main".to_owned(),
        head_branch: "batch/unsignable".to_owned(),
        expected_head: None,
        interrupted_head: None,
        change: Change::Diff {
            patch: "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1,2 @@\n hello\n+world\n".to_owned(),
            message: "Sign me".to_owned(),
            author_name: "A".to_owned(),
            author_email: "a@example.com".to_owned(),
        },
        target: PushTarget::Branch,
        // The agent holds one key; git is told to sign with another.
        signing: Some(CommitSigning {
            private_key: loaded.private_key,
            public_key: other.public_key,
        }),
    };
    let error = push_with(&request, &https(TOKEN), &scratch.options())
        .await
        .unwrap_err();
    assert!(matches!(error, PushError::Signing(_)), "{error:?}");
    assert!(error.to_string().contains("could not be signed"), "{error}");
    assert_eq!(branch_sha(&bare, "batch/unsignable"), None);
    scratch.assert_clean();
}
