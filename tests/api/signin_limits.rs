//! Sign-in protection: the per-account back-off (in the database, so on
//! both backends), the per-address back-off, the bound on concurrent
//! password checks, the web form, the race for the first admin, and the
//! cookies of an HTTPS deployment.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use batchcred::service::{BackoffPolicy, SignInLimits};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::helpers::{AppOptions, Auth, Backend, PASSWORD, TestApp, post_graphql, spawn_app_with};

crate::both_backends!(
    wrong_passwords_back_off_and_a_right_one_resets_the_count,
    only_one_of_many_concurrent_first_accounts_becomes_admin,
);

/// Accounts back off after 5 failures, from 2 s; addresses after `address`.
fn limits(address_free_attempts: u32) -> SignInLimits {
    SignInLimits {
        account: BackoffPolicy {
            base: Duration::from_secs(2),
            ..BackoffPolicy::ACCOUNT
        },
        address: BackoffPolicy {
            free_attempts: address_free_attempts,
            ..BackoffPolicy::ADDRESS
        },
        ..SignInLimits::default()
    }
}

async fn spawn(backend: Backend, sign_in: SignInLimits) -> TestApp {
    spawn_app_with(
        backend,
        AppOptions {
            sign_in,
            ..AppOptions::default()
        },
    )
    .await
}

/// `POST /-/sign-in` from `from`: status, `Retry-After`, body.
async fn sign_in_from(
    app: &TestApp,
    from: IpAddr,
    username: &str,
    password: &str,
) -> (StatusCode, Option<u64>, Value) {
    post_sign_in(app.url("/-/sign-in"), from, username, password).await
}

async fn post_sign_in(
    url: String,
    from: IpAddr,
    username: &str,
    password: &str,
) -> (StatusCode, Option<u64>, Value) {
    let client = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let response = client
        .post(url)
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry_after, response.json().await.unwrap())
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Another loopback address: "another client" for the server.
const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

async fn sign_in(
    app: &TestApp,
    username: &str,
    password: &str,
) -> (StatusCode, Option<u64>, Value) {
    sign_in_from(app, LOCALHOST, username, password).await
}

async fn stored_failures(app: &TestApp, account: &str) -> i64 {
    app.service
        .store()
        .sign_in_failures(account)
        .await
        .unwrap()
        .map_or(0, |f| f.count)
}

