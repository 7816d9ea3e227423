//! Secrets stay bound to their owner: a credential row changed outside
//! batchcred does not decrypt and its token is never sent; old seals keep
//! opening and are upgraded at start-up; a rotated keyring reaches running
//! servers; keys are retired only when unused; the keyring file is private;
//! code host answers are read with a size cap.

use std::process::Output;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use batchcred::auth::Caller;
use batchcred::crypto::{Encryptor, KeySource, Keyring};
use batchcred::domain::{CodeHostUrl, UserId};
use batchcred::service::Error;
use serde_json::{Value, json};

use crate::both_backends;
use crate::cli::{bare_batchcred, batchcred, ok};
use crate::helpers::{
    AppOptions, Auth, Backend, TestApp, error_message, spawn_app, spawn_app_with, unique_token,
};
use crate::support::codehost::Behaviour;

const SEAL_MISMATCH: &str = "credential record does not match its seal";

const CHECK: &str =
    "query($id: ID!) { checkBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }";
const ATTENTION: &str = "query($id: ID!) { node(id: $id) { ... on BatchChangesCredential { \
                         needsAttention lastCheckError } } }";

/// The raw id inside a GraphQL ID (`User:"<uuid>"`,
/// `BatchChangesCredential:"user:<uuid>"`).
fn raw_id(id: &str) -> String {
    let text = String::from_utf8(STANDARD.decode(id).unwrap()).unwrap();
    let (_, json) = text.split_once(':').unwrap();
    let spec: String = serde_json::from_str(json).unwrap();
    spec.rsplit(':').next().unwrap().to_owned()
}

fn credential_id(created: &Value) -> String {
    created["data"]["createBatchChangesCredential"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("credential created: {created}"))
        .to_owned()
}

/// How many requests reached the code host emulator carrying `token`.
fn sent(app: &TestApp, token: &str) -> usize {
    app.codehosts
        .seen()
        .iter()
        .filter(|r| r.token.as_deref() == Some(token))
        .count()
}

/// Runs `batchcred` on the app's store (its database and keyring).
fn cli(app: &TestApp, args: &[&str]) -> Output {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.push("--data-dir".into());
    all.push(app.store.data_dir.display().to_string());
    if let Some(url) = &app.store.database_url {
        all.push("--database-url".into());
        all.push(url.expose().to_owned());
    }
    if let Some(path) = &app.store.encryption_key_file {
        all.push("--encryption-key-file".into());
        all.push(path.display().to_string());
    }
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    bare_batchcred(&all, "")
}

fn keyring_path(app: &TestApp) -> std::path::PathBuf {
    match batchcred::app::resolve_store(&app.store)
        .unwrap()
        .key_source
    {
        KeySource::File(path) => path,
        KeySource::Inline(_) => panic!("this test needs a keyring file"),
    }
}

fn primary_key(app: &TestApp) -> String {
    Keyring::load(&KeySource::File(keyring_path(app)))
        .unwrap()
        .primary_id()
        .to_string()
}

async fn key_of(app: &TestApp, credential: &str) -> String {
    sqlx::query_scalar("SELECT secret_key_id FROM credentials WHERE id = $1")
        .bind(raw_id(credential))
        .fetch_one(&app.database().await)
        .await
        .unwrap()
}

async fn execute(app: &TestApp, sql: &str, values: &[Option<&str>]) {
    let pool = app.database().await;
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for value in values {
        query = query.bind(value.map(str::to_owned));
    }
    let done = query.execute(&pool).await.unwrap();
    assert_eq!(done.rows_affected(), 1, "{sql}");
    pool.close().await;
}

/// Checks a credential as `auth` and expects the seal error; the record is
/// then flagged as needing attention with that error.
async fn assert_refused(app: &TestApp, auth: &Auth, credential: &str, token: &str) {
    let before = sent(app, token);
    let body = app.graphql(auth, CHECK, json!({ "id": credential })).await;
    assert!(error_message(&body).contains(SEAL_MISMATCH), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "CREDENTIAL_SEAL_MISMATCH",
        "{body}"
    );
    let view = app
        .graphql_ok(auth, ATTENTION, json!({ "id": credential }))
        .await;
    assert_eq!(view["node"]["needsAttention"], true, "{view}");
    assert!(
        view["node"]["lastCheckError"]
            .as_str()
            .unwrap_or_default()
            .contains(SEAL_MISMATCH),
        "{view}"
    );
    assert_eq!(sent(app, token), before, "the token was sent");
}

