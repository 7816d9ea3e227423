//! Publishing changesets end to end: the credential is resolved, the branch
//! pushed to a real git server (git http-backend, OpenSSH sshd) and the
//! pull request opened through the code host emulator.

use std::time::Duration;

use batchcred::auth::Caller;
use batchcred::publish::{ChangeSpec, ChangesetSpec};
use batchcred::service::{CreateCredential, PublishResult};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    AppOptions, Backend, TestApp, TestUser, error_code, error_message, spawn_app, spawn_app_with,
};
use crate::support::codehost::{
    BITBUCKET_SCOPES, EmulatedRepo, EmulatedToken, Emulator, GITHUB_SCOPES, GITLAB_SCOPES,
};
use crate::support::git_http::{GitHttpServer, branch_sha, git, install_pre_receive_hook};
use crate::support::sshd::Sshd;
use batchcred::domain::{JobState, UserAccount};

pub const PATCH: &str = "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1,2 @@\n hello\n+world\n";

pub struct World {
    pub app: TestApp,
    pub admin: TestUser,
    pub alice: UserAccount,
    pub bob: UserAccount,
    pub emulator: Emulator,
    pub git: GitHttpServer,
}

const TOKENS: [&str; 4] = ["ghp_alice", "ghp_global", "glpat-alice", "BBDC-alice"];

/// An instance with a GitHub code host (emulated API, real git server)
/// serving `acme/api`, Alice's and the global GitHub token stored, and Bob
/// with no token of his own.
pub async fn world(backend: Backend) -> World {
    world_with(backend, AppOptions::default()).await
}

/// [`world`] with the server started with `options`.
pub async fn world_with(backend: Backend, options: AppOptions) -> World {
    let app = spawn_app_with(backend, options).await;
    let admin = app.init_site_admin("admin").await;
    app.create_user(&admin, "alice").await;
    app.create_user(&admin, "bob").await;
    let emulator = Emulator::start().await;
    emulator.add_token("ghp_alice", EmulatedToken::new("alice-gh", GITHUB_SCOPES));
    emulator.add_token("ghp_global", EmulatedToken::new("batch-bot", GITHUB_SCOPES));
    emulator.add_token("glpat-alice", EmulatedToken::new("alice-gl", GITLAB_SCOPES));
    emulator.add_token(
        "BBDC-alice",
        EmulatedToken::new("alice.bb", BITBUCKET_SCOPES),
    );
    let git = GitHttpServer::start_with_tokens(&TOKENS).await;
    for repo in ["api", "web", "docs"] {
        git.create_repo(repo);
        emulator.add_repository(
            &format!("acme/{repo}"),
            EmulatedRepo {
                http_clone_url: git.url(repo),
                ssh_clone_url: None,
            },
        );
    }
    app.add_code_host(&admin, "GITHUB", &emulator.url("github"), "HTTP")
        .await;
    let operator = Caller::Operator;
    let alice = app
        .service
        .user_by_username(&operator, "alice")
        .await
        .unwrap();
    let bob = app
        .service
        .user_by_username(&operator, "bob")
        .await
        .unwrap();
    let world = World {
        app,
        admin,
        alice,
        bob,
        emulator,
        git,
    };
    world
        .add_credential(None, "GITHUB", "github", "ghp_global")
        .await;
    world
        .add_credential(Some(&world.alice), "GITHUB", "github", "ghp_alice")
        .await;
    world
}

impl World {
    pub async fn add_credential(
        &self,
        user: Option<&UserAccount>,
        kind: &str,
        prefix: &str,
        token: &str,
    ) -> batchcred::service::CredentialView {
        self.app
            .service
            .create_credential(
                &Caller::Operator,
                CreateCredential {
                    user: user.map(|u| u.id),
                    kind: kind.parse().unwrap(),
                    url: self.emulator.url(prefix),
                    username: None,
                    token: token.into(),
                    repository: None,
                },
            )
            .await
            .unwrap()
    }

