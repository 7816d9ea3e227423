//! First run, sign-in, sessions and access tokens.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{AppOptions, Auth, Backend, PASSWORD, error_code, spawn_app, spawn_app_with};

both_backends!(
    first_account_becomes_admin_and_site_init_closes,
    wrong_password_and_unknown_user_get_the_same_answer,
    sign_out_ends_the_session,
);

async fn first_account_becomes_admin_and_site_init_closes(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let me = app
        .graphql_ok(
            &admin.auth,
            "{ currentUser { username siteAdmin } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["currentUser"],
        json!({ "username": "admin", "siteAdmin": true })
    );

    let again = reqwest::Client::new()
        .post(app.url("/-/site-init"))
        .json(&json!({ "username": "intruder", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 403);
    let users = app
        .graphql_ok(
            &admin.auth,
            "{ users { totalCount nodes { username } } }",
            json!({}),
        )
        .await;
    assert_eq!(users["users"]["totalCount"], 1);

    let bob = app.create_user(&admin, "bob").await;
    let me = app
        .graphql_ok(
            &bob.auth,
            "{ currentUser { username siteAdmin } }",
            json!({}),
        )
        .await;
    assert_eq!(me["currentUser"]["siteAdmin"], false);
}

async fn wrong_password_and_unknown_user_get_the_same_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    app.init_site_admin("admin").await;
    let attempt = |username: &'static str, password: &'static str| {
        let url = app.url("/-/sign-in");
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&json!({ "username": username, "password": password }))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let wrong_password = attempt("admin", "not the password").await;
    let unknown_user = attempt("nobody", "not the password").await;
    assert_eq!(wrong_password.0, 401);
    assert_eq!(wrong_password, unknown_user);
    assert_eq!(wrong_password.1["error"], "wrong username or password");
    let no_cookie = reqwest::Client::new()
        .post(app.url("/-/sign-in"))
        .json(&json!({ "username": "admin", "password": "nope nope" }))
        .send()
        .await
        .unwrap();
    assert!(no_cookie.headers().get("set-cookie").is_none());
}

async fn sign_out_ends_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    app.init_site_admin("admin").await;
    let signed_in = app
        .client
        .post(app.url("/-/sign-in"))
        .json(&json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();

    let me = |session: String| {
        let url = app.url("/.api/graphql");
        async move {
            reqwest::Client::new()
                .post(url)
                .header("Cookie", session)
                .header("X-Requested-With", "test")
                .json(&json!({ "query": "{ currentUser { username } }" }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(me(session.clone()).await.status(), 200);
    reqwest::Client::new()
        .post(app.url("/-/sign-out"))
        .header("Cookie", session.clone())
        .send()
        .await
        .unwrap();
    let after = me(session).await;
    assert_eq!(after.status(), 401);
    let body: Value = after.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("sign in again"),
        "{body}"
    );
}

#[tokio::test]
async fn expired_session_is_refused_with_a_clear_error() {
    let app = spawn_app_with(
        Backend::Sqlite,
        AppOptions {
            session_ttl: Duration::from_secs(1),
            ..AppOptions::default()
        },
    )
    .await;
    app.init_site_admin("admin").await;
    let signed_in = reqwest::Client::new()
        .post(app.url("/-/sign-in"))
        .json(&json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Max-Age=1"), "{cookie}");
    // Replayed by hand: a browser would drop it, a stale tab or a thief would not.
    let session = cookie.split(';').next().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let response = reqwest::Client::new()
        .post(app.url("/.api/graphql"))
        .header("Cookie", session)
        .header("X-Requested-With", "test")
        .json(&json!({ "query": "{ currentUser { username } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "your session has expired; sign in again");
}

#[tokio::test]
async fn cookie_calls_without_csrf_header_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    app.init_site_admin("admin").await;
    app.client
        .post(app.url("/-/sign-in"))
        .json(&json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let response = app
        .client
        .post(app.url("/.api/graphql"))
        .json(&json!({ "query": "mutation { createUser(username: \"x\", password: \"long enough\") { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let admin_token = app.sign_in_with_token("admin").await;
    let users = app
        .graphql_ok(&admin_token.auth, "{ users { totalCount } }", json!({}))
        .await;
    assert_eq!(users["users"]["totalCount"], 1, "the forged mutation ran");
}

#[tokio::test]
async fn bad_access_tokens_get_401_and_anonymous_gets_nothing() {
    let app = spawn_app(Backend::Sqlite).await;
    app.init_site_admin("admin").await;
    for header in ["token bcp_not-a-real-token", "Basic abc", "garbage"] {
        let response = reqwest::Client::new()
            .post(app.url("/.api/graphql"))
            .header("Authorization", header)
            .json(&json!({ "query": "{ currentUser { username } }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header}");
    }
    let anonymous = app
        .graphql(&Auth::Anonymous, "{ currentUser { username } }", json!({}))
        .await;
    assert_eq!(anonymous["data"]["currentUser"], Value::Null);
    let listing = app
        .graphql(
            &Auth::Anonymous,
            "{ batchChangesCodeHosts { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&listing), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn user_input_is_validated_before_anything_is_stored() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.init_site_admin("admin").await;
    for (username, password) in [("bad name", PASSWORD), ("carol", "short")] {
        let body = app
            .graphql(
                &admin.auth,
                "mutation($u: String!, $p: String!) { createUser(username: $u, password: $p) { id } }",
                json!({ "u": username, "p": password }),
            )
            .await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    }
    app.create_user(&admin, "dave").await;
    let duplicate = app
        .graphql(
            &admin.auth,
            "mutation($p: String!) { createUser(username: \"dave\", password: $p) { id } }",
            json!({ "p": PASSWORD }),
        )
        .await;
    assert_eq!(error_code(&duplicate), Some("CONFLICT"));
    let users = app
        .graphql_ok(&admin.auth, "{ users { totalCount } }", json!({}))
        .await;
    assert_eq!(users["users"]["totalCount"], 2);
}
