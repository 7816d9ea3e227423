//! The changeset job queue: publishing queues and returns at once;
//! workers claim each job once under a lease, a lapsed lease is claimed
//! again, transient failures are retried and then fail with their error,
//! and a failed job can be retried. On both backends; the store is driven
//! with explicit times where leases and back-offs matter.

use std::time::Duration;

use batchcred::auth::Caller;
use batchcred::service::{PublishResult, QueueSettings};
use batchcred::store::{ClaimFilter, JobOutcome};
use chrono::Utc;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{AppOptions, Backend, changeset_id_from_graphql, wait_for_jobs};
use crate::publish::{World, world_with};
use crate::support::codehost::Behaviour;
use crate::support::git_http::branch_sha;
use batchcred::domain::{JobAction, JobState};

both_backends!(
    jobs_are_claimed_once_and_again_only_after_their_lease_lapses,
    a_request_arriving_while_its_job_runs_is_not_lost,
    workers_publish_every_queued_changeset_exactly_once,
    transient_failures_are_retried_then_fail_with_their_error_and_can_be_retried,
    a_job_whose_workers_keep_dying_is_given_up,
);

/// A world whose server runs no workers: the test claims jobs itself.
async fn without_workers(backend: Backend) -> World {
    let mut options = AppOptions::default();
    options.publish.queue = QueueSettings {
        workers: 0,
        ..options.publish.queue
    };
    world_with(backend, options).await
}

async fn queue_one(w: &World, head: &str) -> batchcred::domain::ChangesetId {
    let reports = w
        .app
        .service
        .enqueue_changesets(
            &Caller::User(w.alice.clone()),
            w.alice.id,
            vec![w.spec("github", "acme/api", head)],
        )
        .await
        .unwrap();
    let queued = reports[0].outcome.as_ref().unwrap();
    assert_eq!(queued.result, PublishResult::Queued);
    queued.id
}

