//! GitHub App credentials: adding one by App id and private key (checked
//! against an emulator that verifies the JWT's RS256 signature and claims),
//! publishing with installation tokens (pushed as `x-access-token`, pull
//! requests opened by the App), token caching, resolution by namespace,
//! and no key, JWT or installation token anywhere it should not be.

use std::sync::{Arc, Mutex};

use batchcred::auth::Caller;
use batchcred::domain::{AuthStrategy, UserAccount};
use batchcred::service::{CreateGitHubAppCredential, CredentialView, PublishResult};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestUser, error_message, spawn_app};
use crate::publish::PATCH;
use crate::support::codehost::github_app::{EmulatedApp, EmulatedInstallation, test_key};
use crate::support::codehost::{EmulatedRepo, EmulatedToken, Emulator, GITHUB_SCOPES};
use crate::support::git_http::GitHttpServer;
use batchcred::publish::{ChangeSpec, ChangesetSpec};

const APP_ID: u64 = 4242;
/// Installed on `acme` only, without pull request write access.
const WEAK_APP_ID: u64 = 4343;
const INSTALLATION_ACME: u64 = 11;
const INSTALLATION_OTHER: u64 = 12;
/// What the emulator mints, in order.
const MINTED: [&str; 3] = ["ghs_first_minted", "ghs_second_minted", "ghs_third_minted"];

struct World {
    app: TestApp,
    admin: TestUser,
    host_id: String,
    alice: UserAccount,
    emulator: Emulator,
    git: GitHttpServer,
}

async fn world(backend: Backend) -> World {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    app.create_user(&admin, "alice").await;
    let emulator = Emulator::start().await;
    emulator.add_token("ghp_alice", EmulatedToken::new("alice-gh", GITHUB_SCOPES));
    emulator.add_app(
        EmulatedApp::new(APP_ID, "batch-app", &test_key(0))
            .installed(EmulatedInstallation::new(INSTALLATION_ACME, "acme"))
            .installed(EmulatedInstallation::new(INSTALLATION_OTHER, "other").without("workflows")),
    );
    emulator.add_app(
        EmulatedApp::new(WEAK_APP_ID, "weak-app", &test_key(1))
            .installed(EmulatedInstallation::new(21, "acme").without("pull_requests")),
    );
    emulator.queue_installation_tokens(&MINTED);
    let mut tokens = MINTED.to_vec();
    tokens.push("ghp_alice");
    let git = GitHttpServer::start_with_tokens(&tokens).await;
    for repo in ["acme/api", "acme/web", "solo/tool"] {
        let name = repo.replace('/', "-");
        git.create_repo(&name);
        emulator.add_repository(
            repo,
            EmulatedRepo {
                http_clone_url: git.url(&name),
                ssh_clone_url: None,
            },
        );
    }
    let host_id = app
        .add_code_host(&admin, "GITHUB", &emulator.url("github"), "HTTP")
        .await;
    let alice = app
        .service
        .user_by_username(&Caller::Operator, "alice")
        .await
        .unwrap();
    World {
        app,
        admin,
        host_id,
        alice,
        emulator,
        git,
    }
}

impl World {
    async fn add_app(
        &self,
        user: Option<&UserAccount>,
        app_id: u64,
        key: usize,
        installations: Option<Vec<u64>>,
    ) -> Result<CredentialView, batchcred::service::Error> {
        self.app
            .service
            .create_github_app_credential(
                &Caller::Operator,
                CreateGitHubAppCredential {
                    user: user.map(|u| u.id),
                    url: self.emulator.url("github"),
                    app_id,
                    private_key: test_key(key).private_pem.into(),
                    installations,
                },
            )
            .await
    }

    fn spec(&self, repository: &str, head: &str) -> ChangesetSpec {
        ChangesetSpec {
            code_host: self.emulator.url("github"),
            repository: repository.to_owned(),
            base_branch: "main".into(),
            head_branch: head.to_owned(),
            title: format!("Update {repository}"),
            body: "Batch change".into(),
            draft: false,
            change: ChangeSpec::Diff {
                patch: PATCH.into(),
                message: None,
                author_name: None,
                author_email: None,
            },
        }
    }

