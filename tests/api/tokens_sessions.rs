//! API access tokens (expiry, listing, revocation on every replica, minting
//! for yourself only) and sessions (password change, sign out everywhere,
//! idle timeout, admin reset), through GraphQL, the CLI and the pages.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    AppOptions, Auth, Backend, PASSWORD, TestApp, TestUser, error_code, error_message, spawn_app,
    spawn_app_with,
};

both_backends!(
    tokens_expire_and_list_without_their_secret,
    a_revoked_token_is_refused_at_once_on_every_replica,
    tokens_are_private_and_minted_only_for_yourself,
    a_password_change_keeps_this_session_and_ends_the_others,
    guessing_the_current_password_backs_off_like_sign_in,
    sign_out_everywhere_ends_every_session_but_not_tokens,
    idle_sessions_are_refused_and_used_ones_kept_alive,
    an_admin_reset_ends_sessions_and_sets_the_password,
);

const NEW_PASSWORD: &str = "a brand new passphrase";

const LIST_TOKENS: &str = "query($u: ID!) { node(id: $u) { ... on User { accessTokens { \
    totalCount nodes { id tokenPrefix note createdAt lastUsedAt expiresAt expired } } } } }";

const CREATE_TOKEN: &str = "mutation($u: ID!, $n: String!, $d: Int) { \
    createAccessToken(user: $u, note: $n, durationSeconds: $d) { id token expiresAt } }";