async fn tampered_records_do_not_open_and_are_never_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let bob = app.create_user(&admin, "bob").await;
    let (github, other, evil) = (
        app.codehosts.url("github"),
        app.codehosts.url("other"),
        app.codehosts.url("evil"),
    );
    app.add_code_host(&admin, "GITHUB", &github, "HTTP").await;
    app.add_code_host(&admin, "GITHUB", &other, "HTTP").await;
    let token = unique_token("ghp_bob");
    let created = app
        .create_credential(&bob.auth, Some(&bob.id), "GITHUB", &github, &token)
        .await;
    let credential = credential_id(&created);
    let row = raw_id(&credential);
    let (bob_row, admin_row) = (raw_id(&bob.id), raw_id(&admin.id));
    let pool = app.database().await;
    let github_host: String =
        sqlx::query_scalar("SELECT code_host_id FROM credentials WHERE id = $1")
            .bind(&row)
            .fetch_one(&pool)
            .await
            .unwrap();
    let (github_url, other_host): (String, String) = (
        sqlx::query_scalar("SELECT url FROM code_hosts WHERE id = $1")
            .bind(&github_host)
            .fetch_one(&pool)
            .await
            .unwrap(),
        sqlx::query_scalar("SELECT id FROM code_hosts WHERE id <> $1")
            .bind(&github_host)
            .fetch_one(&pool)
            .await
            .unwrap(),
    );
    pool.close().await;

    // Moved to another user: refused when checked, and when publishing.
    let owner = "UPDATE credentials SET user_id = $1 WHERE id = $2";
    execute(&app, owner, &[Some(&admin_row), Some(&row)]).await;
    assert_refused(&app, &admin.auth, &credential, &token).await;
    let admin_id: UserId = admin_row.parse().unwrap();
    let resolved = app
        .service
        .resolve_credential(
            &Caller::Operator,
            admin_id,
            &CodeHostUrl::parse(&github).unwrap(),
            "acme/api",
        )
        .await;
    assert!(matches!(resolved, Err(Error::SealMismatch)), "{resolved:?}");

    // Made the site credential.
    let site = "UPDATE credentials SET user_id = NULL WHERE id = $1";
    execute(&app, site, &[Some(&row)]).await;
    assert_refused(&app, &admin.auth, &credential, &token).await;
    execute(&app, owner, &[Some(&bob_row), Some(&row)]).await;

    // Moved to another code host; then its code host pointed elsewhere.
    let host = "UPDATE credentials SET code_host_id = $1 WHERE id = $2";
    execute(&app, host, &[Some(&other_host), Some(&row)]).await;
    assert_refused(&app, &bob.auth, &credential, &token).await;
    execute(&app, host, &[Some(&github_host), Some(&row)]).await;
    let evil_url = CodeHostUrl::parse(&evil).unwrap();
    let url = "UPDATE code_hosts SET url = $1 WHERE id = $2";
    execute(&app, url, &[Some(evil_url.as_str()), Some(&github_host)]).await;
    assert_refused(&app, &bob.auth, &credential, &token).await;
    // The background re-check flags it too, without asking the code host.
    let report = app
        .service
        .recheck_stale_credentials(&Caller::Operator, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((report.passed, report.failed), (0, 1));
    assert!(
        app.codehosts
            .seen()
            .iter()
            .all(|r| !r.path.contains("/evil")),
        "a request reached the changed URL"
    );

    // Put back as sealed, it opens again: the seal binds, nothing broke.
    execute(&app, url, &[Some(&github_url), Some(&github_host)]).await;
    let before = sent(&app, &token);
    app.graphql_ok(&bob.auth, CHECK, json!({ "id": credential }))
        .await;
    assert_eq!(sent(&app, &token), before + 1);
}

