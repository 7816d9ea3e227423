//! After publishing: close (deleting the branch), reopen and sync, as
//! queued jobs against the code host emulator; the background sync;
//! importing a pull request opened by hand; code host webhooks, checked by
//! their signature, queueing a sync. On both backends.

use std::time::Duration;

use batchcred::auth::Caller;
use batchcred::domain::{ChangesetId, JobState};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::both_backends;
use crate::helpers::{AppOptions, Backend, TestUser, error_code, error_message, wait_for_jobs};
use crate::publish::{World, world, world_with};
use crate::support::codehost::{EmulatedChecks, EmulatedReview};

both_backends!(
    closing_reopening_and_syncing_follow_the_pull_request,
    open_pull_requests_are_synced_in_the_background,
    a_pull_request_opened_by_hand_is_imported_and_tracked,
    signed_webhooks_queue_a_sync_and_others_are_refused,
);

const CHANGESET_FIELDS: &str = "id status jobState attempts error reviewState checksState \
                                pullRequestNumber imported title";

/// Publishes `acme/api:<head>` as Alice through the queue and waits for
/// it; returns its GraphQL id and its id.
async fn published(w: &World, alice: &TestUser, head: &str) -> (Value, ChangesetId) {
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
    let id = reports[0].outcome.as_ref().unwrap().id;
    let done = &wait_for_jobs(&w.app.service, &[id]).await[0];
    assert_eq!(done.job_state, JobState::Completed, "{:?}", done.error);
    let list = w
        .app
        .graphql_ok(
            &alice.auth,
            "{ currentUser { changesets { nodes { id headBranch } } } }",
            json!({}),
        )
        .await;
    let node = list["currentUser"]["changesets"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["headBranch"] == head)
        .cloned()
        .unwrap();
    (node["id"].clone(), id)
}

/// Runs a changeset mutation, waits for its job, and returns the
/// changeset as the API shows it then.
async fn act(
    w: &World,
    user: &TestUser,
    mutation: &str,
    id: &Value,
    changeset: ChangesetId,
) -> Value {
    let data = w
        .app
        .graphql_ok(&user.auth, mutation, json!({ "id": id }))
        .await;
    assert!(data.as_object().is_some_and(|o| !o.is_empty()), "{data}");
    wait_for_jobs(&w.app.service, &[changeset]).await;
    show(w, user, id).await
}

async fn show(w: &World, user: &TestUser, id: &Value) -> Value {
    let query = format!("query($id: ID!) {{ changeset(id: $id) {{ {CHANGESET_FIELDS} }} }}");
    w.app
        .graphql_ok(&user.auth, &query, json!({ "id": id }))
        .await["changeset"]
        .clone()
}

