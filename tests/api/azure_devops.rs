//! Azure DevOps end to end, against the Azure emulator
//! (tests/support/codehost/azure_devops.rs) and a real git server behind
//! it: code host URLs, checking personal access tokens on add (and every
//! way that fails), pushing over HTTPS with the credential's username and
//! over SSH with the generated key, opening and updating pull requests
//! without duplicates, rate limits, and following a pull request through
//! its life (directly and through the job queue).

use std::time::Duration;

use batchcred::auth::Caller;
use batchcred::codehost::{
    ApiClient, ChecksState, Client, CodeHostApi, Error, PullRequestDraft, PullRequestState,
    ReviewState,
};
use batchcred::domain::{CodeHostKind, CodeHostUrl, UserId};
use batchcred::publish::{ChangeSpec, ChangesetSpec};
use batchcred::service::{CreateCredential, PublishResult};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    AppOptions, Backend, TestApp, TestUser, error_code, error_message, spawn_app, spawn_app_with,
    wait_for_jobs,
};
use crate::publish::PATCH;
use crate::support::codehost::azure_devops::{
    self, AZURE_SCOPES, AzureEmulator, AzureRepo, AzureToken,
};
use crate::support::git_http::{GitHttpServer, branch_sha, git};
use crate::support::sshd::Sshd;

both_backends!(
    a_good_token_is_stored_with_its_account,
    publishing_pushes_as_the_credentials_user_and_never_duplicates,
    closing_reopening_and_syncing_go_through_the_queue,
    every_failure_is_named_and_stores_nothing,
    ssh_pushes_with_the_generated_key,
    rate_limits_are_waited_out,
);

/// Alice's token, with every scope.
const PAT: &str = "azure-pat-alice-s3cret";
/// A token that may read code but not write it.
const READ_ONLY_PAT: &str = "azure-pat-readonly-s3cret";
/// The username stored with Alice's credential.
const USERNAME: &str = "alice@example.com";

const CREATE: &str = "mutation($user: ID, $n: String, $u: String!, $c: String!, $r: String) { \
    createBatchChangesCredential(user: $user, username: $n, externalServiceKind: AZUREDEVOPS, \
    externalServiceURL: $u, credential: $c, repository: $r) { id codeHostUser scopes expiresAt \
    warnings lastCheckError } }";

/// An instance with an Azure DevOps code host (collection `acme`) serving
/// `Web/api` from a real git server.
struct World {
    app: TestApp,
    admin: TestUser,
    alice_user: TestUser,
    /// Alice, as the service knows her (no store types: they are the
    /// store's own business).
    alice: Caller,
    alice_id: UserId,
    emulator: AzureEmulator,
    git: GitHttpServer,
    /// The code host URL.
    url: String,
    /// Its GraphQL id.
    host_id: String,
}

async fn world_with(backend: Backend, options: AppOptions, git_url_type: &str) -> World {
    let app = spawn_app_with(backend, options).await;
    let admin = app.init_site_admin("admin").await;
    let alice_user = app.create_user(&admin, "alice").await;
    let emulator = azure_devops::start().await;
    emulator.add_token(PAT, AzureToken::new(USERNAME, AZURE_SCOPES));
    emulator.add_token(
        READ_ONLY_PAT,
        AzureToken::new("reader@example.com", &["vso.code", "vso.profile"]),
    );
    let git = GitHttpServer::start_with_tokens(&[PAT, READ_ONLY_PAT]).await;
    git.create_repo("api");
    emulator.add_repository(AzureRepo {
        project: "Web".into(),
        name: "api".into(),
        upstream: Some(git.url("api")),
        bare: Some(git.repo_path("api")),
        ssh_url: None,
        default_branch: Some("main".into()),
    });
    let url = emulator.url("acme");
    let host_id = app
        .add_code_host(&admin, "AZUREDEVOPS", &url, git_url_type)
        .await;
    let account = app
        .service
        .user_by_username(&Caller::Operator, "alice")
        .await
        .unwrap();
    let alice_id = account.id;
    let alice = Caller::User(account);
    World {
        app,
        admin,
        alice_user,
        alice,
        alice_id,
        emulator,
        git,
        url,
        host_id,
    }
}

async fn world(backend: Backend) -> World {
    world_with(backend, AppOptions::default(), "HTTP").await
}