    pub fn spec(&self, prefix: &str, repository: &str, head: &str) -> ChangesetSpec {
        ChangesetSpec {
            code_host: self.emulator.url(prefix),
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

both_backends!(users_own_credential_then_the_global_one);

async fn users_own_credential_then_the_global_one(backend: Backend) {
    let w = world(backend).await;
    let as_alice = Caller::User(w.alice.clone());
    let published = w
        .app
        .service
        .publish_changeset(
            &as_alice,
            w.alice.id,
            &w.spec("github", "acme/api", "batch/alice"),
        )
        .await
        .unwrap();
    assert_eq!(published.result, PublishResult::Opened);
    assert_eq!(published.credential_source.as_deref(), Some("user"));
    // The branch holds the diff applied on main, authored by Alice.
    let sha = branch_sha(&w.git.repo_path("api"), "batch/alice").unwrap();
    assert_eq!(published.commit.as_deref(), Some(sha.as_str()));
    let readme = git(&w.git.repo_path("api"), &["show", "batch/alice:README.md"]);
    assert_eq!(readme, "hello\nworld\n");
    let author = git(
        &w.git.repo_path("api"),
        &["log", "-1", "--format=%an", "batch/alice"],
    );
    assert_eq!(author.trim(), "alice");
    // Pushed and opened with Alice's token, never the global one.
    assert_eq!(
        w.git
            .tokens_seen()
            .iter()
            .filter(|t| *t == "ghp_global")
            .count(),
        0
    );
    assert!(w.git.usernames().iter().all(|u| u == "x-access-token"));
    let pulls = w.emulator.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].opened_with, "ghp_alice");
    assert_eq!(
        (pulls[0].head.as_str(), pulls[0].base.as_str()),
        ("batch/alice", "main")
    );
    assert_eq!(pulls[0].title, "Update acme/api");

    // Bob has none: the global credential publishes, and says so.
    let as_bob = Caller::User(w.bob.clone());
    let published = w
        .app
        .service
        .publish_changeset(
            &as_bob,
            w.bob.id,
            &w.spec("github", "acme/web", "batch/bob"),
        )
        .await
        .unwrap();
    assert_eq!(published.credential_source.as_deref(), Some("site"));
    assert_eq!(w.emulator.pulls()[1].opened_with, "ghp_global");

    // Alice may not publish as Bob.
    let error = w
        .app
        .service
        .publish_changeset(
            &as_alice,
            w.bob.id,
            &w.spec("github", "acme/web", "batch/x"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, batchcred::service::Error::NotFound(_)),
        "{error}"
    );
}

#[tokio::test]
async fn no_credential_is_a_clear_error_and_does_not_stop_the_others() {
    let w = world(Backend::Sqlite).await;
    // A second code host nobody has a credential for.
    w.app
        .add_code_host(&w.admin, "GITLAB", &w.emulator.url("gitlab"), "HTTP")
        .await;
    let specs = vec![
        w.spec("github", "acme/api", "batch/one"),
        w.spec("gitlab", "acme/web", "batch/two"),
        w.spec("github", "acme/docs", "batch/three"),
    ];
    let reports = w
        .app
        .service
        .publish_changesets(&Caller::Operator, w.bob.id, specs, 2, None)
        .await
        .unwrap();
    assert_eq!(reports.len(), 3);
    assert!(reports[0].outcome.is_ok());
    assert!(reports[2].outcome.is_ok());
    let error = reports[1].outcome.as_ref().unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "no credential for GitLab {}: add a token in Settings → Batch Changes, or ask a site admin to add a global one",
            w.emulator.url("gitlab")
        )
    );
    assert_eq!(w.emulator.pulls().len(), 2);
}

#[tokio::test]
async fn publishing_again_updates_and_never_duplicates() {
    let w = world(Backend::Sqlite).await;
    let service = &w.app.service;
    let as_alice = Caller::User(w.alice.clone());
    let mut spec = w.spec("github", "acme/api", "batch/again");
    let first = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap();
    assert_eq!(first.result, PublishResult::Opened);

    // The same spec again: nothing to do.
    let again = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap();
    assert_eq!(again.result, PublishResult::Unchanged);
    assert_eq!(again.pull_request_url, first.pull_request_url);

    // A changed spec: the branch is force-pushed, the pull request updated.
    spec.title = "Update acme/api, take two".into();
    spec.change = ChangeSpec::Diff {
        patch: PATCH.replace("+world", "+there"),
        message: None,
        author_name: None,
        author_email: None,
    };
    let updated = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap();
    assert_eq!(updated.result, PublishResult::Updated);
    assert_eq!(updated.pull_request_number, first.pull_request_number);
    let pulls = w.emulator.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].title, "Update acme/api, take two");
    assert_eq!(
        git(&w.git.repo_path("api"), &["show", "batch/again:README.md"]),
        "hello\nthere\n"
    );

    // Another instance that never heard of it did not create the branch,
    // so it refuses to overwrite it, and leaves the pull request alone.
    let other = spawn_app(Backend::Sqlite).await;
    let admin = other.init_site_admin("admin").await;
    other
        .add_code_host(&admin, "GITHUB", &w.emulator.url("github"), "HTTP")
        .await;
    let other_admin = other
        .service
        .user_by_username(&Caller::Operator, "admin")
        .await
        .unwrap();
    other
        .service
        .create_credential(
            &Caller::Operator,
            CreateCredential {
                user: None,
                kind: "GITHUB".parse().unwrap(),
                url: w.emulator.url("github"),
                username: None,
                token: "ghp_global".into(),
                repository: None,
            },
        )
        .await
        .unwrap();
    let before = branch_sha(&w.git.repo_path("api"), "batch/again");
    spec.title = "Third title".into();
    let refused = other
        .service
        .publish_changeset(&Caller::Operator, other_admin.id, &spec)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("was not created by batchcred"),
        "{refused}"
    );
    assert_eq!(branch_sha(&w.git.repo_path("api"), "batch/again"), before);
    assert_eq!(w.emulator.pulls().len(), 1);
    assert_eq!(w.emulator.pulls()[0].title, "Update acme/api, take two");
}

