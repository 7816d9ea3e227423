//! A changeset: one branch and pull request batchcred publishes, with how
//! far publishing got and where its job stands in the queue.

use chrono::{DateTime, Utc};

use super::{ChangesetId, CodeHostId, CredentialId, UserId};

/// How far publishing a changeset got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangesetState {
    /// Recorded, nothing done yet (or a previous attempt was interrupted).
    Pending,
    /// The branch is pushed; the pull request is not yet open.
    Pushed,
    /// The pull request is open.
    Published,
    Failed,
}

impl ChangesetState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Pushed => "pushed",
            Self::Published => "published",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for ChangesetState {
    type Err = ();

    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        match s {
            "pending" => Ok(Self::Pending),
            "pushed" => Ok(Self::Pushed),
            "published" => Ok(Self::Published),
            "failed" => Ok(Self::Failed),
            _ => Err(()),
        }
    }
}

/// What a changeset's job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    /// Push the branch and open or update the pull request.
    Publish,
    /// Close the pull request (and maybe delete the branch).
    Close,
    Reopen,
    /// Read the pull request's state from the code host.
    Sync,
}

/// Where a changeset's job is in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    /// A worker holds its lease.
    Processing,
    Completed,
    /// Failed for now; queued again after its back-off.
    Errored,
    /// Given up: a permanent error, or too many attempts.
    Failed,
}

macro_rules! text_enum {
    ($type:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $type {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $type {
            type Err = ();

            fn from_str(s: &str) -> std::result::Result<Self, ()> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(()),
                }
            }
        }
    };
}

text_enum!(JobAction { Publish => "publish", Close => "close", Reopen => "reopen", Sync => "sync" });
text_enum!(JobState {
    Queued => "queued",
    Processing => "processing",
    Completed => "completed",
    Errored => "errored",
    Failed => "failed",
});

#[derive(Debug, Clone)]
pub struct ChangesetRecord {
    pub id: ChangesetId,
    pub user_id: UserId,
    pub code_host_id: CodeHostId,
    pub repository: String,
    pub base_branch: String,
    pub head_branch: String,
    pub spec_hash: String,
    pub state: ChangesetState,
    pub credential_id: Option<CredentialId>,
    /// `user` or `site`.
    pub credential_source: Option<String>,
    pub pushed_commit: Option<String>,
    /// The commit an attempt was about to push, recorded before pushing
    /// (recorded by the store before the push starts).
    pub pushing_commit: Option<String>,
    pub pr_number: Option<i64>,
    pub pr_url: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set by a hand-over: the owner before it.
    pub previous_user_id: Option<UserId>,
    /// The site admin who handed it over (`None` with `handed_over_at` set:
    /// the local operator).
    pub handed_over_by: Option<UserId>,
    pub handed_over_at: Option<DateTime<Utc>>,
    /// The pull request's title.
    pub title: String,
    /// The job last asked for (`None`: none ever was, as for a changeset
    /// published with `--local`).
    pub job_action: Option<JobAction>,
    pub job_state: JobState,
    /// Claims of the current job so far.
    pub job_attempts: i64,
    /// Bumped by every request for a job (a job requested while one runs is queued again when it ends).
    pub job_version: i64,
    /// The job is not claimed before this time.
    pub process_after: DateTime<Utc>,
    /// Whether closing also deletes the head branch.
    pub delete_branch_on_close: bool,
    /// What the code host last said of the pull request.
    pub external_state: Option<String>,
    pub review_state: Option<String>,
    pub checks_state: Option<String>,
    pub synced_at: Option<DateTime<Utc>>,
    /// Tracked by number (imported), not published by batchcred.
    pub imported: bool,
    /// Gerrit: the `Change-Id` (`I` + 40 hex) of the change this changeset
    /// uploads, kept so that every publish adds a patch set to the same
    /// change (recorded once, before the first push).
    pub change_id: Option<String>,
}

impl ChangesetRecord {
    /// Whether `user` may publish this changeset: its owner, or anyone when
    /// it is a failed attempt that never pushed a commit or opened a pull
    /// request (a user who cannot publish there, say), so that nobody can
    /// reserve a repository's branch by failing on it first.
    pub fn claimable_by(&self, user: UserId) -> bool {
        self.user_id == user
            || (self.state == ChangesetState::Failed
                && self.pushed_commit.is_none()
                && self.pushing_commit.is_none()
                && self.pr_number.is_none())
    }
}