    async fn publish(
        &self,
        repository: &str,
        head: &str,
    ) -> batchcred::service::PublishedChangeset {
        self.app
            .service
            .publish_changeset(
                &Caller::User(self.alice.clone()),
                self.alice.id,
                &self.spec(repository, head),
            )
            .await
            .unwrap()
    }
}

both_backends!(
    an_app_added_by_id_and_key_is_checked_and_shown,
    a_bad_key_an_unknown_app_or_missing_permissions_store_nothing,
    publishing_with_an_app_pushes_and_opens_the_pull_request_with_an_installation_token,
    the_manifest_flow_creates_the_app_once_for_the_session_that_started_it,
);

async fn an_app_added_by_id_and_key_is_checked_and_shown(backend: Backend) {
    let w = world(backend).await;
    let data = w
        .app
        .graphql_ok(
            &w.admin.auth,
            "mutation($url: String!, $id: Int!, $key: String!) { \
             createBatchChangesGitHubAppCredential(externalServiceURL: $url, appID: $id, \
             privateKey: $key, installationIDs: [\"11\", \"12\"]) { \
             authenticationStrategy isSiteCredential \
             gitHubApp { appID name slug installations { id account permissions } } } }",
            json!({"url": w.emulator.url("github"), "id": APP_ID, "key": test_key(0).private_pem}),
        )
        .await;
    let credential = &data["createBatchChangesGitHubAppCredential"];
    assert_eq!(credential["authenticationStrategy"], "GITHUB_APP");
    assert_eq!(credential["isSiteCredential"], true);
    assert_eq!(credential["gitHubApp"]["appID"], APP_ID);
    assert_eq!(credential["gitHubApp"]["name"], "batch-app app");
    let installations = credential["gitHubApp"]["installations"].as_array().unwrap();
    assert_eq!(installations.len(), 2);
    assert_eq!(installations[0]["account"], "acme");
    assert!(
        installations[0]["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("contents:write"))
    );
    // The JWT verified: no refusal recorded, and it was sent as a bearer.
    assert!(
        w.emulator.jwt_refusals().is_empty(),
        "{:?}",
        w.emulator.jwt_refusals()
    );
    assert!(
        w.emulator
            .seen()
            .iter()
            .any(|r| r.path.ends_with("/app/installations") && r.token.is_some())
    );
    // The installation without workflows is a warning, not a refusal.
    let listed = w
        .app
        .service
        .list_credentials(&Caller::Operator, batchcred::domain::CredentialOwner::Site)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].auth_strategy, AuthStrategy::GitHubApp);
    assert!(
        listed[0]
            .warnings
            .iter()
            .any(|w| w.contains("other") && w.contains("workflows")),
        "{:?}",
        listed[0].warnings
    );
    // A check on demand asks GitHub again, and passes.
    w.app
        .service
        .check_credential(&Caller::Operator, listed[0].id, &Default::default())
        .await
        .unwrap();
    // Uninstalled from acme: the next check fails and says so.
    w.emulator.update_app(APP_ID, |app| {
        app.installations.retain(|i| i.id != INSTALLATION_ACME);
    });
    let error = w
        .app
        .service
        .check_credential(&Caller::Operator, listed[0].id, &Default::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no installation 11"), "{error}");
    // A second App credential for the same owner and host is a conflict,
    // but a token next to it is fine.
    assert!(matches!(
        w.add_app(None, APP_ID, 0, None).await,
        Err(batchcred::service::Error::Conflict(_))
    ));
}

async fn a_bad_key_an_unknown_app_or_missing_permissions_store_nothing(backend: Backend) {
    let w = world(backend).await;
    // The other App's key: GitHub cannot verify the JWT.
    let error = w.add_app(None, APP_ID, 1, None).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("rejected"), "{message}");
    assert!(message.contains(&w.emulator.url("github")), "{message}");
    assert!(!w.emulator.jwt_refusals().is_empty());
    // An App GitHub does not know.
    let error = w.add_app(None, 999, 0, None).await.unwrap_err();
    assert!(error.to_string().contains("rejected"), "{error}");
    // Not a key at all (through GraphQL, which takes the PEM as a string).
    let body = w
        .app
        .graphql(
            &w.admin.auth,
            "mutation($url: String!, $key: String!) { \
             createBatchChangesGitHubAppCredential(externalServiceURL: $url, appID: 4242, \
             privateKey: $key) { id } }",
            json!({"url": w.emulator.url("github"), "key": "not a pem"}),
        )
        .await;
    assert!(error_message(&body).contains("PEM"), "{body}");
    // Installed, but without pull request write access: named.
    let error = w.add_app(None, WEAK_APP_ID, 1, None).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("pull_requests: write"), "{message}");
    assert!(message.contains("acme"), "{message}");
    // An installation the App does not have.
    let error = w
        .add_app(None, APP_ID, 0, Some(vec![77]))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no installation 77"), "{error}");
    assert_eq!(w.app.count_credentials().await, 0);
    // The private key is in no error.
    assert!(!message.contains("PRIVATE KEY"));
}