/// `currentUser` through `base` (a server's URL) with a token: the HTTP
/// status and the body.
async fn whoami(base: &str, token: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/.api/graphql"))
        .header("Authorization", format!("token {token}"))
        .json(&json!({ "query": "{ currentUser { username } }" }))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn token_of(user: &TestUser) -> &str {
    match &user.auth {
        Auth::Token(token) => token,
        Auth::Anonymous => panic!("a signed-in user"),
    }
}

/// Creates a token for `user` as `user`; returns (id, token, whole data).
async fn create_token(
    app: &TestApp,
    user: &TestUser,
    note: &str,
    seconds: Option<i64>,
) -> (String, String) {
    let data = app
        .graphql_ok(
            &user.auth,
            CREATE_TOKEN,
            json!({ "u": user.id, "n": note, "d": seconds }),
        )
        .await;
    let created = &data["createAccessToken"];
    (
        created["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    )
}

/// A browser-like API client signed in with a session cookie.
struct Session {
    client: reqwest::Client,
    base: String,
}

impl Session {
    async fn sign_in(app: &TestApp, username: &str, password: &str) -> Option<Self> {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        let response = client
            .post(app.url("/-/sign-in"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        (response.status() == StatusCode::OK).then(|| Self {
            client,
            base: app.url(""),
        })
    }

    async fn graphql(&self, query: &str, variables: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/.api/graphql", self.base))
            .header("X-Requested-With", "test")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// Whether the session is still accepted.
    async fn alive(&self) -> bool {
        let (status, body) = self
            .graphql("{ currentUser { username } }", json!({}))
            .await;
        match status {
            StatusCode::OK => {
                assert!(
                    body["data"]["currentUser"]["username"].is_string(),
                    "{body}"
                );
                true
            }
            StatusCode::UNAUTHORIZED => false,
            other => panic!("unexpected {other}: {body}"),
        }
    }
}

/// Runs one SQL statement on the app's database (to age a row).
async fn execute_sql(app: &TestApp, statement: &str) {
    let resolved = batchcred::app::resolve_store(&app.store).unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(resolved.database_url.expose())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// Runs a query answering one BIGINT.
async fn query_i64(app: &TestApp, statement: &str) -> i64 {
    let resolved = batchcred::app::resolve_store(&app.store).unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(resolved.database_url.expose())
        .await
        .unwrap();
    let row: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(statement.to_owned()))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    row.0
}

async fn tokens_expire_and_list_without_their_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let alice = app.create_user(&admin, "alice").await;
    let (_, short) = create_token(&app, &alice, "short-lived", Some(1)).await;
    let (lasting_id, lasting) = create_token(&app, &alice, "ci", None).await;
    let base = app.url("");
    assert_eq!(whoami(&base, &short).await.0, StatusCode::OK);
    assert_eq!(whoami(&base, &lasting).await.0, StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = whoami(&base, &short).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid, expired or revoked access token");
    assert_eq!(whoami(&base, &lasting).await.0, StatusCode::OK);

    let listed = app
        .graphql_ok(&alice.auth, LIST_TOKENS, json!({ "u": alice.id }))
        .await;
    let text = listed.to_string();
    for secret in [short.as_str(), lasting.as_str(), token_of(&alice)] {
        assert!(!text.contains(secret), "a token is listed: {text}");
    }
    let tokens = &listed["node"]["accessTokens"];
    assert_eq!(tokens["totalCount"], 3, "{tokens}");
    let nodes = tokens["nodes"].as_array().unwrap();
    let by_note = |note: &str| nodes.iter().find(|t| t["note"] == note).unwrap();
    let ci = by_note("ci");
    assert_eq!(ci["id"], lasting_id.as_str());
    let prefix = ci["tokenPrefix"].as_str().unwrap();
    assert!(prefix.starts_with("bcp_") && prefix.len() == 12, "{prefix}");
    assert!(lasting.starts_with(prefix));
    assert!(ci["lastUsedAt"].is_string(), "use recorded: {ci}");
    assert!(ci["expiresAt"].is_null());
    assert_eq!(ci["expired"], false);
    let expired = by_note("short-lived");
    assert!(expired["expiresAt"].is_string());
    assert_eq!(expired["expired"], true);
    assert!(short.starts_with(expired["tokenPrefix"].as_str().unwrap()));

    // A lifetime of zero or less is refused, and nothing is created.
    for seconds in [0, -5] {
        let body = app
            .graphql(
                &alice.auth,
                CREATE_TOKEN,
                json!({ "u": alice.id, "n": "bad", "d": seconds }),
            )
            .await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    }
    let listed = app
        .graphql_ok(&alice.auth, LIST_TOKENS, json!({ "u": alice.id }))
        .await;
    assert_eq!(listed["node"]["accessTokens"]["totalCount"], 3);
}

async fn a_revoked_token_is_refused_at_once_on_every_replica(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let alice = app.create_user(&admin, "alice").await;
    let (id, token) = create_token(&app, &alice, "deploy", None).await;
    let replica = app.replica().await;
    let replica_base = replica.url("");
    // Both replicas accept it, and each has looked it up already.
    assert_eq!(whoami(&app.url(""), &token).await.0, StatusCode::OK);
    assert_eq!(whoami(&replica_base, &token).await.0, StatusCode::OK);

    app.graphql_ok(
        &alice.auth,
        "mutation($id: ID!) { deleteAccessToken(byID: $id) { alwaysNil } }",
        json!({ "id": id }),
    )
    .await;
    for base in [app.url(""), replica_base] {
        let (status, body) = whoami(&base, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{base}: {body}");
    }
    // Revoking it again: it is gone.
    let body = app
        .graphql(
            &alice.auth,
            "mutation($id: ID!) { deleteAccessToken(byID: $id) { alwaysNil } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
}

async fn tokens_are_private_and_minted_only_for_yourself(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let alice = app.create_user(&admin, "alice").await;
    let bob = app.create_user(&admin, "bob").await;
    let (alice_token_id, alice_token) = create_token(&app, &alice, "mine", None).await;

    // Bob sees neither the list nor the token, and cannot revoke it: the
    // answers are those for things that do not exist.
    let listed = app
        .graphql_ok(&bob.auth, LIST_TOKENS, json!({ "u": alice.id }))
        .await;
    assert!(listed["node"].is_null(), "{listed}");
    let node = app
        .graphql_ok(
            &bob.auth,
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": alice_token_id }),
        )
        .await;
    assert!(node["node"].is_null(), "{node}");
    let delete = "mutation($id: ID!) { deleteAccessToken(byID: $id) { alwaysNil } }";
    let refused = app
        .graphql(&bob.auth, delete, json!({ "id": alice_token_id }))
        .await;
    let (missing_id, _) = create_token(&app, &bob, "gone", None).await;
    app.graphql_ok(&bob.auth, delete, json!({ "id": missing_id }))
        .await;
    let missing = app
        .graphql(&bob.auth, delete, json!({ "id": missing_id }))
        .await;
    assert_eq!(error_code(&refused), Some("NOT_FOUND"), "{refused}");
    assert_eq!(error_message(&refused), error_message(&missing));
    assert_eq!(whoami(&app.url(""), &alice_token).await.0, StatusCode::OK);

    // A site admin may not mint a token for Alice...
    let minted = app
        .graphql(
            &admin.auth,
            CREATE_TOKEN,
            json!({ "u": alice.id, "n": "as alice", "d": null }),
        )
        .await;
    assert_eq!(error_code(&minted), Some("FORBIDDEN"), "{minted}");
    assert!(
        error_message(&minted).contains("your own account"),
        "{minted}"
    );
    // ...but may see her tokens, and revoke them.
    let listed = app
        .graphql_ok(&admin.auth, LIST_TOKENS, json!({ "u": alice.id }))
        .await;
    assert_eq!(listed["node"]["accessTokens"]["totalCount"], 2, "{listed}");
    app.graphql_ok(&admin.auth, delete, json!({ "id": alice_token_id }))
        .await;
    assert_eq!(
        whoami(&app.url(""), &alice_token).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// A session alone (a stolen cookie, say) does not let anyone guess the
/// password faster than the sign-in page does: wrong current passwords
/// count towards the account's back-off.
async fn guessing_the_current_password_backs_off_like_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    app.create_user(&admin, "alice").await;
    let session = Session::sign_in(&app, "alice", PASSWORD).await.unwrap();
    let change = "mutation($old: String!, $new: String!) { \
        updatePassword(oldPassword: $old, newPassword: $new) { alwaysNil } }";
    for guess in 0..5 {
        let (_, body) = session
            .graphql(
                change,
                json!({ "old": format!("guess {guess}"), "new": NEW_PASSWORD }),
            )
            .await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    }
    // Now even the right one waits, and nothing changes.
    let (_, body) = session
        .graphql(change, json!({ "old": PASSWORD, "new": NEW_PASSWORD }))
        .await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    assert!(
        Session::sign_in(&app, "alice", NEW_PASSWORD)
            .await
            .is_none()
    );
}

async fn a_password_change_keeps_this_session_and_ends_the_others(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let alice = app.create_user(&admin, "alice").await;
    let here = Session::sign_in(&app, "alice", PASSWORD).await.unwrap();
    let elsewhere = Session::sign_in(&app, "alice", PASSWORD).await.unwrap();
    let change = "mutation($old: String!, $new: String!) { \
        updatePassword(oldPassword: $old, newPassword: $new) { alwaysNil } }";

    // A wrong current password changes nothing.
    let (_, body) = here
        .graphql(
            change,
            json!({ "old": "not my password", "new": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(error_message(&body), "the current password is wrong");
    // So does a new password that is too short.
    let (_, body) = here
        .graphql(change, json!({ "old": PASSWORD, "new": "short" }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(here.alive().await && elsewhere.alive().await);
    assert!(
        Session::sign_in(&app, "alice", NEW_PASSWORD)
            .await
            .is_none()
    );

    let (status, body) = here
        .graphql(change, json!({ "old": PASSWORD, "new": NEW_PASSWORD }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("errors").is_none(), "{body}");
    assert!(here.alive().await, "the session that changed it stays");
    assert!(!elsewhere.alive().await, "other sessions end");
    assert!(Session::sign_in(&app, "alice", PASSWORD).await.is_none());
    assert!(
        Session::sign_in(&app, "alice", NEW_PASSWORD)
            .await
            .is_some()
    );
    // Access tokens are not sessions: they keep working.
    assert_eq!(
        whoami(&app.url(""), token_of(&alice)).await.0,
        StatusCode::OK
    );
}

async fn sign_out_everywhere_ends_every_session_but_not_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let alice = app.create_user(&admin, "alice").await;
    let bob = app.create_user(&admin, "bob").await;
    let one = Session::sign_in(&app, "alice", PASSWORD).await.unwrap();
    let two = Session::sign_in(&app, "alice", PASSWORD).await.unwrap();
    let bobs = Session::sign_in(&app, "bob", PASSWORD).await.unwrap();
    let invalidate = "mutation($u: ID!) { invalidateSessionsByID(userID: $u) { alwaysNil } }";

    // Bob cannot sign Alice out.
    let body = app
        .graphql(&bob.auth, invalidate, json!({ "u": alice.id }))
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    assert!(one.alive().await && two.alive().await);

    let (status, body) = one.graphql(invalidate, json!({ "u": alice.id })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert!(!one.alive().await && !two.alive().await);
    assert!(bobs.alive().await, "only Alice's sessions end");
    assert_eq!(
        whoami(&app.url(""), token_of(&alice)).await.0,
        StatusCode::OK
    );
    // A site admin may sign Bob out.
    app.graphql_ok(&admin.auth, invalidate, json!({ "u": bob.id }))
        .await;
    assert!(!bobs.alive().await);
}

async fn idle_sessions_are_refused_and_used_ones_kept_alive(backend: Backend) {
    // An idle timeout of an hour: a session last seen two hours ago is
    // refused, one seen two minutes ago is accepted and marked as seen.
    let app = spawn_app_with(
        backend,
        AppOptions {
            session_idle_timeout: Some(Duration::from_secs(3600)),
            ..AppOptions::default()
        },
    )
    .await;
    let admin = app.init_site_admin("admin").await;
    app.create_user(&admin, "alice").await;
    app.create_user(&admin, "bob").await;
    let alice = Session::sign_in(&app, "alice", PASSWORD).await.unwrap();
    let bob = Session::sign_in(&app, "bob", PASSWORD).await.unwrap();
    assert!(alice.alive().await && bob.alive().await);
    let now = chrono::Utc::now().timestamp_millis();
    let of_user =
        |name: &str| format!("user_id = (SELECT id FROM users WHERE username = '{name}')");
    let two_hours_ago = now - 2 * 3600 * 1000;
    execute_sql(
        &app,
        &format!(
            "UPDATE sessions SET last_seen_at = {two_hours_ago} WHERE {}",
            of_user("alice")
        ),
    )
    .await;
    let two_minutes_ago = now - 2 * 60 * 1000;
    execute_sql(
        &app,
        &format!(
            "UPDATE sessions SET last_seen_at = {two_minutes_ago} WHERE {}",
            of_user("bob")
        ),
    )
    .await;

    let (status, body) = alice
        .graphql("{ currentUser { username } }", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "your session has expired; sign in again");
    assert!(bob.alive().await);
    // Bob's use was recorded, so his idle clock starts again.
    let last_seen = query_i64(
        &app,
        &format!(
            "SELECT MAX(last_seen_at) FROM sessions WHERE {}",
            of_user("bob")
        ),
    )
    .await;
    assert!(last_seen >= now, "last_seen_at was updated: {last_seen}");
    // Alice's idle session was deleted, not just refused; her other one
    // (from `create_user`) goes with the periodic purge, Bob's stay.
    let count = |name: &str| format!("SELECT COUNT(*) FROM sessions WHERE {}", of_user(name));
    assert_eq!(query_i64(&app, &count("alice")).await, 1);
    assert_eq!(app.service.purge_expired_sessions().await.unwrap(), 1);
    assert_eq!(query_i64(&app, &count("alice")).await, 0);
    assert_eq!(query_i64(&app, &count("bob")).await, 2);
}

async fn an_admin_reset_ends_sessions_and_sets_the_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let alice = app.create_user(&admin, "alice").await;
    let bob = app.create_user(&admin, "bob").await;
    let session = Session::sign_in(&app, "alice", PASSWORD).await.unwrap();
    let reset = "mutation($u: ID!, $p: String!) { \
        setUserPassword(user: $u, newPassword: $p) { alwaysNil } }";

    // Not for regular users, not on yourself, not too short.
    let body = app
        .graphql(
            &bob.auth,
            reset,
            json!({ "u": alice.id, "p": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = app
        .graphql(
            &admin.auth,
            reset,
            json!({ "u": admin.id, "p": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let body = app
        .graphql(&admin.auth, reset, json!({ "u": alice.id, "p": "short" }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(session.alive().await);
    assert!(Session::sign_in(&app, "alice", PASSWORD).await.is_some());

    app.graphql_ok(
        &admin.auth,
        reset,
        json!({ "u": alice.id, "p": NEW_PASSWORD }),
    )
    .await;
    assert!(!session.alive().await, "her sessions end");
    assert!(Session::sign_in(&app, "alice", PASSWORD).await.is_none());
    assert!(
        Session::sign_in(&app, "alice", NEW_PASSWORD)
            .await
            .is_some()
    );
}

mod pages {
    //! The Access tokens, Security and Users pages, through real forms.

    use reqwest::StatusCode;

    use super::{NEW_PASSWORD, whoami};
    use crate::helpers::{Backend, PASSWORD, spawn_app};
    use crate::web::Browser;

    const TOKENS: &str = "/user/settings/access-tokens";

    /// The `bcp_…` token shown in a page.
    fn shown_token(page: &str) -> Option<String> {
        let start = page.find("value=\"bcp_")? + 7;
        page[start..].split('"').next().map(str::to_owned)
    }

    /// The id in the revoke link of the row listing `prefix`.
    fn revoke_link(page: &str, prefix: &str) -> String {
        let row = page.find(prefix).expect("the token's row");
        let start = page[row..].find("?revoke=").expect("a revoke link") + row + 8;
        page[start..].split('"').next().unwrap().to_owned()
    }

    #[tokio::test]
    async fn access_tokens_are_created_shown_once_and_revoked_with_confirmation() {
        let app = spawn_app(Backend::Sqlite).await;
        let admin = app.init_site_admin("admin").await;
        app.create_user(&admin, "bob").await;
        let browser = Browser::new(&app);
        browser.sign_in("admin").await;
        let csrf = browser.csrf(TOKENS).await;

        // Without the CSRF token nothing is created.
        let (status, _) = browser
            .post(TOKENS, &[("note", "forged"), ("expires_in_days", "7")])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // A bad expiry is an error shown on the page.
        let (status, page) = browser
            .post(
                TOKENS,
                &[("csrf", &csrf), ("note", "bad"), ("expires_in_days", "0")],
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
        assert!(shown_token(&page).is_none());

        let (status, page) = browser
            .post(
                TOKENS,
                &[
                    ("csrf", &csrf),
                    ("note", "laptop"),
                    ("expires_in_days", "7"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{page}");
        let token = shown_token(&page).expect("the new token is shown");
        assert!(page.contains("shown only this once"), "{page}");
        assert_eq!(whoami(&app.url(""), &token).await.0, StatusCode::OK);

        // Listed again: prefix and note, never the token.
        let (_, list) = browser.get(TOKENS).await;
        assert!(!list.contains(&token), "the token is shown again");
        assert!(list.contains(&token[..12]), "{list}");
        assert!(list.contains("laptop"));
        assert!(!list.contains("forged") && !list.contains(">bad<"));

        // Revoke: a confirmation first, then the form.
        let id = revoke_link(&list, &token[..12]);
        let (status, dialog) = browser.get(&format!("{TOKENS}?revoke={id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(dialog.contains("Revoke the token"), "{dialog}");
        let revoke = format!("{TOKENS}/{id}/delete");
        let (status, _) = browser.post(&revoke, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
        assert_eq!(whoami(&app.url(""), &token).await.0, StatusCode::OK);
        // Bob cannot revoke the admin's token from his page either.
        let bob = Browser::new(&app);
        bob.sign_in("bob").await;
        let bob_csrf = bob.csrf(TOKENS).await;
        let (status, _) = bob.post(&revoke, &[("csrf", &bob_csrf)]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = browser.post(&revoke, &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(
            whoami(&app.url(""), &token).await.0,
            StatusCode::UNAUTHORIZED
        );
        let (_, list) = browser.get(TOKENS).await;
        assert!(!list.contains(&token[..12]), "revoked tokens are gone");
    }

    fn password_form<'a>(
        csrf: &'a str,
        current: &'a str,
        new: &'a str,
        again: &'a str,
    ) -> [(&'a str, &'a str); 4] {
        [
            ("csrf", csrf),
            ("current_password", current),
            ("new_password", new),
            ("confirm_password", again),
        ]
    }

    #[tokio::test]
    async fn the_security_page_changes_the_password_and_signs_out_everywhere() {
        let app = spawn_app(Backend::Sqlite).await;
        app.init_site_admin("admin").await;
        let here = Browser::new(&app);
        here.sign_in("admin").await;
        let elsewhere = Browser::new(&app);
        elsewhere.sign_in("admin").await;
        let security = "/user/settings/security";
        let csrf = here.csrf(security).await;
        let change = "/user/settings/security/password";

        let wrong = password_form(&csrf, "wrong password", NEW_PASSWORD, NEW_PASSWORD);
        let (status, page) = here.post(change, &wrong).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.contains("the current password is wrong"), "{page}");
        let mismatch = password_form(&csrf, PASSWORD, NEW_PASSWORD, "something else");
        let (status, _) = here.post(change, &mismatch).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(elsewhere.get(security).await.0, StatusCode::OK);

        let right = password_form(&csrf, PASSWORD, NEW_PASSWORD, NEW_PASSWORD);
        let (status, _) = here.post(change, &right).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (status, page) = here.get(&format!("{security}?changed=1")).await;
        assert_eq!(status, StatusCode::OK, "this session stays");
        assert!(page.contains("Your password was changed"));
        assert_eq!(
            elsewhere.get(security).await.0,
            StatusCode::SEE_OTHER,
            "the other session is sent to sign in"
        );

        let (status, _) = here
            .post(
                "/user/settings/security/sign-out-everywhere",
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(here.get(security).await.0, StatusCode::SEE_OTHER);
    }

    #[tokio::test]
    async fn site_admins_reset_passwords_and_revoke_sessions_from_the_users_page() {
        let app = spawn_app(Backend::Sqlite).await;
        let admin = app.init_site_admin("admin").await;
        app.create_user(&admin, "bob").await;
        let browser = Browser::new(&app);
        browser.sign_in("admin").await;
        let bob = Browser::new(&app);
        bob.sign_in("bob").await;
        let users = "/site-admin/users";
        let (_, page) = browser.get(users).await;
        let bob_id = {
            let start = page.find("?reset=").expect("a reset link") + 7;
            page[start..].split('"').next().unwrap().to_owned()
        };
        let csrf = browser.csrf(users).await;
        // A regular user cannot use the admin forms.
        let bob_csrf = bob.csrf("/user/settings/security").await;
        let (status, _) = bob
            .post(
                &format!("{users}/{bob_id}/password"),
                &[("csrf", &bob_csrf), ("new_password", NEW_PASSWORD)],
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (status, dialog) = browser.get(&format!("{users}?revoke={bob_id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(dialog.contains("Sign bob out everywhere?"), "{dialog}");
        let (status, _) = browser
            .post(
                &format!("{users}/{bob_id}/revoke-sessions"),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(
            bob.get("/user/settings/security").await.0,
            StatusCode::SEE_OTHER
        );

        let (status, page) = browser
            .post(
                &format!("{users}/{bob_id}/password"),
                &[("csrf", &csrf), ("new_password", "short")],
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.contains("password must be"), "{page}");
        let (status, _) = browser
            .post(
                &format!("{users}/{bob_id}/password"),
                &[("csrf", &csrf), ("new_password", NEW_PASSWORD)],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let signed_in = reqwest::Client::new()
            .post(app.url("/-/sign-in"))
            .json(&serde_json::json!({ "username": "bob", "password": NEW_PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), StatusCode::OK);
    }
}

mod cli {
    //! The operator's `tokens` and `users` commands on the server's store.

    use reqwest::StatusCode;

    use super::{NEW_PASSWORD, Session, whoami};
    use crate::cli::{batchcred, ok};
    use crate::helpers::{Backend, PASSWORD, spawn_app};

    // Multi-threaded: the CLI child process blocks one worker while the
    // server answers on another.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_operator_mints_lists_and_revokes_tokens_and_resets_passwords() {
        let app = spawn_app(Backend::Sqlite).await;
        let admin = app.init_site_admin("admin").await;
        app.create_user(&admin, "alice").await;
        let data = app.store.data_dir.clone();

        // The operator may mint for any user (a site admin may not).
        let out = batchcred(
            &data,
            &[
                "tokens",
                "create",
                "--user",
                "alice",
                "--note",
                "ops",
                "--expires-in-days",
                "3",
            ],
            "",
        );
        let token = ok(&out).trim().to_owned();
        assert!(token.starts_with("bcp_"), "{token}");
        let (status, body) = whoami(&app.url(""), &token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"]["currentUser"]["username"], "alice");

        let listed = ok(&batchcred(
            &data,
            &["tokens", "list", "--user", "alice"],
            "",
        ));
        assert!(!listed.contains(&token), "{listed}");
        let line = listed
            .lines()
            .find(|l| l.contains(&token[..12]))
            .unwrap_or_else(|| panic!("{listed}"));
        assert!(line.ends_with("ops"), "{line}");
        let id = line.split_whitespace().next().unwrap();

        ok(&batchcred(&data, &["tokens", "revoke", id], ""));
        assert_eq!(
            whoami(&app.url(""), &token).await.0,
            StatusCode::UNAUTHORIZED
        );
        let again = batchcred(&data, &["tokens", "revoke", id], "");
        assert!(!again.status.success());

        let session = Session::sign_in(&app, "alice", PASSWORD).await.unwrap();
        ok(&batchcred(
            &data,
            &["users", "revoke-sessions", "alice"],
            "",
        ));
        assert!(!session.alive().await);
        let session = Session::sign_in(&app, "alice", PASSWORD).await.unwrap();
        let out = ok(&batchcred(
            &data,
            &["users", "set-password", "alice"],
            &format!("{NEW_PASSWORD}\n"),
        ));
        assert!(out.contains("password set for alice"), "{out}");
        assert!(!session.alive().await);
        assert!(Session::sign_in(&app, "alice", PASSWORD).await.is_none());
        assert!(
            Session::sign_in(&app, "alice", NEW_PASSWORD)
                .await
                .is_some()
        );
    }
}