async fn wrong_passwords_back_off_and_a_right_one_resets_the_count(backend: Backend) {
    let app = spawn(backend, limits(100)).await;
    app.init_site_admin("admin").await;
    for _ in 0..5 {
        let (status, retry, _) = sign_in(&app, "admin", "not the password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(retry, None);
    }
    // The sixth attempt comes during the back-off, and so does a right
    // password: both refused before any check, and neither counts.
    let (status, retry, body) = sign_in(&app, "Admin", "not the password").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // 2 s from the fifth failure, rounded up: 2 unless the machine is slow.
    assert!(
        retry.is_some_and(|secs| (1..=2).contains(&secs)),
        "{retry:?}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("too many failed password attempts; try again in"),
        "{body}"
    );
    let (status, retry, _) = sign_in(&app, "admin", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some_and(|secs| (1..=2).contains(&secs)));
    assert_eq!(stored_failures(&app, "admin").await, 5);

    tokio::time::sleep(Duration::from_secs(retry.unwrap())).await;
    let (status, _, body) = sign_in(&app, "admin", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(stored_failures(&app, "admin").await, 0, "reset by success");
    for _ in 0..5 {
        let (status, _, _) = sign_in(&app, "admin", "not the password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "the count starts again");
    }
    let (status, _, _) = sign_in(&app, "admin", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // `batchcred users unlock` ends the back-off at once.
    app.service
        .forget_sign_in_failures(&batchcred::auth::Caller::Operator, "Admin")
        .await
        .unwrap();
    let (status, _, body) = sign_in(&app, "admin", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_address_is_throttled_across_accounts_but_not_other_addresses() {
    let app = spawn(Backend::Sqlite, limits(6)).await;
    app.init_site_admin("admin").await;
    for username in ["ghost1", "ghost2"] {
        for _ in 0..3 {
            let (status, _, _) = sign_in(&app, username, "not the password").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    // The admin account has no failure: this is the address rule.
    assert_eq!(stored_failures(&app, "admin").await, 0);
    let (status, retry, _) = sign_in(&app, "admin", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some());
    let (status, _, body) = sign_in_from(&app, ELSEWHERE, "admin", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn beyond_the_bound_on_password_checks_sign_in_answers_503_at_once() {
    let app = spawn(
        Backend::Sqlite,
        SignInLimits {
            max_concurrent: 1,
            ..limits(10_000)
        },
    )
    .await;
    app.init_site_admin("admin").await;
    let mut refused = None;
    for round in 0..5 {
        let mut attempts = tokio::task::JoinSet::new();
        for n in 0..8 {
            let url = app.url("/-/sign-in");
            let username = format!("user{round}x{n}");
            attempts.spawn(async move {
                post_sign_in(url, LOCALHOST, &username, "not the password").await
            });
        }
        for (status, retry, body) in attempts.join_all().await {
            match status {
                StatusCode::UNAUTHORIZED => {}
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(retry, Some(1));
                    refused = Some(body);
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        if refused.is_some() {
            break;
        }
    }
    let body = refused.expect("some of 8 concurrent sign-ins found the only slot taken");
    assert_eq!(
        body["error"],
        "too many password checks in progress, retry shortly"
    );
    // The slot is free again afterwards.
    let (status, _, _) = sign_in_from(&app, ELSEWHERE, "admin", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_web_sign_in_form_is_throttled_too() {
    let app = spawn(Backend::Sqlite, limits(100)).await;
    app.init_site_admin("admin").await;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap();
    let page = browser
        .get(app.url("/sign-in"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = page.find("name=\"csrf\" value=\"").expect("a form") + 19;
    let csrf = page[start..].split('"').next().unwrap().to_owned();
    let post = |password: &'static str| {
        let form = [
            ("csrf", csrf.as_str()),
            ("username", "admin"),
            ("password", password),
        ];
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        browser
            .post(app.url("/sign-in"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    for _ in 0..5 {
        assert_eq!(
            post("not the password").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let response = post(PASSWORD).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(retry == "1" || retry == "2", "{retry}");
    let body = response.text().await.unwrap();
    assert!(
        body.contains(&format!(
            "too many failed password attempts; try again in {retry} seconds"
        )),
        "{body}"
    );
    assert!(
        body.contains("name=\"password\""),
        "the form is shown again"
    );
}

async fn only_one_of_many_concurrent_first_accounts_becomes_admin(backend: Backend) {
    let app = spawn(backend, SignInLimits::default()).await;
    let mut attempts = tokio::task::JoinSet::new();
    for n in 0..12 {
        let graphql = app.url("/.api/graphql");
        let site_init = app.url("/-/site-init");
        let username = format!("first{n}");
        attempts.spawn(async move {
            if n % 2 == 0 {
                let body = post_graphql(
                    &graphql,
                    &Auth::Anonymous,
                    "mutation($u: String!, $p: String!) { \
                     createUser(username: $u, password: $p, siteAdmin: true) { id } }",
                    json!({ "u": username, "p": PASSWORD }),
                )
                .await;
                body.get("errors").is_none()
            } else {
                let response = reqwest::Client::new()
                    .post(site_init)
                    .json(&json!({ "username": username, "password": PASSWORD }))
                    .send()
                    .await
                    .unwrap();
                response.status() == StatusCode::CREATED
            }
        });
    }
    let succeeded = attempts
        .join_all()
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count();
    assert_eq!(succeeded, 1, "exactly one first account");
    let users = app.service.store().list_users(None, 100).await.unwrap();
    assert_eq!(users.len(), 1, "the losers left nothing behind: {users:?}");
    assert!(users[0].site_admin);
}

#[tokio::test]
async fn over_https_every_cookie_is_secure_and_host_prefixed() {
    let app = spawn_app_with(
        Backend::Sqlite,
        AppOptions {
            external_url: "https://batchcred.test".parse().unwrap(),
            ..AppOptions::default()
        },
    )
    .await;
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let page = client.get(app.url("/site-init")).send().await.unwrap();
    let csrf_cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        csrf_cookie.starts_with("__Host-batchcred_csrf=") && csrf_cookie.contains("Secure"),
        "{csrf_cookie}"
    );
    let created = client
        .post(app.url("/-/site-init"))
        .json(&json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let session = created.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        session.starts_with("__Host-batchcred_session=") && session.contains("Secure"),
        "{session}"
    );
    // The prefixed cookie is the one the server reads (a browser sends it
    // back only over HTTPS; here a proxy would have ended TLS).
    let pair = session.split(';').next().unwrap();
    let me: Value = client
        .post(app.url("/.api/graphql"))
        .header("cookie", pair)
        .header("X-Requested-With", "test")
        .json(&json!({ "query": "{ currentUser { username siteAdmin } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["currentUser"]["username"], "admin", "{me}");
    let unprefixed = pair.trim_start_matches("__Host-");
    let anonymous: Value = client
        .post(app.url("/.api/graphql"))
        .header("cookie", unprefixed)
        .header("X-Requested-With", "test")
        .json(&json!({ "query": "{ currentUser { username } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(anonymous["data"]["currentUser"].is_null(), "{anonymous}");
}

/// Signs in from 127.0.0.1 with an `X-Forwarded-For` header.
async fn sign_in_forwarded_for(
    app: &TestApp,
    forwarded_for: &str,
    username: &str,
    password: &str,
) -> StatusCode {
    reqwest::Client::new()
        .post(app.url("/-/sign-in"))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
}

/// Six wrong sign-ins on three accounts, "from" `forwarded_for`: past the
/// address threshold of `limits(6)` but below every account's.
async fn fail_from(app: &TestApp, forwarded_for: &str) {
    for username in ["ghost1", "ghost2", "ghost3"] {
        for _ in 0..2 {
            let status = sign_in_forwarded_for(app, forwarded_for, username, "wrong").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_throttled_not_everyone() {
    let app = spawn_app_with(
        Backend::Sqlite,
        AppOptions {
            sign_in: limits(6),
            trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
            ..AppOptions::default()
        },
    )
    .await;
    app.init_site_admin("admin").await;
    fail_from(&app, "203.0.113.5").await;
    // That client waits; another one behind the same proxy does not.
    let status = sign_in_forwarded_for(&app, "203.0.113.5", "admin", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let status = sign_in_forwarded_for(&app, "203.0.113.6", "admin", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    // A client cannot dodge its back-off by writing its own header: only
    // the right-most hop, added by the proxy, is believed.
    let status = sign_in_forwarded_for(&app, "198.51.100.1, 203.0.113.5", "admin", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn without_trusted_proxies_the_forwarded_header_is_ignored() {
    let app = spawn(Backend::Sqlite, limits(6)).await;
    app.init_site_admin("admin").await;
    fail_from(&app, "203.0.113.5").await;
    // The header names another client, but the peer (127.0.0.1) is what
    // counts, and it is in its back-off.
    let status = sign_in_forwarded_for(&app, "203.0.113.6", "admin", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// Guesses sent at the same moment cannot share one allowance: each one
/// checked is counted before its check, and the others wait.
#[tokio::test]
async fn concurrent_guesses_on_one_account_are_each_counted() {
    let app = spawn(
        Backend::Sqlite,
        SignInLimits {
            max_concurrent: 16,
            account: BackoffPolicy {
                free_attempts: 1_000,
                ..BackoffPolicy::ACCOUNT
            },
            ..limits(10_000)
        },
    )
    .await;
    app.init_site_admin("admin").await;
    let (mut checked, mut refused) = (0, 0);
    for _round in 0..5 {
        let mut attempts = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let url = app.url("/-/sign-in");
            attempts.spawn(async move { post_sign_in(url, LOCALHOST, "admin", "guess").await });
        }
        for (status, _, body) in attempts.join_all().await {
            match status {
                StatusCode::UNAUTHORIZED => checked += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    assert!(
                        body["error"]
                            .as_str()
                            .unwrap()
                            .starts_with("another password attempt for this account"),
                        "{body}"
                    );
                    refused += 1;
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(
        refused > 0,
        "some of 12 simultaneous guesses were made to wait"
    );
    assert_eq!(stored_failures(&app, "admin").await, checked);
}
