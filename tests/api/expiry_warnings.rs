//! Expiry warnings: sent once per channel (webhook, email) across rounds
//! and replicas, retried after a failed delivery, never carrying a token,
//! and shown as a notice on every page to the owner (site admins for
//! global credentials).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use batchcred::auth::Caller;
use batchcred::notify::{EmailSettings, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSettings};
use batchcred::service::{NotifySettings, WarningReport};
use chrono::Utc;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{AppOptions, Backend, TestApp, TestUser, spawn_app_with, unique_token};
use crate::support::codehost::{EmulatedToken, GITHUB_SCOPES};
use crate::support::smtp_sink::SmtpSink;
use crate::web::Browser;
use batchcred::domain::CredentialOwner;

const SECRET: &str = "webhook-signing-secret";

/// A webhook receiver on loopback: keeps the bodies of deliveries whose
/// signature checks out, and can be told to fail the next few.
#[derive(Clone)]
struct Receiver {
    url: url::Url,
    deliveries: Arc<Mutex<Vec<Value>>>,
    bad_signatures: Arc<AtomicUsize>,
    fail_next: Arc<AtomicUsize>,
    arrived: Arc<tokio::sync::Notify>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Self {
            url: format!("http://{}/hooks/batchcred", listener.local_addr().unwrap())
                .parse()
                .unwrap(),
            deliveries: Arc::default(),
            bad_signatures: Arc::default(),
            fail_next: Arc::default(),
            arrived: Arc::default(),
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hooks/batchcred",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { state.receive(&headers, &body) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn receive(&self, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        let expected = batchcred::notify::signature(SECRET.as_bytes(), body).unwrap();
        let signed = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        let timestamp = headers.get(TIMESTAMP_HEADER).and_then(|v| v.to_str().ok());
        if signed != Some(expected.as_str())
            || timestamp.and_then(|t| t.parse::<i64>().ok()).is_none()
        {
            self.bad_signatures.fetch_add(1, Ordering::SeqCst);
            return StatusCode::UNAUTHORIZED;
        }
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        self.deliveries
            .lock()
            .unwrap()
            .push(serde_json::from_slice(body).unwrap());
        self.arrived.notify_waiters();
        StatusCode::NO_CONTENT
    }

    fn deliveries(&self) -> Vec<Value> {
        self.deliveries.lock().unwrap().clone()
    }

    fn settings(&self) -> WebhookSettings {
        WebhookSettings {
            url: self.url.clone(),
            secret: SecretString::from(SECRET),
        }
    }
}

fn options(receiver: &Receiver, sink: &SmtpSink, interval: Option<Duration>) -> AppOptions {
    AppOptions {
        notify: NotifySettings {
            interval,
            webhook: Some(receiver.settings()),
            email: Some(EmailSettings {
                smtp_url: sink.url(),
                password: None,
                from: "batchcred@batchcred.test".into(),
            }),
            ..NotifySettings::default()
        },
        ..AppOptions::default()
    }
}

async fn set_email(app: &TestApp, auth: &TestUser, user: &TestUser, email: &str) -> Value {
    app.graphql(
        &auth.auth,
        "mutation($u: ID!, $e: String) { setUserEmail(userID: $u, email: $e) }",
        json!({ "u": user.id, "e": email }),
    )
    .await
}

/// What the tests set up: alice (site admin), bob and carol; bob's token
/// expires in three days, carol's in ninety, and the global token fails
/// its check (revoked).
struct Scene {
    alice: TestUser,
    bob: TestUser,
    carol: TestUser,
    bob_token: String,
    carol_token: String,
    site_token: String,
}

async fn scene(app: &TestApp) -> Scene {
    let alice = app.init_site_admin("alice").await;
    let bob = app.create_user(&alice, "bob").await;
    let carol = app.create_user(&alice, "carol").await;
    let github = app.codehosts.url("github");
    app.add_code_host(&alice, "GITHUB", &github, "HTTP").await;
    let token = |days: i64| {
        EmulatedToken::new("someone", GITHUB_SCOPES)
            .expiring(Utc::now() + chrono::Duration::days(days))
    };
    let bob_token = unique_token("ghp_bob");
    let carol_token = unique_token("ghp_carol");
    let site_token = unique_token("ghp_site");
    app.codehosts.add_token(&bob_token, token(3));
    app.codehosts.add_token(&carol_token, token(90));
    app.codehosts.add_token(&site_token, token(90));
    for (auth, user, token) in [
        (&bob, Some(bob.id.as_str()), &bob_token),
        (&carol, Some(carol.id.as_str()), &carol_token),
        (&alice, None, &site_token),
    ] {
        let created = app
            .create_credential(&auth.auth, user, "GITHUB", &github, token)
            .await;
        assert!(created["errors"].is_null(), "{created}");
    }
    app.codehosts
        .update_token(&site_token, |t| t.revoked = true);
    assert!(check(app, CredentialOwner::Site).await.is_err());
    Scene {
        alice,
        bob,
        carol,
        bob_token,
        carol_token,
        site_token,
    }
}

