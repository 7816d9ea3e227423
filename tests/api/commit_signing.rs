//! SSH commit signing (GitHub, GitLab) end to end: turned on over GraphQL,
//! the commit batchcred pushes to a real git server is checked with
//! `git verify-commit` and an allowed-signers file — it verifies with the
//! credential's signing key and with no other.

use std::path::Path;
use std::process::Command;

use batchcred::auth::Caller;
use batchcred::crypto::generate_ssh_keypair;
use batchcred::domain::{CredentialOwner, SigningKeySource, SshKeyAlgorithm};
use batchcred::publish::ChangeSpec;
use batchcred::service::{AuditQuery, KeySource, Keyring, PageRequest, PublishResult};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestUser, error_code, error_message};
use crate::publish::{World, world};
use crate::support::codehost::EmulatedRepo;
use crate::support::git_http::{branch_sha, git};
use crate::support::sshd::Sshd;

both_backends!(
    a_published_diff_is_signed_with_the_generated_key_until_signing_is_off,
    signing_is_refused_where_it_cannot_work_and_for_others,
    the_signing_private_key_is_sealed_and_in_no_audit_entry,
);

const CODE_HOSTS: &str = "query($user: ID!) { node(id: $user) { ... on User { \
    batchChangesCodeHosts { nodes { externalServiceURL supportsCommitSigning \
    credential { id signingPublicKey signingKeySource } } } } } }";

const ENABLE: &str = "mutation($id: ID!, $source: CommitSigningKeySource!) { \
    enableBatchChangesCredentialCommitSigning(batchChangesCredential: $id, source: $source) { \
    id signingPublicKey signingKeySource } }";

const DISABLE: &str = "mutation($id: ID!) { \
    disableBatchChangesCredentialCommitSigning(batchChangesCredential: $id) { \
    signingPublicKey signingKeySource } }";

/// The code host entry (with its credential) of `user` for `url`.
async fn code_host(w: &World, user: &TestUser, url: &str) -> Value {
    let data = w
        .app
        .graphql_ok(&user.auth, CODE_HOSTS, json!({ "user": user.id }))
        .await;
    data["node"]["batchChangesCodeHosts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["externalServiceURL"] == url)
        .unwrap_or_else(|| panic!("no code host {url} in {data}"))
        .clone()
}

/// Turns signing on for `user`'s credential on `url`; returns the public key.
async fn enable(w: &World, user: &TestUser, url: &str, source: &str) -> String {
    let host = code_host(w, user, url).await;
    let data = w
        .app
        .graphql_ok(
            &user.auth,
            ENABLE,
            json!({ "id": host["credential"]["id"], "source": source }),
        )
        .await;
    let credential = &data["enableBatchChangesCredentialCommitSigning"];
    assert_eq!(credential["signingKeySource"], source, "{data}");
    credential["signingPublicKey"].as_str().unwrap().to_owned()
}

/// Runs `git verify-commit` on `commit` in `repo` trusting only `key`:
/// whether it passed, and what git said.
fn verify(repo: &Path, commit: &str, key: &str) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let key: Vec<&str> = key.split_whitespace().take(2).collect();
    let allowed = home.path().join("allowed_signers");
    std::fs::write(&allowed, format!("batchcred {}\n", key.join(" "))).unwrap();
    let output = Command::new("git")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .arg("-C")
        .arg(repo)
        .arg("-c")
        .arg(format!("gpg.ssh.allowedSignersFile={}", allowed.display()))
        .args(["verify-commit", "--raw", commit])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), said)
}

/// Passes with `key`, fails with a freshly generated other key.
fn assert_signed_by(repo: &Path, commit: &str, key: &str) {
    let (passed, said) = verify(repo, commit, key);
    assert!(passed, "{commit} does not verify with its key: {said}");
    let other = generate_ssh_keypair(SshKeyAlgorithm::Ed25519, "other").unwrap();
    let (passed, said) = verify(repo, commit, &other.public_key);
    assert!(!passed, "{commit} verifies with another key: {said}");
}

