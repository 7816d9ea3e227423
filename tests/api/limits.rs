//! Malformed and oversized requests, and the health check.

use serde_json::{Value, json};

use crate::helpers::{Auth, Backend, spawn_app};

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.init_site_admin("admin").await;
    let Auth::Token(token) = &admin.auth else {
        unreachable!()
    };
    let huge = "x".repeat(1024 * 1024 + 1);
    let response = reqwest::Client::new()
        .post(app.url("/.api/graphql"))
        .header("Authorization", format!("token {token}"))
        .header("Content-Type", "application/json")
        .body(
            json!({ "query": "{ currentUser { id } }", "variables": { "pad": huge } }).to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn malformed_requests_get_clear_errors() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.init_site_admin("admin").await;
    let Auth::Token(token) = &admin.auth else {
        unreachable!()
    };
    let post = |body: &'static str| {
        reqwest::Client::new()
            .post(app.url("/.api/graphql"))
            .header("Authorization", format!("token {token}"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let not_json = post("{ this is not json").await.unwrap();
    assert_eq!(not_json.status(), 400);

    let bad_syntax: Value = post(r#"{"query": "{ currentUser { "}"#)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        bad_syntax["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expected"),
        "{bad_syntax}"
    );

    let unknown_field: Value = post(r#"{"query": "{ secrets }"}"#)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        unknown_field["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("secrets"),
        "{unknown_field}"
    );

    let bad_enum = app
        .graphql(
            &admin.auth,
            "mutation { addCodeHost(kind: SUBVERSION, url: \"https://svn.example.com\") { id } }",
            json!({}),
        )
        .await;
    assert!(bad_enum["errors"].is_array(), "{bad_enum}");

    let sign_in = reqwest::Client::new()
        .post(app.url("/-/sign-in"))
        .header("Content-Type", "application/json")
        .body(r#"{"username": "admin"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(sign_in.status(), 422);
}

#[tokio::test]
async fn healthz_answers_when_the_store_is_reachable() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok\n");
}

#[tokio::test]
async fn one_request_checks_at_most_a_handful_of_credentials() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.init_site_admin("admin").await;
    let github = app.codehosts.url("github");
    app.add_code_host(&admin, "GITHUB", &github, "HTTP").await;
    let created = app
        .create_credential(
            &admin.auth,
            Some(&admin.id),
            "GITHUB",
            &github,
            "ghp_checked",
        )
        .await;
    let id = created["data"]["createBatchChangesCredential"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("credential created: {created}"))
        .to_owned();
    let calls_before = app.codehosts.seen().len();

    let aliases: String = (0..8)
        .map(|i| {
            format!(
                "c{i}: checkBatchChangesCredential(batchChangesCredential: $id) {{ alwaysNil }} "
            )
        })
        .collect();
    let body = app
        .graphql(
            &admin.auth,
            &format!("query($id: ID!) {{ {aliases} }}"),
            json!({ "id": id }),
        )
        .await;
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(errors.len(), 3, "{body}");
    for error in errors {
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("at most 5 credentials"),
            "{error}"
        );
    }
    // Only the allowed checks reached the code host (one call each).
    let user_calls = app.codehosts.seen()[calls_before..]
        .iter()
        .filter(|r| r.path.ends_with("/user"))
        .count();
    assert_eq!(user_calls, 5);
}
