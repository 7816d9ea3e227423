//! Commits GitHub creates (and signs) from a changeset's diff: the diff
//! is committed locally, turned into whole files by
//! `publish::git::file_changes`, and sent with `createCommitOnBranch` to
//! the GitHub emulator, which writes a real commit into a bare repository
//! a real git server serves. The tree GitHub ends up with must be the
//! tree of the local commit.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use batchcred::codehost::{
    ApiClient, CommitOnBranch, CommitOnBranchError, Error, FileChanges, GitHub,
};
use batchcred::domain::CodeHostUrl;
use batchcred::publish::git::{FileChangeLimits, FileChangesError, file_changes};
use secrecy::SecretString;

use crate::support::codehost::{Behaviour, EmulatedToken, Emulator};
use crate::support::git_http::{GitHttpServer, branch_sha, git};

const TOKEN: &str = "ghs_planted_installation_token_4d2a9c";
const REPOSITORY: &str = "acme/app";
const HEAD: &str = "batch/signed";

/// A GitHub (emulator) whose `acme/app` is a bare repository on a real
/// git server, with a local clone to make diffs in.
struct Setup {
    emulator: Emulator,
    server: GitHttpServer,
    github: GitHub,
    clone: tempfile::TempDir,
    /// The base branch's commit.
    base: String,
}

