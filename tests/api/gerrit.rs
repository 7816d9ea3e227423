//! Gerrit end to end, against the Gerrit emulator (REST and real git with
//! Gerrit's receive rules): the HTTP password is checked when added,
//! changes are uploaded over HTTPS (as the credential's username) and SSH
//! (with the generated key), publishing again adds patch sets to the same
//! change, and changes are followed, abandoned and restored.

use std::process::Command;
use std::time::{Duration, Instant};

use batchcred::auth::Caller;
use batchcred::codehost::{
    ApiClient, ChecksState, Client, CodeHostApi, Error, PullRequestState, ReviewState,
};
use batchcred::domain::{CodeHostKind, CodeHostUrl, JobState, UserAccount};
use batchcred::publish::{ChangeSpec, ChangesetSpec};
use batchcred::service::{CreateCredential, PublishResult};
use secrecy::SecretString;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{
    Backend, TestApp, TestUser, error_code, error_message, spawn_app, wait_for_jobs,
};
use crate::publish::PATCH;
use crate::support::codehost::gerrit::{GerritAccount, GerritEmulator};
use crate::support::git_http::git;
use crate::support::sshd::Sshd;

const PASSWORD: &str = "gerrit-http-s3cret";
const PROJECT: &str = "team/api";

struct World {
    app: TestApp,
    admin: TestUser,
    alice: UserAccount,
    gerrit: GerritEmulator,
    host_id: String,
}

/// An instance with a Gerrit code host serving `team/api`, where Alice's
/// account `alice` has an HTTP password.
async fn world(backend: Backend, git_url_type: &str) -> World {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    app.create_user(&admin, "alice").await;
    let gerrit = GerritEmulator::start().await;
    gerrit.add_account(GerritAccount::new("alice", PASSWORD));
    gerrit.create_project(PROJECT);
    let host_id = app
        .add_code_host(&admin, "GERRIT", &gerrit.url(), git_url_type)
        .await;
    let alice = app
        .service
        .user_by_username(&Caller::Operator, "alice")
        .await
        .unwrap();
    World {
        app,
        admin,
        alice,
        gerrit,
        host_id,
    }
}

impl World {
    async fn add_credential(&self, username: &str) -> batchcred::service::CredentialView {
        self.app
            .service
            .create_credential(
                &Caller::Operator,
                CreateCredential {
                    user: Some(self.alice.id),
                    kind: CodeHostKind::Gerrit,
                    url: self.gerrit.url(),
                    username: Some(username.to_owned()),
                    token: PASSWORD.into(),
                    repository: None,
                },
            )
            .await
            .unwrap()
    }

    fn spec(&self, head: &str) -> ChangesetSpec {
        ChangesetSpec {
            code_host: self.gerrit.url(),
            repository: PROJECT.to_owned(),
            base_branch: "main".into(),
            head_branch: head.to_owned(),
            title: "Say hello to the world".into(),
            body: "Done by a batch change.".into(),
            draft: false,
            change: ChangeSpec::Diff {
                patch: PATCH.into(),
                message: None,
                author_name: None,
                author_email: None,
            },
        }
    }