#[tokio::test]
async fn gitlab_and_bitbucket_server_merge_requests() {
    let w = world(Backend::Sqlite).await;
    for (kind, prefix, token) in [
        ("GITLAB", "gitlab", "glpat-alice"),
        ("BITBUCKETSERVER", "bitbucket", "BBDC-alice"),
    ] {
        w.app
            .add_code_host(&w.admin, kind, &w.emulator.url(prefix), "HTTP")
            .await;
        w.add_credential(Some(&w.alice), kind, prefix, token).await;
    }
    let as_alice = Caller::User(w.alice.clone());
    let mut draft = w.spec("gitlab", "acme/api", "batch/gl");
    draft.draft = true;
    let gl = w
        .app
        .service
        .publish_changeset(&as_alice, w.alice.id, &draft)
        .await
        .unwrap();
    assert_eq!(gl.result, PublishResult::Opened);
    let bb = w
        .app
        .service
        .publish_changeset(
            &as_alice,
            w.alice.id,
            &w.spec("bitbucket", "acme/web", "batch/bb"),
        )
        .await
        .unwrap();
    assert_eq!(bb.result, PublishResult::Opened);
    let pulls = w.emulator.pulls();
    assert_eq!(pulls[0].title, "Draft: Update acme/api");
    assert!(pulls[0].draft);
    assert_eq!(pulls[1].opened_with, "BBDC-alice");
    // Each code host's username form went to git.
    let usernames = w.git.usernames();
    assert!(usernames.contains(&"oauth2".to_owned()), "{usernames:?}");
    assert!(usernames.contains(&"alice.bb".to_owned()), "{usernames:?}");

    // Re-publishing with a new title updates both in place.
    draft.title = "Renamed".into();
    let again = w
        .app
        .service
        .publish_changeset(&as_alice, w.alice.id, &draft)
        .await
        .unwrap();
    assert_eq!(again.result, PublishResult::Updated);
    let mut bb_spec = w.spec("bitbucket", "acme/web", "batch/bb");
    bb_spec.title = "Renamed too".into();
    let again = w
        .app
        .service
        .publish_changeset(&as_alice, w.alice.id, &bb_spec)
        .await
        .unwrap();
    assert_eq!(again.result, PublishResult::Updated);
    let pulls = w.emulator.pulls();
    assert_eq!(pulls.len(), 2);
    assert_eq!(pulls[0].title, "Draft: Renamed");
    assert_eq!(
        (pulls[1].title.as_str(), pulls[1].version),
        ("Renamed too", 1)
    );
}

#[tokio::test]
async fn ssh_code_hosts_push_with_the_generated_key() {
    let w = world(Backend::Sqlite).await;
    let url = w.emulator.url("gh-ssh");
    let host_id = w.app.add_code_host(&w.admin, "GITHUB", &url, "SSH").await;
    let credential = w
        .add_credential(Some(&w.alice), "GITHUB", "gh-ssh", "ghp_alice")
        .await;
    let public_key = credential.ssh_public_key.clone().unwrap();
    let sshd = Sshd::start(&[&public_key]);
    let bare = w.git.create_repo("ssh-only");
    w.emulator.add_repository(
        "acme/ssh-only",
        EmulatedRepo {
            http_clone_url: "http://127.0.0.1:9/unused.git".into(),
            ssh_clone_url: Some(sshd.url(&bare)),
        },
    );
    let as_alice = Caller::User(w.alice.clone());
    let spec = w.spec("gh-ssh", "acme/ssh-only", "batch/ssh");

    // Without the host key recorded, nothing is pushed.
    let error = w
        .app
        .service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no SSH host key"), "{error}");

    w.app
        .graphql_ok(
            &w.admin.auth,
            "mutation($id: ID!, $k: String!) { updateCodeHost(id: $id, sshKnownHosts: $k) { id } }",
            json!({ "id": host_id, "k": sshd.known_hosts() }),
        )
        .await;
    let published = w
        .app
        .service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
    assert_eq!(published.result, PublishResult::Opened);
    assert_eq!(branch_sha(&bare, "batch/ssh"), published.commit);
}

