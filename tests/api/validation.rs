//! Tokens are checked against the code host (the emulator) before they are
//! stored: every failure path refuses the token, names the code host and
//! what is wrong, and stores nothing.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::helpers::{
    AppOptions, Backend, TestApp, TestUser, error_code, error_message, spawn_app, spawn_app_with,
};
use crate::support::codehost::{
    BITBUCKET_SCOPES, Behaviour, EmulatedToken, Emulator, GITHUB_SCOPES, GITLAB_SCOPES,
};

const CREATE: &str = "mutation($user: ID, $k: ExternalServiceKind!, $u: String!, $c: String!, $r: String) { \
    createBatchChangesCredential(user: $user, externalServiceKind: $k, externalServiceURL: $u, \
    credential: $c, repository: $r) { id codeHostUser scopes expiresAt warnings lastCheckedAt \
    lastCheckError needsAttention } }";

const CHECK: &str =
    "query($id: ID!) { checkBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }";

const SHOW: &str = "query($id: ID!) { node(id: $id) { ... on BatchChangesCredential { \
    codeHostUser scopes expiresAt lastCheckedAt lastCheckError needsAttention } } }";

struct Setup {
    app: TestApp,
    alice: TestUser,
    emulator: Emulator,
}

/// An app with one emulator serving a GitHub, a GitLab and a Bitbucket
/// Server code host; the emulator knows only the tokens a test adds.
async fn setup_with(options: AppOptions) -> Setup {
    let app = spawn_app_with(Backend::Sqlite, options).await;
    let admin = app.init_site_admin("admin").await;
    let alice = app.create_user(&admin, "alice").await;
    let emulator = Emulator::start().await;
    for (kind, prefix) in [
        ("GITHUB", "github"),
        ("GITLAB", "gitlab"),
        ("BITBUCKETSERVER", "bitbucket"),
    ] {
        app.add_code_host(&admin, kind, &emulator.url(prefix), "HTTP")
            .await;
    }
    Setup {
        app,
        alice,
        emulator,
    }
}

async fn setup() -> Setup {
    setup_with(AppOptions::default()).await
}

impl Setup {
    fn url(&self, kind: &str) -> String {
        let prefix = match kind {
            "GITHUB" => "github",
            "GITLAB" => "gitlab",
            _ => "bitbucket",
        };
        self.emulator.url(prefix)
    }

    async fn create(&self, kind: &str, token: &str, repository: Option<&str>) -> Value {
        self.app
            .graphql(
                &self.alice.auth,
                CREATE,
                json!({ "user": self.alice.id, "k": kind, "u": self.url(kind), "c": token, "r": repository }),
            )
            .await
    }

    async fn created(&self, kind: &str, token: &str) -> Value {
        let body = self.create(kind, token, None).await;
        assert!(body.get("errors").is_none(), "{kind} {token}: {body}");
        body["data"]["createBatchChangesCredential"].clone()
    }

    /// Asserts the create failed with `code`, mentioning every fragment,
    /// and that nothing was stored.
    async fn refused(&self, kind: &str, token: &str, code: &str, fragments: &[&str]) -> String {
        let body = self.create(kind, token, None).await;
        assert_eq!(error_code(&body), Some(code), "{kind} {token}: {body}");
        let message = error_message(&body).to_owned();
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "{fragment:?} not in {message:?}"
            );
        }
        assert!(
            !message.contains(token),
            "the token leaked into {message:?}"
        );
        assert_eq!(self.app.count_credentials().await, 0, "{message}");
        message
    }
}