impl World {
    async fn add_credential(&self, token: &str) -> batchcred::service::CredentialView {
        self.app
            .service
            .create_credential(
                &Caller::Operator,
                CreateCredential {
                    user: Some(self.alice_id),
                    kind: CodeHostKind::AzureDevOps,
                    url: self.url.clone(),
                    username: Some(USERNAME.into()),
                    token: token.into(),
                    repository: None,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn spec(&self, head: &str) -> ChangesetSpec {
        ChangesetSpec {
            code_host: self.url.clone(),
            repository: "Web/api".into(),
            base_branch: "main".into(),
            head_branch: head.to_owned(),
            title: "Update the API".into(),
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
            .publish_changeset(&self.alice, self.alice_id, spec)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates a credential through GraphQL; the whole response.
    async fn create(&self, username: Option<&str>, token: &str, repository: Option<&str>) -> Value {
        self.app
            .graphql(
                &self.alice_user.auth,
                CREATE,
                json!({ "user": self.alice_user.id, "n": username, "u": self.url, "c": token, "r": repository }),
            )
            .await
    }

    /// Asserts the create failed with `code`, mentioning every fragment,
    /// without the token, and that nothing was stored.
    async fn refused(&self, token: &str, code: &str, fragments: &[&str]) {
        let body = self.create(Some(USERNAME), token, None).await;
        assert_eq!(error_code(&body), Some(code), "{token}: {body}");
        let message = error_message(&body);
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "{fragment:?} not in {message:?}"
            );
        }
        assert!(!message.contains(token), "the token leaked: {message}");
        assert_eq!(self.app.count_credentials().await, 0, "{message}");
    }
}

async fn a_good_token_is_stored_with_its_account(backend: Backend) {
    let w = world(backend).await;
    // A username is part of an Azure DevOps credential.
    let body = w.create(None, PAT, None).await;
    assert!(error_message(&body).contains("need a username"), "{body}");
    assert_eq!(w.app.count_credentials().await, 0);

    let body = w.create(Some(USERNAME), PAT, Some("Web/api")).await;
    assert!(body.get("errors").is_none(), "{body}");
    let credential = &body["data"]["createBatchChangesCredential"];
    assert_eq!(credential["codeHostUser"], USERNAME);
    // Azure reports neither scopes nor expiry.
    assert_eq!(credential["scopes"], Value::Null);
    assert_eq!(credential["expiresAt"], Value::Null);
    let warnings = credential["warnings"].to_string();
    assert!(warnings.contains("vso.code_write"), "{warnings}");
    assert_eq!(w.app.count_credentials().await, 1);

    // Basic username:PAT, the username the one stored; connectionData as
    // a preview API, everything else at 7.0.
    let seen = w.emulator.seen();
    assert!(!seen.is_empty());
    for request in &seen {
        assert_eq!(request.username.as_deref(), Some(USERNAME), "{request:?}");
        assert_eq!(request.token.as_deref(), Some(PAT));
        let version = if request.path.ends_with("/connectionData") {
            "api-version=7.0-preview"
        } else {
            "api-version=7.0"
        };
        assert!(request.query.contains(version), "{request:?}");
    }
    assert!(
        seen.iter()
            .any(|r| r.path == "/acme/_apis/git/repositories")
    );
    assert!(
        seen.iter()
            .any(|r| r.path == "/acme/Web/_apis/git/repositories/api")
    );
}

async fn every_failure_is_named_and_stores_nothing(backend: Backend) {
    let w = world_with(
        backend,
        AppOptions {
            code_host_timeout: Duration::from_secs(2),
            ..AppOptions::default()
        },
        "HTTP",
    )
    .await;
    // Unknown: Azure's sign-in page.
    w.refused(
        "azure-pat-unknown",
        "BAD_USER_INPUT",
        &["rejected this token", "sign-in page"],
    )
    .await;
    // With public projects, an anonymous identity instead.
    w.emulator.set_anonymous_access(true);
    w.refused(
        "azure-pat-unknown",
        "BAD_USER_INPUT",
        &["rejected this token", "anonymous"],
    )
    .await;
    w.emulator.add_token(
        "azure-pat-revoked",
        AzureToken::new("x@example.com", AZURE_SCOPES).revoked(),
    );
    w.refused(
        "azure-pat-revoked",
        "BAD_USER_INPUT",
        &["rejected this token", "TF400813"],
    )
    .await;
    w.emulator.add_token(
        "azure-pat-expired",
        AzureToken::new("x@example.com", AZURE_SCOPES).expired(),
    );
    w.refused(
        "azure-pat-expired",
        "BAD_USER_INPUT",
        &["rejected this token", "has expired"],
    )
    .await;
    // No Code scope at all: listing repositories is refused.
    w.emulator.add_token(
        "azure-pat-profile-only",
        AzureToken::new("x@example.com", &["vso.profile"]),
    );
    w.refused(
        "azure-pat-profile-only",
        "BAD_USER_INPUT",
        &["missing required scopes", "vso.code_write"],
    )
    .await;
    // A repository the token cannot see.
    let body = w.create(Some(USERNAME), PAT, Some("Web/secret")).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(
        error_message(&body).contains("cannot push to Web/secret"),
        "{body}"
    );
    assert_eq!(w.app.count_credentials().await, 0);

    w.emulator.rate_limit_requests(1, 42);
    w.refused(
        PAT,
        "CODE_HOST_UNAVAILABLE",
        &["rate limiting", "try again in 42 s"],
    )
    .await;
    w.emulator.set_server_error(true);
    w.refused(PAT, "CODE_HOST_UNAVAILABLE", &["could not reach", "503"])
        .await;
    w.emulator.set_server_error(false);

    // Nothing listens here any more.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{gone}/acme");
    w.app
        .add_code_host(&w.admin, "AZUREDEVOPS", &url, "HTTP")
        .await;
    let body = w
        .app
        .graphql(
            &w.alice_user.auth,
            CREATE,
            json!({ "user": w.alice_user.id, "n": USERNAME, "u": url, "c": PAT }),
        )
        .await;
    assert_eq!(error_code(&body), Some("CODE_HOST_UNAVAILABLE"), "{body}");
    assert!(
        error_message(&body).contains(&format!("could not reach Azure DevOps {url}")),
        "{body}"
    );
    assert_eq!(w.app.count_credentials().await, 0);

    // And a good token still goes in.
    w.add_credential(PAT).await;
    assert_eq!(w.app.count_credentials().await, 1);
}

#[tokio::test]
async fn code_host_urls_need_the_organisation_or_collection() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.init_site_admin("admin").await;
    let add = "mutation($u: String!) { addCodeHost(kind: AZUREDEVOPS, url: $u, gitURLType: HTTP) { id } }";
    for (url, fragment) in [
        ("https://dev.azure.com", "names the organisation"),
        ("https://dev.azure.com/acme/Web", "without a project"),
        ("https://tfs.example.com", "names the collection"),
    ] {
        let body = app.graphql(&admin.auth, add, json!({ "u": url })).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{url}: {body}");
        assert!(error_message(&body).contains(fragment), "{url}: {body}");
    }
    for url in [
        "https://dev.azure.com/acme",
        "https://acme.visualstudio.com",
        "https://tfs.example.com/tfs/DefaultCollection",
    ] {
        let body = app.graphql(&admin.auth, add, json!({ "u": url })).await;
        assert!(body.get("errors").is_none(), "{url}: {body}");
    }
    // The kind is offered like any other.
    let hosts = app
        .graphql_ok(
            &admin.auth,
            "{ batchChangesCodeHosts { nodes { externalServiceKind requiresUsername } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        hosts["batchChangesCodeHosts"]["nodes"][0],
        json!({"externalServiceKind": "AZUREDEVOPS", "requiresUsername": true})
    );
}

async fn publishing_pushes_as_the_credentials_user_and_never_duplicates(backend: Backend) {
    let w = world(backend).await;
    w.add_credential(PAT).await;
    // The git front refuses any other username.
    w.emulator.require_git_username(USERNAME);
    let mut spec = w.spec("batch/azure");
    let opened = w.publish(&spec).await;
    assert_eq!(opened.result, PublishResult::Opened);
    let bare = w.git.repo_path("api");
    assert_eq!(branch_sha(&bare, "batch/azure"), opened.commit);
    assert_eq!(
        git(&bare, &["show", "batch/azure:README.md"]),
        "hello\nworld\n"
    );
    assert!(!w.git.usernames().is_empty());
    assert!(
        w.git.usernames().iter().all(|u| u == USERNAME),
        "{:?}",
        w.git.usernames()
    );
    let pulls = w.emulator.pulls();
    assert_eq!(pulls.len(), 1);
    let pull = &pulls[0];
    assert_eq!(
        (
            pull.source.as_str(),
            pull.target.as_str(),
            pull.title.as_str()
        ),
        ("batch/azure", "main", "Update the API")
    );
    assert_eq!(pull.opened_with, PAT);
    assert_eq!(
        opened.pull_request_url.as_deref(),
        Some(format!("{}/Web/_git/api/pullrequest/{}", w.url, pull.id).as_str())
    );

    // Changed: force-pushed, the same pull request updated, as a draft.
    spec.title = "Update the API, take two".into();
    spec.draft = true;
    spec.change = ChangeSpec::Diff {
        patch: PATCH.replace("+world", "+there"),
        message: None,
        author_name: None,
        author_email: None,
    };
    let updated = w.publish(&spec).await;
    assert_eq!(updated.result, PublishResult::Updated);
    assert_eq!(updated.pull_request_number, opened.pull_request_number);
    let pulls = w.emulator.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].title, "Update the API, take two");
    assert!(pulls[0].is_draft);