/// Checks the one credential of `owner` against the code host again.
async fn check(app: &TestApp, owner: CredentialOwner) -> Result<(), batchcred::service::Error> {
    let credentials = app
        .service
        .store()
        .list_credentials_of(owner)
        .await
        .unwrap();
    assert_eq!(credentials.len(), 1);
    app.service
        .check_credential(&Caller::Operator, credentials[0].id, &Default::default())
        .await
        .map(|_| ())
}

async fn round(app: &TestApp) -> WarningReport {
    app.service
        .send_expiry_warnings(&Caller::Operator)
        .await
        .unwrap()
}

async fn each_warning_is_sent_once_per_channel(backend: Backend) {
    let receiver = Receiver::start().await;
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(backend, options(&receiver, &sink, None)).await;
    let scene = scene(&app).await;
    for (who, user, email) in [
        (&scene.alice, &scene.alice, "alice@example.com"),
        (&scene.bob, &scene.bob, "bob@example.com"),
        (&scene.alice, &scene.carol, "carol@example.com"),
    ] {
        let set = set_email(&app, who, user, email).await;
        assert_eq!(set["data"]["setUserEmail"], email, "{set}");
    }

    // bob's expiring token and the failing global one: a webhook and an
    // email each, however many replicas run the round.
    let first = if backend == Backend::Postgres {
        let replica = app.replica_with(options(&receiver, &sink, None)).await;
        let (a, b) = tokio::join!(round(&app), round(&replica));
        WarningReport {
            sent: a.sent + b.sent,
            failed: a.failed + b.failed,
        }
    } else {
        round(&app).await
    };
    assert_eq!(first, WarningReport { sent: 4, failed: 0 });
    assert_eq!(round(&app).await, WarningReport::default());

    // carol's token now expires tomorrow: a new warning. Its webhook
    // delivery fails once and goes out in the next round. The global
    // token, checked again and still failing, is not warned about again.
    receiver.fail_next.store(1, Ordering::SeqCst);
    app.codehosts.update_token(&scene.carol_token, |t| {
        t.expires_at = Some(Utc::now() + chrono::Duration::hours(30));
    });
    let carol = app
        .service
        .store()
        .find_user_by_username("carol")
        .await
        .unwrap();
    check(&app, CredentialOwner::User(carol.id)).await.unwrap();
    assert!(check(&app, CredentialOwner::Site).await.is_err());
    assert_eq!(round(&app).await, WarningReport { sent: 1, failed: 1 });
    assert_eq!(round(&app).await, WarningReport { sent: 1, failed: 0 });
    assert_eq!(round(&app).await, WarningReport::default());

    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 3, "{deliveries:?}");
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
    let expiring = deliveries
        .iter()
        .find(|d| d["event"] == "credential.expiring" && d["username"] == "bob")
        .expect("bob's expiring event");
    assert!(
        deliveries
            .iter()
            .any(|d| d["username"] == "carol" && d["days_left"] == 1)
    );
    assert_eq!(expiring["owner"], "user");
    assert_eq!(expiring["username"], "bob");
    assert_eq!(expiring["code_host_kind"], "GITHUB");
    assert_eq!(expiring["days_left"], 2, "{expiring}");
    assert!(expiring["last_check_error"].is_null());
    let failed = deliveries
        .iter()
        .find(|d| d["event"] == "credential.check_failed")
        .expect("check failed event");
    assert_eq!(failed["owner"], "site");
    assert!(failed["username"].is_null());
    assert!(
        failed["last_check_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );

    let mails = sink.wait_for(3).await;
    assert_eq!(mails.len(), 3, "{mails:?}");
    let to = |address: &str| mails.iter().find(|m| m.to == [address]);
    let bob_mail = to("bob@example.com").expect("bob's mail");
    assert!(bob_mail.data.contains("expires"), "{}", bob_mail.data);
    assert!(bob_mail.data.contains("/user/settings/batch-changes"));
    let admin_mail = to("alice@example.com").expect("the admins' mail");
    assert!(admin_mail.data.contains("/site-admin/batch-changes"));
    assert_eq!(admin_mail.from, "batchcred@batchcred.test");
    assert!(to("carol@example.com").is_some());

    let everything = format!("{deliveries:?}{mails:?}");
    for token in [&scene.bob_token, &scene.carol_token, &scene.site_token] {
        assert!(!everything.contains(token.as_str()), "a token was sent out");
    }
    assert!(!everything.contains(SECRET));
}

async fn the_notice_shows_on_every_page_to_whoever_must_act(backend: Backend) {
    let app = spawn_app_with(backend, AppOptions::default()).await;
    let scene = scene(&app).await;
    let _ = &scene.carol;
    let github = app.codehosts.url("github");

    let bob = Browser::signed_in(&app, "bob").await;
    for page in [
        "/user/settings/batch-changes",
        "/user/settings/security",
        "/batch-changes/changesets",
    ] {
        let (status, body) = bob.get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let notice = notice_of(&body).unwrap_or_else(|| panic!("no notice on {page}"));
        assert!(
            notice.contains(&format!("GitHub credential for {github}")),
            "{notice}"
        );
        assert!(notice.contains("expires on"), "{notice}");
        assert!(
            !notice.contains("Global"),
            "bob sees the global credential: {notice}"
        );
    }

    let alice = Browser::signed_in(&app, "alice").await;
    let (_, body) = alice.get("/user/settings/security").await;
    let notice = notice_of(&body).expect("the admin's notice");
    assert!(notice.contains("Global GitHub credential"), "{notice}");
    assert!(notice.contains("/site-admin/batch-changes"), "{notice}");
    assert!(notice.contains("check"), "{notice}");
    assert!(
        !notice.contains("expires on"),
        "alice sees bob's credential: {notice}"
    );

    let carol = Browser::signed_in(&app, "carol").await;
    let (_, body) = carol.get("/user/settings/security").await;
    assert!(notice_of(&body).is_none(), "carol has nothing to act on");
    for token in [&scene.bob_token, &scene.site_token] {
        assert!(!body.contains(token.as_str()));
    }
}

/// The page's credential notice, if it has one.
fn notice_of(body: &str) -> Option<&str> {
    let start = body.find("class=\"credential-notices\"")?;
    let rest = &body[start..];
    Some(&rest[..rest.find("</div>")?])
}

both_backends!(
    each_warning_is_sent_once_per_channel,
    the_notice_shows_on_every_page_to_whoever_must_act,
);

#[tokio::test]
async fn the_background_round_sends_warnings_on_its_own() {
    let receiver = Receiver::start().await;
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(
        Backend::Sqlite,
        options(&receiver, &sink, Some(Duration::from_millis(50))),
    )
    .await;
    let scene = scene(&app).await;
    let _ = (&scene.alice, &scene.bob, &scene.carol);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let arrived = receiver.arrived.notified();
        if receiver.deliveries().len() >= 2 {
            break;
        }
        assert!(
            tokio::time::timeout_at(deadline, arrived).await.is_ok(),
            "the background round sent {} of 2 webhooks",
            receiver.deliveries().len()
        );
    }
    // Later rounds keep finding both warnings sent.
    assert_eq!(round(&app).await, WarningReport::default());
    assert_eq!(receiver.deliveries().len(), 2);
}