fn assert_unsigned(repo: &Path, commit: &str) {
    let object = git(repo, &["cat-file", "commit", commit]);
    assert!(!object.contains("gpgsig"), "{commit} is signed:\n{object}");
}

async fn a_published_diff_is_signed_with_the_generated_key_until_signing_is_off(backend: Backend) {
    let w = world(backend).await;
    let alice = w.app.sign_in_with_token("alice").await;
    let url = w.emulator.url("github");
    let host = code_host(&w, &alice, &url).await;
    assert_eq!(host["supportsCommitSigning"], true);
    assert_eq!(host["credential"]["signingPublicKey"], Value::Null);
    assert_eq!(host["credential"]["signingKeySource"], Value::Null);

    let key = enable(&w, &alice, &url, "GENERATED").await;
    assert!(key.starts_with("ssh-ed25519 "), "{key}");
    // Enabling again keeps the key already uploaded.
    assert_eq!(enable(&w, &alice, &url, "GENERATED").await, key);
    let host = code_host(&w, &alice, &url).await;
    assert_eq!(host["credential"]["signingPublicKey"], key.as_str());

    let as_alice = Caller::User(w.alice.clone());
    let published = w
        .app
        .service
        .publish_changeset(
            &as_alice,
            w.alice.id,
            &w.spec("github", "acme/api", "batch/signed"),
        )
        .await
        .unwrap();
    assert_eq!(published.result, PublishResult::Opened);
    let api = w.git.repo_path("api");
    let commit = branch_sha(&api, "batch/signed").unwrap();
    assert_eq!(published.commit.as_deref(), Some(commit.as_str()));
    assert_signed_by(&api, &commit, &key);
    assert_eq!(
        git(&api, &["show", "batch/signed:README.md"]),
        "hello\nworld\n"
    );

    // Bob publishes with the global credential, which does not sign.
    let as_bob = Caller::User(w.bob.clone());
    w.app
        .service
        .publish_changeset(
            &as_bob,
            w.bob.id,
            &w.spec("github", "acme/web", "batch/bob"),
        )
        .await
        .unwrap();
    let web = w.git.repo_path("web");
    assert_unsigned(&web, &branch_sha(&web, "batch/bob").unwrap());

    // Off again: Alice's next commit is unsigned.
    let data = w
        .app
        .graphql_ok(
            &alice.auth,
            DISABLE,
            json!({ "id": host["credential"]["id"] }),
        )
        .await;
    let off = &data["disableBatchChangesCredentialCommitSigning"];
    assert_eq!(off["signingPublicKey"], Value::Null);
    assert_eq!(off["signingKeySource"], Value::Null);
    w.app
        .service
        .publish_changeset(
            &as_alice,
            w.alice.id,
            &w.spec("github", "acme/docs", "batch/unsigned"),
        )
        .await
        .unwrap();
    let docs = w.git.repo_path("docs");
    assert_unsigned(&docs, &branch_sha(&docs, "batch/unsigned").unwrap());

    // Both changes were audited, and the audit log holds no private key.
    let log = w
        .app
        .service
        .audit_log(
            &Caller::Operator,
            &AuditQuery::default(),
            &PageRequest::default(),
        )
        .await
        .unwrap();
    let events: Vec<&str> = log.items.iter().map(|e| e.event.as_str()).collect();
    for event in ["credential.signing_enabled", "credential.signing_disabled"] {
        assert!(events.contains(&event), "no {event} in {events:?}");
    }
}

