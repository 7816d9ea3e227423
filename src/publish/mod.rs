//! Publishing changesets to code hosts: what to publish ([`spec`]), pushing
//! the branch with the user's credential ([`git`]), and keeping within the
//! code hosts' rate limits ([`pacing`]). The orchestration, which needs the
//! store and the credentials, is `Service::publish_changesets`.

pub mod git;
pub mod pacing;
pub mod spec;

pub use pacing::{Backoff, Pacer};
pub use spec::{ChangeSpec, ChangesetSpec, SpecFile};
