//! Bitbucket Cloud end to end, against its emulator
//! (tests/support/codehost/bitbucket_cloud.rs) and real git servers:
//! checking API tokens and app passwords as they are added, pushing over
//! HTTPS with the username Bitbucket wants and over SSH with the generated
//! key, opening and updating pull requests without duplicates, waiting
//! out rate limits, and following the pull request through the queue and
//! the client.

use std::time::Duration;

use batchcred::auth::Caller;
use batchcred::codehost::{
    ApiClient, ChecksState, Client, CodeHostApi, Error, PullRequestDraft, PullRequestState,
    ReviewState,
};
use batchcred::domain::{CodeHostKind, CodeHostUrl, JobState, UserAccount};
use batchcred::publish::{ChangeSpec, ChangesetSpec};
use batchcred::service::{CreateCredential, PublishResult};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestUser, error_message, spawn_app, wait_for_jobs};
use crate::publish::PATCH;
use crate::support::codehost::bitbucket_cloud::{
    self, API_TOKEN_SCOPES, APP_PASSWORD_SCOPES, BitbucketCloudEmulator, CloudRepo, CloudToken,
    READ_PULL_REQUESTS, READ_REPOSITORY, READ_USER, WRITE_PULL_REQUESTS, WRITE_REPOSITORY,
};
use crate::support::codehost::{EmulatedChecks, EmulatedReview, PullState};
use crate::support::git_http::{GitHttpServer, branch_sha, git};
use crate::support::sshd::Sshd;

both_backends!(
    tokens_are_checked_as_they_are_added,
    publishing_pushes_as_bitbucket_wants_and_never_duplicates,
    closing_and_syncing_go_through_the_queue,
    ssh_pushes_with_the_generated_key,
    rate_limits_are_waited_out,
);

/// Alice's API token: Basic auth with her Atlassian email.
const API_TOKEN: &str = "ATATT3xFfGF0-alice-s3cret";
const ALICE_EMAIL: &str = "alice@example.com";
/// Bob's app password: Basic auth with his Bitbucket username.
const APP_PASSWORD: &str = "app-password-bob-s3cret";
/// What git must send with an API token.
const API_TOKEN_GIT_USER: &str = "x-bitbucket-api-token-auth";

struct Cloud {
    app: TestApp,
    admin: TestUser,
    alice: UserAccount,
    bob: UserAccount,
    bb: BitbucketCloudEmulator,
    git: GitHttpServer,
    /// The code host URL.
    url: String,
}

/// An instance with a Bitbucket Cloud code host serving `acme/api` and
/// `acme/web` from a git server that takes each secret only with the
/// username Bitbucket takes it with.
async fn cloud(backend: Backend) -> Cloud {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    app.create_user(&admin, "alice").await;
    app.create_user(&admin, "bob").await;
    let bb = bitbucket_cloud::start().await;
    bb.add_token(
        API_TOKEN,
        CloudToken::api_token(ALICE_EMAIL, "alice-bb", API_TOKEN_SCOPES).reporting_scopes(),
    );
    bb.add_token(
        APP_PASSWORD,
        CloudToken::app_password("bob-bb", APP_PASSWORD_SCOPES),
    );
    let git = GitHttpServer::start_with_users(&[
        (API_TOKEN_GIT_USER, API_TOKEN),
        ("bob-bb", APP_PASSWORD),
    ])
    .await;
    for repo in ["api", "web"] {
        git.create_repo(repo);
        bb.add_repository(
            &format!("acme/{repo}"),
            CloudRepo {
                http_clone_url: git.url(repo),
                ssh_clone_url: None,
                main_branch: "main".into(),
            },
        );
    }
    let url = bb.url("bitbucket");
    app.add_code_host(&admin, "BITBUCKETCLOUD", &url, "HTTP")
        .await;
    let user = |name: &'static str| {
        let service = app.service.clone();
        async move {
            service
                .user_by_username(&Caller::Operator, name)
                .await
                .unwrap()
        }
    };
    let (alice, bob) = (user("alice").await, user("bob").await);
    Cloud {
        app,
        admin,
        alice,
        bob,
        bb,
        git,
        url,
    }
}