    // A new base: retargeted in a PATCH of its own.
    git(&bare, &["branch", "develop", "main"]);
    spec.base_branch = "develop".into();
    spec.title = "Onto develop".into();
    let retargeted = w.publish(&spec).await;
    assert_eq!(retargeted.result, PublishResult::Updated);
    let pulls = w.emulator.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].target, "develop");
    assert_eq!(pulls[0].title, "Onto develop");
    assert_eq!(
        pulls[0].patches.last(),
        Some(&json!({"targetRefName": "refs/heads/develop"}))
    );
}

#[tokio::test]
async fn read_only_tokens_are_told_what_pushing_needs() {
    let w = world(Backend::Sqlite).await;
    // The check cannot see that it may not write, and says so.
    let credential = w.add_credential(READ_ONLY_PAT).await;
    assert!(
        credential
            .warnings
            .iter()
            .any(|w| w.contains("vso.code_write")),
        "{:?}",
        credential.warnings
    );
    let error = w
        .app
        .service
        .publish_changeset(&w.alice, w.alice_id, &w.spec("batch/read-only"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("TF401027"), "{error}");
    assert!(error.contains("vso.code_write"), "{error}");
    assert!(!error.contains(READ_ONLY_PAT), "{error}");
    assert!(w.emulator.pulls().is_empty());
}

async fn ssh_pushes_with_the_generated_key(backend: Backend) {
    let w = world_with(backend, AppOptions::default(), "SSH").await;
    let credential = w.add_credential(PAT).await;
    let public_key = credential.ssh_public_key.clone().unwrap();
    let sshd = Sshd::start(&[&public_key]);
    let bare = w.git.create_repo("ssh-only");
    w.emulator.add_repository(AzureRepo {
        project: "Web".into(),
        name: "ssh-only".into(),
        upstream: None,
        bare: Some(bare.clone()),
        ssh_url: Some(sshd.url(&bare)),
        default_branch: Some("main".into()),
    });
    w.app
        .graphql_ok(
            &w.admin.auth,
            "mutation($id: ID!, $k: String!) { updateCodeHost(id: $id, sshKnownHosts: $k) { id } }",
            json!({ "id": w.host_id, "k": sshd.known_hosts() }),
        )
        .await;
    let mut spec = w.spec("batch/ssh");
    spec.repository = "Web/ssh-only".into();
    let published = w
        .app
        .service
        .publish_changeset(&w.alice, w.alice_id, &spec)
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
    assert_eq!(published.result, PublishResult::Opened);
    assert_eq!(branch_sha(&bare, "batch/ssh"), published.commit);
    assert_eq!(w.emulator.pulls()[0].repository, "Web/ssh-only");
}

async fn rate_limits_are_waited_out(backend: Backend) {
    let w = world(backend).await;
    w.add_credential(PAT).await;
    w.emulator.rate_limit_creates(2, 1);
    let published = w.publish(&w.spec("batch/busy")).await;
    assert_eq!(published.result, PublishResult::Opened);
    let attempts = w.emulator.create_attempts();
    assert_eq!(attempts.len(), 3, "two refusals, then success");
    for pair in attempts.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "{:?}",
            pair[1] - pair[0]
        );
    }
    assert_eq!(w.emulator.pulls().len(), 1);
}