#[tokio::test]
async fn a_good_github_token_is_stored_with_what_was_learned() {
    let s = setup().await;
    let expiry = Utc::now() + chrono::Duration::days(30);
    s.emulator.add_token(
        "ghp_good",
        EmulatedToken::new(
            "octocat",
            &["repo", "read:org", "user:email", "read:discussion"],
        )
        .expiring(expiry),
    );
    let credential = s.created("GITHUB", "ghp_good").await;
    assert_eq!(credential["codeHostUser"], "octocat");
    assert_eq!(
        credential["scopes"],
        json!(["repo", "read:org", "user:email", "read:discussion"])
    );
    let expires_at = credential["expiresAt"].as_str().unwrap();
    assert!(
        expires_at.starts_with(&expiry.format("%Y-%m-%dT%H:%M:%S").to_string()),
        "{expires_at}"
    );
    assert!(credential["lastCheckedAt"].is_string());
    assert_eq!(credential["lastCheckError"], Value::Null);
    assert_eq!(credential["needsAttention"], false);
    // No workflow scope: stored, with a warning.
    let warnings = credential["warnings"].to_string();
    assert!(warnings.contains("workflow"), "{warnings}");
    // The check used the Enterprise API path with the token as bearer.
    let seen = s.emulator.seen();
    assert!(
        seen.iter()
            .any(|r| r.path.ends_with("/github/api/v3/user")
                && r.token.as_deref() == Some("ghp_good")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn each_missing_github_scope_is_named() {
    let s = setup().await;
    let required = ["repo", "read:org", "user:email", "read:discussion"];
    for missing in required {
        let token = format!("ghp_without_{}", missing.replace(':', "_"));
        let scopes: Vec<&str> = required.iter().copied().filter(|s| *s != missing).collect();
        s.emulator
            .add_token(&token, EmulatedToken::new("octocat", &scopes));
        let message = s
            .refused("GITHUB", &token, "BAD_USER_INPUT", &[&s.url("GITHUB")])
            .await;
        assert!(
            message.ends_with(&format!("is missing required scopes: {missing}")),
            "{message}"
        );
    }
    s.emulator
        .add_token("ghp_none", EmulatedToken::new("octocat", &[]));
    s.refused(
        "GITHUB",
        "ghp_none",
        "BAD_USER_INPUT",
        &["repo, read:org, user:email, read:discussion"],
    )
    .await;
}

#[tokio::test]
async fn github_parent_scopes_imply_their_children() {
    let s = setup().await;
    s.emulator.add_token(
        "ghp_parents",
        EmulatedToken::new(
            "octocat",
            &["repo", "admin:org", "user", "write:discussion", "workflow"],
        ),
    );
    let credential = s.created("GITHUB", "ghp_parents").await;
    assert_eq!(credential["warnings"], json!([]));
}

#[tokio::test]
async fn fine_grained_github_tokens_are_checked_as_far_as_possible() {
    let s = setup().await;
    s.emulator.add_token(
        "github_pat_fine",
        EmulatedToken::new("octocat", &[])
            .fine_grained()
            .pushing_to("acme/api"),
    );
    // Without a repository: stored, saying scopes could not be checked.
    let credential = s.created("GITHUB", "github_pat_fine").await;
    assert_eq!(credential["scopes"], Value::Null);
    assert!(
        credential["warnings"].to_string().contains("fine-grained"),
        "{credential}"
    );
    s.app
        .graphql_ok(
            &s.alice.auth,
            "mutation($id: ID!) { deleteBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }",
            json!({ "id": credential["id"] }),
        )
        .await;

    // With a repository it was granted: stored.
    let body = s
        .create("GITHUB", "github_pat_fine", Some("acme/api"))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    s.app
        .graphql_ok(
            &s.alice.auth,
            "mutation($id: ID!) { deleteBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }",
            json!({ "id": body["data"]["createBatchChangesCredential"]["id"] }),
        )
        .await;

    // With one it was not granted: refused, naming the repository.
    let body = s
        .create("GITHUB", "github_pat_fine", Some("acme/secret"))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(
        error_message(&body).contains("cannot push to acme/secret"),
        "{body}"
    );
    assert_eq!(s.app.count_credentials().await, 0);
}

#[tokio::test]
async fn rejected_revoked_and_expired_tokens_are_refused() {
    let s = setup().await;
    s.refused(
        "GITHUB",
        "ghp_unknown",
        "BAD_USER_INPUT",
        &["rejected this token", "Bad credentials"],
    )
    .await;
    s.emulator.add_token(
        "ghp_expired",
        EmulatedToken::new("octocat", GITHUB_SCOPES)
            .expiring(Utc::now() - chrono::Duration::days(1)),
    );
    s.refused(
        "GITHUB",
        "ghp_expired",
        "BAD_USER_INPUT",
        &["rejected this token"],
    )
    .await;
    s.emulator.add_token(
        "glpat-revoked",
        EmulatedToken::new("tanuki", GITLAB_SCOPES).revoked(),
    );
    s.refused(
        "GITLAB",
        "glpat-revoked",
        "BAD_USER_INPUT",
        &["rejected this token", "revoked"],
    )
    .await;
    s.emulator.add_token(
        "glpat-expired",
        EmulatedToken::new("tanuki", GITLAB_SCOPES)
            .expiring(Utc::now() - chrono::Duration::days(2)),
    );
    s.refused(
        "GITLAB",
        "glpat-expired",
        "BAD_USER_INPUT",
        &["rejected this token", "expired"],
    )
    .await;
}

#[tokio::test]
async fn gitlab_tokens_need_every_scope() {
    let s = setup().await;
    s.emulator.add_token(
        "glpat-readonly",
        EmulatedToken::new("tanuki", &["api", "read_repository"]),
    );
    s.refused(
        "GITLAB",
        "glpat-readonly",
        "BAD_USER_INPUT",
        &["missing required scopes: write_repository"],
    )
    .await;
    let expiry = Utc::now() + chrono::Duration::days(3);
    s.emulator.add_token(
        "glpat-good",
        EmulatedToken::new("tanuki", GITLAB_SCOPES).expiring(expiry),
    );
    let credential = s.created("GITLAB", "glpat-good").await;
    assert_eq!(credential["codeHostUser"], "tanuki");
    // GitLab tokens end at 00:00 UTC on their date; three days away is
    // within the week that gets flagged.
    assert!(
        credential["expiresAt"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}T00:00:00", expiry.format("%Y-%m-%d"))),
        "{credential}"
    );
    assert_eq!(credential["needsAttention"], true);
    let seen = s.emulator.seen();
    assert!(seen.iter().any(|r| {
        r.path
            .ends_with("/gitlab/api/v4/personal_access_tokens/self")
    }));
}

#[tokio::test]
async fn old_gitlab_without_the_token_endpoint_falls_back_to_the_user() {
    let s = setup().await;
    s.emulator.set_behaviour(Behaviour::OldGitLab);
    s.emulator
        .add_token("glpat-old", EmulatedToken::new("tanuki", GITLAB_SCOPES));
    let credential = s.created("GITLAB", "glpat-old").await;
    assert_eq!(credential["codeHostUser"], "tanuki");
    assert_eq!(credential["scopes"], Value::Null);
    assert!(
        credential["warnings"]
            .to_string()
            .contains("older than 15.5"),
        "{credential}"
    );
}

#[tokio::test]
async fn bitbucket_server_reads_the_user_and_checks_write_permissions() {
    let s = setup().await;
    s.emulator.add_token(
        "BBDC-good",
        EmulatedToken::new("admin.user", BITBUCKET_SCOPES),
    );
    let credential = s.created("BITBUCKETSERVER", "BBDC-good").await;
    assert_eq!(credential["codeHostUser"], "admin.user");
    assert_eq!(credential["scopes"], json!(["PROJECT_WRITE", "REPO_WRITE"]));

    // An unknown token gets Bitbucket's anonymous 200 without X-AUSERNAME.
    s.app
        .graphql_ok(
            &s.alice.auth,
            "mutation($id: ID!) { deleteBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }",
            json!({ "id": credential["id"] }),
        )
        .await;
    s.refused(
        "BITBUCKETSERVER",
        "BBDC-unknown",
        "BAD_USER_INPUT",
        &["rejected this token", "X-AUSERNAME"],
    )
    .await;
    s.emulator.add_token(
        "BBDC-read",
        EmulatedToken::new("reader", &["PROJECT_WRITE"]),
    );
    s.refused(
        "BITBUCKETSERVER",
        "BBDC-read",
        "BAD_USER_INPUT",
        &["write on repositories (REPO_WRITE)"],
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_failing_or_busy_code_host_stores_nothing() {
    let s = setup_with(AppOptions {
        code_host_timeout: Duration::from_secs(1),
        ..AppOptions::default()
    })
    .await;
    s.emulator
        .add_token("ghp_fine", EmulatedToken::new("octocat", GITHUB_SCOPES));

    s.emulator.set_behaviour(Behaviour::ServerError);
    s.refused(
        "GITHUB",
        "ghp_fine",
        "CODE_HOST_UNAVAILABLE",
        &["could not reach", "503"],
    )
    .await;

    s.emulator
        .set_behaviour(Behaviour::Slow(Duration::from_secs(3)));
    s.refused(
        "GITHUB",
        "ghp_fine",
        "CODE_HOST_UNAVAILABLE",
        &["could not reach", "no answer within 1 s"],
    )
    .await;

    s.emulator.set_behaviour(Behaviour::RateLimited(42));
    s.refused(
        "GITHUB",
        "ghp_fine",
        "CODE_HOST_UNAVAILABLE",
        &["rate limiting", "try again in"],
    )
    .await;
    s.refused(
        "GITLAB",
        "ghp_fine",
        "CODE_HOST_UNAVAILABLE",
        &["rate limiting", "try again in 42 s"],
    )
    .await;

    // Nothing listens here any more.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let admin = s.app.sign_in_with_token("admin").await;
    let url = format!("http://{gone}");
    s.app.add_code_host(&admin, "GITHUB", &url, "HTTP").await;
    let body = s
        .app
        .graphql(
            &s.alice.auth,
            CREATE,
            json!({ "user": s.alice.id, "k": "GITHUB", "u": url, "c": "ghp_fine" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("CODE_HOST_UNAVAILABLE"), "{body}");
    assert!(
        error_message(&body).contains(&format!("could not reach GitHub {url}")),
        "{body}"
    );
    assert_eq!(s.app.count_credentials().await, 0);

    // A TLS handshake with a server that speaks plain HTTP fails.
    let url = s.emulator.url("github").replace("http://", "https://");
    s.app.add_code_host(&admin, "GITHUB", &url, "HTTP").await;
    let body = s
        .app
        .graphql(
            &s.alice.auth,
            CREATE,
            json!({ "user": s.alice.id, "k": "GITHUB", "u": url, "c": "ghp_fine" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("CODE_HOST_UNAVAILABLE"), "{body}");
    let message = error_message(&body);
    assert!(
        message.contains(&format!("could not reach GitHub {url}: ")),
        "{body}"
    );
    assert!(!message.contains("ghp_fine"), "{body}");
    assert_eq!(s.app.count_credentials().await, 0);
}

#[tokio::test]
async fn redirects_never_carry_the_token_to_another_host() {
    let s = setup().await;
    let elsewhere = Emulator::accepting_any_token().await;
    s.emulator
        .set_behaviour(Behaviour::RedirectTo(elsewhere.origin()));
    s.refused(
        "GITLAB",
        "glpat-follow-me",
        "CODE_HOST_UNAVAILABLE",
        &["redirected", &elsewhere.origin()],
    )
    .await;
    assert!(
        elsewhere.seen().is_empty(),
        "the other host was contacted: {:?}",
        elsewhere.seen()
    );
}

#[tokio::test]
async fn rechecking_records_failures_and_recoveries() {
    let s = setup().await;
    s.emulator.add_token(
        "ghp_later_revoked",
        EmulatedToken::new("octocat", GITHUB_SCOPES),
    );
    let credential = s.created("GITHUB", "ghp_later_revoked").await;
    let id = credential["id"].clone();

    s.emulator
        .update_token("ghp_later_revoked", |t| t.revoked = true);
    let body = s
        .app
        .graphql(&s.alice.auth, CHECK, json!({ "id": id }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(error_message(&body).contains("rejected this token"));
    let shown = s
        .app
        .graphql_ok(&s.alice.auth, SHOW, json!({ "id": id }))
        .await["node"]
        .clone();
    assert!(
        shown["lastCheckError"]
            .as_str()
            .unwrap()
            .contains("rejected this token")
    );
    assert_eq!(shown["needsAttention"], true);
    // What earlier checks learned is kept.
    assert_eq!(shown["codeHostUser"], "octocat");

    s.emulator
        .update_token("ghp_later_revoked", |t| t.revoked = false);
    s.app
        .graphql_ok(&s.alice.auth, CHECK, json!({ "id": id }))
        .await;
    let shown = s
        .app
        .graphql_ok(&s.alice.auth, SHOW, json!({ "id": id }))
        .await["node"]
        .clone();
    assert_eq!(shown["lastCheckError"], Value::Null);
    assert_eq!(shown["needsAttention"], false);

    // Another user cannot check it (nor learn it exists).
    let admin = s.app.sign_in_with_token("admin").await;
    let bob = s.app.create_user(&admin, "bob").await;
    let body = s.app.graphql(&bob.auth, CHECK, json!({ "id": id })).await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"));
}

#[tokio::test]
async fn the_background_check_flags_revoked_tokens() {
    let s = setup_with(AppOptions {
        recheck_interval: Some(Duration::from_millis(300)),
        ..AppOptions::default()
    })
    .await;
    s.emulator.add_token(
        "glpat-background",
        EmulatedToken::new("tanuki", GITLAB_SCOPES),
    );
    let id = s.created("GITLAB", "glpat-background").await["id"].clone();
    s.emulator
        .update_token("glpat-background", |t| t.revoked = true);
    let mut last = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = s
            .app
            .graphql_ok(&s.alice.auth, SHOW, json!({ "id": id }))
            .await["node"]
            .clone();
        if last["lastCheckError"].is_string() {
            break;
        }
    }
    assert!(
        last["lastCheckError"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked"),
        "{last}"
    );
    assert_eq!(last["needsAttention"], true);
}

async fn both_backends_store_check_results(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let emulator = Emulator::start().await;
    let url = emulator.url("gitlab");
    app.add_code_host(&admin, "GITLAB", &url, "HTTP").await;
    let expiry = Utc::now() + chrono::Duration::days(60);
    emulator.add_token(
        "glpat-pg",
        EmulatedToken::new("tanuki", GITLAB_SCOPES).expiring(expiry),
    );
    let created = app
        .graphql_ok(
            &admin.auth,
            CREATE,
            json!({ "user": null, "k": "GITLAB", "u": url, "c": "glpat-pg" }),
        )
        .await;
    let id = created["createBatchChangesCredential"]["id"].clone();
    let shown = app.graphql_ok(&admin.auth, SHOW, json!({ "id": id })).await["node"].clone();
    assert_eq!(shown["codeHostUser"], "tanuki");
    assert_eq!(shown["scopes"], json!(GITLAB_SCOPES));
    assert!(shown["expiresAt"].is_string());
    assert_eq!(shown["needsAttention"], false);
}

crate::both_backends!(both_backends_store_check_results);
