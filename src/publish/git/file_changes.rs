//! A committed change as whole files, for GitHub's `createCommitOnBranch`
//! (see [`crate::codehost::GitHub::create_commit_on_branch`], whose docs
//! give the whole flow): the files a commit adds or changes, with their
//! contents, and the paths it deletes, relative to a base commit.
//!
//! Not every change can be sent that way: GitHub writes every file as a
//! regular, non-executable file and takes whole contents in one request.
//! A change is refused, with the reason, when it touches a symbolic link
//! or a submodule, changes a file's mode or writes an executable file, has
//! a file over [`FileChangeLimits::max_file_bytes`] (binary or not), or
//! adds up to more than [`FileChangeLimits::max_total_encoded_bytes`]
//! once base64-encoded. The caller then pushes the commit unsigned and
//! says why. Renames are a deletion and an addition.

use std::path::Path;

use super::command::GitCommand;
use super::error::summarize;
use super::{PushError, PushOptions, private_scratch};
use crate::codehost::{FileAddition, FileChanges};

/// How much one signed commit may carry. GitHub documents no exact
/// limit for `createCommitOnBranch`, but refuses or times out on large
/// requests; these stay well below where that happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileChangeLimits {
    /// Largest single file written, in bytes before encoding.
    pub max_file_bytes: u64,
    /// Largest sum of every written file's base64 encoding, in bytes: the
    /// bulk of the request.
    pub max_total_encoded_bytes: u64,
}

/// 4 MiB per file, 10 MiB of base64 in all (about 7.5 MiB of files).
pub const DEFAULT_FILE_CHANGE_LIMITS: FileChangeLimits = FileChangeLimits {
    max_file_bytes: 4 * 1024 * 1024,
    max_total_encoded_bytes: 10 * 1024 * 1024,
};

impl Default for FileChangeLimits {
    fn default() -> Self {
        DEFAULT_FILE_CHANGE_LIMITS
    }
}

/// Why a change cannot be sent as file changes: each names the path and
/// what GitHub cannot do with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotExpressible {
    #[error("{path} is a symbolic link, which createCommitOnBranch cannot write or remove")]
    Symlink { path: String },
    #[error("{path} is a submodule, which createCommitOnBranch cannot write or remove")]
    Submodule { path: String },
    #[error(
        "{path} changes mode from {from} to {to}; createCommitOnBranch cannot change file modes"
    )]
    ModeChange {
        path: String,
        from: String,
        to: String,
    },
    #[error("{path} is executable; createCommitOnBranch writes only regular, non-executable files")]
    Executable { path: String },
    #[error(
        "{} {path} is {size} bytes, over the {limit}-byte limit per file for createCommitOnBranch",
        if *binary { "binary file" } else { "file" }
    )]
    FileTooLarge {
        path: String,
        size: u64,
        limit: u64,
        binary: bool,
    },
    #[error(
        "the changed files come to {size} bytes base64-encoded, over the {limit}-byte limit for one createCommitOnBranch request"
    )]
    TooLarge { size: u64, limit: u64 },
    #[error("a changed path is not UTF-8 ({path}), which GitHub's API cannot name")]
    PathNotUtf8 { path: String },
}