    async fn publish(&self, spec: &ChangesetSpec) -> batchcred::service::PublishedChangeset {
        self.app
            .service
            .publish_changeset(&Caller::User(self.alice.clone()), self.alice.id, spec)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn repository(&self) -> std::path::PathBuf {
        self.gerrit.git.repo_path(PROJECT)
    }

    fn client(&self, username: &str) -> Client {
        let api = ApiClient::new(Duration::from_secs(10)).unwrap();
        let url = CodeHostUrl::parse(&self.gerrit.url()).unwrap();
        Client::new(&api, CodeHostKind::Gerrit, &url, Some(username)).unwrap()
    }
}

/// The commit message of `commit` in the bare repository.
fn message(bare: &std::path::Path, commit: &str) -> String {
    git(bare, &["log", "-1", "--format=%B", commit])
}

const CREATE: &str = "mutation($user: ID, $name: String, $u: String!, $c: String!, $r: String) { \
    createBatchChangesCredential(user: $user, username: $name, externalServiceKind: GERRIT, \
    externalServiceURL: $u, credential: $c, repository: $r) { id codeHostUser scopes expiresAt \
    warnings } }";

both_backends!(
    http_passwords_are_checked_when_added,
    publishing_uploads_one_change_and_publishing_again_adds_patch_sets,
    changes_are_closed_reopened_and_synced_through_the_queue,
    rate_limits_are_waited_out_when_publishing,
    ssh_uploads_with_the_generated_key_as_the_gerrit_account,
);

async fn http_passwords_are_checked_when_added(backend: Backend) {
    let w = world(backend, "HTTP").await;
    let alice = w.app.sign_in_with_token("alice").await;
    let alice_id = crate::helpers::graphql_user_id(w.alice.id);
    let create = |name: Option<&str>, password: &str, repository: Option<&str>| {
        let variables = json!({
            "user": alice_id, "name": name, "u": w.gerrit.url(), "c": password, "r": repository,
        });
        let app = &w.app;
        let auth = alice.auth.clone();
        async move { app.graphql(&auth, CREATE, variables).await }
    };
    let refused = |body: serde_json::Value, code: &str, fragments: &[&str]| {
        assert_eq!(error_code(&body), Some(code), "{body}");
        for fragment in fragments {
            assert!(
                error_message(&body).contains(fragment),
                "{fragment:?}: {body}"
            );
        }
        assert!(!body.to_string().contains(PASSWORD), "{body}");
    };

    // A wrong password: Gerrit answers 401.
    let body = create(Some("alice"), "wrong-password", None).await;
    refused(body, "BAD_USER_INPUT", &["rejected this token"]);
    // The right password with another account's username.
    let body = create(Some("mallory"), PASSWORD, None).await;
    refused(body, "BAD_USER_INPUT", &["rejected this token"]);
    // A project the account cannot read (or that does not exist).
    let body = create(Some("alice"), PASSWORD, Some("team/secret")).await;
    refused(body, "BAD_USER_INPUT", &["team/secret", "Read right"]);
    // Busy: rate limited.
    w.gerrit.rate_limit(1, 30);
    let body = create(Some("alice"), PASSWORD, None).await;
    refused(
        body,
        "CODE_HOST_UNAVAILABLE",
        &["rate limiting", "try again in 30 s"],
    );
    assert_eq!(w.app.count_credentials().await, 0);

    // Unreachable.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{gone}");
    w.app.add_code_host(&w.admin, "GERRIT", &url, "HTTP").await;
    let body = w
        .app
        .graphql(
            &alice.auth,
            CREATE,
            json!({ "user": alice_id, "name": "alice", "u": url, "c": PASSWORD }),
        )
        .await;
    refused(body, "CODE_HOST_UNAVAILABLE", &["could not reach Gerrit"]);
    assert_eq!(w.app.count_credentials().await, 0);

    // The account works and can read the project: stored, with what
    // cannot be known until publishing said. Gerrit has neither scopes
    // nor expiry.
    let body = create(Some("alice"), PASSWORD, Some(PROJECT)).await;
    let credential = &body["data"]["createBatchChangesCredential"];
    assert_eq!(credential["codeHostUser"], "alice", "{body}");
    assert_eq!(credential["scopes"], serde_json::Value::Null);
    assert_eq!(credential["expiresAt"], serde_json::Value::Null);
    assert!(
        credential["warnings"]
            .to_string()
            .contains("Push to refs/for/*"),
        "{body}"
    );
    assert_eq!(w.app.count_credentials().await, 1);
    let seen = w.gerrit.seen();
    assert!(seen.iter().any(|r| r.path == "/a/accounts/self"));
    assert!(seen.iter().any(|r| r.path == "/a/projects/team%2Fapi"));
}

async fn publishing_uploads_one_change_and_publishing_again_adds_patch_sets(backend: Backend) {
    let w = world(backend, "HTTP").await;
    w.add_credential("alice").await;
    let mut spec = w.spec("batch/hello");
    let first = w.publish(&spec).await;
    assert_eq!(first.result, PublishResult::Opened);
    assert_eq!(first.pull_request_number, Some(1));
    assert_eq!(
        first.pull_request_url.as_deref(),
        Some(format!("{}/c/team/api/+/1", w.gerrit.url()).as_str())
    );
    let changes = w.gerrit.changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    let change = &changes[0];
    assert_eq!(
        (change.project.as_str(), change.branch.as_str()),
        (PROJECT, "main")
    );
    assert_eq!(change.topic.as_deref(), Some("batch/hello"));
    assert_eq!(change.subject, "Say hello to the world");
    assert_eq!(change.patch_sets, vec![first.commit.clone().unwrap()]);
    // The commit carries the Change-Id batchcred recorded, after the body.
    let stored = w
        .app
        .service
        .changesets_by_ids(&Caller::Operator, &[first.id])
        .await
        .unwrap();
    let change_id = stored[0].change_id.clone().unwrap();
    assert_eq!(change.change_id, change_id);
    let text = message(&w.repository(), &change.patch_sets[0]);
    assert!(
        text.starts_with("Say hello to the world\n\nDone by a batch change.\n\nChange-Id: I"),
        "{text}"
    );
    // Nothing lingers under refs/for; the patch set is kept as Gerrit does.
    let refs = git(&w.repository(), &["for-each-ref", "--format=%(refname)"]);
    assert!(!refs.contains("refs/for/"), "{refs}");
    assert!(refs.contains("refs/changes/01/1/1"), "{refs}");
    // Git and REST both went as the credential's username.
    let seen = w.gerrit.seen();
    assert!(seen.iter().any(|r| r.path.ends_with("/git-receive-pack")));
    assert!(
        seen.iter()
            .filter(|r| r.username.is_some())
            .all(|r| r.username.as_deref() == Some("alice")),
        "{seen:?}"
    );

    // The same spec again: nothing to do.
    let again = w.publish(&spec).await;
    assert_eq!(again.result, PublishResult::Unchanged);

    // A new spec: a second patch set of the same change.
    spec.change = ChangeSpec::Diff {
        patch: PATCH.replace("+world", "+there"),
        message: None,
        author_name: None,
        author_email: None,
    };
    let updated = w.publish(&spec).await;
    assert_eq!(updated.result, PublishResult::Updated);
    assert_eq!(updated.pull_request_number, Some(1));
    let changes = w.gerrit.changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].patch_sets.len(), 2);
    assert_eq!(changes[0].change_id, change_id);

    // Interrupted after the upload, before it was recorded: publishing
    // again uploads to the same change (the Change-Id was stored first).
    let database = w.app.database().await;
    sqlx::query("UPDATE changesets SET state = 'pending', spec_hash = 'interrupted' WHERE id = $1")
        .bind(first.id.to_string())
        .execute(&database)
        .await
        .unwrap();
    let resumed = w.publish(&spec).await;
    assert_eq!(resumed.pull_request_number, Some(1));
    let changes = w.gerrit.changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].change_id, change_id);

    // A draft spec uploads as work in progress.
    let mut draft = w.spec("batch/draft");
    draft.draft = true;
    let published = w.publish(&draft).await;
    assert_eq!(published.pull_request_number, Some(2));
    assert!(w.gerrit.changes()[1].work_in_progress);
}

