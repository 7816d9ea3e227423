//! Uploading a change for review, as Gerrit takes it: one commit pushed to
//! `refs/for/<base>`, never to a branch. Gerrit knows a change by the
//! `Change-Id` trailer at the end of the commit message, so every upload
//! with the changeset's Change-Id becomes a new patch set of the same
//! change, and an upload of the very commit it already has is answered
//! "no new changes".
//!
//! The same copy, signed, is how a local commit gets signed for code hosts
//! that verify SSH signatures (see [`super::signing`]).
//!
//! The trailer is added by writing a copy of the commit (same tree,
//! parents, author and dates, so the same input always gives the same
//! commit) in the push's scratch directory. A commit from the user's
//! repository is read there through git's alternates, so nothing is ever
//! written to the user's repository.

use std::path::{Path, PathBuf};

use super::PushError;
use super::Session;
use super::command::GitCommand;
use crate::crypto;

/// A Gerrit Change-Id: `I` followed by 40 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeId(String);

impl ChangeId {
    /// A new random Change-Id. Gerrit's commit-msg hook hashes the commit;
    /// batchcred only needs one that no other change has, once per
    /// changeset, and keeps it.
    pub fn generate() -> Result<Self, crypto::Error> {
        Ok(Self(format!("I{}", crypto::random_hex(20)?)))
    }

    /// A Change-Id as stored; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix('I')?;
        (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ChangeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a push puts its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushTarget {
    /// The head branch, replaced only where batchcred left it (see
    /// [`super::PushRequest::expected_head`]).
    Branch,
    /// A change for review on the base branch (Gerrit): the commit gets
    /// the `Change-Id` trailer and goes to `refs/for/<base>`, with the
    /// topic set to `topic` (the changeset's head branch), marked work in
    /// progress or ready for review. No lease: the code host keeps every
    /// upload as a patch set.
    Review {
        change_id: ChangeId,
        topic: String,
        work_in_progress: bool,
    },
}

/// The ref a review upload is pushed to. Gerrit reads what follows `%` as
/// options separated by `,`.
pub(super) fn review_ref(base_branch: &str, topic: &str, work_in_progress: bool) -> String {
    let state = if work_in_progress { "wip" } else { "ready" };
    format!("refs/for/{base_branch}%topic={topic},{state}")
}

/// Whether a topic can travel in a `%topic=` push option unchanged.
pub(super) fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains([',', '%'])
}

/// Whether a refused upload was refused only because the code host already
/// has this very commit as a patch set: nothing to do.
pub(super) fn is_no_new_changes(message: &str) -> bool {
    message.to_lowercase().contains("no new changes")
}

/// What a rewritten commit keeps from the original.
struct CommitParts {
    tree: String,
    parents: Vec<String>,
    author: (String, String, String),
    committer: (String, String, String),
    message: String,
}

impl Session<'_> {
    /// Uploads `commit` of `repo` as a patch set of the change `change_id`
    /// on `base`; answers the commit uploaded (the original with the
    /// trailer). `repo` is either the scratch work directory or the user's
    /// repository, which is only read.
    pub(super) async fn review_commit(
        &self,
        repo: &Path,
        commit: &str,
        change_id: &ChangeId,
    ) -> Result<(PathBuf, String), PushError> {
        self.copy_commit(repo, commit, Some(change_id)).await
    }

    /// Writes a signed copy of `commit` of `repo` (same tree, parents,
    /// author, committer, dates and message) in the scratch directory, and
    /// answers where it is and its id. Only the tip commit is signed.
    pub(super) async fn signed_copy(
        &self,
        repo: &Path,
        commit: &str,
    ) -> Result<(PathBuf, String), PushError> {
        self.copy_commit(repo, commit, None).await
    }

    /// Copies `commit` into a scratch repository, with the Change-Id
    /// trailer when one is given, signed when the push has a signing key.
    async fn copy_commit(
        &self,
        repo: &Path,
        commit: &str,
        change_id: Option<&ChangeId>,
    ) -> Result<(PathBuf, String), PushError> {
        let scratch = if repo.starts_with(self.home) {
            repo.to_owned()
        } else {
            self.borrowing_repository(repo).await?
        };
        let parts = self.commit_parts(&scratch, commit).await?;
        let message = match change_id {
            Some(change_id) => {
                self.local(
                    GitCommand::new(self.home)
                        .in_directory(&scratch)
                        .args(["interpret-trailers", "--if-exists", "replace", "--trailer"])
                        .arg(format!("Change-Id: {change_id}"))
                        .stdin(parts.message.as_str()),
                )
                .await?
            }
            // The message byte for byte (`%B` would add a newline).
            None => self.raw_message(&scratch, commit).await?,
        };
        let sign = if self.signer.is_some() {
            "-S"
        } else {
            "--no-gpg-sign"
        };
        let mut write = GitCommand::new(self.home).in_directory(&scratch).args([
            "commit-tree",
            sign,
            "-F",
            "-",
        ]);
        for parent in &parts.parents {
            write = write.arg("-p").arg(parent);
        }
        let (author_name, author_email, author_date) = &parts.author;
        let (committer_name, committer_email, committer_date) = &parts.committer;
        let written = self
            .write_commit(
                write
                    .arg("--end-of-options")
                    .arg(&parts.tree)
                    .env("GIT_AUTHOR_NAME", author_name)
                    .env("GIT_AUTHOR_EMAIL", author_email)
                    .env("GIT_AUTHOR_DATE", author_date)
                    .env("GIT_COMMITTER_NAME", committer_name)
                    .env("GIT_COMMITTER_EMAIL", committer_email)
                    .env("GIT_COMMITTER_DATE", committer_date)
                    .stdin(message),
            )
            .await?;
        Ok((scratch, written.trim().to_owned()))
    }