async fn closing_reopening_and_syncing_follow_the_pull_request(backend: Backend) {
    let w = world(backend).await;
    let alice = w.app.sign_in_with_token("alice").await;
    let (id, changeset) = published(&w, &alice, "batch/life").await;
    let shown = show(&w, &alice, &id).await;
    assert_eq!(shown["status"], "OPEN", "{shown}");
    let number = shown["pullRequestNumber"].as_u64().unwrap();

    // Bob may not close it.
    let bob = w.app.sign_in_with_token("bob").await;
    let close =
        "mutation($id: ID!) { closeChangeset(changeset: $id, deleteBranch: true) { status } }";
    let refused = w.app.graphql(&bob.auth, close, json!({ "id": id })).await;
    assert!(error_code(&refused).is_some(), "{refused}");

    let closed = act(&w, &alice, close, &id, changeset).await;
    assert_eq!(closed["status"], "CLOSED", "{closed}");
    assert_eq!(
        w.emulator.deleted_branches(),
        vec![("acme/api".to_owned(), "batch/life".to_owned())]
    );
    // Closing it again is refused, with why.
    let again = w.app.graphql(&alice.auth, close, json!({ "id": id })).await;
    assert!(
        error_message(&again).contains("no open pull request"),
        "{again}"
    );

    let reopen = "mutation($id: ID!) { reopenChangeset(changeset: $id) { status } }";
    let reopened = act(&w, &alice, reopen, &id, changeset).await;
    assert_eq!(reopened["status"], "OPEN", "{reopened}");

    // Changes on the code host show after a sync.
    w.emulator
        .set_pull_review("acme/api", number, Some(EmulatedReview::Approved));
    w.emulator
        .set_pull_checks("acme/api", number, Some(EmulatedChecks::Failed));
    let sync = "mutation($id: ID!) { syncChangeset(changeset: $id) { status } }";
    let synced = act(&w, &alice, sync, &id, changeset).await;
    assert_eq!(synced["reviewState"], "approved", "{synced}");
    assert_eq!(synced["checksState"], "failed", "{synced}");
    w.emulator.merge_pull("acme/api", number);
    let merged = act(&w, &alice, sync, &id, changeset).await;
    assert_eq!(merged["status"], "MERGED", "{merged}");
    let reopen_merged = w
        .app
        .graphql(&alice.auth, reopen, json!({ "id": id }))
        .await;
    assert_eq!(
        error_code(&reopen_merged),
        Some("CONFLICT"),
        "{reopen_merged}"
    );

    // A pull request deleted on the code host shows as deleted.
    w.emulator.delete_pull("acme/api", number);
    let gone = act(&w, &alice, sync, &id, changeset).await;
    assert_eq!(gone["status"], "DELETED", "{gone}");
    assert_eq!(gone["error"], Value::Null, "{gone}");

    // Filtering by status.
    let merged_list = w
        .app
        .graphql_ok(
            &alice.auth,
            "{ currentUser { changesets(status: DELETED) { totalCount nodes { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(merged_list["currentUser"]["changesets"]["totalCount"], 1);
    let open_list = w
        .app
        .graphql_ok(
            &alice.auth,
            "{ currentUser { changesets(status: OPEN) { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(open_list["currentUser"]["changesets"]["totalCount"], 0);
}

async fn open_pull_requests_are_synced_in_the_background(backend: Backend) {
    let mut options = AppOptions::default();
    options.publish.queue.sync_interval = Some(Duration::from_millis(300));
    let w = world_with(backend, options).await;
    let alice = w.app.sign_in_with_token("alice").await;
    let (id, _) = published(&w, &alice, "batch/polled").await;
    let number = show(&w, &alice, &id).await["pullRequestNumber"]
        .as_u64()
        .unwrap();
    w.emulator.merge_pull("acme/api", number);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let shown = show(&w, &alice, &id).await;
        if shown["status"] == "MERGED" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never synced: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_pull_request_opened_by_hand_is_imported_and_tracked(backend: Backend) {
    let w = world(backend).await;
    let alice = w.app.sign_in_with_token("alice").await;
    // Someone opens a pull request on the code host directly.
    let opened: Value = reqwest::Client::new()
        .post(format!(
            "{}/api/v3/repos/acme/web/pulls",
            w.emulator.url("github")
        ))
        .header("Authorization", "token ghp_alice")
        .json(&json!({ "title": "By hand", "head": "fix/by-hand", "base": "main", "body": "" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let number = opened["number"].as_u64().unwrap();
    let import = "mutation($u: String!, $r: String!, $n: Int!) { importChangeset(codeHostURL: $u, repository: $r, number: $n) { id status imported title headBranch } }";
    let vars = |n: u64| json!({ "u": w.emulator.url("github"), "r": "acme/web", "n": n });
    let data = w.app.graphql_ok(&alice.auth, import, vars(number)).await;
    let imported = &data["importChangeset"];
    assert_eq!(imported["status"], "OPEN", "{data}");
    assert_eq!(imported["imported"], true);
    assert_eq!(imported["title"], "By hand");
    assert_eq!(imported["headBranch"], "fix/by-hand");
    // Once is enough; an unknown number is a clear error.
    let again = w.app.graphql(&alice.auth, import, vars(number)).await;
    assert_eq!(error_code(&again), Some("CONFLICT"), "{again}");
    let missing = w.app.graphql(&alice.auth, import, vars(9999)).await;
    assert_eq!(error_code(&missing), Some("NOT_FOUND"), "{missing}");
    let traversal = w
        .app
        .graphql(
            &alice.auth,
            import,
            json!({ "u": w.emulator.url("github"), "r": "acme/web/../../../user", "n": 1 }),
        )
        .await;
    assert_eq!(
        error_code(&traversal),
        Some("BAD_USER_INPUT"),
        "{traversal}"
    );
    // Tracked: syncing reads it; closing never offers to delete a branch
    // batchcred did not push.
    let id = imported["id"].clone();
    let close =
        "mutation($id: ID!) { closeChangeset(changeset: $id, deleteBranch: true) { status } }";
    let refused = w.app.graphql(&alice.auth, close, json!({ "id": id })).await;
    assert!(
        error_message(&refused).contains("only deletes branches it pushed"),
        "{refused}"
    );
    w.emulator.merge_pull("acme/web", number);
    let changeset = crate::helpers::changeset_id_from_graphql(id.as_str().unwrap());
    let sync = "mutation($id: ID!) { syncChangeset(changeset: $id) { status } }";
    let merged = act(&w, &alice, sync, &id, changeset).await;
    assert_eq!(merged["status"], "MERGED", "{merged}");
    assert!(w.emulator.deleted_branches().is_empty());
}

fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

async fn signed_webhooks_queue_a_sync_and_others_are_refused(backend: Backend) {
    let w = world(backend).await;
    let alice = w.app.sign_in_with_token("alice").await;
    let (id, changeset) = published(&w, &alice, "batch/hooked").await;
    let number = show(&w, &alice, &id).await["pullRequestNumber"]
        .as_u64()
        .unwrap();
    let set_up = "mutation($u: String!) { setUpCodeHostWebhook(codeHostURL: $u) { path secret } }";
    // Only site admins set one up.
    let refused = w
        .app
        .graphql(
            &alice.auth,
            set_up,
            json!({ "u": w.emulator.url("github") }),
        )
        .await;
    assert!(error_code(&refused).is_some(), "{refused}");
    let data = w
        .app
        .graphql_ok(
            &w.admin.auth,
            set_up,
            json!({ "u": w.emulator.url("github") }),
        )
        .await;
    let path = data["setUpCodeHostWebhook"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = data["setUpCodeHostWebhook"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.len() >= 32);
    let hosts = w
        .app
        .graphql_ok(
            &w.admin.auth,
            "{ batchChangesCodeHosts { nodes { externalServiceURL hasWebhooks } } }",
            json!({}),
        )
        .await;
    assert!(
        hosts["batchChangesCodeHosts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["hasWebhooks"] == true),
        "{hosts}"
    );

    w.emulator.merge_pull("acme/api", number);
    let body = json!({ "action": "closed", "number": number,
        "pull_request": { "number": number, "merged": true },
        "repository": { "full_name": "acme/api" } })
    .to_string();
    let send = |signature: Option<String>| {
        let mut request = reqwest::Client::new()
            .post(w.app.url(&path))
            .header("X-GitHub-Event", "pull_request")
            .header("Content-Type", "application/json")
            .body(body.clone());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send()
    };
    // Unsigned and wrongly signed webhooks change nothing.
    for signature in [
        None,
        Some(github_signature("not the secret", body.as_bytes())),
    ] {
        let response = send(signature).await.unwrap();
        assert_eq!(response.status(), 401);
        let text = response.text().await.unwrap();
        assert!(!text.contains(&secret), "{text}");
    }
    let record = w
        .app
        .service
        .store()
        .find_changeset_by_id(changeset)
        .await
        .unwrap();
    assert_eq!(record.job_state, JobState::Completed);
    assert_eq!(show(&w, &alice, &id).await["status"], "OPEN");

    let response = send(Some(github_signature(&secret, body.as_bytes())))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["result"], "sync_queued", "{answer}");
    wait_for_jobs(&w.app.service, &[changeset]).await;
    assert_eq!(show(&w, &alice, &id).await["status"], "MERGED");

    // Removed: refused from then on.
    w.app
        .graphql_ok(
            &w.admin.auth,
            "mutation($u: String!) { removeCodeHostWebhook(codeHostURL: $u) { alwaysNil } }",
            json!({ "u": w.emulator.url("github") }),
        )
        .await;
    let response = send(Some(github_signature(&secret, body.as_bytes())))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