async fn publishing_with_an_app_pushes_and_opens_the_pull_request_with_an_installation_token(
    backend: Backend,
) {
    let w = world(backend).await;
    w.app
        .service
        .create_credential(
            &Caller::Operator,
            batchcred::service::CreateCredential {
                user: Some(w.alice.id),
                kind: "GITHUB".parse().unwrap(),
                url: w.emulator.url("github"),
                username: None,
                token: "ghp_alice".into(),
                repository: None,
            },
        )
        .await
        .unwrap();
    w.add_app(Some(&w.alice), APP_ID, 0, None).await.unwrap();

    let published = w.publish("acme/api", "batch/one").await;
    assert_eq!(published.result, PublishResult::Opened);
    assert_eq!(published.credential_source.as_deref(), Some("user"));
    // Pushed as x-access-token with the installation token; the pull
    // request was opened with it too (so by the App).
    assert!(w.git.usernames().iter().all(|u| u == "x-access-token"));
    assert!(
        w.git.tokens_seen().iter().all(|t| t == MINTED[0]),
        "{:?}",
        w.git.tokens_seen()
    );
    assert_eq!(w.emulator.pulls()[0].opened_with, MINTED[0]);
    let mints = w.emulator.mints();
    assert_eq!(mints.len(), 1);
    assert_eq!(mints[0].installation, INSTALLATION_ACME);

    // A second publish in acme reuses the cached token: still one mint.
    w.publish("acme/web", "batch/two").await;
    assert_eq!(w.emulator.mints().len(), 1);
    assert_eq!(w.emulator.pulls()[1].opened_with, MINTED[0]);

    // No installation covers `solo`: Alice's token publishes there.
    w.publish("solo/tool", "batch/three").await;
    assert_eq!(w.emulator.pulls()[2].opened_with, "ghp_alice");
    assert_eq!(w.emulator.mints().len(), 1);

    // Her page and the API show both: the token, and the App beside it.
    let hosts = w
        .app
        .service
        .user_code_hosts(
            &Caller::User(w.alice.clone()),
            w.alice.id,
            &batchcred::service::PageRequest {
                first: Some(50),
                after: None,
            },
        )
        .await
        .unwrap();
    let host = &hosts.items[0];
    assert_eq!(
        host.credential.as_ref().map(|c| c.auth_strategy),
        Some(AuthStrategy::PersonalAccessToken)
    );
    assert_eq!(
        host.github_app.as_ref().map(|c| c.auth_strategy),
        Some(AuthStrategy::GitHubApp)
    );
    let alice = crate::web::Browser::signed_in(&w.app, "alice").await;
    let (_, page) = alice.get("/user/settings/batch-changes").await;
    assert!(
        page.contains("Also a GitHub App: <strong>batch-app app</strong>"),
        "{page}"
    );
    assert!(page.contains("contents: write"), "{page}");
}

#[tokio::test]
async fn an_installation_token_near_its_expiry_is_minted_again() {
    let w = world(Backend::Sqlite).await;
    // Tokens that live four minutes are always within the five-minute
    // margin: every use mints a new one.
    w.emulator.update_app(APP_ID, |app| {
        app.token_lifetime = chrono::Duration::minutes(4);
    });
    w.add_app(Some(&w.alice), APP_ID, 0, Some(vec![INSTALLATION_ACME]))
        .await
        .unwrap();
    w.publish("acme/api", "batch/one").await;
    w.publish("acme/web", "batch/two").await;
    let mints = w.emulator.mints();
    assert_eq!(mints.len(), 2);
    assert_eq!(w.emulator.pulls()[1].opened_with, MINTED[1]);
}