#[tokio::test]
async fn an_email_address_is_set_by_its_user_or_an_admin_and_checked() {
    let app = spawn_app_with(Backend::Sqlite, AppOptions::default()).await;
    let alice = app.init_site_admin("alice").await;
    let bob = app.create_user(&alice, "bob").await;
    let carol = app.create_user(&alice, "carol").await;

    let own = set_email(&app, &bob, &bob, " bob@example.com ").await;
    assert_eq!(own["data"]["setUserEmail"], "bob@example.com", "{own}");
    let by_admin = set_email(&app, &alice, &bob, "robert@example.com").await;
    assert_eq!(by_admin["data"]["setUserEmail"], "robert@example.com");
    let cleared = set_email(&app, &bob, &bob, "").await;
    assert!(cleared["data"]["setUserEmail"].is_null(), "{cleared}");

    let other = set_email(&app, &carol, &bob, "carol@example.com").await;
    assert_eq!(
        crate::helpers::error_code(&other),
        Some("NOT_FOUND"),
        "{other}"
    );
    let invalid = set_email(&app, &bob, &bob, "not an address").await;
    assert_eq!(
        crate::helpers::error_code(&invalid),
        Some("BAD_USER_INPUT"),
        "{invalid}"
    );
}

#[test]
fn the_cli_sets_and_clears_a_users_email() {
    use crate::cli::{batchcred, ok};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&batchcred(
        &data,
        &["users", "create", "alice"],
        "long password\n",
    ));
    let set = ok(&batchcred(
        &data,
        &["users", "set-email", "alice", "alice@example.com"],
        "",
    ));
    assert!(set.contains("go to alice@example.com"), "{set}");
    let cleared = ok(&batchcred(&data, &["users", "set-email", "alice", ""], ""));
    assert!(cleared.contains("no warning emails"), "{cleared}");
    let refused = batchcred(&data, &["users", "set-email", "alice", "nope"], "");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not an email address"));
}