impl Setup {
    async fn new() -> Self {
        let server = GitHttpServer::start(TOKEN).await;
        let bare = server.create_repo("app");
        let clone = tempfile::tempdir().unwrap();
        let work = clone.path();
        git(work, &["clone", "--quiet", bare.to_str().unwrap(), "."]);
        std::fs::create_dir_all(work.join("src/deep/er")).unwrap();
        std::fs::write(work.join("src/deep/er/lib.rs"), "pub fn a() {}\n").unwrap();
        std::fs::write(work.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(work.join("obsolete.txt"), "remove me\n").unwrap();
        std::fs::write(work.join("old-name.md"), "moving\n").unwrap();
        git(work, &["add", "-A"]);
        git(work, &["commit", "--quiet", "-m", "Base files"]);
        git(work, &["push", "--quiet", "origin", "main"]);
        let base = git(work, &["rev-parse", "HEAD"]).trim().to_owned();

        let emulator = Emulator::start().await;
        emulator.add_token(
            TOKEN,
            EmulatedToken::new("acme-bot[bot]", &[]).pushing_to(REPOSITORY),
        );
        emulator.serve_commits_to(REPOSITORY, &bare);
        let url = CodeHostUrl::parse(&emulator.url("ghe")).unwrap();
        let api = ApiClient::new(Duration::from_secs(10)).unwrap();
        let github = GitHub::new(api, &url, format!("GitHub {url}"));
        Self {
            emulator,
            server,
            github,
            clone,
            base,
        }
    }

    fn bare(&self) -> std::path::PathBuf {
        self.server.repo_path("app")
    }

    /// Applies `patch` to the base commit and commits it, as a push does;
    /// returns the commit.
    fn commit_diff(&self, patch: &str) -> String {
        let work = self.clone.path();
        git(work, &["checkout", "--quiet", "--detach", &self.base]);
        let patch_file = work.join(".git/changeset.patch");
        std::fs::write(&patch_file, patch).unwrap();
        git(work, &["apply", "--index", patch_file.to_str().unwrap()]);
        git(work, &["commit", "--quiet", "-m", "Apply the batch change"]);
        git(work, &["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// Creates (or resets) the head branch at the base commit: GitHub
    /// only commits on a branch that exists.
    fn reset_head_branch(&self) {
        git(
            &self.bare(),
            &["update-ref", &format!("refs/heads/{HEAD}"), &self.base],
        );
    }

    async fn create(
        &self,
        token: &str,
        expected_head: &str,
        changes: &FileChanges,
    ) -> Result<batchcred::codehost::CreatedCommit, CommitOnBranchError> {
        self.github
            .create_commit_on_branch(
                &SecretString::from(token),
                &CommitOnBranch {
                    repository: REPOSITORY,
                    branch: HEAD,
                    expected_head,
                    message: "Apply the batch change\n\nMade by batchcred.",
                    changes,
                },
            )
            .await
    }
}

/// A diff adding, changing, deleting and renaming files, some nested.
const PATCH: &str = "\
diff --git a/README.md b/README.md
--- a/README.md
+++ b/README.md
@@ -1 +1,2 @@
 hello
+world
diff --git a/src/deep/er/lib.rs b/src/deep/er/lib.rs
--- a/src/deep/er/lib.rs
+++ b/src/deep/er/lib.rs
@@ -1 +1 @@
-pub fn a() {}
+pub fn b() {}
diff --git a/src/deep/er/new/mod.rs b/src/deep/er/new/mod.rs
new file mode 100644
--- /dev/null
+++ b/src/deep/er/new/mod.rs
@@ -0,0 +1 @@
+pub mod x;
diff --git a/obsolete.txt b/obsolete.txt
deleted file mode 100644
--- a/obsolete.txt
+++ /dev/null
@@ -1 +0,0 @@
-remove me
diff --git a/old-name.md b/docs/new-name.md
similarity index 100%
rename from old-name.md
rename to docs/new-name.md
";

#[tokio::test(flavor = "multi_thread")]
async fn a_diff_becomes_a_github_commit_with_the_locally_committed_tree() {
    let setup = Setup::new().await;
    let local = setup.commit_diff(PATCH);
    let changes = file_changes(setup.clone.path(), &setup.base, &local, &Default::default())
        .await
        .unwrap();
    let mut deleted = changes.deletions.clone();
    deleted.sort();
    assert_eq!(deleted, ["obsolete.txt", "old-name.md"]);
    assert_eq!(changes.additions.len(), 4, "{changes:?}");

    setup.reset_head_branch();
    let created = setup.create(TOKEN, &setup.base, &changes).await.unwrap();
    assert_eq!(
        branch_sha(&setup.bare(), HEAD).as_deref(),
        Some(created.oid.as_str())
    );
    assert!(
        created
            .url
            .ends_with(&format!("/{REPOSITORY}/commit/{}", created.oid))
    );

    // Fetched over HTTP like any clone would: the same tree as the local
    // commit, one parent (the base), the message kept.
    let work = setup.clone.path();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x:{TOKEN}"));
    git(
        work,
        &[
            "-c",
            &format!("http.extraHeader=Authorization: Basic {basic}"),
            "fetch",
            "--quiet",
            &setup.server.url("app"),
            &format!("refs/heads/{HEAD}"),
        ],
    );
    let tree = |rev: &str| git(work, &["rev-parse", &format!("{rev}^{{tree}}")]);
    assert_eq!(tree("FETCH_HEAD"), tree(&local));
    assert_eq!(git(work, &["rev-parse", "FETCH_HEAD^@"]).trim(), setup.base);
    assert_eq!(
        git(work, &["log", "-1", "--format=%B", "FETCH_HEAD"]).trim(),
        "Apply the batch change\n\nMade by batchcred."
    );
    assert_eq!(setup.emulator.commits_created(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_expected_head_is_branch_moved_and_changes_nothing() {
    let setup = Setup::new().await;
    let local = setup.commit_diff(PATCH);
    let changes = file_changes(setup.clone.path(), &setup.base, &local, &Default::default())
        .await
        .unwrap();
    setup.reset_head_branch();
    // Someone else moved the head branch since batchcred reset it.
    let bare = setup.bare();
    let work = setup.clone.path();
    git(
        work,
        &[
            "push",
            "--quiet",
            "--force",
            bare.to_str().unwrap(),
            &format!("HEAD:refs/heads/{HEAD}"),
        ],
    );
    let moved = branch_sha(&bare, HEAD).unwrap();

    let error = setup
        .create(TOKEN, &setup.base, &changes)
        .await
        .unwrap_err();
    match &error {
        CommitOnBranchError::BranchMoved {
            repository,
            branch,
            expected,
            detail,
            ..
        } => {
            assert_eq!((repository.as_str(), branch.as_str()), (REPOSITORY, HEAD));
            assert_eq!(expected, &setup.base);
            assert!(detail.contains("Expected branch to point to"), "{detail}");
        }
        other => panic!("expected BranchMoved, got {other:?}"),
    }
    assert!(!error.to_string().contains(TOKEN));
    assert_eq!(branch_sha(&bare, HEAD), Some(moved));
    assert_eq!(setup.emulator.commits_created(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_tokens_missing_permissions_and_rate_limits_are_told_apart() {
    let setup = Setup::new().await;
    setup.reset_head_branch();
    let changes = FileChanges::default();

    let unknown = "ghs_unknown_token_0b7e";
    let error = setup
        .create(unknown, &setup.base, &changes)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            CommitOnBranchError::CodeHost(Error::Rejected { .. })
        ),
        "{error:?}"
    );
    assert!(!error.to_string().contains(unknown), "{error}");

    // A token that works but was not granted this repository.
    let elsewhere = "ghs_other_repository_5c1d";
    setup.emulator.add_token(
        elsewhere,
        EmulatedToken::new("other[bot]", &[]).pushing_to("acme/other"),
    );
    let error = setup
        .create(elsewhere, &setup.base, &changes)
        .await
        .unwrap_err();
    match &error {
        CommitOnBranchError::CodeHost(Error::Rejected { detail, .. }) => {
            assert!(
                detail.contains("Resource not accessible by integration"),
                "{detail}"
            );
            assert!(detail.contains("Contents: read and write"), "{detail}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!error.to_string().contains(elsewhere), "{error}");

    setup.emulator.set_behaviour(Behaviour::RateLimited(30));
    let error = setup
        .create(TOKEN, &setup.base, &changes)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            CommitOnBranchError::CodeHost(Error::RateLimited {
                retry_after: Some(_),
                ..
            })
        ),
        "{error:?}"
    );
    assert!(!error.to_string().contains(TOKEN), "{error}");
    assert_eq!(setup.emulator.commits_created(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_branch_or_repository_is_not_mistaken_for_a_moved_branch() {
    let setup = Setup::new().await;
    // The head branch was never created.
    let error = setup
        .create(TOKEN, &setup.base, &FileChanges::default())
        .await
        .unwrap_err();
    match &error {
        CommitOnBranchError::CodeHost(Error::Unexpected { detail, .. }) => {
            assert!(detail.contains(HEAD), "{detail}");
        }
        other => panic!("expected Unexpected, got {other:?}"),
    }
    let error = setup
        .github
        .create_commit_on_branch(
            &SecretString::from(TOKEN),
            &CommitOnBranch {
                repository: "acme/nowhere",
                branch: HEAD,
                expected_head: &setup.base,
                message: "m",
                changes: &FileChanges::default(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CommitOnBranchError::CodeHost(Error::RepositoryNotFound { repository, .. }) if repository == "acme/nowhere"),
        "{error:?}"
    );
}

/// Something done to a work tree before committing it.
type WorkTreeChange = Box<dyn FnOnce(&Path)>;

/// A local commit on the base, made by `change` in the clone's work tree.
fn commit_in(setup: &Setup, change: impl FnOnce(&Path)) -> String {
    let work = setup.clone.path();
    git(work, &["checkout", "--quiet", "--detach", &setup.base]);
    // Nothing left from an earlier case (a submodule stays behind).
    git(work, &["clean", "-qffdx"]);
    change(work);
    git(work, &["add", "-A"]);
    git(work, &["commit", "--quiet", "-m", "change"]);
    git(work, &["rev-parse", "HEAD"]).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_github_cannot_write_are_refused_with_their_reason() {
    use std::os::unix::fs::PermissionsExt;
    let setup = Setup::new().await;
    let small = FileChangeLimits {
        max_file_bytes: 4096,
        max_total_encoded_bytes: 8192,
    };
    let refusal = |result: Result<FileChanges, FileChangesError>| -> String {
        match result {
            Err(error @ FileChangesError::NotExpressible(_)) => error.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    let work = setup.clone.path().to_owned();
    let cases: Vec<(&str, WorkTreeChange)> = vec![
        (
            "link is a symbolic link",
            Box::new(|w| std::os::unix::fs::symlink("README.md", w.join("link")).unwrap()),
        ),
        (
            "src/main.rs changes mode from 100644 to 100755",
            Box::new(|w| {
                let mode = std::fs::Permissions::from_mode(0o755);
                std::fs::set_permissions(w.join("src/main.rs"), mode).unwrap();
            }),
        ),
        (
            "file notes.txt is 5000 bytes, over the 4096-byte limit per file",
            Box::new(|w| std::fs::write(w.join("notes.txt"), "n".repeat(5000)).unwrap()),
        ),
        (
            "binary file logo.png is 4097 bytes, over the 4096-byte limit per file",
            Box::new(|w| std::fs::write(w.join("logo.png"), vec![0u8; 4097]).unwrap()),
        ),
        (
            "over the 8192-byte limit",
            Box::new(|w| {
                for name in ["a.txt", "b.txt", "c.txt"] {
                    std::fs::write(w.join(name), "x".repeat(3000)).unwrap();
                }
            }),
        ),
        (
            "vendor/lib is a submodule",
            Box::new(|w| {
                let inner = w.join("vendor/lib");
                std::fs::create_dir_all(&inner).unwrap();
                git(&inner, &["init", "--quiet"]);
                git(
                    &inner,
                    &["commit", "--quiet", "--allow-empty", "-m", "inner"],
                );
            }),
        ),
    ];
    for (reason, change) in cases {
        let local = commit_in(&setup, change);
        let message = refusal(file_changes(&work, &setup.base, &local, &small).await);
        assert!(
            message.starts_with("the change cannot be made as a commit signed by GitHub: "),
            "{message}"
        );
        assert!(message.contains(reason), "{reason}: {message}");
    }
    // Within the limits, a plain file is fine.
    let local = commit_in(&setup, |w| {
        std::fs::write(w.join("ok.txt"), "fine\n").unwrap()
    });
    let changes = file_changes(&work, &setup.base, &local, &small)
        .await
        .unwrap();
    assert_eq!(changes.additions.len(), 1);
}