/// A client for the emulated collection `acme`, as `USERNAME`.
async fn client() -> (AzureEmulator, GitHttpServer, Client, SecretString) {
    let emulator = azure_devops::start().await;
    emulator.add_token(PAT, AzureToken::new(USERNAME, AZURE_SCOPES));
    let git = GitHttpServer::start(PAT).await;
    git.create_repo("api");
    emulator.add_repository(AzureRepo {
        project: "Web".into(),
        name: "api".into(),
        upstream: Some(git.url("api")),
        bare: Some(git.repo_path("api")),
        ssh_url: Some("ssh://git@127.0.0.1:22/acme/Web/api".into()),
        default_branch: Some("main".into()),
    });
    let api = ApiClient::new(Duration::from_secs(10)).unwrap();
    let url = CodeHostUrl::parse(&emulator.url("acme")).unwrap();
    let client = Client::new(&api, CodeHostKind::AzureDevOps, &url, Some(USERNAME)).unwrap();
    (emulator, git, client, SecretString::from(PAT))
}

fn draft(head: &str) -> PullRequestDraft {
    PullRequestDraft {
        repository: "Web/api".into(),
        base_branch: "main".into(),
        head_branch: head.to_owned(),
        title: "Update the API".into(),
        body: "x".repeat(5000),
        draft: false,
        change_id: None,
    }
}

