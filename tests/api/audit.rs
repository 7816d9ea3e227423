//! The audit log: every security-relevant event is recorded with who did
//! it; the hash chain verifies, and names the first deleted or edited
//! entry; replicas appending at once never fork it; users see only what is
//! about them. On both backends.

use std::net::{IpAddr, Ipv4Addr};

use batchcred::auth::Caller;
use batchcred::service::{AuditQuery, PageRequest};
use secrecy::SecretString;
use sqlx::Executor;

use crate::both_backends;
use crate::helpers::{Backend, PASSWORD, error_code};
use crate::publish::{World, world};
use crate::web::Browser;
use batchcred::domain::AuditRecord;

both_backends!(
    every_security_event_is_recorded_and_the_chain_verifies,
    a_deleted_or_edited_entry_is_named_by_verify,
    replicas_appending_at_once_never_fork_the_chain,
    users_see_only_their_own_entries,
    retention_removes_old_entries_and_the_rest_still_verifies,
);

async fn entries(w: &World) -> Vec<AuditRecord> {
    w.app
        .service
        .audit_log(
            &Caller::Operator,
            &AuditQuery::default(),
            &PageRequest {
                first: Some(1000),
                after: None,
            },
        )
        .await
        .unwrap()
        .items
}

async fn every_security_event_is_recorded_and_the_chain_verifies(backend: Backend) {
    let w = world(backend).await;
    let service = &w.app.service;
    let as_alice = Caller::User(w.alice.clone());
    let client = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    // Sign-ins, good and bad, and a sign-out.
    let (session, _) = service
        .sign_in("alice", SecretString::from(PASSWORD), client)
        .await
        .unwrap();
    assert!(
        service
            .sign_in("alice", SecretString::from("wrong password"), client)
            .await
            .is_err()
    );
    service.sign_out(session.0.expose()).await.unwrap();
    // A token made and revoked; a changeset published (a credential
    // used) and handed over; a policy; a credential checked and removed.
    let token = service
        .create_access_token(&as_alice, w.alice.id, "audit", None)
        .await
        .unwrap();
    service
        .delete_access_token(&as_alice, token.record.id)
        .await
        .unwrap();
    let spec = w.spec("github", "acme/api", "batch/audited");
    service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap();
    service
        .hand_over_changeset(
            &Caller::Operator,
            &spec.code_host,
            "acme/api",
            "batch/audited",
            w.bob.id,
        )
        .await
        .unwrap();
    let host = service
        .code_host_by_url(&Caller::Operator, &spec.code_host)
        .await
        .unwrap();
    service
        .set_global_credential_policy(
            &Caller::Operator,
            host.id,
            batchcred::service::PolicyRequest {
                mode: batchcred::domain::PolicyMode::Nobody,
                usernames: Vec::new(),
                repositories: Vec::new(),
            },
        )
        .await
        .unwrap();
    let alices = service
        .user_code_hosts(&as_alice, w.alice.id, &PageRequest::default())
        .await
        .unwrap();
    let credential = alices
        .items
        .iter()
        .find_map(|h| h.credential.as_ref().filter(|c| !c.is_site_credential()))
        .map(|c| c.id)
        .expect("alice's credential");
    let _ = service
        .check_credential(&as_alice, credential, &Default::default())
        .await;
    service
        .delete_credential(&as_alice, credential)
        .await
        .unwrap();
    service
        .delete_user(&Caller::Operator, w.bob.id)
        .await
        .unwrap();

    let log = entries(&w).await;
    let events: Vec<&str> = log.iter().map(|e| e.event.as_str()).collect();
    for event in [
        "user.created",
        "code_host.added",
        "credential.created",
        "sign_in",
        "sign_out",
        "access_token.created",
        "access_token.revoked",
        "credential.used",
        "changeset.handed_over",
        "code_host.policy_changed",
        "credential.checked",
        "credential.deleted",
        "user.deleted",
    ] {
        assert!(events.contains(&event), "no {event} in {events:?}");
    }
    let failed_sign_in = log
        .iter()
        .find(|e| e.event == "sign_in" && e.outcome == "failure")
        .expect("the failed sign-in");
    assert_eq!(failed_sign_in.user_id, Some(w.alice.id.to_string()));
    assert!(
        failed_sign_in.detail.contains("127.0.0.9"),
        "{failed_sign_in:?}"
    );
    let used = log.iter().find(|e| e.event == "credential.used").unwrap();
    assert_eq!(used.actor_name.as_deref(), Some("alice"));
    assert!(used.detail.contains("\"source\":\"user\""), "{used:?}");
    assert!(used.detail.contains("acme/api"), "{used:?}");
    assert!(used.changeset_id.is_some());
    // Newest first, numbered without gaps.
    let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|p| p[0] == p[1] + 1), "{seqs:?}");
    // No secret in any entry.
    for entry in &log {
        for secret in [
            "ghp_alice",
            "ghp_global",
            PASSWORD,
            "wrong password",
            token.token.expose(),
        ] {
            assert!(!entry.detail.contains(secret), "{entry:?}");
        }
    }
    let verified = service.verify_audit_log(&Caller::Operator).await.unwrap();
    assert_eq!(verified.broken, None);
    assert_eq!(verified.checked, log.len() as i64);
}

