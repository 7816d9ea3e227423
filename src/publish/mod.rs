//! Publishing changesets to code hosts: what to publish ([`spec`]), pushing
//! the branch with the user's credential ([`git`]) to the code host and
//! nowhere else ([`remote`]), and keeping within the code hosts' rate
//! limits ([`pacing`]) and the machine's ([`jobs`]). The orchestration,
//! which needs the store and the credentials, is
//! `Service::publish_changesets`.

pub mod git;
pub mod jobs;
pub mod pacing;
pub mod remote;
pub mod spec;

pub use jobs::{GitJobSlot, GitJobs, default_git_jobs};
pub use pacing::{Backoff, Pacer};
pub use spec::{ChangeSpec, ChangesetSpec, SpecFile};
