//! Rollout windows on the queue: outside every window nothing is
//! published; inside a rate-limited one all replicas together publish at
//! its rate (the pace is kept in the database). The pace is also driven
//! with explicit times, as the controllable clock.

use std::time::Duration;

use batchcred::auth::Caller;
use batchcred::domain::{JobState, RolloutWindow, RolloutWindows};
use chrono::Utc;

use crate::both_backends;
use crate::helpers::{AppOptions, Backend};
use crate::publish::{World, world_with};

both_backends!(
    the_shared_pace_lets_one_publish_per_interval,
    nothing_is_published_while_the_windows_are_closed,
    replicas_together_publish_at_the_windows_rate,
);

fn with_windows(rate: &str) -> AppOptions {
    let mut options = AppOptions::default();
    options.publish.rollout_windows =
        RolloutWindows::new(vec![RolloutWindow::parse(rate, &[], None, None).unwrap()]);
    options
}

async fn queue(w: &World, heads: &[&str]) -> Vec<batchcred::domain::ChangesetId> {
    let specs = heads
        .iter()
        .map(|head| w.spec("github", "acme/api", head))
        .collect();
    let reports = w
        .app
        .service
        .enqueue_changesets(&Caller::User(w.alice.clone()), w.alice.id, specs)
        .await
        .unwrap();
    reports
        .iter()
        .map(|r| r.outcome.as_ref().unwrap().id)
        .collect()
}

async fn job_states(
    service: &batchcred::service::Service,
    ids: &[batchcred::domain::ChangesetId],
) -> Vec<JobState> {
    service
        .changesets_by_ids(&Caller::Operator, ids)
        .await
        .unwrap()
        .iter()
        .map(|c| c.job_state)
        .collect()
}

async fn the_shared_pace_lets_one_publish_per_interval(backend: Backend) {
    let w = world_with(backend, AppOptions::default()).await;
    let store = w.app.service.store();
    let hour = Duration::from_secs(3600);
    let now = Utc::now();
    assert!(store.rollout_slot_open(now).await.unwrap());
    assert!(store.take_rollout_slot(now, hour).await.unwrap());
    // Taken: not again within the hour, by anyone.
    assert!(!store.take_rollout_slot(now, hour).await.unwrap());
    let later = now + chrono::Duration::minutes(59);
    assert!(!store.rollout_slot_open(later).await.unwrap());
    assert!(!store.take_rollout_slot(later, hour).await.unwrap());
    let next = now + chrono::Duration::minutes(60);
    assert!(store.rollout_slot_open(next).await.unwrap());
    assert!(store.take_rollout_slot(next, hour).await.unwrap());
}

async fn nothing_is_published_while_the_windows_are_closed(backend: Backend) {
    let w = world_with(backend, with_windows("0")).await;
    let ids = queue(&w, &["batch/paused-1", "batch/paused-2"]).await;
    let asked = w.emulator.seen().len();
    // Workers look for jobs every 100 ms: give them many rounds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        job_states(&w.app.service, &ids).await,
        vec![JobState::Queued; 2]
    );
    assert!(w.emulator.pulls().is_empty());
    assert_eq!(w.emulator.seen().len(), asked, "no code host was asked");
}

async fn replicas_together_publish_at_the_windows_rate(backend: Backend) {
    let w = world_with(backend, with_windows("1/hour")).await;
    let replica = w.app.replica_with(with_windows("1/hour")).await;
    let ids = queue(&w, &["batch/paced-1", "batch/paced-2", "batch/paced-3"]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while w.emulator.pulls().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both servers' workers keep looking; the hour's one slot is spent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(w.emulator.pulls().len(), 1);
    let states = job_states(&replica.service, &ids).await;
    assert_eq!(
        states.iter().filter(|s| **s == JobState::Queued).count(),
        2,
        "{states:?}"
    );
}