async fn code_host_edits_through_batchcred_keep_secrets_opening(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let github = app.codehosts.url("github");
    let host = app.add_code_host(&admin, "GITHUB", &github, "HTTP").await;
    let token = unique_token("ghp_site");
    let credential = credential_id(
        &app.create_credential(&admin.auth, None, "GITHUB", &github, &token)
            .await,
    );
    let before = key_of(&app, &credential).await;
    // Switching to SSH re-seals the credential with a new keypair.
    app.graphql_ok(
        &admin.auth,
        "mutation($id: ID!) { updateCodeHost(id: $id, gitURLType: SSH) { id } }",
        json!({ "id": host }),
    )
    .await;
    let (version, ssh_key): (i64, Option<String>) =
        sqlx::query_as("SELECT seal_version, ssh_public_key FROM credentials WHERE id = $1")
            .bind(raw_id(&credential))
            .fetch_one(&app.database().await)
            .await
            .unwrap();
    assert_eq!(version, 2);
    assert!(ssh_key.is_some());
    assert_eq!(key_of(&app, &credential).await, before);
    let sent_before = sent(&app, &token);
    app.graphql_ok(&admin.auth, CHECK, json!({ "id": credential }))
        .await;
    assert_eq!(sent(&app, &token), sent_before + 1);
}

async fn old_seals_open_and_are_resealed_when_a_server_starts(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let github = app.codehosts.url("github");
    app.add_code_host(&admin, "GITHUB", &github, "HTTP").await;
    let token = unique_token("ghp_old");
    let credential = credential_id(
        &app.create_credential(&admin.auth, None, "GITHUB", &github, &token)
            .await,
    );
    let row = raw_id(&credential);

    // Seal it the way batchcred did before seal version 2.
    let encryptor = Encryptor::load(
        batchcred::app::resolve_store(&app.store)
            .unwrap()
            .key_source,
    )
    .unwrap();
    let old = encryptor
        .seal(
            json!({ "token": token }).to_string().as_bytes(),
            format!("batchcred/credentials/{row}/secret").as_bytes(),
        )
        .unwrap();
    let pool = app.database().await;
    sqlx::query(
        "UPDATE credentials SET secret_key_id = $1, secret = $2, seal_version = 1 WHERE id = $3",
    )
    .bind(old.key_id.as_str())
    .bind(old.bytes.clone())
    .bind(&row)
    .execute(&pool)
    .await
    .unwrap();

    // It still opens.
    let before = sent(&app, &token);
    app.graphql_ok(&admin.auth, CHECK, json!({ "id": credential }))
        .await;
    assert_eq!(sent(&app, &token), before + 1);

    // A server starting re-seals it in the background.
    let replica = app.replica().await;
    let started = Instant::now();
    loop {
        let (version, secret): (i64, Vec<u8>) =
            sqlx::query_as("SELECT seal_version, secret FROM credentials WHERE id = $1")
                .bind(&row)
                .fetch_one(&pool)
                .await
                .unwrap();
        if version == 2 {
            assert_ne!(secret, old.bytes);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not re-sealed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pool.close().await;
    let before = sent(&replica, &token) + sent(&app, &token);
    replica
        .graphql_ok(&admin.auth, CHECK, json!({ "id": credential }))
        .await;
    assert_eq!(sent(&replica, &token) + sent(&app, &token), before + 1);
}

async fn running_servers_seal_with_a_rotated_primary_within_seconds(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions {
            keyring_file: true,
            ..AppOptions::default()
        },
    )
    .await;
    let replica = app.replica().await;
    let admin = app.init_site_admin("admin").await;
    let hosts: Vec<String> = ["one", "two", "three"]
        .iter()
        .map(|name| app.codehosts.url(name))
        .collect();
    for url in &hosts {
        app.add_code_host(&admin, "GITHUB", url, "HTTP").await;
    }
    let old = primary_key(&app);
    let first = credential_id(
        &app.create_credential(&admin.auth, None, "GITHUB", &hosts[0], "ghp_one")
            .await,
    );
    assert_eq!(key_of(&app, &first).await, old);

    let rotated = ok(&cli(&app, &["keys", "rotate"]));
    assert!(
        rotated.contains("re-encrypted 1 credential(s)"),
        "{rotated}"
    );
    let new = primary_key(&app);
    assert_ne!(new, old);
    tokio::time::sleep(batchcred::crypto::KEYRING_CHECK_INTERVAL + Duration::from_millis(500))
        .await;

    // Neither server restarted; both seal with the new primary.
    let second = credential_id(
        &app.create_credential(&admin.auth, None, "GITHUB", &hosts[1], "ghp_two")
            .await,
    );
    let third = credential_id(
        &replica
            .create_credential(&admin.auth, None, "GITHUB", &hosts[2], "ghp_three")
            .await,
    );
    assert_eq!(key_of(&app, &second).await, new);
    assert_eq!(key_of(&app, &third).await, new);
    assert_eq!(key_of(&app, &first).await, new);
}

both_backends!(
    tampered_records_do_not_open_and_are_never_sent,
    code_host_edits_through_batchcred_keep_secrets_opening,
    old_seals_open_and_are_resealed_when_a_server_starts,
    running_servers_seal_with_a_rotated_primary_within_seconds,
);

#[tokio::test]
async fn keys_are_retired_only_when_no_credential_uses_them() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.init_site_admin("admin").await;
    let github = app.codehosts.url("github");
    app.add_code_host(&admin, "GITHUB", &github, "HTTP").await;
    let credential = credential_id(
        &app.create_credential(&admin.auth, Some(&admin.id), "GITHUB", &github, "ghp_a")
            .await,
    );
    let path = keyring_path(&app);
    let old = primary_key(&app);
    // A new primary without re-encryption, as after an interrupted rotation.
    Keyring::load(&KeySource::File(path.clone()))
        .unwrap()
        .with_new_primary()
        .unwrap()
        .write_file(&path)
        .unwrap();
    let new = primary_key(&app);

    let refused = cli(&app, &["keys", "retire", &old]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&raw_id(&credential))
            && stderr.contains("user admin")
            && stderr.contains(&github)
            && stderr.contains("keys reencrypt"),
        "{stderr}"
    );
    let primary = cli(&app, &["keys", "retire", &new]);
    assert!(!primary.status.success());
    assert!(
        String::from_utf8_lossy(&primary.stderr).contains("is the primary key"),
        "{primary:?}"
    );
    assert_eq!(
        Keyring::load(&KeySource::File(path.clone()))
            .unwrap()
            .key_ids()
            .count(),
        2
    );

    ok(&cli(&app, &["keys", "reencrypt"]));
    let retired = ok(&cli(&app, &["keys", "retire", &old]));
    assert!(retired.contains(&format!("retired key {old}")), "{retired}");
    let keys: Vec<String> = Keyring::load(&KeySource::File(path))
        .unwrap()
        .key_ids()
        .map(ToString::to_string)
        .collect();
    assert_eq!(keys, vec![new]);
    // The running server still opens it.
    app.graphql_ok(&admin.auth, CHECK, json!({ "id": credential }))
        .await;
}