#[tokio::test]
async fn a_local_commit_is_signed_as_a_copy_and_the_users_repository_is_untouched() {
    let w = world(Backend::Sqlite).await;
    let alice = w.app.sign_in_with_token("alice").await;
    let key = enable(&w, &alice, &w.emulator.url("github"), "GENERATED").await;

    let work = tempfile::tempdir().unwrap();
    let api = w.git.repo_path("api");
    git(
        work.path(),
        &["clone", "--quiet", api.to_str().unwrap(), "."],
    );
    std::fs::write(work.path().join("README.md"), "hello\nlocal\n").unwrap();
    git(
        work.path(),
        &["commit", "--quiet", "-am", "Local change\n\nWith a body.\n"],
    );
    let original = git(work.path(), &["rev-parse", "HEAD"]).trim().to_owned();
    let snapshot = |dir: &Path| {
        let mut files: Vec<String> = walk(&dir.join(".git"));
        files.sort();
        (
            files,
            git(dir, &["for-each-ref"]),
            git(dir, &["status", "--porcelain"]),
        )
    };
    let before = snapshot(work.path());

    let mut spec = w.spec("github", "acme/api", "batch/local");
    spec.change = ChangeSpec::Commit {
        repo: work.path().to_owned(),
        rev: "HEAD".into(),
    };
    let published = w
        .app
        .service
        .publish_changeset(&Caller::Operator, w.alice.id, &spec)
        .await
        .unwrap();
    let pushed = branch_sha(&api, "batch/local").unwrap();
    assert_eq!(published.commit.as_deref(), Some(pushed.as_str()));
    assert_ne!(pushed, original, "the local commit was pushed unsigned");
    assert_signed_by(&api, &pushed, &key);
    // The same commit apart from its signature.
    let format = "%T %P%n%an <%ae> %ad%n%cn <%ce> %cd%n%B";
    assert_eq!(
        git(&api, &["log", "-1", &format!("--format={format}"), &pushed]),
        git(
            work.path(),
            &["log", "-1", &format!("--format={format}"), &original]
        )
    );
    // Nothing was written to the user's repository.
    assert_eq!(snapshot(work.path()), before);
    assert_unsigned(work.path(), &original);
}

/// Every file under `dir`, with its size.
fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            found.push(format!("{} {size}", path.display()));
        }
    }
    found
}

