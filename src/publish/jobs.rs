//! Bounds on git work (fetch, apply, commit, push: each a scratch checkout
//! on disk and a few processes): at most so many at once on the whole
//! server and at most so many for one user, shared by every request, so a
//! few large publishes cannot fill the disk or the process table or starve
//! other users.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::UserId;

/// The server-wide and per-user slots for git work.
#[derive(Debug, Clone)]
pub struct GitJobs {
    all: Arc<Semaphore>,
    per_user_limit: usize,
    per_user: Arc<Mutex<HashMap<UserId, Arc<Semaphore>>>>,
}

/// Held while one git job runs; dropping it frees both slots.
#[derive(Debug)]
pub struct GitJobSlot {
    _user: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

impl GitJobs {
    /// At most `total` jobs at once, and `per_user` for any one user (both
    /// at least 1).
    pub fn new(total: usize, per_user: usize) -> Self {
        Self {
            all: Arc::new(Semaphore::new(total.max(1))),
            per_user_limit: per_user.max(1),
            per_user: Arc::default(),
        }
    }

    /// Waits for a slot for `user`: first one of theirs, so a user queued
    /// behind their own jobs does not hold a server-wide slot meanwhile.
    pub async fn start(&self, user: UserId) -> GitJobSlot {
        let mine = {
            let mut users = self
                .per_user
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(
                users
                    .entry(user)
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_user_limit))),
            )
        };
        // The semaphores are never closed, so acquiring cannot fail; should
        // it ever, the job waits forever rather than running unbounded.
        let Ok(user_slot) = mine.acquire_owned().await else {
            return std::future::pending().await;
        };
        let Ok(all_slot) = Arc::clone(&self.all).acquire_owned().await else {
            return std::future::pending().await;
        };
        GitJobSlot {
            _user: user_slot,
            _all: all_slot,
        }
    }
}

/// Twice the machine's cores, between 2 and 32: git work is mostly waiting
/// on the network, but each job holds a checkout on disk.
pub fn default_git_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |cores| cores.get() * 2)
        .clamp(2, 32)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn jobs_are_bounded_per_user_and_in_total() {
        let jobs = GitJobs::new(3, 2);
        let (alice, bob) = (UserId::new(), UserId::new());
        let _a1 = jobs.start(alice).await;
        let _a2 = jobs.start(alice).await;
        let third = tokio::time::timeout(Duration::from_millis(50), jobs.start(alice)).await;
        assert!(third.is_err(), "a third job for one user started");
        let b1 = jobs.start(bob).await;
        let over = tokio::time::timeout(Duration::from_millis(50), jobs.start(bob)).await;
        assert!(over.is_err(), "a fourth job on the server started");
        drop(b1);
        let again = tokio::time::timeout(Duration::from_millis(50), jobs.start(bob)).await;
        assert!(again.is_ok(), "a freed slot was not reused");
    }
}
