//! Publishing cannot be turned against a repository: no push to the
//! default or base branch, no overwriting a branch batchcred did not push
//! for the changeset, changesets belong to their first publisher (until a
//! site admin hands them over), site admins publish only as themselves,
//! tokens go only to the code host, and publishing stays within limits.

use std::path::Path;
use std::time::Duration;

use batchcred::auth::Caller;
use batchcred::publish::ChangeSpec;
use batchcred::service::{Error, PublishResult, PublishSettings};
use serde_json::json;

use crate::both_backends;
use crate::cli::{batchcred, ok};
use crate::helpers::{AppOptions, Backend, error_code, error_message};
use crate::publish::{PATCH, World, world, world_with};
use crate::support::codehost::EmulatedRepo;
use crate::support::git_http::{GitHttpServer, branch_sha, git, install_pre_receive_hook};
use batchcred::domain::{ChangesetState, JobState};

/// A patch giving README.md a second line `line`.
fn patch_adding(line: &str) -> ChangeSpec {
    ChangeSpec::Diff {
        patch: PATCH.replace("+world", &format!("+{line}")),
        message: None,
        author_name: None,
        author_email: None,
    }
}

/// Points `branch` of `bare` at a new commit on top of main, as someone
/// pushing outside batchcred would; returns the commit.
fn commit_outside_batchcred(bare: &Path, branch: &str) -> String {
    let git_dir = format!("--git-dir={}", bare.display());
    let root = Path::new("/");
    let tree = git(root, &[&git_dir, "rev-parse", "main^{tree}"]);
    let main = git(root, &[&git_dir, "rev-parse", "main"]);
    let commit = git(
        root,
        &[
            &git_dir,
            "commit-tree",
            tree.trim(),
            "-p",
            main.trim(),
            "-m",
            "Someone else's work",
        ],
    )
    .trim()
    .to_owned();
    git(
        root,
        &[
            &git_dir,
            "update-ref",
            &format!("refs/heads/{branch}"),
            &commit,
        ],
    );
    commit
}

impl World {
    /// Bob gets a credential of his own (a token the git server accepts),
    /// so these tests do not depend on the global credential's policy.
    async fn give_bob_a_token(&self) {
        self.add_credential(Some(&self.bob), "GITHUB", "github", "ghp_global")
            .await;
    }
}

both_backends!(
    default_and_base_branches_are_never_pushed_to,
    a_branch_moved_outside_batchcred_is_not_overwritten,
    a_branch_batchcred_did_not_create_is_not_overwritten,
    a_push_interrupted_before_it_was_recorded_is_resumed,
    a_failed_attempt_does_not_reserve_the_branch,
    a_renamed_repository_is_not_published_under_its_old_name,
    another_users_changeset_is_a_conflict,
    a_handed_over_changeset_is_the_new_owners_and_the_hand_over_is_recorded,
);

async fn default_and_base_branches_are_never_pushed_to(backend: Backend) {
    let w = world(backend).await;
    let service = &w.app.service;
    let as_alice = Caller::User(w.alice.clone());
    let api = w.git.repo_path("api");
    let main = branch_sha(&api, "main");

    // The default branch, with a base that is not it.
    let mut spec = w.spec("github", "acme/api", "main");
    spec.base_branch = "release".into();
    let error = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidInput(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("is the default branch of acme/api"),
        "{error}"
    );

    // Whatever the code host calls its default branch.
    w.emulator.set_default_branch("acme/web", "trunk");
    let mut spec = w.spec("github", "acme/web", "Trunk");
    spec.base_branch = "main".into();
    let error = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("default branch"), "{error}");

    // Bitbucket Server names it through another endpoint.
    w.app
        .add_code_host(
            &w.admin,
            "BITBUCKETSERVER",
            &w.emulator.url("bitbucket"),
            "HTTP",
        )
        .await;
    w.add_credential(Some(&w.alice), "BITBUCKETSERVER", "bitbucket", "BBDC-alice")
        .await;
    w.emulator.set_default_branch("acme/docs", "develop");
    let mut spec = w.spec("bitbucket", "acme/docs", "develop");
    spec.base_branch = "main".into();
    let error = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is the default branch of acme/docs"),
        "{error}"
    );
    assert_eq!(branch_sha(&w.git.repo_path("docs"), "develop"), None);

    // The base branch, however spelt, and names git reads as other refs:
    // refused before the code host is asked.
    let asked = w.emulator.seen().len();
    for (base, head) in [
        ("batch/base", "batch/base"),
        ("batch/base", "Batch/Base"),
        ("main", "refs/heads/main"),
        ("dev", "HEAD"),
        ("dev", "refs/tags/v1"),
    ] {
        let mut spec = w.spec("github", "acme/api", head);
        spec.base_branch = base.into();
        let error = service
            .publish_changeset(&as_alice, w.alice.id, &spec)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::InvalidInput(_)), "{head}: {error:?}");
    }
    assert_eq!(w.emulator.seen().len(), asked, "a code host was asked");

    assert_eq!(branch_sha(&api, "main"), main);
    assert_eq!(branch_sha(&w.git.repo_path("web"), "trunk"), None);
    assert!(w.emulator.pulls().is_empty());
}