#[tokio::test]
async fn concurrent_publishes_share_one_mint() {
    let w = world(Backend::Sqlite).await;
    w.add_app(Some(&w.alice), APP_ID, 0, None).await.unwrap();
    let (a, b) = tokio::join!(
        w.publish("acme/api", "batch/one"),
        w.publish("acme/web", "batch/two")
    );
    assert_eq!(a.result, PublishResult::Opened);
    assert_eq!(b.result, PublishResult::Opened);
    assert_eq!(w.emulator.mints().len(), 1);
}

/// Collects what the service logs on this thread (the test runtime runs
/// the server's tasks on it too).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_private_key_jwt_or_installation_token_in_logs_errors_or_audit() {
    // A thread-local subscriber misses events whose callsites other tests
    // hit first, so batchcred's logs of the whole test binary are captured
    // from here on (no other test installs a subscriber); they must not
    // hold this test's secrets either.
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("batchcred=trace")
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .expect("no other test installs a global subscriber");

    let w = world(Backend::Sqlite).await;
    let error = w.add_app(None, APP_ID, 1, None).await.unwrap_err();
    w.add_app(Some(&w.alice), APP_ID, 0, None).await.unwrap();
    w.publish("acme/api", "batch/one").await;
    // The token expires on GitHub's side: the failure names no secret.
    let jwts: Vec<String> = w
        .emulator
        .seen()
        .iter()
        .filter_map(|r| r.token.clone())
        .filter(|t| t.starts_with("eyJ"))
        .collect();
    assert!(!jwts.is_empty());

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("GitHub App credential created"),
        "logging was not captured"
    );
    let pool = w.app.database().await;
    let audit: Vec<(String,)> = sqlx::query_as("SELECT detail FROM audit_log")
        .fetch_all(&pool)
        .await
        .unwrap();
    let audit = audit
        .into_iter()
        .map(|(d,)| d)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(audit.contains("github_app"), "{audit}");
    let credentials: Vec<(Vec<u8>, Option<String>)> =
        sqlx::query_as("SELECT secret, github_app FROM credentials")
            .fetch_all(&pool)
            .await
            .unwrap();
    let key_body = test_key(0).private_pem.lines().nth(1).unwrap().to_owned();
    for (place, text) in [
        ("logs", logs.as_str()),
        ("error", &error.to_string()),
        ("audit", audit.as_str()),
    ] {
        assert!(!text.contains("PRIVATE KEY"), "{place} holds a private key");
        assert!(!text.contains(&key_body), "{place} holds the private key");
        assert!(
            !text.contains(MINTED[0]),
            "{place} holds the installation token"
        );
        for jwt in &jwts {
            assert!(!text.contains(jwt.as_str()), "{place} holds a JWT");
        }
    }
    for (secret, app) in credentials {
        let secret = String::from_utf8_lossy(&secret);
        assert!(!secret.contains(&key_body) && !secret.contains(MINTED[0]));
        assert!(!app.unwrap_or_default().contains("PRIVATE"));
    }
}

#[tokio::test]
async fn rotating_the_encryption_key_reseals_the_app_key() {
    use batchcred::service::{KeySource, Keyring};
    let w = world(Backend::Sqlite).await;
    // Every publish mints (tokens within the refresh margin), so the one
    // after rotation needs the private key to have survived re-sealing.
    w.emulator.update_app(APP_ID, |app| {
        app.token_lifetime = chrono::Duration::minutes(4);
    });
    let view = w.add_app(Some(&w.alice), APP_ID, 0, None).await.unwrap();
    let before = w
        .app
        .service
        .store()
        .find_credential(view.id)
        .await
        .unwrap();
    let KeySource::File(path) = batchcred::app::resolve_store(&w.app.store)
        .unwrap()
        .key_source
    else {
        panic!("SQLite keeps its keyring in a file");
    };
    Keyring::load(&KeySource::File(path.clone()))
        .unwrap()
        .with_new_primary()
        .unwrap()
        .write_file(&path)
        .unwrap();
    let report = w
        .app
        .service
        .reencrypt_credentials(&Caller::Operator, |_| {})
        .await
        .unwrap();
    assert!(report.reencrypted >= 1, "{report:?}");
    let after = w
        .app
        .service
        .store()
        .find_credential(view.id)
        .await
        .unwrap();
    assert_ne!(after.secret.key_id, before.secret.key_id);
    assert_eq!(after.github_app, before.github_app);
    w.publish("acme/api", "batch/after-rotation").await;
    assert_eq!(w.emulator.mints().len(), 1);
    assert_eq!(w.emulator.pulls()[0].opened_with, MINTED[0]);
}