#[tokio::test]
async fn rejected_pushes_report_gits_own_words() {
    let w = world(Backend::Sqlite).await;
    install_pre_receive_hook(
        &w.git.repo_path("api"),
        "echo 'protected branch: batch/* is locked' >&2\nexit 1",
    );
    let error = w
        .app
        .service
        .publish_changeset(
            &Caller::Operator,
            w.alice.id,
            &w.spec("github", "acme/api", "batch/locked"),
        )
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("protected branch: batch/* is locked"),
        "{message}"
    );
    assert!(message.contains("rejected"), "{message}");
    assert!(!message.contains("ghp_alice"));
    assert!(w.emulator.pulls().is_empty());
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let w = world(Backend::Sqlite).await;
    w.emulator.rate_limit_pulls(2, 1);
    let published = w
        .app
        .service
        .publish_changeset(
            &Caller::Operator,
            w.alice.id,
            &w.spec("github", "acme/api", "batch/busy"),
        )
        .await
        .unwrap();
    assert_eq!(published.result, PublishResult::Opened);
    let attempts = w.emulator.pull_attempts();
    assert_eq!(attempts.len(), 3, "two refusals, then success");
    // Each retry came after the wait the code host asked for.
    for pair in attempts.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "{:?}",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test]
async fn publish_changesets_over_graphql() {
    let w = world(Backend::Sqlite).await;
    let alice = w.app.sign_in_with_token("alice").await;
    let mutation = "mutation($c: [ChangesetInput!]!) { publishChangesets(changesets: $c) { \
                    id repository headBranch state pullRequestNumber pullRequestURL credentialSource error errorCode } }";
    let input = |repo: &str, head: &str| {
        json!({ "codeHost": w.emulator.url("github"), "repository": repo, "baseBranch": "main",
                "headBranch": head, "title": "Via the API", "diff": PATCH })
    };
    let data = w
        .app
        .graphql_ok(
            &alice.auth,
            mutation,
            json!({ "c": [input("acme/api", "batch/api"), input("acme/missing", "batch/api")] }),
        )
        .await;
    let results = data["publishChangesets"].as_array().unwrap();
    // Recorded and queued at once; a worker publishes it.
    assert_eq!(results[0]["state"], "QUEUED", "{data}");
    let id = results[0]["id"].as_str().unwrap().to_owned();
    // The code host is only asked by the worker: a missing repository
    // fails its job, at once (trying again would find the same).
    assert_eq!(results[1]["state"], "QUEUED");
    let missing = crate::helpers::changeset_id_from_graphql(results[1]["id"].as_str().unwrap());
    let failed = &crate::helpers::wait_for_jobs(&w.app.service, &[missing]).await[0];
    assert_eq!(failed.job_state, JobState::Failed);
    assert_eq!(failed.job_attempts, 1);
    assert!(
        failed
            .error
            .as_deref()
            .unwrap()
            .contains("acme/missing was not found"),
        "{:?}",
        failed.error
    );

    // The input has no way to name a repository on the server's disk.
    let body = w
        .app
        .graphql(
            &alice.auth,
            "mutation { publishChangesets(changesets: [{codeHost: \"x\", repository: \"a/b\", \
             baseBranch: \"main\", headBranch: \"b\", title: \"t\", diff: \"x\", commit: \"HEAD\"}]) { state } }",
            json!({}),
        )
        .await;
    assert!(error_message(&body).contains("commit"), "{body}");
    // Anonymous callers publish nothing.
    let body = w
        .app
        .graphql(
            &crate::helpers::Auth::Anonymous,
            mutation,
            json!({ "c": [input("acme/web", "batch/anon")] }),
        )
        .await;
    assert!(error_code(&body).is_some(), "{body}");

    let query = "query($id: ID!) { changeset(id: $id) { status jobState attempts error \
                 pullRequestNumber pullRequestURL credentialSource title } }";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let changeset = loop {
        let data = w
            .app
            .graphql_ok(&alice.auth, query, json!({ "id": id }))
            .await;
        if data["changeset"]["jobState"] == "completed" {
            break data["changeset"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "{data}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(changeset["status"], "OPEN", "{changeset}");
    assert_eq!(changeset["credentialSource"], "user");
    assert_eq!(changeset["title"], "Via the API");
    assert_eq!(changeset["attempts"], 1);
    assert_eq!(changeset["error"], Value::Null);
    assert_eq!(
        changeset["pullRequestNumber"],
        w.emulator.pulls()[0].number,
        "{changeset}"
    );
    assert!(changeset["pullRequestURL"].is_string(), "{changeset}");
    assert_eq!(w.emulator.pulls().len(), 1);
    // Nobody else sees it.
    let bob = w.app.sign_in_with_token("bob").await;
    let data = w
        .app
        .graphql_ok(&bob.auth, query, json!({ "id": id }))
        .await;
    assert_eq!(data["changeset"], Value::Null);
}
