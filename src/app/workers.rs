//! The changeset job workers a process runs: each claims a due job from
//! the database queue, runs it, and looks again; idle workers wait for a
//! local wake-up or poll for jobs other processes queued.

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::service::Service;

/// Starts `count` workers. When `stop` turns true they claim nothing
/// more; a job running then gets the queue's stop grace to end before it
/// is handed back. The set ends when every worker has.
pub fn spawn_workers(service: &Service, count: usize, stop: watch::Receiver<bool>) -> JoinSet<()> {
    let mut workers = JoinSet::new();
    for _ in 0..count {
        workers.spawn(work(service.clone(), stop.clone()));
    }
    workers
}

async fn work(service: Service, mut stop: watch::Receiver<bool>) {
    let poll = service.queue_settings().poll_interval;
    while !*stop.borrow() {
        match service.claim_job().await {
            Ok(Some(job)) => service.run_job(job, stop.clone()).await,
            Ok(None) => {
                tokio::select! {
                    () = service.wait_for_jobs(poll) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not claim a changeset job");
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}