#[tokio::test]
async fn a_local_commit_is_uploaded_with_a_change_id_and_the_repository_left_alone() {
    let w = world(Backend::Sqlite, "HTTP").await;
    w.add_credential("alice").await;
    let local = tempfile::tempdir().unwrap();
    git(
        local.path(),
        &["clone", "--quiet", w.repository().to_str().unwrap(), "."],
    );
    std::fs::write(local.path().join("README.md"), "hello\nlocal\n").unwrap();
    git(
        local.path(),
        &["commit", "--quiet", "-am", "Edit the README\n\nBy hand."],
    );
    let original = git(local.path(), &["rev-parse", "HEAD"]).trim().to_owned();
    let mut spec = w.spec("batch/local");
    spec.change = ChangeSpec::Commit {
        repo: local.path().to_owned(),
        rev: "HEAD".into(),
    };
    let published = w
        .app
        .service
        .publish_changeset(&Caller::Operator, w.alice.id, &spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(published.result, PublishResult::Opened);
    let uploaded = published.commit.clone().unwrap();
    assert_ne!(uploaded, original);
    let text = message(&w.repository(), &uploaded);
    assert!(
        text.starts_with("Edit the README\n\nBy hand.\n\nChange-Id: I"),
        "{text}"
    );
    // Same tree, parent and author as the local commit.
    for format in ["%T", "%P", "%an %ae %ad"] {
        assert_eq!(
            git(
                &w.repository(),
                &["log", "-1", &format!("--format={format}"), &uploaded]
            ),
            git(
                local.path(),
                &["log", "-1", &format!("--format={format}"), &original]
            ),
        );
    }
    // The rewritten commit was never written to the user's repository.
    let in_local = Command::new("git")
        .arg("-C")
        .arg(local.path())
        .args(["cat-file", "-e", &uploaded])
        .status()
        .unwrap();
    assert!(!in_local.success());
    assert_eq!(git(local.path(), &["rev-parse", "HEAD"]).trim(), original);

    // Publishing the same commit under a new title uploads the very same
    // commit: Gerrit answers "no new changes", which is no failure.
    spec.title = "Edit the README, again".into();
    let again = w
        .app
        .service
        .publish_changeset(&Caller::Operator, w.alice.id, &spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.commit.as_deref(), Some(uploaded.as_str()));
    let changes = w.gerrit.changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].patch_sets, vec![uploaded]);
}