#[test]
fn a_keyring_readable_by_others_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&batchcred(&data, &["keys", "status"], ""));
    let keyring = data.join("keyring");
    std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = batchcred(&data, &["serve", "--listen", "127.0.0.1:0"], "");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let shown = keyring.display();
    let expected =
        format!("keyring file {shown} is readable by group or others: run chmod 600 {shown}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("keyring")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].ends_with(&expected),
        "{stderr}"
    );
}

#[test]
fn rotation_never_writes_through_a_planted_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&batchcred(&data, &["keys", "status"], ""));
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let planted = data.join("keyring.tmp");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    ok(&batchcred(&data, &["keys", "rotate"], ""));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(
        std::fs::symlink_metadata(&planted)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let keyring = std::fs::symlink_metadata(data.join("keyring")).unwrap();
    assert!(keyring.file_type().is_file());
    assert_eq!(keyring.permissions().mode() & 0o777, 0o600);
    let status = ok(&batchcred(&data, &["keys", "status"], ""));
    assert_eq!(
        status
            .lines()
            .nth(1)
            .unwrap_or_default()
            .matches(',')
            .count(),
        1,
        "{status}"
    );
}

#[tokio::test]
async fn oversized_code_host_answers_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.init_site_admin("admin").await;
    let github = app.codehosts.url("github");
    app.add_code_host(&admin, "GITHUB", &github, "HTTP").await;
    app.codehosts
        .set_behaviour(Behaviour::Oversized(20 * 1024 * 1024));
    let body = app
        .create_credential(&admin.auth, None, "GITHUB", &github, "ghp_big")
        .await;
    assert!(
        error_message(&body).contains("larger than the 4 MiB batchcred reads"),
        "{body}"
    );
    assert_eq!(app.count_credentials().await, 0);
}