/// The state in the form action of the page that posts the manifest.
fn state_of(page: &str) -> String {
    let start = page.find("?state=").expect("a state in the form action") + 7;
    page[start..].split('"').next().unwrap().to_owned()
}

async fn the_manifest_flow_creates_the_app_once_for_the_session_that_started_it(backend: Backend) {
    use crate::support::codehost::github_app::ManifestApp;
    use crate::web::Browser;
    const SETTINGS: &str = "/user/settings/batch-changes";
    let w = world(backend).await;
    let key = test_key(2);
    w.emulator.add_manifest_code(
        "code-made",
        ManifestApp {
            app: EmulatedApp::new(5151, "made-app", &key)
                .installed(EmulatedInstallation::new(31, "acme")),
            private_pem: key.private_pem.clone(),
        },
    );
    let alice = Browser::signed_in(&w.app, "alice").await;
    let csrf = alice.csrf(SETTINGS).await;
    let url = w.emulator.url("github");
    let (status, page) = alice
        .post(
            "/user/settings/batch-changes/github-app/new",
            &[("csrf", &csrf), ("url", &url), ("organization", "acme")],
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    assert!(
        page.contains(&format!(
            "action=\"{url}/organizations/acme/settings/apps/new?state="
        )),
        "{page}"
    );
    for expected in [
        "github-app/callback",
        "pull_requests",
        "workflows",
        "/.api/webhooks/",
        "data-autosubmit",
    ] {
        assert!(page.contains(expected), "{expected} missing from {page}");
    }
    let state = state_of(&page);
    let callback = |code: &str, state: &str| {
        format!("/user/settings/batch-changes/github-app/callback?code={code}&state={state}")
    };

    // A state batchcred never issued: refused, GitHub is not asked.
    let (status, body) = alice.get(&callback("code-made", "forged")).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert!(body.contains("Nothing was stored"), "{body}");
    // Another session cannot finish it (and the state is spent).
    let (_, page2) = alice
        .post(
            "/user/settings/batch-changes/github-app/new",
            &[("csrf", &csrf), ("url", &url)],
        )
        .await;
    let spent = state_of(&page2);
    let admin = Browser::signed_in(&w.app, "admin").await;
    let (status, _) = admin.get(&callback("code-made", &spent)).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(w.app.count_credentials().await, 0);

    // The session that started it, with GitHub's code: stored.
    let (status, _) = alice.get(&callback("code-made", &state)).await;
    assert_eq!(status, reqwest::StatusCode::SEE_OTHER);
    let (_, settings) = alice.get(SETTINGS).await;
    assert!(settings.contains("made-app app"), "{settings}");
    assert!(
        settings.contains("installed on <strong>acme</strong>"),
        "{settings}"
    );
    let stored = w.app.service.store();
    let credentials = stored
        .list_credentials_of(batchcred::domain::CredentialOwner::User(w.alice.id))
        .await
        .unwrap();
    assert_eq!(credentials.len(), 1);
    let app = credentials[0].github_app.clone().unwrap();
    assert_eq!((app.app_id, app.from_manifest), (5151, true));
    // Its client and webhook secrets are sealed with the key, not in the row.
    let secret = w
        .app
        .service
        .open_credential_secret_for_tests(&credentials[0])
        .await;
    assert!(secret.contains("client-secret-5151") && secret.contains("webhook-secret-5151"));

    // The same state again: refused (single use); nothing more stored.
    let (status, body) = alice.get(&callback("code-made", &state)).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert!(body.contains("start again"), "{body}");

    // A code GitHub does not know: the conversion fails, nothing stored.
    let (_, page3) = alice
        .post(
            "/site-admin/batch-changes/github-app/new",
            &[("csrf", &csrf), ("url", &url)],
        )
        .await;
    // Alice is no site admin: the global flow is not hers to start.
    assert!(!page3.contains("?state="), "{page3}");
    let (_, page4) = admin
        .post(
            "/site-admin/batch-changes/github-app/new",
            &[
                ("csrf", &admin.csrf("/site-admin/batch-changes").await),
                ("url", &url),
            ],
        )
        .await;
    let (status, body) = admin
        .get(&callback("code-unknown", &state_of(&page4)))
        .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert!(body.contains("Nothing was stored"), "{body}");
    assert_eq!(w.app.count_credentials().await, 1);

    // Started through GraphQL in the admin's browser session, finished by
    // the callback in that session: the global App.
    let started = admin
        .graphql(
            "mutation($url: String!) { startGitHubAppManifest(externalServiceURL: $url) \
             { formURL manifest } }",
            json!({"url": url}),
        )
        .await;
    let form_url = started["data"]["startGitHubAppManifest"]["formURL"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_owned();
    assert!(form_url.starts_with(&format!("{url}/settings/apps/new?state=")));
    let manifest: serde_json::Value = serde_json::from_str(
        started["data"]["startGitHubAppManifest"]["manifest"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["default_permissions"]["contents"], "write");
    assert_eq!(manifest["public"], false);
    assert!(
        manifest["redirect_url"]
            .as_str()
            .unwrap()
            .ends_with("/user/settings/batch-changes/github-app/callback")
    );
    let state = form_url.split("state=").nth(1).unwrap();
    let other = test_key(1);
    w.emulator.add_manifest_code(
        "code-global",
        ManifestApp {
            app: EmulatedApp::new(6161, "global-app", &other),
            private_pem: other.private_pem.clone(),
        },
    );
    let (status, _) = admin.get(&callback("code-global", state)).await;
    assert_eq!(status, reqwest::StatusCode::SEE_OTHER);
    assert_eq!(w.app.count_credentials().await, 2);
    // With no browser session (an access token), it cannot be started.
    let body = w
        .app
        .graphql(
            &w.admin.auth,
            "mutation($url: String!) { startGitHubAppManifest(externalServiceURL: $url) { formURL } }",
            json!({"url": url}),
        )
        .await;
    assert!(error_message(&body).contains("browser session"), "{body}");
}

// Multi-threaded: the CLI runs as a blocking child process while the
// emulator answers it from another worker thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_adds_an_app_with_the_key_from_a_file_or_stdin_never_argv() {
    use crate::cli::{batchcred, ok};
    let emulator = Emulator::start().await;
    emulator.add_app(
        EmulatedApp::new(APP_ID, "batch-app", &test_key(0))
            .installed(EmulatedInstallation::new(INSTALLATION_ACME, "acme"))
            .installed(EmulatedInstallation::new(INSTALLATION_OTHER, "other")),
    );
    let github = emulator.url("github");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&batchcred(
        &data,
        &["users", "create", "--admin", "alice"],
        "long password\n",
    ));
    ok(&batchcred(
        &data,
        &["codehosts", "add", "--kind", "GITHUB", "--url", &github],
        "",
    ));
    let pem = dir.path().join("app.pem");
    std::fs::write(&pem, test_key(0).private_pem).unwrap();
    let app_id = APP_ID.to_string();
    let listed = ok(&batchcred(
        &data,
        &[
            "credentials",
            "add-github-app",
            "--global",
            "--url",
            &github,
            "--app-id",
            &app_id,
            "--private-key-file",
            pem.to_str().unwrap(),
            "--list-installations",
        ],
        "",
    ));
    assert!(
        listed.contains("11\tacme") && listed.contains("12\tother"),
        "{listed}"
    );
    // From stdin, one installation.
    let out = ok(&batchcred(
        &data,
        &[
            "credentials",
            "add-github-app",
            "--user",
            "alice",
            "--url",
            &github,
            "--app-id",
            &app_id,
            "--private-key-file",
            "-",
            "--installation",
            "11",
        ],
        &test_key(0).private_pem,
    ));
    assert!(out.contains("GitHub App: batch-app app"), "{out}");
    assert!(out.contains("installation 11 on acme"), "{out}");
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    // A wrong key from the file: refused, named, nothing stored.
    std::fs::write(&pem, test_key(1).private_pem).unwrap();
    let failed = batchcred(
        &data,
        &[
            "credentials",
            "add-github-app",
            "--global",
            "--url",
            &github,
            "--app-id",
            &app_id,
            "--private-key-file",
            pem.to_str().unwrap(),
        ],
        "",
    );
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("rejected") && !stderr.contains("PRIVATE KEY"),
        "{stderr}"
    );
    let listed = ok(&batchcred(&data, &["credentials", "list", "--global"], ""));
    assert!(!listed.contains(&github), "{listed}");
    // Checked and removed by its strategy.
    ok(&batchcred(
        &data,
        &[
            "credentials",
            "check",
            "--user",
            "alice",
            "--url",
            &github,
            "--github-app",
        ],
        "",
    ));
    ok(&batchcred(
        &data,
        &[
            "credentials",
            "remove",
            "--user",
            "alice",
            "--url",
            &github,
            "--github-app",
        ],
        "",
    ));
}