#[tokio::test]
async fn the_emulator_refuses_commits_without_a_change_id() {
    let w = world(Backend::Sqlite, "HTTP").await;
    let local = tempfile::tempdir().unwrap();
    git(
        local.path(),
        &["clone", "--quiet", w.repository().to_str().unwrap(), "."],
    );
    git(
        local.path(),
        &["commit", "--quiet", "--allow-empty", "-m", "No id"],
    );
    let url = format!("http://alice:{PASSWORD}@{}/a/{PROJECT}", w.gerrit.address);
    // Not blocking the runtime: the emulator answers on it.
    let output = tokio::process::Command::new("git")
        .arg("-C")
        .arg(local.path())
        .args(["push", &url, "HEAD:refs/for/main"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("missing Change-Id in message footer"),
        "{stderr}"
    );
    assert!(w.gerrit.changes().is_empty());
}

#[tokio::test]
async fn uploads_gerrit_refuses_name_the_missing_right() {
    let w = world(Backend::Sqlite, "HTTP").await;
    w.add_credential("alice").await;
    w.gerrit.deny_uploads(PROJECT);
    let error = w
        .app
        .service
        .publish_changeset(
            &Caller::User(w.alice.clone()),
            w.alice.id,
            &w.spec("batch/denied"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("lacks the \"Push to refs/for/*\" right"),
        "{error}"
    );
    assert!(
        error.contains("not permitted: create change on refs/heads/main"),
        "{error}"
    );
    assert!(!error.contains(PASSWORD), "{error}");
    assert!(w.gerrit.changes().is_empty());
}

async fn rate_limits_are_waited_out_when_publishing(backend: Backend) {
    let w = world(backend, "HTTP").await;
    w.add_credential("alice").await;
    w.gerrit.rate_limit(1, 1);
    let started = Instant::now();
    let published = w.publish(&w.spec("batch/busy")).await;
    assert_eq!(published.result, PublishResult::Opened);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(w.gerrit.changes().len(), 1);
}

async fn ssh_uploads_with_the_generated_key_as_the_gerrit_account(backend: Backend) {
    let w = world(backend, "SSH").await;
    // Gerrit's SSH daemon knows accounts by username: here the local user
    // the test sshd lets in.
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned();
    w.gerrit.add_account(GerritAccount::new(&user, PASSWORD));
    let credential = w.add_credential(&user).await;
    let sshd = Sshd::start(&[&credential.ssh_public_key.clone().unwrap()]);
    w.gerrit.offer_ssh(&format!(
        "ssh://127.0.0.1:{}{}/${{project}}",
        sshd.port,
        w.gerrit.repositories_root().display()
    ));
    w.app
        .graphql_ok(
            &w.admin.auth,
            "mutation($id: ID!, $k: String!) { updateCodeHost(id: $id, sshKnownHosts: $k) { id } }",
            json!({ "id": w.host_id, "k": sshd.known_hosts() }),
        )
        .await;
    let published = w
        .app
        .service
        .publish_changeset(
            &Caller::User(w.alice.clone()),
            w.alice.id,
            &w.spec("batch/ssh"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
    assert_eq!(published.result, PublishResult::Opened);
    let changes = w.gerrit.changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].patch_sets, vec![published.commit.unwrap()]);
    // No git over HTTPS at all.
    assert!(!w.gerrit.seen().iter().any(|r| r.path.contains("git-")));
}

#[tokio::test]
async fn the_client_follows_abandons_and_restores_changes() {
    let w = world(Backend::Sqlite, "HTTP").await;
    w.add_credential("alice").await;
    let published = w.publish(&w.spec("batch/life")).await;
    let number = published.pull_request_number.unwrap() as u64;
    let client = w.client("alice");
    let token = SecretString::from(PASSWORD);

    let status = client.pull_request(&token, PROJECT, number).await.unwrap();
    assert_eq!(status.state, PullRequestState::Open);
    assert_eq!(
        (status.review, status.checks),
        (None, Some(ChecksState::Pending))
    );
    assert_eq!(status.head_branch, "batch/life");
    assert_eq!(status.base_branch, "main");
    assert_eq!(
        status.url,
        format!("{}/c/team/api/+/{number}", w.gerrit.url())
    );

    w.gerrit.vote(number, "Code-Review", 2);
    w.gerrit.vote(number, "Verified", -1);
    let status = client.pull_request(&token, PROJECT, number).await.unwrap();
    assert_eq!(status.review, Some(ReviewState::Approved));
    assert_eq!(status.checks, Some(ChecksState::Failed));
    w.gerrit.vote(number, "Code-Review", -1);
    w.gerrit.vote(number, "Verified", 1);
    let status = client.pull_request(&token, PROJECT, number).await.unwrap();
    assert_eq!(status.review, Some(ReviewState::ChangesRequested));
    assert_eq!(status.checks, Some(ChecksState::Passed));

    // Abandoning twice, restoring twice: the second of each is a no-op.
    for _ in 0..2 {
        let closed = client
            .close_pull_request(&token, PROJECT, number)
            .await
            .unwrap();
        assert_eq!(closed.state, PullRequestState::Closed);
    }
    for _ in 0..2 {
        let reopened = client
            .reopen_pull_request(&token, PROJECT, number)
            .await
            .unwrap();
        assert_eq!(reopened.state, PullRequestState::Open);
    }
    // There is no branch to delete.
    client
        .delete_branch(&token, PROJECT, "batch/life")
        .await
        .unwrap();

    // An account without the Abandon right is told which right it lacks.
    w.gerrit
        .add_account(GerritAccount::new("reader", "reader-pw").without_abandon());
    let error = w
        .client("reader")
        .close_pull_request(&SecretString::from("reader-pw"), PROJECT, number)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::MissingScopes { missing, .. } if missing[0].starts_with("Abandon")),
        "{error}"
    );

    w.gerrit.merge(number);
    let status = client.pull_request(&token, PROJECT, number).await.unwrap();
    assert_eq!(status.state, PullRequestState::Merged);
    let gone = client.pull_request(&token, PROJECT, 99).await.unwrap_err();
    assert!(
        matches!(gone, Error::PullRequestNotFound { number: 99, .. }),
        "{gone}"
    );

    // A wrong password is rejected, and never quoted.
    let error = client
        .pull_request(&SecretString::from("nope-s3cret"), PROJECT, number)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Rejected { .. }), "{error}");
    assert!(!error.to_string().contains("nope-s3cret"));
}