/// Why no file changes were produced.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileChangesError {
    /// The change is fine for git but not for GitHub's API: push it
    /// unsigned, and tell the user this reason.
    #[error("the change cannot be made as a commit signed by GitHub: {0}")]
    NotExpressible(#[from] NotExpressible),
    /// git failed (an unknown commit, an unreadable repository).
    #[error(transparent)]
    Git(#[from] PushError),
}

const REGULAR: &str = "100644";
const SYMLINK: &str = "120000";
const SUBMODULE: &str = "160000";

/// The changes from `base` to `commit` in the local repository `repo`,
/// as whole files within `limits`. Read with the same hardened git as a
/// push.
pub async fn file_changes(
    repo: &Path,
    base: &str,
    commit: &str,
    limits: &FileChangeLimits,
) -> Result<FileChanges, FileChangesError> {
    for rev in [base, commit] {
        if rev.is_empty() || rev.starts_with('-') {
            return Err(PushError::InvalidRequest(format!("{rev:?} is not a revision")).into());
        }
    }
    let home = private_scratch(&PushOptions::default())?;
    let result = collect(home.path(), repo, base, commit, limits).await;
    if let Err(error) = home.close() {
        tracing::warn!(%error, "could not remove a work directory");
    }
    result
}

/// [`file_changes`] with git's home at `home` (a push's scratch
/// directory).
pub(super) async fn collect(
    home: &Path,
    repo: &Path,
    base: &str,
    commit: &str,
    limits: &FileChangeLimits,
) -> Result<FileChanges, FileChangesError> {
    let git = || GitCommand::new(home).in_directory(repo);
    let raw = run(git()
        .args([
            "diff-tree",
            "-r",
            "-z",
            "--no-renames",
            "--raw",
            "--end-of-options",
        ])
        .args([base, commit]))
    .await?;
    let entries = parse_raw(&raw)?;
    let mut changes = FileChanges::default();
    let mut written = vec![];
    for entry in entries {
        let path = entry.path;
        for mode in [&entry.old_mode, &entry.new_mode] {
            match mode.as_str() {
                SYMLINK => return Err(NotExpressible::Symlink { path }.into()),
                SUBMODULE => return Err(NotExpressible::Submodule { path }.into()),
                _ => {}
            }
        }
        if entry.status == 'D' {
            changes.deletions.push(path);
            continue;
        }
        let added = entry.status == 'A';
        if !added && entry.old_mode != entry.new_mode {
            return Err(NotExpressible::ModeChange {
                path,
                from: entry.old_mode,
                to: entry.new_mode,
            }
            .into());
        }
        if entry.new_mode != REGULAR {
            // A new executable, or a changed one: GitHub does not promise
            // to keep its mode.
            return Err(NotExpressible::Executable { path }.into());
        }
        written.push((path, entry.new_blob));
    }
    let sizes = blob_sizes(git, &written).await?;
    let mut total: u64 = 0;
    for ((path, _), size) in written.iter().zip(&sizes) {
        if *size > limits.max_file_bytes {
            let binary = is_binary(git, base, commit, path).await?;
            return Err(NotExpressible::FileTooLarge {
                path: path.clone(),
                size: *size,
                limit: limits.max_file_bytes,
                binary,
            }
            .into());
        }
        total = total.saturating_add(size.div_ceil(3) * 4);
    }
    if total > limits.max_total_encoded_bytes {
        return Err(NotExpressible::TooLarge {
            size: total,
            limit: limits.max_total_encoded_bytes,
        }
        .into());
    }
    let contents = blob_contents(git, &written, &sizes).await?;
    changes.additions = written
        .into_iter()
        .zip(contents)
        .map(|((path, _), contents)| FileAddition { path, contents })
        .collect();
    Ok(changes)
}

/// One line of `git diff-tree --raw`.
struct RawEntry {
    old_mode: String,
    new_mode: String,
    new_blob: String,
    status: char,
    path: String,
}

/// Reads `:old new oldsha newsha S\0path\0` records.
fn parse_raw(raw: &[u8]) -> Result<Vec<RawEntry>, FileChangesError> {
    let malformed = || PushError::Other("git diff-tree printed something unexpected".to_owned());
    let mut fields = raw.split(|b| *b == 0).filter(|field| !field.is_empty());
    let mut entries = vec![];
    while let Some(header) = fields.next() {
        let header = std::str::from_utf8(header).map_err(|_| malformed())?;
        let parts: Vec<&str> = header.trim_start_matches(':').split(' ').collect();
        let [old_mode, new_mode, _, new_blob, status] = parts.as_slice() else {
            return Err(malformed().into());
        };
        let path = fields.next().ok_or_else(malformed)?;
        let path =
            String::from_utf8(path.to_vec()).map_err(|error| NotExpressible::PathNotUtf8 {
                path: String::from_utf8_lossy(error.as_bytes()).into_owned(),
            })?;
        entries.push(RawEntry {
            old_mode: (*old_mode).to_owned(),
            new_mode: (*new_mode).to_owned(),
            new_blob: (*new_blob).to_owned(),
            status: status.chars().next().ok_or_else(malformed)?,
            path,
        });
    }
    Ok(entries)
}

/// The size of each written blob, before reading any of them.
async fn blob_sizes(
    git: impl Fn() -> GitCommand,
    written: &[(String, String)],
) -> Result<Vec<u64>, FileChangesError> {
    if written.is_empty() {
        return Ok(vec![]);
    }
    let out = run(git()
        .args(["cat-file", "--batch-check=%(objectsize)"])
        .stdin(object_list(written)))
    .await?;
    let sizes: Vec<u64> = String::from_utf8_lossy(&out)
        .lines()
        .map(|line| line.trim().parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| PushError::Other("git cat-file could not read a changed file".to_owned()))?;
    if sizes.len() != written.len() {
        return Err(PushError::Other("git cat-file missed a changed file".to_owned()).into());
    }
    Ok(sizes)
}

/// The contents of each written blob, in one `git cat-file --batch`.
async fn blob_contents(
    git: impl Fn() -> GitCommand,
    written: &[(String, String)],
    sizes: &[u64],
) -> Result<Vec<Vec<u8>>, FileChangesError> {
    if written.is_empty() {
        return Ok(vec![]);
    }
    let out = run(git()
        .args(["cat-file", "--batch=%(objectsize)"])
        .stdin(object_list(written)))
    .await?;
    let short = || PushError::Other("git cat-file's output ended early".to_owned());
    let mut rest = out.as_slice();
    let mut contents = Vec::with_capacity(written.len());
    for size in sizes {
        // `<size>\n<contents>\n`
        let newline = rest.iter().position(|b| *b == b'\n').ok_or_else(short)?;
        let size = usize::try_from(*size).map_err(|_| short())?;
        let start = newline + 1;
        let body = rest.get(start..start + size).ok_or_else(short)?;
        contents.push(body.to_vec());
        rest = rest.get(start + size + 1..).unwrap_or_default();
    }
    Ok(contents)
}

/// Whether git counts `path`'s change as binary (`--numstat` shows `-`).
async fn is_binary(
    git: impl Fn() -> GitCommand,
    base: &str,
    commit: &str,
    path: &str,
) -> Result<bool, FileChangesError> {
    let out = run(git()
        .args([
            "diff-tree",
            "-r",
            "--no-renames",
            "--numstat",
            "--end-of-options",
        ])
        .args([base, commit, "--", path]))
    .await?;
    Ok(String::from_utf8_lossy(&out).starts_with("-\t-\t"))
}

fn object_list(written: &[(String, String)]) -> Vec<u8> {
    written
        .iter()
        .flat_map(|(_, blob)| format!("{blob}\n").into_bytes())
        .collect()
}

/// Runs a local git command; its stdout, or git's words as the error.
async fn run(command: GitCommand) -> Result<Vec<u8>, PushError> {
    let finished = command.run().await?;
    if finished.success {
        Ok(finished.stdout_bytes)
    } else {
        Err(PushError::Other(summarize(&finished.stderr, &[])))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::*;

    /// Runs git in `dir` with no user configuration; its stdout.
    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "T")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "T")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// A repository with a base commit; `change` edits its work tree,
    /// which is then committed. Returns the repository and the base.
    fn repo_with(change: impl FnOnce(&Path)) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "--quiet", "--initial-branch=main"]);
        std::fs::write(root.join("README.md"), "hello\n").unwrap();
        std::fs::create_dir_all(root.join("docs/deep")).unwrap();
        std::fs::write(root.join("docs/deep/old.txt"), "old\n").unwrap();
        std::fs::write(root.join("gone.txt"), "bye\n").unwrap();
        std::fs::write(root.join("run.sh"), "#!/bin/sh\n").unwrap();
        git(root, &["add", "-A"]);
        git(root, &["commit", "--quiet", "-m", "base"]);
        let base = git(root, &["rev-parse", "HEAD"]);
        change(root);
        git(root, &["add", "-A"]);
        git(
            root,
            &["commit", "--quiet", "--allow-empty", "-m", "change"],
        );
        (dir, base)
    }

    async fn changes_of(
        repo: &tempfile::TempDir,
        base: &str,
        limits: &FileChangeLimits,
    ) -> Result<FileChanges, FileChangesError> {
        file_changes(repo.path(), base, "HEAD", limits).await
    }

    fn refusal(result: Result<FileChanges, FileChangesError>) -> NotExpressible {
        match result {
            Err(FileChangesError::NotExpressible(reason)) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn additions_changes_deletions_and_renames_become_whole_files() {
        let (repo, base) = repo_with(|root| {
            std::fs::write(root.join("README.md"), "hello, world\n").unwrap();
            std::fs::create_dir_all(root.join("src/a/b")).unwrap();
            std::fs::write(root.join("src/a/b/new.rs"), "fn main() {}\n").unwrap();
            std::fs::write(root.join("bytes.bin"), [0u8, 159, 146, 150]).unwrap();
            std::fs::remove_file(root.join("gone.txt")).unwrap();
            std::fs::rename(root.join("docs/deep/old.txt"), root.join("docs/moved.txt")).unwrap();
        });
        let changes = changes_of(&repo, &base, &FileChangeLimits::default())
            .await
            .unwrap();
        let mut added: Vec<(&str, &[u8])> = changes
            .additions
            .iter()
            .map(|file| (file.path.as_str(), file.contents.as_slice()))
            .collect();
        added.sort();
        assert_eq!(
            added,
            [
                ("README.md", &b"hello, world\n"[..]),
                ("bytes.bin", &[0u8, 159, 146, 150][..]),
                ("docs/moved.txt", &b"old\n"[..]),
                ("src/a/b/new.rs", &b"fn main() {}\n"[..]),
            ]
        );
        let mut deleted = changes.deletions.clone();
        deleted.sort();
        assert_eq!(deleted, ["docs/deep/old.txt", "gone.txt"]);
    }

    #[tokio::test]
    async fn no_change_is_no_file_changes() {
        let (repo, base) = repo_with(|_| {});
        let changes = changes_of(&repo, &base, &FileChangeLimits::default())
            .await
            .unwrap();
        assert_eq!(changes, FileChanges::default());
    }

    #[tokio::test]
    async fn symlinks_submodules_and_modes_are_refused_by_name() {
        let (repo, base) = repo_with(|root| {
            std::os::unix::fs::symlink("README.md", root.join("link")).unwrap();
        });
        let reason = refusal(changes_of(&repo, &base, &FileChangeLimits::default()).await);
        assert_eq!(
            reason,
            NotExpressible::Symlink {
                path: "link".into()
            }
        );
        assert!(reason.to_string().contains("symbolic link"), "{reason}");

        let (repo, base) = repo_with(|root| {
            let mode = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(root.join("run.sh"), mode).unwrap();
        });
        let reason = refusal(changes_of(&repo, &base, &FileChangeLimits::default()).await);
        assert!(
            matches!(&reason, NotExpressible::ModeChange { path, from, to }
                if path == "run.sh" && from == "100644" && to == "100755"),
            "{reason:?}"
        );
        assert!(reason.to_string().contains("mode"), "{reason}");

        let (repo, base) = repo_with(|root| {
            std::fs::write(root.join("tool.sh"), "#!/bin/sh\n").unwrap();
            let mode = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(root.join("tool.sh"), mode).unwrap();
        });
        let reason = refusal(changes_of(&repo, &base, &FileChangeLimits::default()).await);
        assert_eq!(
            reason,
            NotExpressible::Executable {
                path: "tool.sh".into()
            }
        );

        let (repo, base) = repo_with(|root| {
            // A repository inside the work tree is added as a gitlink.
            let inner = root.join("vendor/lib");
            std::fs::create_dir_all(&inner).unwrap();
            git(&inner, &["init", "--quiet"]);
            git(
                &inner,
                &["commit", "--quiet", "--allow-empty", "-m", "inner"],
            );
        });
        let reason = refusal(changes_of(&repo, &base, &FileChangeLimits::default()).await);
        assert_eq!(
            reason,
            NotExpressible::Submodule {
                path: "vendor/lib".into()
            }
        );
        assert!(reason.to_string().contains("submodule"), "{reason}");
    }

    #[tokio::test]
    async fn files_over_the_limits_are_refused_saying_so() {
        let limits = FileChangeLimits {
            max_file_bytes: 1000,
            max_total_encoded_bytes: 2000,
        };
        let (repo, base) = repo_with(|root| {
            std::fs::write(root.join("big.bin"), vec![0u8; 1001]).unwrap();
        });
        let reason = refusal(changes_of(&repo, &base, &limits).await);
        assert_eq!(
            reason,
            NotExpressible::FileTooLarge {
                path: "big.bin".into(),
                size: 1001,
                limit: 1000,
                binary: true,
            }
        );
        assert!(
            reason
                .to_string()
                .starts_with("binary file big.bin is 1001 bytes")
        );

        let (repo, base) = repo_with(|root| {
            std::fs::write(root.join("big.txt"), "a".repeat(1001)).unwrap();
        });
        let reason = refusal(changes_of(&repo, &base, &limits).await);
        assert!(
            reason.to_string().starts_with("file big.txt is 1001 bytes"),
            "{reason}"
        );

        // Two files within the per-file limit, over the total once encoded.
        let (repo, base) = repo_with(|root| {
            std::fs::write(root.join("a.txt"), "a".repeat(900)).unwrap();
            std::fs::write(root.join("b.txt"), "b".repeat(900)).unwrap();
        });
        let reason = refusal(changes_of(&repo, &base, &limits).await);
        assert_eq!(
            reason,
            NotExpressible::TooLarge {
                size: 2400,
                limit: 2000
            }
        );
    }

    #[tokio::test]
    async fn options_are_not_taken_for_revisions() {
        let (repo, _) = repo_with(|_| {});
        let result =
            file_changes(repo.path(), "--output=/tmp/x", "HEAD", &Default::default()).await;
        assert!(matches!(
            result,
            Err(FileChangesError::Git(PushError::InvalidRequest(_)))
        ));
    }
}