async fn a_branch_moved_outside_batchcred_is_not_overwritten(backend: Backend) {
    let w = world(backend).await;
    let service = &w.app.service;
    let as_alice = Caller::User(w.alice.clone());
    let api = w.git.repo_path("api");
    let mut spec = w.spec("github", "acme/api", "batch/moved");
    let first = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap();

    // Publishing again moves the branch batchcred pushed: the lease holds.
    spec.change = patch_adding("again");
    let again = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap();
    assert_eq!(again.result, PublishResult::Updated);
    assert_ne!(again.commit, first.commit);
    assert_eq!(branch_sha(&api, "batch/moved"), again.commit);

    // Someone pushes to it outside batchcred: batchcred no longer touches it.
    let theirs = commit_outside_batchcred(&api, "batch/moved");
    spec.change = patch_adding("third");
    spec.title = "Should not land".into();
    let error = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::PublishFailed(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "branch batch/moved on {}:acme/api was changed outside batchcred (it is not at the \
             commit batchcred last pushed); refusing to overwrite it",
            w.emulator.url("github")
        )
    );
    assert_eq!(branch_sha(&api, "batch/moved"), Some(theirs));
    let pulls = w.emulator.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].title, "Update acme/api");
}

async fn a_branch_batchcred_did_not_create_is_not_overwritten(backend: Backend) {
    let w = world(backend).await;
    let api = w.git.repo_path("api");
    let theirs = commit_outside_batchcred(&api, "feature/theirs");
    let error = w
        .app
        .service
        .publish_changeset(
            &Caller::User(w.alice.clone()),
            w.alice.id,
            &w.spec("github", "acme/api", "feature/theirs"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::PublishFailed(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("already exists on http://127.0.0.1:"),
        "{error}"
    );
    assert!(
        error.to_string().contains("not created by batchcred"),
        "{error}"
    );
    assert_eq!(branch_sha(&api, "feature/theirs"), Some(theirs));
    assert!(w.emulator.pulls().is_empty());
}

/// Rewinds the changeset's record to how a process killed right after its
/// push (before recording it) leaves it: pending, with no pushed commit.
/// `keep_pushing_commit: false` also forgets the commit recorded before the
/// push, so the branch then looks like someone else's.
async fn forget_the_push(w: &World, branch: &str, keep_pushing_commit: bool) {
    let pool = w.app.database().await;
    let sql = if keep_pushing_commit {
        "UPDATE changesets SET state = 'pending', pushed_commit = NULL WHERE head_branch = $1"
    } else {
        "UPDATE changesets SET state = 'pending', pushed_commit = NULL, pushing_commit = NULL \
         WHERE head_branch = $1"
    };
    let done = sqlx::query(sql).bind(branch).execute(&pool).await.unwrap();
    assert_eq!(done.rows_affected(), 1);
    pool.close().await;
}

async fn a_push_interrupted_before_it_was_recorded_is_resumed(backend: Backend) {
    let w = world(backend).await;
    let service = &w.app.service;
    let as_alice = Caller::User(w.alice.clone());
    let api = w.git.repo_path("api");
    let mut spec = w.spec("github", "acme/api", "batch/interrupted");
    let first = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap();
    assert_eq!(branch_sha(&api, "batch/interrupted"), first.commit);

    // The commit was recorded before the push: the branch is known to be
    // batchcred's, and the resumed run replaces it.
    forget_the_push(&w, "batch/interrupted", true).await;
    spec.change = patch_adding("resumed");
    let resumed = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap();
    assert_eq!(resumed.result, PublishResult::Updated);
    assert_ne!(resumed.commit, first.commit);
    assert_eq!(branch_sha(&api, "batch/interrupted"), resumed.commit);

    // Without that record the same branch is someone else's: refused.
    forget_the_push(&w, "batch/interrupted", false).await;
    spec.change = patch_adding("refused");
    let error = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("refusing to overwrite it"),
        "{error}"
    );
    assert_eq!(branch_sha(&api, "batch/interrupted"), resumed.commit);
    assert_eq!(w.emulator.pulls().len(), 1);
}

/// Nobody can keep a repository's branch from its rightful publisher by
/// failing on it first: a user refused a credential leaves no changeset,
/// and a failed attempt that never pushed anything can be taken over.
async fn a_failed_attempt_does_not_reserve_the_branch(backend: Backend) {
    let w = world(backend).await;
    let service = &w.app.service;
    let (as_alice, as_bob) = (Caller::User(w.alice.clone()), Caller::User(w.bob.clone()));
    let host_id = w
        .app
        .graphql_ok(&w.admin.auth, "{ codeHosts { nodes { id } } }", json!({}))
        .await["codeHosts"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.app
        .graphql_ok(
            &w.admin.auth,
            "mutation($h: ID!) { setGlobalCredentialPolicy(codeHost: $h, allowedUsers: NOBODY) { id } }",
            json!({ "h": host_id }),
        )
        .await;
    let spec = w.spec("github", "acme/api", "batch/claimed");
    let error = service
        .publish_changeset(&as_bob, w.bob.id, &spec)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error:?}");
    let host = service.store().list_changesets_of(w.bob.id).await.unwrap();
    assert!(host.is_empty(), "{host:?}");

    // With a token, Bob fails on a repository that does not exist yet: a
    // failed attempt is recorded, owned by him, with nothing pushed.
    w.give_bob_a_token().await;
    let late = w.spec("github", "acme/late", "batch/claimed");
    service
        .publish_changeset(&as_bob, w.bob.id, &late)
        .await
        .unwrap_err();
    assert_eq!(
        service
            .store()
            .list_changesets_of(w.bob.id)
            .await
            .unwrap()
            .len(),
        1
    );
    w.git.create_repo("late");
    w.emulator.add_repository(
        "acme/late",
        EmulatedRepo {
            http_clone_url: w.git.url("late"),
            ssh_clone_url: None,
        },
    );
    let published = service
        .publish_changeset(&as_alice, w.alice.id, &late)
        .await
        .unwrap();
    assert_eq!(published.result, PublishResult::Opened);
    assert!(
        service
            .store()
            .list_changesets_of(w.bob.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        service
            .store()
            .list_changesets_of(w.alice.id)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A code host follows renames and transfers: `acme/old-name` answers for
/// `secret-org/api`. Policy and ownership were decided for the name asked
/// for, so batchcred pushes nothing to the repository it now names.
async fn a_renamed_repository_is_not_published_under_its_old_name(backend: Backend) {
    let w = world(backend).await;
    w.emulator.add_old_name("acme/old-name", "acme/api");
    let api = w.git.repo_path("api");
    let error = w
        .app
        .service
        .publish_changeset(
            &Caller::User(w.bob.clone()),
            w.bob.id,
            &w.spec("github", "acme/old-name", "batch/renamed"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidInput(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("acme/old-name on http://127.0.0.1:"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("is now acme/api (renamed or transferred)"),
        "{error}"
    );
    assert_eq!(branch_sha(&api, "batch/renamed"), None);
    assert!(w.emulator.pulls().is_empty());
}

#[tokio::test]
async fn a_deleted_branch_is_pushed_again() {
    let w = world(Backend::Sqlite).await;
    let service = &w.app.service;
    let as_alice = Caller::User(w.alice.clone());
    let api = w.git.repo_path("api");
    let mut spec = w.spec("github", "acme/api", "batch/deleted");
    service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap();
    let git_dir = format!("--git-dir={}", api.display());
    git(
        Path::new("/"),
        &[&git_dir, "update-ref", "-d", "refs/heads/batch/deleted"],
    );
    spec.change = patch_adding("back");
    let again = service
        .publish_changeset(&as_alice, w.alice.id, &spec)
        .await
        .unwrap();
    assert_eq!(branch_sha(&api, "batch/deleted"), again.commit);
}

async fn another_users_changeset_is_a_conflict(backend: Backend) {
    let w = world(backend).await;
    w.give_bob_a_token().await;
    let service = &w.app.service;
    let api = w.git.repo_path("api");
    let spec = w.spec("github", "acme/api", "batch/shared");
    let alices = service
        .publish_changeset(&Caller::User(w.alice.clone()), w.alice.id, &spec)
        .await
        .unwrap();

    let mut bobs = spec.clone();
    bobs.title = "Bob's take".into();
    bobs.change = patch_adding("bob");
    let seen = w.git.tokens_seen().len();
    let error = service
        .publish_changeset(&Caller::User(w.bob.clone()), w.bob.id, &bobs)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "acme/api:batch/shared is another user's changeset; a site admin can hand it over to you"
    );
    // Nothing reached git or the pull request.
    assert_eq!(w.git.tokens_seen().len(), seen);
    assert_eq!(branch_sha(&api, "batch/shared"), alices.commit);
    let pulls = w.emulator.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(
        (pulls[0].title.as_str(), pulls[0].opened_with.as_str()),
        ("Update acme/api", "ghp_alice")
    );
    // The record is still Alice's, and still says she published it.
    let host = w
        .app
        .service
        .store()
        .find_code_host_by_url(&batchcred::domain::CodeHostUrl::parse(&spec.code_host).unwrap())
        .await
        .unwrap();
    let record = service
        .store()
        .find_changeset(host.id, "acme/api", "batch/shared")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.user_id, w.alice.id);
    assert_eq!(record.state, ChangesetState::Published);

    // The store refuses it too, whatever the service checked first.
    let mut taken = record.clone();
    taken.user_id = w.bob.id;
    let refused = service.store().begin_changeset(&taken).await.unwrap_err();
    assert!(
        matches!(refused, batchcred::store::Error::Conflict(_)),
        "{refused:?}"
    );
    let unchanged = service
        .store()
        .find_changeset(host.id, "acme/api", "batch/shared")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.user_id, w.alice.id);
    assert_eq!(unchanged.attempts, record.attempts);
}

const HAND_OVER: &str = "mutation($h: String!, $r: String!, $b: String!, $u: ID!) { \
    handOverChangeset(codeHost: $h, repository: $r, headBranch: $b, user: $u) { \
    id repository headBranch owner previousOwner handedOverBy handedOverAt } }";

async fn a_handed_over_changeset_is_the_new_owners_and_the_hand_over_is_recorded(backend: Backend) {
    let w = world(backend).await;
    w.give_bob_a_token().await;
    let service = &w.app.service;
    let api = w.git.repo_path("api");
    let alice = w.app.sign_in_with_token("alice").await;
    let bob = w.app.sign_in_with_token("bob").await;
    let admin_id = w.admin.id.clone();
    let mut spec = w.spec("github", "acme/api", "batch/handed");
    service
        .publish_changeset(&Caller::User(w.alice.clone()), w.alice.id, &spec)
        .await
        .unwrap();
    let variables =
        json!({ "h": spec.code_host, "r": "acme/api", "b": "batch/handed", "u": bob.id });

    // Only site admins hand changesets over.
    for user in [&alice, &bob] {
        let body = w
            .app
            .graphql(&user.auth, HAND_OVER, variables.clone())
            .await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    }
    let data = w
        .app
        .graphql_ok(&w.admin.auth, HAND_OVER, variables.clone())
        .await;
    let handed = &data["handOverChangeset"];
    assert_eq!(handed["owner"], bob.id.as_str());
    assert_eq!(handed["previousOwner"], alice.id.as_str());
    assert_eq!(handed["handedOverBy"], admin_id.as_str());
    assert!(handed["handedOverAt"].is_string(), "{handed}");
    // Handing it to its owner again is a clear error.
    let body = w.app.graphql(&w.admin.auth, HAND_OVER, variables).await;
    assert!(
        error_message(&body).contains("already belongs to bob"),
        "{body}"
    );

    // Bob now publishes it (the lease on Alice's last push holds) …
    spec.change = patch_adding("bob");
    spec.title = "Bob's now".into();
    let bobs = service
        .publish_changeset(&Caller::User(w.bob.clone()), w.bob.id, &spec)
        .await
        .unwrap();
    assert_eq!(bobs.result, PublishResult::Updated);
    assert_eq!(branch_sha(&api, "batch/handed"), bobs.commit);
    assert_eq!(w.emulator.pulls()[0].title, "Bob's now");
    // … and Alice no longer can.
    let error = service
        .publish_changeset(&Caller::User(w.alice.clone()), w.alice.id, &spec)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Conflict(_)), "{error:?}");

    let host = service
        .store()
        .find_code_host_by_url(&batchcred::domain::CodeHostUrl::parse(&spec.code_host).unwrap())
        .await
        .unwrap();
    let record = service
        .store()
        .find_changeset(host.id, "acme/api", "batch/handed")
        .await
        .unwrap()
        .unwrap();
    let admin = service
        .user_by_username(&Caller::Operator, "admin")
        .await
        .unwrap();
    assert_eq!(record.user_id, w.bob.id);
    assert_eq!(record.previous_user_id, Some(w.alice.id));
    assert_eq!(record.handed_over_by, Some(admin.id));
    assert!(record.handed_over_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_hands_changesets_over_from_the_cli() {
    let w = world(Backend::Sqlite).await;
    let service = &w.app.service;
    let spec = w.spec("github", "acme/api", "batch/cli");
    service
        .publish_changeset(&Caller::User(w.alice.clone()), w.alice.id, &spec)
        .await
        .unwrap();
    let out = ok(&batchcred(
        &w.app.store.data_dir,
        &[
            "changesets",
            "hand-over",
            "--code-host",
            &spec.code_host,
            "--repository",
            "acme/api",
            "--head-branch",
            "batch/cli",
            "--to",
            "bob",
        ],
        "",
    ));
    assert_eq!(
        out.trim(),
        "handed acme/api:batch/cli over to bob (it was alice's)"
    );
    let host = service
        .store()
        .find_code_host_by_url(&batchcred::domain::CodeHostUrl::parse(&spec.code_host).unwrap())
        .await
        .unwrap();
    let record = service
        .store()
        .find_changeset(host.id, "acme/api", "batch/cli")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.user_id, w.bob.id);
    assert_eq!(record.previous_user_id, Some(w.alice.id));
    // Handed over by the operator: no admin account recorded.
    assert_eq!(record.handed_over_by, None);
    assert!(record.handed_over_at.is_some());
}

#[tokio::test]
async fn site_admins_publish_only_as_themselves() {
    let w = world(Backend::Sqlite).await;
    let alice = w.app.sign_in_with_token("alice").await;
    let mutation = "mutation($u: ID, $c: [ChangesetInput!]!) { publishChangesets(user: $u, changesets: $c) { id state error } }";
    let input = json!([{ "codeHost": w.emulator.url("github"), "repository": "acme/api",
        "baseBranch": "main", "headBranch": "batch/for-alice", "title": "On her behalf", "diff": PATCH }]);
    let body = w
        .app
        .graphql(
            &w.admin.auth,
            mutation,
            json!({ "u": alice.id, "c": input }),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    assert!(
        error_message(&body).contains("that user's own session or access token"),
        "{body}"
    );
    assert_eq!(branch_sha(&w.git.repo_path("api"), "batch/for-alice"), None);
    assert!(w.emulator.pulls().is_empty());
    assert!(!w.git.tokens_seen().iter().any(|t| t == "ghp_alice"));

    // Alice's own token publishes it.
    let data = w
        .app
        .graphql_ok(&alice.auth, mutation, json!({ "u": alice.id, "c": input }))
        .await;
    assert_eq!(data["publishChangesets"][0]["state"], "QUEUED", "{data}");
    let id = data["publishChangesets"][0]["id"].as_str().unwrap();
    let id = crate::helpers::changeset_id_from_graphql(id);
    let done = crate::helpers::wait_for_jobs(&w.app.service, &[id]).await;
    assert_eq!(
        done[0].job_state,
        JobState::Completed,
        "{:?}",
        done[0].error
    );
    assert_eq!(w.emulator.pulls().len(), 1);
}

#[tokio::test]
async fn clone_urls_off_the_code_host_are_refused_before_any_push() {
    let w = world(Backend::Sqlite).await;
    // A git server that would accept Alice's token, reached by another
    // name than the code host's.
    let elsewhere = GitHttpServer::start("ghp_alice").await;
    elsewhere.create_repo("stolen");
    w.emulator.add_repository(
        "acme/stolen",
        EmulatedRepo {
            http_clone_url: format!("http://localhost:{}/stolen.git", elsewhere.address.port()),
            ssh_clone_url: None,
        },
    );
    let error = w
        .app
        .service
        .publish_changeset(
            &Caller::User(w.alice.clone()),
            w.alice.id,
            &w.spec("github", "acme/stolen", "batch/stolen"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::PublishFailed(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("points at \"localhost\", not at the code host \"127.0.0.1\""),
        "{error}"
    );
    assert!(
        elsewhere.tokens_seen().is_empty(),
        "the token went elsewhere"
    );
    assert_eq!(
        branch_sha(&elsewhere.repo_path("stolen"), "batch/stolen"),
        None
    );
    assert!(w.emulator.pulls().is_empty());
}

fn limited() -> AppOptions {
    let mut options = AppOptions::default();
    options.publish = PublishSettings {
        max_changesets_per_request: 2,
        max_patch_bytes: 200,
        max_git_jobs: 1,
        ..options.publish
    };
    options
}

#[tokio::test]
async fn requests_beyond_the_limits_are_clear_errors() {
    let w = world_with(Backend::Sqlite, limited()).await;
    let alice = w.app.sign_in_with_token("alice").await;
    let mutation = "mutation($c: [ChangesetInput!]!, $n: Int!) { publishChangesets(changesets: $c, concurrency: $n) { state error errorCode } }";
    let input = |head: &str, diff: &str| {
        json!({ "codeHost": w.emulator.url("github"), "repository": "acme/api",
                "baseBranch": "main", "headBranch": head, "title": "Limits", "diff": diff })
    };
    let three = json!([
        input("batch/1", PATCH),
        input("batch/2", PATCH),
        input("batch/3", PATCH)
    ]);
    let body = w
        .app
        .graphql(&alice.auth, mutation, json!({ "c": three, "n": 1 }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(
        error_message(&body).contains("3 changesets in one request; at most 2 are accepted"),
        "{body}"
    );
    for concurrency in [0, -1, 65] {
        let body = w
            .app
            .graphql(
                &alice.auth,
                mutation,
                json!({ "c": [input("batch/1", PATCH)], "n": concurrency }),
            )
            .await;
        assert!(
            error_message(&body).contains("concurrency must be between 1 and 64"),
            "{concurrency}: {body}"
        );
    }
    let big = format!("{PATCH}{}", "+padding\n".repeat(30));
    let data = w
        .app
        .graphql_ok(
            &alice.auth,
            mutation,
            json!({ "c": [input("batch/big", &big)], "n": 1 }),
        )
        .await;
    let result = &data["publishChangesets"][0];
    assert_eq!(result["state"], "FAILED");
    assert_eq!(result["errorCode"], "BAD_USER_INPUT");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("bytes; at most 200 are accepted"),
        "{result}"
    );
    assert!(w.emulator.pulls().is_empty());
    assert_eq!(branch_sha(&w.git.repo_path("api"), "batch/1"), None);

    // The operator's spec files are not capped at the request limit.
    let specs = (0..3)
        .map(|n| w.spec("github", "acme/docs", &format!("batch/op-{n}")))
        .collect();
    let reports = w
        .app
        .service
        .publish_changesets(&Caller::Operator, w.alice.id, specs, 3, None)
        .await
        .unwrap();
    assert!(reports.iter().all(|r| r.outcome.is_ok()), "{reports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_work_is_bounded_across_requests_and_users() {
    let w = world_with(Backend::Sqlite, limited()).await;
    w.give_bob_a_token().await;
    // Each push holds a lock directory shared by every repository for a
    // moment; a second push arriving meanwhile leaves a mark.
    let shared = tempfile::tempdir().unwrap();
    let lock = shared.path().join("lock");
    let overlaps = shared.path().join("overlaps");
    let pushes = shared.path().join("pushes");
    for repo in ["api", "web", "docs"] {
        install_pre_receive_hook(
            &w.git.repo_path(repo),
            &format!(
                "echo x >> '{pushes}'\n\
                 if mkdir '{lock}' 2>/dev/null; then sleep 0.3; rmdir '{lock}'; \
                 else echo overlap >> '{overlaps}'; fi\nexit 0",
                pushes = pushes.display(),
                lock = lock.display(),
                overlaps = overlaps.display()
            ),
        );
    }
    let specs = |who: &str| {
        ["api", "web"]
            .iter()
            .map(|repo| w.spec("github", &format!("acme/{repo}"), &format!("batch/{who}")))
            .collect::<Vec<_>>()
    };
    let service = &w.app.service;
    let (as_alice, as_bob) = (Caller::User(w.alice.clone()), Caller::User(w.bob.clone()));
    let (alices, bobs) = tokio::time::timeout(Duration::from_secs(120), async {
        tokio::join!(
            service.publish_changesets(&as_alice, w.alice.id, specs("alice"), 2, None),
            service.publish_changesets(&as_bob, w.bob.id, specs("bob"), 2, None),
        )
    })
    .await
    .unwrap();
    for report in alices.unwrap().iter().chain(bobs.unwrap().iter()) {
        assert!(report.outcome.is_ok(), "{:?}", report.outcome);
    }
    let pushed = std::fs::read_to_string(&pushes).unwrap();
    assert_eq!(pushed.lines().count(), 4);
    assert!(
        !overlaps.exists(),
        "two pushes ran at once with one git job allowed"
    );
}

#[tokio::test]
async fn the_operator_publishes_a_local_commit_resolved_by_hardened_git() {
    let w = world(Backend::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let api = w.git.repo_path("api");
    git(
        work.path(),
        &["clone", "--quiet", api.to_str().unwrap(), "."],
    );
    std::fs::write(work.path().join("README.md"), "hello\nlocal\n").unwrap();
    git(work.path(), &["commit", "--quiet", "-am", "Local change"]);
    let sha = git(work.path(), &["rev-parse", "HEAD"]).trim().to_owned();
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
    assert_eq!(published.commit.as_deref(), Some(sha.as_str()));
    assert_eq!(branch_sha(&api, "batch/local"), Some(sha));

    spec.change = ChangeSpec::Commit {
        repo: work.path().to_owned(),
        rev: "no-such-branch".into(),
    };
    let error = w
        .app
        .service
        .publish_changeset(&Caller::Operator, w.alice.id, &spec)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidInput(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("\"no-such-branch\" is not a commit in"),
        "{error}"
    );
}