    /// Pushes `commit` for review; an upload the code host already has is
    /// not an error.
    pub(super) async fn push_for_review(
        &self,
        repo: &Path,
        remote_url: &str,
        base_branch: &str,
        (topic, work_in_progress): (&str, bool),
        commit: &str,
    ) -> Result<(), PushError> {
        let push = GitCommand::new(self.home)
            .in_directory(repo)
            .args(["push", "--no-verify", "--"])
            .arg(remote_url)
            .arg(format!(
                "{commit}:{}",
                review_ref(base_branch, topic, work_in_progress)
            ));
        match self.network(push).await {
            Err(PushError::Rejected(message)) if is_no_new_changes(&message) => {
                tracing::info!("the code host already has this patch set");
                Ok(())
            }
            other => other,
        }
    }

    /// A scratch repository that reads `repo`'s objects (git alternates)
    /// and writes its own.
    async fn borrowing_repository(&self, repo: &Path) -> Result<PathBuf, PushError> {
        let common = self
            .local(GitCommand::new(self.home).in_directory(repo).args([
                "rev-parse",
                "--path-format=absolute",
                "--git-common-dir",
            ]))
            .await?;
        let objects = Path::new(common.trim()).join("objects");
        let scratch = self.home.join("review");
        self.local(
            GitCommand::new(self.home)
                .args(["init", "--quiet", "--bare"])
                .arg(&scratch),
        )
        .await?;
        let alternates = scratch.join("objects").join("info").join("alternates");
        std::fs::write(&alternates, format!("{}\n", objects.display())).map_err(|error| {
            PushError::Other(format!("could not prepare the commit for review: {error}"))
        })?;
        Ok(scratch)
    }

    /// A commit's message exactly as stored: what follows the headers.
    async fn raw_message(&self, repo: &Path, commit: &str) -> Result<String, PushError> {
        let object = self
            .local(
                GitCommand::new(self.home)
                    .in_directory(repo)
                    .args(["cat-file", "commit"])
                    .arg(commit),
            )
            .await?;
        Ok(object
            .split_once("\n\n")
            .map(|(_, message)| message.to_owned())
            .unwrap_or_default())
    }

    async fn commit_parts(&self, repo: &Path, commit: &str) -> Result<CommitParts, PushError> {
        let show = |format: &str| {
            GitCommand::new(self.home)
                .in_directory(repo)
                .args(["log", "-1", "--date=raw"])
                .arg(format!("--format={format}"))
                .arg("--end-of-options")
                .arg(commit)
        };
        let header = self
            .local(show("%T%n%P%n%an%n%ae%n%ad%n%cn%n%ce%n%cd"))
            .await?;
        let message = self.local(show("%B")).await?;
        let lines: Vec<&str> = header.lines().collect();
        let field = |index: usize| lines.get(index).map_or(String::new(), |s| (*s).to_owned());
        if lines.len() < 8 {
            return Err(PushError::Other(format!(
                "could not read commit {commit} to add its Change-Id"
            )));
        }
        Ok(CommitParts {
            tree: field(0),
            parents: field(1).split_whitespace().map(str::to_owned).collect(),
            author: (field(2), field(3), field(4)),
            committer: (field(5), field(6), field(7)),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_ids_are_i_and_forty_hex_digits() {
        let id = ChangeId::generate().unwrap();
        assert_eq!(id.as_str().len(), 41);
        assert_eq!(ChangeId::parse(id.as_str()), Some(id.clone()));
        assert_ne!(ChangeId::generate().unwrap(), id);
        for bad in ["", "I123", "X0123456789abcdef0123456789abcdef01234567"] {
            assert_eq!(ChangeId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn uploads_go_to_refs_for_the_base_with_the_topic() {
        assert_eq!(
            review_ref("main", "batch/fix", false),
            "refs/for/main%topic=batch/fix,ready"
        );
        assert_eq!(review_ref("main", "b", true), "refs/for/main%topic=b,wip");
        assert!(is_valid_topic("batch/fix-1"));
        assert!(!is_valid_topic("a,b") && !is_valid_topic("50%") && !is_valid_topic(""));
        assert!(is_no_new_changes(
            "! [remote rejected] HEAD -> refs/for/main (no new changes)"
        ));
        assert!(!is_no_new_changes(
            "! [remote rejected] (prohibited by Gerrit)"
        ));
    }
}