#[tokio::test]
async fn repositories_and_a_racing_create_are_read_as_azure_answers() {
    let (emulator, git_server, client, token) = client().await;
    // Any case finds the repository; its names come back as Azure has them.
    let info = client.repository(&token, "web/API").await.unwrap();
    assert_eq!(info.canonical_name.as_deref(), Some("Web/api"));
    assert_eq!(
        info.http_clone_url,
        format!("{}/Web/_git/api", emulator.url("acme"))
    );
    assert_eq!(
        info.ssh_clone_url.as_deref(),
        Some("ssh://git@127.0.0.1:22/acme/Web/api")
    );
    assert_eq!(info.default_branch.as_deref(), Some("main"));
    let missing = client.repository(&token, "Web/nope").await.unwrap_err();
    assert!(
        matches!(missing, Error::RepositoryNotFound { .. }),
        "{missing}"
    );

    git(
        &git_server.repo_path("api"),
        &["branch", "batch/race", "main"],
    );
    let first = client
        .publish_pull_request(&token, &draft("batch/race"))
        .await
        .unwrap();
    assert!(first.created);
    // The description was cut to what Azure accepts.
    assert_eq!(emulator.pulls()[0].description.chars().count(), 4000);
    // Another publish opened it between the search and the create: the
    // 409 (TF401179) leads to the one that exists.
    emulator.hide_next_pull_search();
    let second = client
        .publish_pull_request(&token, &draft("batch/race"))
        .await
        .unwrap();
    assert!(!second.created);
    assert_eq!(second.number, first.number);
    assert_eq!(emulator.pulls().len(), 1);
    assert_eq!(emulator.create_attempts().len(), 2);
}