impl Cloud {
    async fn add_credential(
        &self,
        user: &UserAccount,
        url: &str,
        username: &str,
        token: &str,
    ) -> batchcred::service::CredentialView {
        self.app
            .service
            .create_credential(
                &Caller::Operator,
                CreateCredential {
                    user: Some(user.id),
                    kind: CodeHostKind::BitbucketCloud,
                    url: url.to_owned(),
                    username: Some(username.to_owned()),
                    token: token.into(),
                    repository: None,
                },
            )
            .await
            .unwrap()
    }

    fn spec(&self, url: &str, repository: &str, head: &str) -> ChangesetSpec {
        ChangesetSpec {
            code_host: url.to_owned(),
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
}

const CREATE: &str = "mutation($user: ID, $name: String, $u: String!, $c: String!, $r: String) { \
    createBatchChangesCredential(user: $user, username: $name, externalServiceKind: BITBUCKETCLOUD, \
    externalServiceURL: $u, credential: $c, repository: $r) { \
    id username codeHostUser scopes expiresAt warnings } }";

async fn tokens_are_checked_as_they_are_added(backend: Backend) {
    let c = cloud(backend).await;
    let alice = c.app.sign_in_with_token("alice").await;
    let bob = c.app.sign_in_with_token("bob").await;
    let create = |auth: &TestUser,
                  user: &str,
                  name: Option<&str>,
                  url: &str,
                  token: &str,
                  repository: Option<&str>| {
        let vars = json!({"user": user, "name": name, "u": url, "c": token, "r": repository});
        let app = &c.app;
        let auth = auth.auth.clone();
        async move { app.graphql(&auth, CREATE, vars).await }
    };

    // An API token reporting its scopes: who it is, and the scopes.
    let created = create(
        &alice,
        &alice.id,
        Some(ALICE_EMAIL),
        &c.url,
        API_TOKEN,
        None,
    )
    .await;
    let credential = &created["data"]["createBatchChangesCredential"];
    assert_eq!(credential["codeHostUser"], "alice-bb", "{created}");
    assert_eq!(credential["username"], ALICE_EMAIL);
    assert_eq!(credential["scopes"], json!(API_TOKEN_SCOPES));
    // Bitbucket does not say when API tokens expire.
    assert_eq!(credential["expiresAt"], Value::Null);
    assert_eq!(credential["warnings"], json!([]));
    assert!(
        c.bb.seen()
            .iter()
            .all(|r| r.username.as_deref() == Some(ALICE_EMAIL)),
        "API tokens authenticate with the email"
    );

    // An app password without X-OAuth-Scopes: probed by reading, with a
    // warning about what could not be probed.
    let created = create(
        &bob,
        &bob.id,
        Some("bob-bb"),
        &c.url,
        APP_PASSWORD,
        Some("acme/api"),
    )
    .await;
    let credential = &created["data"]["createBatchChangesCredential"];
    assert_eq!(credential["codeHostUser"], "bob-bb", "{created}");
    assert_eq!(credential["scopes"], Value::Null);
    let warning = credential["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("does not report"), "{warning}");
    assert!(warning.contains(WRITE_PULL_REQUESTS), "{warning}");
    let probed: Vec<String> = c.bb.seen().iter().map(|r| r.path.clone()).collect();
    assert!(probed.contains(&"/repositories".to_owned()), "{probed:?}");
    assert!(
        probed.contains(&"/repositories/acme/api/pullrequests".to_owned()),
        "{probed:?}"
    );

    // Every failure names its cause, stores nothing and never quotes the
    // token. The admin tries for himself, with tokens made for the case.
    let admin = &c.admin;
    let admin_id = &c.app.sign_in_with_token("admin").await.id;
    let add = |secret: &str, token: Option<CloudToken>| {
        if let Some(token) = token {
            c.bb.add_token(secret, token);
        }
    };
    let mut cases: Vec<(&str, Option<&str>, Option<&str>, &str)> = vec![];
    add(
        "api-token-revoked",
        Some({
            let mut t = CloudToken::api_token("admin@example.com", "admin-bb", API_TOKEN_SCOPES);
            t.revoked = true;
            t
        }),
    );
    cases.push((
        "api-token-revoked",
        Some("admin@example.com"),
        None,
        "rejected this token",
    ));
    add(
        "api-token-expired",
        Some({
            let mut t = CloudToken::api_token("admin@example.com", "admin-bb", API_TOKEN_SCOPES);
            t.expired = true;
            t
        }),
    );
    cases.push((
        "api-token-expired",
        Some("admin@example.com"),
        None,
        "revoked or expired",
    ));
    // An API token is refused with the Bitbucket username.
    add(
        "api-token-good",
        Some(CloudToken::api_token(
            "admin@example.com",
            "admin-bb",
            API_TOKEN_SCOPES,
        )),
    );
    cases.push((
        "api-token-good",
        Some("admin-bb"),
        None,
        "Atlassian account email",
    ));
    cases.push((
        "never-issued",
        Some("admin@example.com"),
        None,
        "rejected this token",
    ));
    add(
        "api-token-no-pr-write",
        Some(
            CloudToken::api_token(
                "admin@example.com",
                "admin-bb",
                &[
                    READ_USER,
                    READ_REPOSITORY,
                    WRITE_REPOSITORY,
                    READ_PULL_REQUESTS,
                ],
            )
            .reporting_scopes(),
        ),
    );
    cases.push((
        "api-token-no-pr-write",
        Some("admin@example.com"),
        None,
        "missing required scopes: write:pullrequest:bitbucket",
    ));
    add(
        "app-password-account-only",
        Some(CloudToken::app_password("admin-bb", &["account"])),
    );
    cases.push((
        "app-password-account-only",
        Some("admin-bb"),
        None,
        "missing required scopes: read:repository:bitbucket",
    ));
    add(
        "app-password-no-pulls",
        Some(CloudToken::app_password(
            "admin-bb",
            &["account", "repository:write"],
        )),
    );
    cases.push((
        "app-password-no-pulls",
        Some("admin-bb"),
        Some("acme/api"),
        "missing required scopes: read:pullrequest:bitbucket",
    ));
    cases.push((
        "api-token-good",
        Some("admin@example.com"),
        Some("acme/missing"),
        "cannot push to acme/missing",
    ));
    cases.push(("api-token-good", None, None, "need a username"));
    for (secret, username, repository, expected) in cases {
        let body = create(admin, admin_id, username, &c.url, secret, repository).await;
        let message = error_message(&body);
        assert!(message.contains(expected), "{secret}: {body}");
        assert!(!message.contains(secret), "{message}");
    }

    // Rate limited: the wait Bitbucket asks for is passed on.
    c.bb.rate_limit(1, Some(30));
    let body = create(
        admin,
        admin_id,
        Some("admin@example.com"),
        &c.url,
        "api-token-good",
        None,
    )
    .await;
    let message = error_message(&body);
    assert!(
        message.contains("is rate limiting requests; try again in 30 s"),
        "{body}"
    );

    // Unreachable: nothing listens where this code host is said to be.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = format!("http://127.0.0.1:{port}/bb");
    c.app
        .add_code_host(admin, "BITBUCKETCLOUD", &nowhere, "HTTP")
        .await;
    let body = create(
        admin,
        admin_id,
        Some("admin@example.com"),
        &nowhere,
        "api-token-good",
        None,
    )
    .await;
    assert!(error_message(&body).contains("could not reach"), "{body}");

    assert_eq!(c.app.count_credentials().await, 2);
}

async fn publishing_pushes_as_bitbucket_wants_and_never_duplicates(backend: Backend) {
    let c = cloud(backend).await;
    c.add_credential(&c.alice, &c.url, ALICE_EMAIL, API_TOKEN)
        .await;
    c.add_credential(&c.bob, &c.url, "bob-bb", APP_PASSWORD)
        .await;
    let service = &c.app.service;
    let as_alice = Caller::User(c.alice.clone());
    let mut spec = c.spec(&c.url, "acme/api", "batch/cloud");
    spec.draft = true;
    let opened = service
        .publish_changeset(&as_alice, c.alice.id, &spec)
        .await
        .unwrap();
    assert_eq!(opened.result, PublishResult::Opened);
    let bare = c.git.repo_path("api");
    assert_eq!(branch_sha(&bare, "batch/cloud"), opened.commit);
    assert_eq!(
        git(&bare, &["show", "batch/cloud:README.md"]),
        "hello\nworld\n"
    );
    // The git server takes the API token only as this user.
    assert!(
        c.git.usernames().iter().all(|u| u == API_TOKEN_GIT_USER),
        "{:?}",
        c.git.usernames()
    );
    let pulls = c.bb.pulls();
    assert_eq!(pulls.len(), 1);
    let pull = &pulls[0];
    assert_eq!(
        (pull.source.as_str(), pull.destination.as_str()),
        ("batch/cloud", "main")
    );
    assert!(pull.draft && !pull.close_source_branch);
    assert_eq!(pull.opened_with, API_TOKEN);
    assert_eq!(opened.pull_request_number, Some(pull.id as i64));
    assert_eq!(
        opened.pull_request_url.as_deref(),
        Some(format!("http://{}/acme/api/pull-requests/{}", c.bb.address, pull.id).as_str())
    );

    // Someone adds a reviewer on Bitbucket; publishing a changed spec
    // updates the same pull request and keeps the reviewer.
    c.bb.add_reviewer("acme/api", pull.id, "{carol-uuid}");
    spec.title = "Update acme/api, take two".into();
    spec.change = ChangeSpec::Diff {
        patch: PATCH.replace("+world", "+there"),
        message: None,
        author_name: None,
        author_email: None,
    };
    let updated = service
        .publish_changeset(&as_alice, c.alice.id, &spec)
        .await
        .unwrap();
    assert_eq!(updated.result, PublishResult::Updated);
    assert_eq!(updated.pull_request_number, opened.pull_request_number);
    let pulls = c.bb.pulls();
    assert_eq!(pulls.len(), 1, "never a second pull request");
    assert_eq!(pulls[0].title, "Update acme/api, take two");
    assert_eq!(pulls[0].reviewers, ["{carol-uuid}"]);
    assert_eq!(pulls[0].updates, 1);
    assert_eq!(
        git(&bare, &["show", "batch/cloud:README.md"]),
        "hello\nthere\n"
    );

    // An app password pushes as the Bitbucket username stored with it.
    let as_bob = Caller::User(c.bob.clone());
    let bobs = service
        .publish_changeset(&as_bob, c.bob.id, &c.spec(&c.url, "acme/web", "batch/bob"))
        .await
        .unwrap();
    assert_eq!(bobs.result, PublishResult::Opened);
    assert!(c.git.usernames().contains(&"bob-bb".to_owned()));
    assert_eq!(c.bb.pulls()[1].opened_with, APP_PASSWORD);
}

async fn ssh_pushes_with_the_generated_key(backend: Backend) {
    let c = cloud(backend).await;
    let url = c.bb.url("bb-ssh");
    let host_id = c
        .app
        .add_code_host(&c.admin, "BITBUCKETCLOUD", &url, "SSH")
        .await;
    let credential = c
        .add_credential(&c.alice, &url, ALICE_EMAIL, API_TOKEN)
        .await;
    let public_key = credential.ssh_public_key.unwrap();
    let sshd = Sshd::start(&[&public_key]);
    let bare = c.git.create_repo("ssh-only");
    c.bb.add_repository(
        "acme/ssh-only",
        CloudRepo {
            http_clone_url: "http://127.0.0.1:9/unused.git".into(),
            ssh_clone_url: Some(sshd.url(&bare)),
            main_branch: "main".into(),
        },
    );
    c.app
        .graphql_ok(
            &c.admin.auth,
            "mutation($id: ID!, $k: String!) { updateCodeHost(id: $id, sshKnownHosts: $k) { id } }",
            json!({ "id": host_id, "k": sshd.known_hosts() }),
        )
        .await;
    let published = c
        .app
        .service
        .publish_changeset(
            &Caller::User(c.alice.clone()),
            c.alice.id,
            &c.spec(&url, "acme/ssh-only", "batch/ssh"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
    assert_eq!(published.result, PublishResult::Opened);
    assert_eq!(branch_sha(&bare, "batch/ssh"), published.commit);
}

async fn rate_limits_are_waited_out(backend: Backend) {
    let c = cloud(backend).await;
    c.add_credential(&c.alice, &c.url, ALICE_EMAIL, API_TOKEN)
        .await;
    let before = c.bb.seen().len();
    c.bb.rate_limit(2, Some(1));
    let published = c
        .app
        .service
        .publish_changeset(
            &Caller::Operator,
            c.alice.id,
            &c.spec(&c.url, "acme/api", "batch/busy"),
        )
        .await
        .unwrap();
    assert_eq!(published.result, PublishResult::Opened);
    let seen = &c.bb.seen()[before..];
    assert_eq!((seen[0].status, seen[1].status), (429, 429));
    // Each retry came after the wait Bitbucket asked for.
    for pair in seen[..3].windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_secs(1));
    }
    assert_eq!(c.bb.pulls().len(), 1);
}

async fn closing_and_syncing_go_through_the_queue(backend: Backend) {
    let c = cloud(backend).await;
    c.add_credential(&c.alice, &c.url, ALICE_EMAIL, API_TOKEN)
        .await;
    let service = &c.app.service;
    let as_alice = Caller::User(c.alice.clone());
    let reports = service
        .enqueue_changesets(
            &as_alice,
            c.alice.id,
            vec![c.spec(&c.url, "acme/api", "batch/life")],
        )
        .await
        .unwrap();
    let id = reports[0].outcome.as_ref().unwrap().id;
    let done = &wait_for_jobs(service, &[id]).await[0];
    assert_eq!(done.job_state, JobState::Completed, "{:?}", done.error);
    let number = c.bb.pulls()[0].id;

    c.bb.set_pull_review("acme/api", number, Some(EmulatedReview::ChangesRequested));
    c.bb.set_pull_checks("acme/api", number, Some(EmulatedChecks::Running));
    service.sync_changeset(&as_alice, id).await.unwrap();
    let synced = &wait_for_jobs(service, &[id]).await[0];
    assert_eq!(synced.review_state.as_deref(), Some("changes_requested"));
    assert_eq!(synced.checks_state.as_deref(), Some("pending"));

    service.close_changeset(&as_alice, id, true).await.unwrap();
    let closed = &wait_for_jobs(service, &[id]).await[0];
    assert_eq!(
        closed.external_state.as_deref(),
        Some("closed"),
        "{:?}",
        closed.error
    );
    assert_eq!(c.bb.pulls()[0].state, PullState::Closed);
    assert_eq!(
        c.bb.deleted_branches(),
        [("acme/api".to_owned(), "batch/life".to_owned())]
    );

    // Bitbucket Cloud cannot reopen a declined pull request: the job
    // fails at once, saying so, instead of trying again.
    service.reopen_changeset(&as_alice, id).await.unwrap();
    let refused = &wait_for_jobs(service, &[id]).await[0];
    assert_eq!(refused.job_state, JobState::Failed);
    assert_eq!(refused.job_attempts, 1);
    let error = refused.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("cannot reopen a declined pull request"),
        "{error}"
    );
    assert_eq!(c.bb.pulls()[0].state, PullState::Closed);
}

/// A client for the emulator with `token`, as the credential's username.
fn client(bb: &BitbucketCloudEmulator, username: Option<&str>) -> Client {
    let api = ApiClient::new(Duration::from_secs(10)).unwrap();
    let url = CodeHostUrl::parse(&bb.url("bitbucket")).unwrap();
    Client::new(&api, CodeHostKind::BitbucketCloud, &url, username).unwrap()
}

#[tokio::test]
async fn the_client_follows_a_pull_request_through_its_life() {
    let bb = bitbucket_cloud::start().await;
    bb.add_token(
        API_TOKEN,
        CloudToken::api_token(ALICE_EMAIL, "alice-bb", API_TOKEN_SCOPES),
    );
    bb.add_repository(
        "acme/api",
        CloudRepo {
            http_clone_url: "https://bitbucket.test/acme/api.git".into(),
            ssh_clone_url: Some("git@bitbucket.test:acme/api.git".into()),
            main_branch: "trunk".into(),
        },
    );
    let client = client(&bb, Some(ALICE_EMAIL));
    let token = SecretString::from(API_TOKEN);

    // The `alice-bb@` Bitbucket puts in HTTPS clone links is taken out.
    let info = client.repository(&token, "acme/api").await.unwrap();
    assert_eq!(info.http_clone_url, "https://bitbucket.test/acme/api.git");
    assert_eq!(
        info.ssh_clone_url.as_deref(),
        Some("git@bitbucket.test:acme/api.git")
    );
    assert_eq!(info.default_branch.as_deref(), Some("trunk"));
    assert_eq!(info.canonical_name.as_deref(), Some("acme/api"));
    let missing = client.repository(&token, "acme/nope").await.unwrap_err();
    assert!(
        matches!(missing, Error::RepositoryNotFound { .. }),
        "{missing:?}"
    );

    let draft = |head: &str, draft: bool| PullRequestDraft {
        repository: "acme/api".into(),
        base_branch: "trunk".into(),
        head_branch: head.to_owned(),
        title: "Update the API".into(),
        body: "Done by a batch change.".into(),
        draft,
        change_id: None,
    };
    let opened = client
        .publish_pull_request(&token, &draft("batch/update-api", false))
        .await
        .unwrap();
    assert!(opened.created);
    let again = client
        .publish_pull_request(&token, &draft("batch/update-api", false))
        .await
        .unwrap();
    assert_eq!((again.number, again.created), (opened.number, false));
    let number = opened.number;

    let status = client
        .pull_request(&token, "acme/api", number)
        .await
        .unwrap();
    assert_eq!(status.state, PullRequestState::Open);
    assert_eq!(status.url, opened.url);
    assert_eq!((status.review, status.checks), (None, None));
    assert_eq!(
        (status.head_branch.as_str(), status.base_branch.as_str()),
        ("batch/update-api", "trunk")
    );
    for (review, checks, want_review, want_checks) in [
        (
            EmulatedReview::Requested,
            EmulatedChecks::Running,
            ReviewState::Pending,
            ChecksState::Pending,
        ),
        (
            EmulatedReview::Approved,
            EmulatedChecks::Passed,
            ReviewState::Approved,
            ChecksState::Passed,
        ),
        (
            EmulatedReview::ChangesRequested,
            EmulatedChecks::Failed,
            ReviewState::ChangesRequested,
            ChecksState::Failed,
        ),
    ] {
        bb.set_pull_review("acme/api", number, Some(review));
        bb.set_pull_checks("acme/api", number, Some(checks));
        let status = client
            .pull_request(&token, "acme/api", number)
            .await
            .unwrap();
        assert_eq!(status.review, Some(want_review), "{review:?}");
        assert_eq!(status.checks, Some(want_checks), "{checks:?}");
    }

    // Declining twice declines once; reopening is not possible.
    for _ in 0..2 {
        let closed = client
            .close_pull_request(&token, "acme/api", number)
            .await
            .unwrap();
        assert_eq!(closed.state, PullRequestState::Closed);
    }
    let reopen = client
        .reopen_pull_request(&token, "acme/api", number)
        .await
        .unwrap_err();
    assert!(matches!(reopen, Error::NotPossible { .. }), "{reopen:?}");
    assert!(
        reopen
            .to_string()
            .contains("Bitbucket Cloud cannot reopen a declined pull request"),
        "{reopen}"
    );
    // Publishing the branch again opens a new one (the old stays declined).
    let new = client
        .publish_pull_request(&token, &draft("batch/update-api", true))
        .await
        .unwrap();
    assert!(new.created && new.number != number);
    let status = client
        .pull_request(&token, "acme/api", new.number)
        .await
        .unwrap();
    assert_eq!(status.state, PullRequestState::Draft);
    // Reopening an open one is a no-op.
    let reopened = client
        .reopen_pull_request(&token, "acme/api", new.number)
        .await
        .unwrap();
    assert_eq!(reopened.state, PullRequestState::Draft);

    bb.merge_pull("acme/api", new.number);
    let merged = client
        .pull_request(&token, "acme/api", new.number)
        .await
        .unwrap();
    assert_eq!(merged.state, PullRequestState::Merged);

    // Deleting the branch twice is fine: the second time it is gone.
    for _ in 0..2 {
        client
            .delete_branch(&token, "acme/api", "batch/update-api")
            .await
            .unwrap();
    }
    assert_eq!(
        bb.deleted_branches(),
        [("acme/api".to_owned(), "batch/update-api".to_owned())]
    );

    bb.delete_pull("acme/api", number);
    let gone = client
        .pull_request(&token, "acme/api", number)
        .await
        .unwrap_err();
    assert!(
        matches!(gone, Error::PullRequestNotFound { .. }),
        "{gone:?}"
    );

    // A revoked token: every call is refused, naming no secret.
    bb.update_token(API_TOKEN, |t| t.revoked = true);
    let errors = [
        client
            .pull_request(&token, "acme/api", new.number)
            .await
            .unwrap_err(),
        client
            .close_pull_request(&token, "acme/api", new.number)
            .await
            .unwrap_err(),
        client
            .delete_branch(&token, "acme/api", "x")
            .await
            .unwrap_err(),
    ];
    for error in errors {
        assert!(matches!(error, Error::Rejected { .. }), "{error:?}");
        assert!(!error.to_string().contains(API_TOKEN), "{error}");
    }
}

#[tokio::test]
async fn a_pull_request_needs_the_write_scope_it_lacks() {
    let bb = bitbucket_cloud::start().await;
    bb.add_token(
        "read-only",
        CloudToken::app_password("reader", &["account", "repository", "pullrequest"]),
    );
    bb.add_repository(
        "acme/api",
        CloudRepo {
            http_clone_url: "https://bitbucket.test/acme/api.git".into(),
            ssh_clone_url: None,
            main_branch: "main".into(),
        },
    );
    let client = client(&bb, Some("reader"));
    let token = SecretString::from("read-only");
    let error = client
        .publish_pull_request(
            &token,
            &PullRequestDraft {
                repository: "acme/api".into(),
                base_branch: "main".into(),
                head_branch: "batch/x".into(),
                title: "t".into(),
                body: String::new(),
                draft: false,
                change_id: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        Error::MissingScopes {
            target: format!("Bitbucket Cloud {}", bb.url("bitbucket")),
            missing: vec![WRITE_PULL_REQUESTS.to_owned()],
        }
    );
    assert!(bb.pulls().is_empty());

    // Without the username stored with the credential there is no client.
    let api = ApiClient::new(Duration::from_secs(10)).unwrap();
    let url = CodeHostUrl::parse(&bb.url("bitbucket")).unwrap();
    let refused = Client::new(&api, CodeHostKind::BitbucketCloud, &url, None).unwrap_err();
    assert!(refused.to_string().contains("no username"), "{refused}");
}

#[test]
fn the_emulator_reads_bbql_with_escapes() {
    assert_eq!(
        bitbucket_cloud::bbql_conditions(
            r#"source.branch.name = "a \"b\"" AND source.repository.full_name = "w/s""#
        ),
        [
            ("source.branch.name".to_owned(), "a \"b\"".to_owned()),
            ("source.repository.full_name".to_owned(), "w/s".to_owned())
        ]
    );
}