async fn jobs_are_claimed_once_and_again_only_after_their_lease_lapses(backend: Backend) {
    let w = without_workers(backend).await;
    let id = queue_one(&w, "batch/lease").await;
    let store = w.app.service.store();
    let now = Utc::now();
    let lease = Duration::from_secs(30);

    // Many claims at once: exactly one gets the job.
    let mut claims = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        claims.spawn(async move { store.claim_job(ClaimFilter::Any, now, lease).await });
    }
    let claims = claims.join_all().await;
    let held: Vec<_> = claims.into_iter().flatten().flatten().collect();
    assert_eq!(held.len(), 1, "one claim wins");
    let first = &held[0];
    assert_eq!(first.changeset.id, id);
    assert_eq!(first.changeset.job_state, JobState::Processing);
    assert_eq!(first.changeset.job_attempts, 1);
    // Publishing is held back while windows forbid it.
    assert!(
        store
            .claim_job(ClaimFilter::NotPublishing, now, lease)
            .await
            .unwrap()
            .is_none()
    );

    // Still leased a moment before it lapses; claimed again after.
    let before = now + chrono::Duration::seconds(29);
    assert!(
        store
            .claim_job(ClaimFilter::Any, before, lease)
            .await
            .unwrap()
            .is_none()
    );
    let after = now + chrono::Duration::seconds(31);
    let second = store
        .claim_job(ClaimFilter::Any, after, lease)
        .await
        .unwrap()
        .expect("a lapsed lease is claimed again");
    assert_eq!(second.changeset.id, id);
    assert_eq!(second.changeset.job_attempts, 2);
    assert_ne!(second.lease, first.lease);

    // The first worker lost it: it can neither renew nor finish.
    assert!(!store.renew_lease(id, &first.lease, after).await.unwrap());
    assert!(
        !store
            .finish_job(first, &JobOutcome::Completed, None, after)
            .await
            .unwrap()
    );
    assert!(store.renew_lease(id, &second.lease, after).await.unwrap());
    assert!(
        store
            .finish_job(&second, &JobOutcome::Completed, None, after)
            .await
            .unwrap()
    );
    let done = store.find_changeset_by_id(id).await.unwrap();
    assert_eq!(done.job_state, JobState::Completed);
    let later = after + chrono::Duration::hours(1);
    assert!(
        store
            .claim_job(ClaimFilter::Any, later, lease)
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_request_arriving_while_its_job_runs_is_not_lost(backend: Backend) {
    let w = without_workers(backend).await;
    let id = queue_one(&w, "batch/again").await;
    let store = w.app.service.store();
    let now = Utc::now();
    let job = store
        .claim_job(ClaimFilter::Any, now, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    // A new spec comes in while the worker runs the old one.
    let mut newer = w.spec("github", "acme/api", "batch/again");
    newer.title = "A newer title".into();
    let reports = w
        .app
        .service
        .enqueue_changesets(&Caller::User(w.alice.clone()), w.alice.id, vec![newer])
        .await
        .unwrap();
    assert_eq!(reports[0].outcome.as_ref().unwrap().id, id);
    let running = store.find_changeset_by_id(id).await.unwrap();
    assert_eq!(
        running.job_state,
        JobState::Processing,
        "left to its worker"
    );
    // Nobody else claims it meanwhile.
    assert!(
        store
            .claim_job(ClaimFilter::Any, now, Duration::from_secs(30))
            .await
            .unwrap()
            .is_none()
    );
    // The worker finishing the older request leaves the newer one queued.
    assert!(
        store
            .finish_job(&job, &JobOutcome::Completed, None, now)
            .await
            .unwrap()
    );
    let after = store.find_changeset_by_id(id).await.unwrap();
    assert_eq!(after.job_state, JobState::Queued);
    assert_eq!(after.title, "A newer title");
    let again = store
        .claim_job(ClaimFilter::Any, now, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the newer request is claimable");
    assert_eq!(again.changeset.id, id);
}

async fn workers_publish_every_queued_changeset_exactly_once(backend: Backend) {
    let w = world_with(backend, AppOptions::default()).await;
    // A second server on the same database: its workers share the queue.
    let replica = w.app.replica().await;
    let specs = (0..24)
        .map(|n| {
            w.spec(
                "github",
                ["acme/api", "acme/web", "acme/docs"][n % 3],
                &format!("batch/q{n}"),
            )
        })
        .collect();
    let reports = w
        .app
        .service
        .enqueue_changesets(&Caller::User(w.alice.clone()), w.alice.id, specs)
        .await
        .unwrap();
    let ids: Vec<_> = reports
        .iter()
        .map(|r| r.outcome.as_ref().unwrap().id)
        .collect();
    let done = wait_for_jobs(&replica.service, &ids).await;
    assert!(
        done.iter()
            .all(|c| c.job_state == JobState::Completed && c.pr_number.is_some()),
        "{:?}",
        done.iter()
            .map(|c| (&c.head_branch, c.job_state, &c.error))
            .collect::<Vec<_>>()
    );
    let pulls = w.emulator.pulls();
    assert_eq!(
        pulls.len(),
        24,
        "one pull request per changeset, no duplicates"
    );
    let mut heads: Vec<_> = pulls
        .iter()
        .map(|p| (p.repository.clone(), p.head.clone()))
        .collect();
    heads.sort();
    heads.dedup();
    assert_eq!(heads.len(), 24);
    assert!(done.iter().all(|c| c.job_attempts == 1));
    assert!(branch_sha(&w.git.repo_path("api"), "batch/q0").is_some());
}

async fn transient_failures_are_retried_then_fail_with_their_error_and_can_be_retried(
    backend: Backend,
) {
    let mut options = AppOptions::default();
    options.publish.queue = QueueSettings {
        max_attempts: 2,
        ..options.publish.queue
    };
    options.publish.backoff = batchcred::publish::Backoff {
        retries: 0,
        ..options.publish.backoff
    };
    let w = world_with(backend, options).await;
    let alice = w.app.sign_in_with_token("alice").await;
    w.emulator.set_behaviour(Behaviour::ServerError);
    let mutation =
        "mutation($c: [ChangesetInput!]!) { publishChangesets(changesets: $c) { id state } }";
    let input = json!([{ "codeHost": w.emulator.url("github"), "repository": "acme/api",
        "baseBranch": "main", "headBranch": "batch/flaky", "title": "Flaky", "diff": crate::publish::PATCH }]);
    let data = w
        .app
        .graphql_ok(&alice.auth, mutation, json!({ "c": input }))
        .await;
    assert_eq!(data["publishChangesets"][0]["state"], "QUEUED", "{data}");
    let id = changeset_id_from_graphql(data["publishChangesets"][0]["id"].as_str().unwrap());
    let failed = &wait_for_jobs(&w.app.service, &[id]).await[0];
    assert_eq!(failed.job_state, JobState::Failed);
    assert_eq!(failed.job_attempts, 2, "tried twice");
    let error = failed.error.clone().unwrap();
    assert!(error.starts_with("gave up after 2 attempts: "), "{error}");
    assert!(!error.contains("ghp_alice"), "{error}");

    let query = "query($id: ID!) { changeset(id: $id) { status error attempts } }";
    let gql_id = data["publishChangesets"][0]["id"].clone();
    let shown = w
        .app
        .graphql_ok(&alice.auth, query, json!({ "id": gql_id }))
        .await;
    assert_eq!(shown["changeset"]["status"], "FAILED", "{shown}");
    assert_eq!(shown["changeset"]["error"], error.as_str());

    // Someone else may not retry it; its owner may, and now it works.
    let bob = w.app.sign_in_with_token("bob").await;
    let retry = "mutation($id: ID!) { retryChangeset(changeset: $id) { status attempts } }";
    let refused = w
        .app
        .graphql(&bob.auth, retry, json!({ "id": gql_id }))
        .await;
    assert!(crate::helpers::error_code(&refused).is_some(), "{refused}");
    w.emulator.set_behaviour(Behaviour::Normal);
    let retried = w
        .app
        .graphql_ok(&alice.auth, retry, json!({ "id": gql_id }))
        .await;
    // Queued again at once (a worker may already be on it).
    let status = retried["retryChangeset"]["status"].as_str().unwrap();
    assert!(
        ["QUEUED", "PROCESSING", "OPEN"].contains(&status),
        "{retried}"
    );
    let done = &wait_for_jobs(&w.app.service, &[id]).await[0];
    assert_eq!(done.job_state, JobState::Completed, "{:?}", done.error);
    assert_eq!(w.emulator.pulls().len(), 1);
    // Retrying a job that did not fail is refused.
    let again = w
        .app
        .graphql(&alice.auth, retry, json!({ "id": gql_id }))
        .await;
    assert!(
        crate::helpers::error_message(&again).contains("has no failed job"),
        "{again}"
    );
}

async fn a_job_whose_workers_keep_dying_is_given_up(backend: Backend) {
    let w = without_workers(backend).await;
    let id = queue_one(&w, "batch/doomed").await;
    let store = w.app.service.store();
    let most = QueueSettings::default().max_attempts;
    // Workers that claim it and die: each claim's lease lapses unrenewed.
    let start = Utc::now();
    for n in 0..=most {
        let at = start + chrono::Duration::milliseconds(10 * n);
        let claimed = store
            .claim_job(ClaimFilter::Any, at, Duration::from_millis(1))
            .await
            .unwrap()
            .expect("claimable again once the lease lapsed");
        assert_eq!(claimed.changeset.job_attempts, n + 1);
    }
    // The next claim, once the last lease lapsed, gives up instead of
    // running it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(w.app.service.claim_job().await.unwrap().is_none());
    let failed = store.find_changeset_by_id(id).await.unwrap();
    assert_eq!(failed.job_state, JobState::Failed);
    assert!(
        failed.error.as_deref().unwrap().contains("without ending"),
        "{:?}",
        failed.error
    );
    // A sync the system queues does not hide that failure; the owner's
    // own request (retry) does replace it.
    assert!(
        store
            .enqueue_job(id, JobAction::Sync, false, false, Utc::now())
            .await
            .is_err()
    );
    assert!(
        w.app
            .service
            .retry_changeset(&Caller::User(w.alice.clone()), id)
            .await
            .is_ok()
    );
}