#[tokio::test]
async fn a_global_app_is_used_only_where_the_global_policy_allows() {
    let w = world(Backend::Sqlite).await;
    w.add_app(None, APP_ID, 0, None).await.unwrap();
    // Alice has nothing of her own: the global App publishes, as the site.
    let published = w.publish("acme/api", "batch/one").await;
    assert_eq!(published.credential_source.as_deref(), Some("site"));
    assert_eq!(w.emulator.pulls()[0].opened_with, MINTED[0]);
    // Nobody may use the global credential now: refused before any mint.
    w.app
        .graphql_ok(
            &w.admin.auth,
            "mutation($h: ID!) { setGlobalCredentialPolicy(codeHost: $h, allowedUsers: NOBODY) { id } }",
            json!({"h": w.host_id}),
        )
        .await;
    let error = w
        .app
        .service
        .publish_changeset(
            &Caller::User(w.alice.clone()),
            w.alice.id,
            &w.spec("acme/web", "batch/two"),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("site policy"), "{error}");
    assert_eq!(w.emulator.mints().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_jwt_or_installation_token_in_any_process_during_a_push() {
    use crate::git_push::{contains, processes};
    use crate::support::git_http::install_pre_receive_hook;
    use base64::Engine;
    use std::time::{Duration, Instant};
    let w = world(Backend::Sqlite).await;
    w.add_app(Some(&w.alice), APP_ID, 0, None).await.unwrap();
    // The hook holds the push open until the test has looked at /proc.
    let gate = tempfile::tempdir().unwrap();
    let started = gate.path().join("started");
    let release = gate.path().join("release");
    install_pre_receive_hook(
        &w.git.repo_path("acme-api"),
        &format!(
            "touch '{}'\ni=0\nwhile [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\nexit 0",
            started.display(),
            release.display()
        ),
    );
    let service = w.app.service.clone();
    let alice = w.alice.clone();
    let spec = w.spec("acme/api", "batch/watched");
    let publish = tokio::spawn(async move {
        service
            .publish_changeset(&Caller::User(alice.clone()), alice.id, &spec)
            .await
    });
    let waiting = Instant::now();
    while !started.exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "the hook never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", MINTED[0]));
    let key_lines: Vec<String> = test_key(0)
        .private_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    let jwts: Vec<String> = w
        .emulator
        .seen()
        .iter()
        .filter_map(|r| r.token.clone())
        .filter(|t| t.starts_with("eyJ"))
        .collect();
    assert!(!jwts.is_empty());
    let mut pushing = 0;
    for (pid, cmdline, environ) in processes() {
        let needles = [MINTED[0], basic.as_str()]
            .into_iter()
            .chain(key_lines.iter().map(String::as_str))
            .chain(jwts.iter().map(String::as_str));
        for needle in needles {
            assert!(
                !contains(&cmdline, needle.as_bytes()),
                "a secret in the command line of {pid}"
            );
            assert!(
                !contains(&environ, needle.as_bytes()),
                "a secret in the environment of {pid}"
            );
        }
        if contains(&cmdline, b"push") && contains(&cmdline, w.git.url("acme-api").as_bytes()) {
            pushing += 1;
        }
    }
    assert!(pushing > 0, "no git push process was seen");
    std::fs::write(&release, "").unwrap();
    let published = publish.await.unwrap().unwrap();
    assert_eq!(published.result, PublishResult::Opened);
    assert!(w.git.tokens_seen().iter().all(|t| t == MINTED[0]));
}