#[tokio::test]
async fn the_ssh_key_signs_on_an_ssh_code_host() {
    let w = world(Backend::Sqlite).await;
    let alice = w.app.sign_in_with_token("alice").await;
    let url = w.emulator.url("gh-ssh");
    let host_id = w.app.add_code_host(&w.admin, "GITHUB", &url, "SSH").await;
    let credential = w
        .add_credential(Some(&w.alice), "GITHUB", "gh-ssh", "ghp_alice")
        .await;
    let ssh_key = credential.ssh_public_key.clone().unwrap();
    let signing_key = enable(&w, &alice, &url, "SSH_KEY").await;
    assert_eq!(signing_key, ssh_key);

    let sshd = Sshd::start(&[&ssh_key]);
    let bare = w.git.create_repo("ssh-signed");
    w.emulator.add_repository(
        "acme/ssh-signed",
        EmulatedRepo {
            http_clone_url: "http://127.0.0.1:9/unused.git".into(),
            ssh_clone_url: Some(sshd.url(&bare)),
        },
    );
    w.app
        .graphql_ok(
            &w.admin.auth,
            "mutation($id: ID!, $k: String!) { updateCodeHost(id: $id, sshKnownHosts: $k) { id } }",
            json!({ "id": host_id, "k": sshd.known_hosts() }),
        )
        .await;
    let as_alice = Caller::User(w.alice.clone());
    let published = w
        .app
        .service
        .publish_changeset(
            &as_alice,
            w.alice.id,
            &w.spec("gh-ssh", "acme/ssh-signed", "batch/ssh"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
    let commit = branch_sha(&bare, "batch/ssh").unwrap();
    assert_eq!(published.commit.as_deref(), Some(commit.as_str()));
    assert_signed_by(&bare, &commit, &ssh_key);

    // The resolved credential signs with the SSH private key itself.
    let resolved = w
        .app
        .service
        .resolve_credential(
            &as_alice,
            w.alice.id,
            &batchcred::domain::CodeHostUrl::parse(&url).unwrap(),
            "acme/ssh-signed",
        )
        .await
        .unwrap();
    let signing = resolved.commit_signing().unwrap();
    assert_eq!(
        signing.private_key.expose_secret(),
        resolved
            .secret
            .ssh_private_key
            .as_ref()
            .unwrap()
            .expose_secret()
    );
}

async fn signing_is_refused_where_it_cannot_work_and_for_others(backend: Backend) {
    let w = world(backend).await;
    let alice = w.app.sign_in_with_token("alice").await;
    let bob = w.app.sign_in_with_token("bob").await;
    let bitbucket = w.emulator.url("bitbucket");
    w.app
        .add_code_host(&w.admin, "BITBUCKETSERVER", &bitbucket, "HTTP")
        .await;
    w.add_credential(Some(&w.alice), "BITBUCKETSERVER", "bitbucket", "BBDC-alice")
        .await;

    // A kind that does not verify SSH signatures.
    let host = code_host(&w, &alice, &bitbucket).await;
    assert_eq!(host["supportsCommitSigning"], false);
    let body = w
        .app
        .graphql(
            &alice.auth,
            ENABLE,
            json!({ "id": host["credential"]["id"], "source": "GENERATED" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(
        error_message(&body).contains("Bitbucket Server does not verify SSH-signed commits"),
        "{body}"
    );

    // "Use the SSH key" on a credential that has none (HTTPS code host).
    let github = w.emulator.url("github");
    let host = code_host(&w, &alice, &github).await;
    let body = w
        .app
        .graphql(
            &alice.auth,
            ENABLE,
            json!({ "id": host["credential"]["id"], "source": "SSH_KEY" }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(
        error_message(&body).contains("has no SSH key to sign with"),
        "{body}"
    );

    // Bob cannot turn signing on or off for Alice's credential: it looks
    // like no credential at all.
    for (query, variables) in [
        (
            ENABLE,
            json!({ "id": host["credential"]["id"], "source": "GENERATED" }),
        ),
        (DISABLE, json!({ "id": host["credential"]["id"] })),
    ] {
        let body = w.app.graphql(&bob.auth, query, variables).await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    }
    let alices = w
        .app
        .service
        .list_credentials(&Caller::Operator, CredentialOwner::User(w.alice.id))
        .await
        .unwrap();
    assert!(alices.iter().all(|c| c.signing.is_none()));

    // A site admin manages the global credential, as with deleting it.
    let global = w
        .app
        .service
        .list_credentials(&Caller::Operator, CredentialOwner::Site)
        .await
        .unwrap()
        .remove(0);
    let as_bob = Caller::User(w.bob.clone());
    assert!(matches!(
        w.app
            .service
            .enable_commit_signing(&as_bob, global.id, SigningKeySource::Generated)
            .await,
        Err(batchcred::service::Error::NotFound(_))
    ));
    let admin = w
        .app
        .service
        .user_by_username(&Caller::Operator, "admin")
        .await
        .unwrap();
    let enabled = w
        .app
        .service
        .enable_commit_signing(&Caller::User(admin), global.id, SigningKeySource::Generated)
        .await
        .unwrap();
    assert!(enabled.signing.is_some());
}

async fn the_signing_private_key_is_sealed_and_in_no_audit_entry(backend: Backend) {
    let w = world(backend).await;
    let alice = w.app.sign_in_with_token("alice").await;
    let url = w.emulator.url("github");
    let public_key = enable(&w, &alice, &url, "GENERATED").await;
    let as_alice = Caller::User(w.alice.clone());
    let resolved = w
        .app
        .service
        .resolve_credential(
            &as_alice,
            w.alice.id,
            &batchcred::domain::CodeHostUrl::parse(&url).unwrap(),
            "acme/api",
        )
        .await
        .unwrap();
    let signing = resolved.commit_signing().unwrap();
    assert_eq!(signing.public_key, public_key);
    let private_key = signing.private_key.expose_secret().to_owned();
    assert!(private_key.contains("OPENSSH PRIVATE KEY"));
    // Each line of the key's body, any of which would give it away.
    let body: Vec<&str> = private_key
        .lines()
        .filter(|line| !line.starts_with("-----") && line.len() > 20)
        .collect();
    assert!(!body.is_empty());

    // Not in any column: the row holds the public key and a ciphertext.
    let record = w
        .app
        .service
        .store()
        .find_credential(resolved.credential_id)
        .await
        .unwrap();
    let row = format!("{record:?}");
    for line in &body {
        assert!(
            !row.contains(line),
            "the credential row holds the private key"
        );
    }
    // Not in the audit log.
    let log = w
        .app
        .service
        .audit_log(
            &Caller::Operator,
            &AuditQuery::default(),
            &PageRequest::default(),
        )
        .await
        .unwrap();
    let exported = serde_json::to_string(
        &log.items
            .iter()
            .map(|e| format!("{e:?}"))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(
        exported.contains("credential.signing_enabled"),
        "{exported}"
    );
    for line in &body {
        assert!(
            !exported.contains(line),
            "the audit log holds the private key"
        );
    }

    // Rotating the encryption key and re-encrypting keeps the signing key.
    // The PostgreSQL instances of the tests get their keyring inline, so
    // only the SQLite run can rotate it.
    let path = match batchcred::app::resolve_store(&w.app.store)
        .unwrap()
        .key_source
    {
        KeySource::File(path) => path,
        KeySource::Inline(_) => return,
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
        .find_credential(resolved.credential_id)
        .await
        .unwrap();
    assert_ne!(after.secret.key_id, record.secret.key_id);
    assert_eq!(after.signing, record.signing);
    let resolved = w
        .app
        .service
        .resolve_credential(
            &as_alice,
            w.alice.id,
            &batchcred::domain::CodeHostUrl::parse(&url).unwrap(),
            "acme/api",
        )
        .await
        .unwrap();
    let signing = resolved.commit_signing().unwrap();
    assert_eq!(signing.private_key.expose_secret(), private_key);
    assert_eq!(signing.public_key, public_key);
}

#[tokio::test]
async fn the_credentials_page_turns_signing_on_shows_the_key_and_turns_it_off() {
    use crate::web::Browser;
    use reqwest::StatusCode;

    const SETTINGS: &str = "/user/settings/batch-changes";
    let w = world(Backend::Sqlite).await;
    let gitlab = w.emulator.url("gitlab");
    w.app
        .add_code_host(&w.admin, "GITLAB", &gitlab, "HTTP")
        .await;
    w.add_credential(Some(&w.alice), "GITLAB", "gitlab", "glpat-alice")
        .await;
    let bitbucket = w.emulator.url("bitbucket");
    w.app
        .add_code_host(&w.admin, "BITBUCKETSERVER", &bitbucket, "HTTP")
        .await;
    w.add_credential(Some(&w.alice), "BITBUCKETSERVER", "bitbucket", "BBDC-alice")
        .await;
    let alice = Browser::signed_in(&w.app, "alice").await;
    let gitlab_id = credential_of(&w, &gitlab).await.id.to_string();
    let bitbucket_id = credential_of(&w, &bitbucket).await.id.to_string();

    // A button on GitHub and GitLab rows only.
    let (_, page) = alice.get(SETTINGS).await;
    let enable = |id: &str| format!("{SETTINGS}/credentials/{id}/signing");
    assert!(page.contains(&format!("action=\"{}\"", enable(&gitlab_id))));
    assert!(!page.contains(&format!("action=\"{}\"", enable(&bitbucket_id))));
    assert!(page.contains("Sign commits"));

    // Without the session's CSRF token nothing changes.
    let (status, _) = alice.post(&enable(&gitlab_id), &[("csrf", "wrong")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let csrf = alice.csrf(SETTINGS).await;
    let (status, _) = alice.post(&enable(&bitbucket_id), &[("csrf", &csrf)]).await;
    assert!(status.is_client_error(), "{status}");

    let (status, _) = alice.post(&enable(&gitlab_id), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let signing = credential_of(&w, &gitlab).await.signing.unwrap();
    assert_eq!(signing.source, SigningKeySource::Generated);
    let (status, dialog) = alice.get(&format!("{SETTINGS}?signing={gitlab_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(dialog.contains(&signing.public_key), "{dialog}");
    assert!(dialog.contains("data-copy=\"signing-public-key\""));
    assert!(dialog.contains("GitLab → Preferences → SSH Keys → Usage type: Signing"));

    let disable = format!("{SETTINGS}/credentials/{gitlab_id}/signing/disable");
    let (status, _) = alice.post(&disable, &[("csrf", "wrong")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = alice.post(&disable, &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = alice.get(SETTINGS).await;
    assert!(page.contains(&format!("action=\"{}\"", enable(&gitlab_id))));
    assert!(!page.contains(&signing.public_key));
}

/// Alice's credential for the code host at `url`, as the service shows it.
async fn credential_of(w: &World, url: &str) -> batchcred::service::CredentialView {
    w.app
        .service
        .list_credentials(&Caller::Operator, CredentialOwner::User(w.alice.id))
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.url.as_str() == url)
        .unwrap()
}

/// `batchcred ARGS` against the app's own database and keyring.
fn cli(app: &crate::helpers::TestApp, args: &[&str]) -> std::process::Output {
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
    crate::cli::bare_batchcred(&all, "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_turns_signing_on_and_prints_the_key_to_upload() {
    let w = world(Backend::Sqlite).await;
    let github = w.emulator.url("github");
    let enable = [
        "credentials",
        "signing",
        "enable",
        "--user",
        "alice",
        "--url",
    ];

    let mut args = enable.to_vec();
    args.extend([github.as_str(), "--use-ssh-key"]);
    let refused = cli(&w.app, &args);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("has no SSH key to sign with"), "{stderr}");

    let mut args = enable.to_vec();
    args.push(github.as_str());
    let printed = crate::cli::ok(&cli(&w.app, &args));
    let signing = credential_of(&w, &github).await.signing.unwrap();
    assert!(printed.contains(&signing.public_key), "{printed}");
    assert!(
        printed
            .contains("GitHub → Settings → SSH and GPG keys → New SSH key → Key type: Signing key"),
        "{printed}"
    );

    let args = [
        "credentials",
        "signing",
        "disable",
        "--user",
        "alice",
        "--url",
        &github,
    ];
    let printed = crate::cli::ok(&cli(&w.app, &args));
    assert!(printed.contains("no longer signed"), "{printed}");
    assert!(credential_of(&w, &github).await.signing.is_none());
}

#[tokio::test]
async fn a_gitlab_merge_request_commit_is_signed_too() {
    let w = world(Backend::Sqlite).await;
    let gitlab = w.emulator.url("gitlab");
    w.app
        .add_code_host(&w.admin, "GITLAB", &gitlab, "HTTP")
        .await;
    w.add_credential(Some(&w.alice), "GITLAB", "gitlab", "glpat-alice")
        .await;
    let alice = w.app.sign_in_with_token("alice").await;
    assert_eq!(
        code_host(&w, &alice, &gitlab).await["supportsCommitSigning"],
        true
    );
    let key = enable(&w, &alice, &gitlab, "GENERATED").await;
    let published = w
        .app
        .service
        .publish_changeset(
            &Caller::User(w.alice.clone()),
            w.alice.id,
            &w.spec("gitlab", "acme/api", "batch/gl-signed"),
        )
        .await
        .unwrap();
    assert_eq!(published.result, PublishResult::Opened);
    let api = w.git.repo_path("api");
    let commit = branch_sha(&api, "batch/gl-signed").unwrap();
    assert_signed_by(&api, &commit, &key);
}