#[tokio::test]
async fn a_pull_request_through_its_life() {
    let (emulator, git_server, client, token) = client().await;
    let bare = git_server.repo_path("api");
    git(&bare, &["branch", "batch/life", "main"]);
    let opened = client
        .publish_pull_request(&token, &draft("batch/life"))
        .await
        .unwrap();
    let number = opened.number;
    let status = client
        .pull_request(&token, "Web/api", number)
        .await
        .unwrap();
    assert_eq!(status.state, PullRequestState::Open);
    assert_eq!(status.url, opened.url);
    assert_eq!((status.review, status.checks), (None, None));
    assert_eq!(
        (status.head_branch.as_str(), status.base_branch.as_str()),
        ("batch/life", "main")
    );

    for (votes, statuses, review, checks) in [
        (
            &[0][..],
            &[("build", "pending")][..],
            ReviewState::Pending,
            ChecksState::Pending,
        ),
        (
            &[10, 5],
            &[("build", "succeeded")],
            ReviewState::Approved,
            ChecksState::Passed,
        ),
        (
            &[10, -5],
            &[("lint", "failed")],
            ReviewState::ChangesRequested,
            ChecksState::Failed,
        ),
        (
            &[-10],
            &[("lint", "succeeded")],
            ReviewState::ChangesRequested,
            ChecksState::Passed,
        ),
    ] {
        emulator.set_votes(number, votes);
        for (name, state) in statuses {
            emulator.post_status(number, name, state);
        }
        let status = client
            .pull_request(&token, "Web/api", number)
            .await
            .unwrap();
        assert_eq!(
            (status.review, status.checks),
            (Some(review), Some(checks)),
            "{votes:?}"
        );
    }

    let closed = client
        .close_pull_request(&token, "Web/api", number)
        .await
        .unwrap();
    assert_eq!(closed.state, PullRequestState::Closed);
    assert_eq!(emulator.pulls()[0].status, "abandoned");
    // Closing again changes nothing and asks nothing of Azure.
    let patches = emulator.pulls()[0].patches.len();
    let again = client
        .close_pull_request(&token, "Web/api", number)
        .await
        .unwrap();
    assert_eq!(again.state, PullRequestState::Closed);
    assert_eq!(emulator.pulls()[0].patches.len(), patches);
    let reopened = client
        .reopen_pull_request(&token, "Web/api", number)
        .await
        .unwrap();
    assert_eq!(reopened.state, PullRequestState::Open);

    emulator.complete_pull(number);
    let merged = client
        .pull_request(&token, "Web/api", number)
        .await
        .unwrap();
    assert_eq!(merged.state, PullRequestState::Merged);

    // The branch goes, at the commit it is at; another sharing its prefix
    // stays; deleting it again is fine.
    git(&bare, &["branch", "batch/life-other", "main"]);
    client
        .delete_branch(&token, "Web/api", "batch/life")
        .await
        .unwrap();
    assert_eq!(branch_sha(&bare, "batch/life"), None);
    assert!(branch_sha(&bare, "batch/life-other").is_some());
    client
        .delete_branch(&token, "Web/api", "batch/life")
        .await
        .unwrap();
    assert_eq!(
        emulator.deleted_branches(),
        vec![("Web/api".to_owned(), "batch/life".to_owned())]
    );

    emulator.delete_pull(number);
    let gone = client
        .pull_request(&token, "Web/api", number)
        .await
        .unwrap_err();
    assert!(matches!(gone, Error::PullRequestNotFound { .. }), "{gone}");
    assert!(!gone.to_string().contains(PAT));
}

async fn closing_reopening_and_syncing_go_through_the_queue(backend: Backend) {
    let w = world(backend).await;
    w.add_credential(PAT).await;
    let caller = &w.alice;
    let service = &w.app.service;
    let reports = service
        .enqueue_changesets(caller, w.alice_id, vec![w.spec("batch/queued")])
        .await
        .unwrap();
    let id = reports[0].outcome.as_ref().unwrap().id;
    let done = &wait_for_jobs(service, &[id]).await[0];
    assert_eq!(done.error, None);
    assert_eq!(done.external_state.as_deref(), Some("open"));
    let number = w.emulator.pulls()[0].id;

    service.close_changeset(caller, id, false).await.unwrap();
    let closed = &wait_for_jobs(service, &[id]).await[0];
    assert_eq!(
        closed.external_state.as_deref(),
        Some("closed"),
        "{:?}",
        closed.error
    );
    service.reopen_changeset(caller, id).await.unwrap();
    let reopened = &wait_for_jobs(service, &[id]).await[0];
    assert_eq!(
        reopened.external_state.as_deref(),
        Some("open"),
        "{:?}",
        reopened.error
    );

    w.emulator.set_votes(number, &[10]);
    w.emulator.post_status(number, "build", "failed");
    service.sync_changeset(caller, id).await.unwrap();
    let synced = &wait_for_jobs(service, &[id]).await[0];
    assert_eq!(
        (
            synced.external_state.as_deref(),
            synced.review_state.as_deref(),
            synced.checks_state.as_deref()
        ),
        (Some("open"), Some("approved"), Some("failed"))
    );

    // Closing with the branch deleted.
    service.close_changeset(caller, id, true).await.unwrap();
    let closed = &wait_for_jobs(service, &[id]).await[0];
    assert_eq!(
        closed.external_state.as_deref(),
        Some("closed"),
        "{:?}",
        closed.error
    );
    assert_eq!(branch_sha(&w.git.repo_path("api"), "batch/queued"), None);
    assert_eq!(
        w.emulator.deleted_branches(),
        vec![("Web/api".to_owned(), "batch/queued".to_owned())]
    );
}