async fn changes_are_closed_reopened_and_synced_through_the_queue(backend: Backend) {
    let w = world(backend, "HTTP").await;
    w.add_credential("alice").await;
    let as_alice = Caller::User(w.alice.clone());
    let reports = w
        .app
        .service
        .enqueue_changesets(&as_alice, w.alice.id, vec![w.spec("batch/queued")])
        .await
        .unwrap();
    let id = reports[0].outcome.as_ref().unwrap().id;
    let done = &wait_for_jobs(&w.app.service, &[id]).await[0];
    assert_eq!(done.job_state, JobState::Completed, "{:?}", done.error);
    let number = done.pr_number.unwrap() as u64;

    w.app
        .service
        .close_changeset(&as_alice, id, true)
        .await
        .unwrap();
    let closed = &wait_for_jobs(&w.app.service, &[id]).await[0];
    assert_eq!(closed.job_state, JobState::Completed, "{:?}", closed.error);
    assert_eq!(closed.external_state.as_deref(), Some("closed"));
    assert_eq!(w.gerrit.changes()[0].status, "ABANDONED");

    w.app.service.reopen_changeset(&as_alice, id).await.unwrap();
    let reopened = &wait_for_jobs(&w.app.service, &[id]).await[0];
    assert_eq!(
        reopened.external_state.as_deref(),
        Some("open"),
        "{:?}",
        reopened.error
    );
    assert_eq!(w.gerrit.changes()[0].status, "NEW");

    w.gerrit.vote(number, "Code-Review", 2);
    w.gerrit.merge(number);
    w.app.service.sync_changeset(&as_alice, id).await.unwrap();
    let synced = &wait_for_jobs(&w.app.service, &[id]).await[0];
    assert_eq!(
        synced.external_state.as_deref(),
        Some("merged"),
        "{:?}",
        synced.error
    );
    assert_eq!(synced.review_state.as_deref(), Some("approved"));
}