async fn a_deleted_or_edited_entry_is_named_by_verify(backend: Backend) {
    let w = world(backend).await;
    let service = &w.app.service;
    let count = entries(&w).await.len() as i64;
    assert!(count >= 5, "{count}");
    let db = w.app.database().await;
    db.execute("UPDATE audit_log SET detail = '{\"username\":\"mallory\"}' WHERE seq = 2")
        .await
        .unwrap();
    let found = service.verify_audit_log(&Caller::Operator).await.unwrap();
    let (seq, why) = found.broken.expect("an edit is found");
    assert_eq!(seq, 2, "{why}");
    assert!(why.contains("edited"), "{why}");
    assert_eq!(found.checked, 1);

    db.execute("DELETE FROM audit_log WHERE seq = 2")
        .await
        .unwrap();
    let (seq, why) = service
        .verify_audit_log(&Caller::Operator)
        .await
        .unwrap()
        .broken
        .expect("a deletion is found");
    assert_eq!(seq, 2, "{why}");
    assert!(why.contains("missing"), "{why}");

    let last = format!("DELETE FROM audit_log WHERE seq = {count}");
    db.execute(sqlx::AssertSqlSafe(last)).await.unwrap();
    // The gap at 2 is still the first break.
    let (seq, _) = service
        .verify_audit_log(&Caller::Operator)
        .await
        .unwrap()
        .broken
        .unwrap();
    assert_eq!(seq, 2);
    db.close().await;
}

async fn replicas_appending_at_once_never_fork_the_chain(backend: Backend) {
    let w = world(backend).await;
    let replica = w.app.replica().await;
    let before = entries(&w).await.len();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..24 {
        let service = if n % 2 == 0 {
            w.app.service.clone()
        } else {
            replica.service.clone()
        };
        let alice = w.alice.clone();
        tasks.spawn(async move {
            service
                .create_access_token(
                    &Caller::User(alice.clone()),
                    alice.id,
                    &format!("t{n}"),
                    None,
                )
                .await
                .map(|_| ())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let log = entries(&w).await;
    assert_eq!(log.len(), before + 24, "no entry lost");
    let verified = w
        .app
        .service
        .verify_audit_log(&Caller::Operator)
        .await
        .unwrap();
    assert_eq!(verified.broken, None);
}

async fn users_see_only_their_own_entries(backend: Backend) {
    let w = world(backend).await;
    let as_alice = Caller::User(w.alice.clone());
    let page = w
        .app
        .service
        .audit_log(&as_alice, &AuditQuery::default(), &PageRequest::default())
        .await
        .unwrap();
    assert!(page.total_count > 0);
    let alice = w.alice.id.to_string();
    assert!(page.items.iter().all(|e| {
        e.user_id.as_deref() == Some(alice.as_str()) || e.actor == format!("user:{alice}")
    }));
    let theirs = w
        .app
        .service
        .audit_log(
            &as_alice,
            &AuditQuery {
                user: Some(w.bob.id),
                ..AuditQuery::default()
            },
            &PageRequest::default(),
        )
        .await;
    assert!(theirs.is_err());

    // GraphQL: the same rules; the page is for site admins.
    let signed_in = w.app.sign_in_with_token("alice").await;
    let data = w
        .app
        .graphql_ok(
            &signed_in.auth,
            "{ auditLog { totalCount nodes { event outcome actorName } } }",
            serde_json::json!({}),
        )
        .await;
    // Her sign-in (and the token it made) since.
    assert!(
        data["auditLog"]["totalCount"].as_i64().unwrap() > page.total_count,
        "{data}"
    );
    let other = w
        .app
        .graphql(
            &signed_in.auth,
            "query($u: ID) { auditLog(user: $u) { totalCount } }",
            serde_json::json!({ "u": crate::helpers::graphql_user_id(w.bob.id) }),
        )
        .await;
    assert_eq!(error_code(&other), Some("FORBIDDEN"), "{other}");
    let admin = Browser::signed_in(&w.app, "admin").await;
    let (status, body) = admin
        .get("/site-admin/audit-log?event=credential.created")
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(body.contains("credential.created"), "{body}");
    assert!(!body.contains("ghp_alice"));
    let alice_browser = Browser::signed_in(&w.app, "alice").await;
    let (status, _) = alice_browser.get("/site-admin/audit-log").await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
}

async fn retention_removes_old_entries_and_the_rest_still_verifies(backend: Backend) {
    let w = world(backend).await;
    let service = &w.app.service;
    let before = entries(&w).await.len() as u64;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let removed = service
        .prune_audit_log(&Caller::Operator, std::time::Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(removed, before);
    assert!(entries(&w).await.is_empty());
    // New entries chain on from where the pruned ones ended.
    service
        .create_access_token(&Caller::User(w.alice.clone()), w.alice.id, "after", None)
        .await
        .unwrap();
    let log = entries(&w).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].seq, before as i64 + 1);
    let verified = service.verify_audit_log(&Caller::Operator).await.unwrap();
    assert_eq!(verified.broken, None);
    assert_eq!(verified.checked, 1);
    // Only the operator (the server's own background task) prunes.
    assert!(
        service
            .prune_audit_log(&Caller::User(w.alice.clone()), std::time::Duration::ZERO)
            .await
            .is_err()
    );
}
