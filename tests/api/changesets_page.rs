//! The Changesets page: a user's changesets with status, pull request,
//! error and attempts; filters; everyone's for site admins only; the
//! retry and close actions as plain forms.

use reqwest::StatusCode;

use batchcred::auth::Caller;

use crate::helpers::wait_for_jobs;
use crate::publish::world;
use crate::web::Browser;

const PAGE: &str = "/batch-changes/changesets";

#[tokio::test]
async fn the_changesets_page_shows_and_acts_on_changesets() {
    let w = world(crate::helpers::Backend::Sqlite).await;
    let reports = w
        .app
        .service
        .enqueue_changesets(
            &Caller::User(w.alice.clone()),
            w.alice.id,
            vec![
                w.spec("github", "acme/api", "batch/page-ok"),
                w.spec("github", "acme/missing", "batch/page-bad"),
            ],
        )
        .await
        .unwrap();
    let ids: Vec<_> = reports
        .iter()
        .map(|r| r.outcome.as_ref().unwrap().id)
        .collect();
    wait_for_jobs(&w.app.service, &ids).await;

    let alice = Browser::signed_in(&w.app, "alice").await;
    let (status, body) = alice.get(PAGE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("2 changesets"), "{body}");
    assert!(body.contains("Update acme/api"), "{body}");
    assert!(
        body.contains(r#"<span class="badge status-open">open</span>"#),
        "{body}"
    );
    assert!(
        body.contains(r#"<span class="badge status-failed">failed</span>"#),
        "{body}"
    );
    assert!(body.contains("acme/missing was not found"), "{body}");
    assert!(
        body.contains("/pull/"),
        "a link to the pull request: {body}"
    );
    let retry_path = format!("{PAGE}/{}/retry", ids[1]);
    let close_path = format!("{PAGE}/{}/close", ids[0]);
    assert!(body.contains(&retry_path), "{body}");
    assert!(body.contains(&close_path), "{body}");
    assert!(
        !body.contains(&format!("{PAGE}/{}/retry", ids[0])),
        "only failed ones retry"
    );
    assert!(!body.contains("ghp_alice"));

    // Filters.
    let (_, failed) = alice.get(&format!("{PAGE}?status=failed")).await;
    assert!(failed.contains("1 changeset<"), "{failed}");
    assert!(failed.contains("batch/page-bad") && !failed.contains("batch/page-ok"));
    let (status, _) = alice.get(&format!("{PAGE}?status=sideways")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Everyone's is for site admins.
    let (status, _) = alice.get(&format!("{PAGE}?owner=all")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let admin = Browser::signed_in(&w.app, "admin").await;
    let (_, mine) = admin.get(PAGE).await;
    assert!(mine.contains("0 changesets"), "{mine}");
    let (_, everyone) = admin.get(&format!("{PAGE}?owner=all")).await;
    assert!(everyone.contains("2 changesets"), "{everyone}");
    assert!(everyone.contains("not yours"), "{everyone}");
    assert!(
        !everyone.contains(&close_path),
        "owner-only actions are not offered"
    );

    // Actions need the session's CSRF token, return to the list (never
    // elsewhere), and queue the job.
    let (status, _) = alice.post(&retry_path, &[("csrf", "wrong")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let csrf = alice.csrf(PAGE).await;
    let store = w.app.service.store();
    let before = store
        .find_changeset_by_id(ids[1])
        .await
        .unwrap()
        .job_version;
    let (status, _) = alice
        .post(
            &retry_path,
            &[("csrf", &csrf), ("back", "https://elsewhere.example/")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // A return address that could be no header value goes back to the list.
    let (status, _) = alice
        .post(
            &format!("{PAGE}/{}/sync", ids[0]),
            &[
                ("csrf", &csrf),
                ("back", "/batch-changes/changesets?a\r\nSet-Cookie: x=1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // Queued again (a worker may already have run it, and failed again:
    // the repository is still missing).
    let retried = store.find_changeset_by_id(ids[1]).await.unwrap();
    assert!(retried.job_version > before, "{retried:?}");
    wait_for_jobs(&w.app.service, &ids[1..]).await;

    let back = format!("{PAGE}?status=open");
    let (status, _) = alice
        .post(
            &close_path,
            &[("csrf", &csrf), ("back", &back), ("delete_branch", "1")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let closed = &wait_for_jobs(&w.app.service, &ids[..1]).await[0];
    assert_eq!(
        closed.external_state.as_deref(),
        Some("closed"),
        "{:?}",
        closed.error
    );
    assert_eq!(w.emulator.deleted_branches().len(), 1);
    let (_, body) = alice.get(PAGE).await;
    assert!(
        body.contains(r#"<span class="badge status-closed">closed</span>"#),
        "{body}"
    );
    assert!(
        body.contains(&format!("{PAGE}/{}/reopen", ids[0])),
        "{body}"
    );
}
