//! The global credential policy (who may publish with a code host's site
//! credential, and where) and what users see of a site credential.

use batchcred::auth::Caller;
use batchcred::domain::{CodeHostKind, CodeHostUrl, UserAccount};
use batchcred::service::{CreateCredential, CredentialSource, Error, PublishResult};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::cli::{batchcred, ok};
use crate::helpers::{Backend, TestApp, TestUser, error_code, error_message, spawn_app};
use crate::publish::world;
use crate::support::codehost::{EmulatedToken, Emulator, GITHUB_SCOPES, GITLAB_SCOPES};
use crate::web::Browser;

const SET_POLICY: &str = "mutation($h: ID!, $a: GlobalCredentialUsers!, $u: [String!], $r: [String!]) { \
    setGlobalCredentialPolicy(codeHost: $h, allowedUsers: $a, users: $u, repositories: $r) { \
    url globalCredentialPolicy { allowedUsers users repositories } } }";

const POLICIES: &str =
    "{ codeHosts { nodes { id url globalCredentialPolicy { allowedUsers users repositories } } } }";

/// The policy of the first code host, as site admins see it.
async fn policy(app: &TestApp, admin: &TestUser) -> Value {
    let data = app.graphql_ok(&admin.auth, POLICIES, json!({})).await;
    data["codeHosts"]["nodes"][0]["globalCredentialPolicy"].clone()
}

/// A list argument that may be left out.
type Names<'a> = Option<&'a [&'a str]>;

async fn set_policy(
    app: &TestApp,
    auth: &TestUser,
    host: &str,
    allowed: &str,
    users: Names<'_>,
    repositories: Names<'_>,
) -> Value {
    app.graphql(
        &auth.auth,
        SET_POLICY,
        json!({ "h": host, "a": allowed, "u": users, "r": repositories }),
    )
    .await
}

const SETTINGS: &str = "/user/settings/batch-changes";

fn refusal(url: &str, whom: &str, rule: &str) -> String {
    format!(
        "the global credential for GitHub {url} may not be used {whom} (site policy: {rule}); \
         add your own token in Settings → Batch Changes"
    )
}

both_backends!(
    nobody_refuses_before_the_code_host_is_asked,
    selected_users_and_repository_patterns,
    only_site_admins_set_it_and_bad_input_changes_nothing,
    users_see_that_a_site_credential_exists_not_its_details,
);

/// Everyone by default; "nobody" refuses with the policy's words and
/// without a single request to the code host; a user's own token is not
/// affected.
async fn nobody_refuses_before_the_code_host_is_asked(backend: Backend) {
    let w = world(backend).await;
    let url = w.emulator.url("github");
    assert_eq!(
        policy(&w.app, &w.admin).await,
        json!({ "allowedUsers": "EVERYONE", "users": [], "repositories": [] })
    );
    // The default: Bob, who has no token, publishes with the global one.
    let as_bob = Caller::User(w.bob.clone());
    let published = w
        .app
        .service
        .publish_changeset(&as_bob, w.bob.id, &w.spec("github", "acme/web", "b/1"))
        .await
        .unwrap();
    assert_eq!(published.credential_source.as_deref(), Some("site"));

    let host = host_id(&w.app, &w.admin).await;
    let data = set_policy(&w.app, &w.admin, &host, "NOBODY", None, None).await;
    assert!(data.get("errors").is_none(), "{data}");
    assert_eq!(
        data["data"]["setGlobalCredentialPolicy"]["globalCredentialPolicy"]["allowedUsers"],
        "NOBODY"
    );

    let requests_before = w.emulator.seen().len();
    let pushes_before = w.git.tokens_seen().len();
    let bob = w.app.sign_in_with_token("bob").await;
    let data = w
        .app
        .graphql_ok(
            &bob.auth,
            "mutation($c: [ChangesetInput!]!) { publishChangesets(changesets: $c) { state error credentialSource } }",
            json!({ "c": [{ "codeHost": url, "repository": "acme/secret-project", "baseBranch": "main",
                           "headBranch": "b/2", "title": "t", "diff": crate::publish::PATCH }] }),
        )
        .await;
    let result = &data["publishChangesets"][0];
    assert_eq!(result["state"], "FAILED");
    assert_eq!(result["error"], refusal(&url, "by bob", "nobody"));
    // The service account never asked the code host anything for Bob: he
    // cannot learn whether acme/secret-project exists.
    assert_eq!(w.emulator.seen().len(), requests_before);
    assert_eq!(w.git.tokens_seen().len(), pushes_before);

    // Alice has her own token: the policy is not hers to meet.
    let as_alice = Caller::User(w.alice.clone());
    let published = w
        .app
        .service
        .publish_changeset(&as_alice, w.alice.id, &w.spec("github", "acme/api", "a/1"))
        .await
        .unwrap();
    assert_eq!(published.result, PublishResult::Opened);
    assert_eq!(published.credential_source.as_deref(), Some("user"));
}

async fn host_id(app: &TestApp, admin: &TestUser) -> String {
    let data = app.graphql_ok(&admin.auth, POLICIES, json!({})).await;
    data["codeHosts"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An instance with one GitHub code host, a global token and users alice,
/// bob and carol (carol with a token of her own).
struct Setup {
    app: TestApp,
    admin: TestUser,
    emulator: Emulator,
    url: String,
    /// The code host's GraphQL id and its bare id (web paths).
    host: String,
    host_uuid: String,
    alice: UserAccount,
    bob: UserAccount,
    carol: UserAccount,
}

async fn setup(backend: Backend) -> Setup {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    for name in ["alice", "bob", "carol"] {
        app.create_user(&admin, name).await;
    }
    let emulator = Emulator::start().await;
    emulator.add_token("ghp_global", EmulatedToken::new("batch-bot", GITHUB_SCOPES));
    emulator.add_token("ghp_carol", EmulatedToken::new("carol-gh", GITHUB_SCOPES));
    let url = emulator.url("github");
    let host = app.add_code_host(&admin, "GITHUB", &url, "HTTP").await;
    let operator = Caller::Operator;
    let user = |name: &'static str| {
        let service = app.service.clone();
        async move {
            service
                .user_by_username(&Caller::Operator, name)
                .await
                .unwrap()
        }
    };
    let (alice, bob, carol) = (user("alice").await, user("bob").await, user("carol").await);
    for (owner, token) in [(None, "ghp_global"), (Some(carol.id), "ghp_carol")] {
        app.service
            .create_credential(
                &operator,
                CreateCredential {
                    user: owner,
                    kind: CodeHostKind::GitHub,
                    url: url.clone(),
                    username: None,
                    token: token.into(),
                    repository: None,
                },
            )
            .await
            .unwrap();
    }
    let host_uuid = app
        .service
        .code_host_by_url(&operator, &url)
        .await
        .unwrap()
        .id
        .to_string();
    Setup {
        app,
        admin,
        emulator,
        url,
        host,
        host_uuid,
        alice,
        bob,
        carol,
    }
}

impl Setup {
    async fn resolve(
        &self,
        user: &UserAccount,
        repository: &str,
    ) -> Result<CredentialSource, Error> {
        let url = CodeHostUrl::parse(&self.url).unwrap();
        self.app
            .service
            .resolve_credential(&Caller::User(user.clone()), user.id, &url, repository)
            .await
            .map(|resolved| resolved.source)
    }
}

async fn selected_users_and_repository_patterns(backend: Backend) {
    let s = setup(backend).await;
    let requests_before = s.emulator.seen().len();
    let body = set_policy(
        &s.app,
        &s.admin,
        &s.host,
        "SELECTED",
        Some(&["alice"]),
        Some(&["acme/*", "tools/cli"]),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        policy(&s.app, &s.admin).await,
        json!({ "allowedUsers": "SELECTED", "users": ["alice"], "repositories": ["acme/*", "tools/cli"] })
    );

    // Alice may, on matching repositories only; `*` stops at `/`.
    assert_eq!(
        s.resolve(&s.alice, "acme/x").await.unwrap(),
        CredentialSource::Site
    );
    assert_eq!(
        s.resolve(&s.alice, "tools/cli").await.unwrap(),
        CredentialSource::Site
    );
    for repository in ["other/x", "acme/sub/x", "tools/cli2"] {
        let error = s.resolve(&s.alice, repository).await.unwrap_err();
        assert!(matches!(error, Error::Forbidden(_)), "{error}");
        assert_eq!(
            error.to_string(),
            refusal(
                &s.url,
                &format!("for {repository}"),
                "repositories acme/*, tools/cli"
            )
        );
    }
    // Bob is not among the selected users.
    let error = s.resolve(&s.bob, "acme/x").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        refusal(&s.url, "by bob", "only selected users")
    );
    // Carol's own token is used whatever the policy says.
    assert_eq!(
        s.resolve(&s.carol, "other/x").await.unwrap(),
        CredentialSource::User
    );
    set_policy(&s.app, &s.admin, &s.host, "NOBODY", None, None).await;
    assert_eq!(
        s.resolve(&s.carol, "other/x").await.unwrap(),
        CredentialSource::User
    );
    assert!(s.resolve(&s.alice, "acme/x").await.is_err());

    // Deciding asked the code host nothing.
    assert_eq!(s.emulator.seen().len(), requests_before);

    // Back to everyone: any repository again.
    set_policy(&s.app, &s.admin, &s.host, "EVERYONE", None, None).await;
    assert_eq!(
        s.resolve(&s.bob, "other/x").await.unwrap(),
        CredentialSource::Site
    );
}

async fn only_site_admins_set_it_and_bad_input_changes_nothing(backend: Backend) {
    let s = setup(backend).await;
    let alice = s.app.sign_in_with_token("alice").await;
    set_policy(
        &s.app,
        &s.admin,
        &s.host,
        "SELECTED",
        Some(&["bob"]),
        Some(&["acme/*"]),
    )
    .await;
    let before = policy(&s.app, &s.admin).await;

    let body = set_policy(&s.app, &alice, &s.host, "EVERYONE", None, None).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    // Nor may she read it.
    let body = s.app.graphql(&alice.auth, POLICIES, json!({})).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");

    // (allowedUsers, users, repositories, what the error says)
    let bad: [(&str, Names, Names, &str); 8] = [
        ("EVERYONE", None, Some(&[""]), "may not be empty"),
        (
            "EVERYONE",
            None,
            Some(&["acme/ *"]),
            "spaces or control characters",
        ),
        (
            "EVERYONE",
            None,
            Some(&[" acme/*"]),
            "spaces or control characters",
        ),
        (
            "EVERYONE",
            None,
            Some(&["acme/\u{7}"]),
            "spaces or control characters",
        ),
        ("EVERYONE", None, Some(&["acme/["]), "not a valid glob"),
        (
            "SELECTED",
            Some(&["alice", "mallory"]),
            None,
            "unknown user: \"mallory\"",
        ),
        ("SELECTED", Some(&[]), None, "at least one user"),
        ("NOBODY", Some(&["alice"]), None, "only when"),
    ];
    for (allowed, users, repositories, message) in bad {
        let body = set_policy(&s.app, &s.admin, &s.host, allowed, users, repositories).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
        assert!(error_message(&body).contains(message), "{message}: {body}");
        assert_eq!(policy(&s.app, &s.admin).await, before);
    }

    // The web form: 404 for Alice, 422 for a bad pattern, all or nothing.
    let path = format!("/site-admin/code-hosts/{}", s.host_uuid);
    let edit = |users: &'static str, names: &'static str, repositories: &'static str| {
        vec![
            ("git_url_type", "http"),
            ("ssh_key_algorithm", "ed25519"),
            ("ssh_known_hosts", ""),
            ("policy_users", users),
            ("policy_usernames", names),
            ("policy_repositories", repositories),
        ]
    };
    let browser = Browser::signed_in(&s.app, "alice").await;
    let csrf = browser.csrf(SETTINGS).await;
    let mut fields = edit("everyone", "", "");
    fields.push(("csrf", &csrf));
    let (status, _) = browser.post(&path, &fields).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(policy(&s.app, &s.admin).await, before);

    let admin = Browser::signed_in(&s.app, "admin").await;
    let (status, page) = admin.get("/site-admin/code-hosts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("bob; repositories acme/*"), "{page}");
    let (_, dialog) = admin
        .get(&format!("/site-admin/code-hosts?edit={}", s.host_uuid))
        .await;
    assert!(dialog.contains(r#"value="selected" checked"#), "{dialog}");
    let csrf = admin.csrf("/site-admin/code-hosts").await;
    // A host key that does not parse and a good policy: neither is saved.
    let mut fields = edit("nobody", "", "acme/*");
    fields.retain(|(k, _)| *k != "ssh_known_hosts");
    fields.push(("ssh_known_hosts", "not a host key"));
    fields.push(("csrf", &csrf));
    let (status, page) = admin.post(&path, &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert_eq!(policy(&s.app, &s.admin).await, before);
    let mut fields = edit("everyone", "", "acme/*\nbad pattern");
    fields.push(("csrf", &csrf));
    let (status, page) = admin.post(&path, &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("may not contain spaces"), "{page}");
    assert_eq!(policy(&s.app, &s.admin).await, before);
    let mut fields = edit("selected", "mallory", "");
    fields.push(("csrf", &csrf));
    let (status, page) = admin.post(&path, &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("unknown user"), "{page}");
    // Good input: saved, with the list typed as lines and commas.
    let mut fields = edit("selected", "alice, carol", "acme/*\ntools/*, other/x");
    fields.push(("csrf", &csrf));
    let (status, page) = admin.post(&path, &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(
        policy(&s.app, &s.admin).await,
        json!({ "allowedUsers": "SELECTED", "users": ["alice", "carol"],
                "repositories": ["acme/*", "tools/*", "other/x"] })
    );
}

async fn users_see_that_a_site_credential_exists_not_its_details(backend: Backend) {
    let s = setup(backend).await;
    // A GitLab host over SSH, so the global credential carries a key.
    let gitlab = s.emulator.url("gitlab");
    s.app
        .add_code_host(&s.admin, "GITLAB", &gitlab, "SSH")
        .await;
    s.emulator
        .add_token("glpat-global", EmulatedToken::new("gl-bot", GITLAB_SCOPES));
    s.app
        .service
        .create_credential(
            &Caller::Operator,
            CreateCredential {
                user: None,
                kind: CodeHostKind::GitLab,
                url: gitlab.clone(),
                username: None,
                token: "glpat-global".into(),
                repository: None,
            },
        )
        .await
        .unwrap();
    // The GitHub service account's token was revoked: its last check fails.
    s.emulator.update_token("ghp_global", |t| t.revoked = true);
    let site = s
        .app
        .service
        .site_code_hosts(
            &Caller::Operator,
            &batchcred::service::PageRequest::default(),
        )
        .await
        .unwrap();
    for view in site.items {
        let credential = view.credential.unwrap();
        let _ = s
            .app
            .service
            .check_credential(&Caller::Operator, credential.id, &Default::default())
            .await;
    }

    const DETAILS: &str = "query($user: ID!) { node(id: $user) { ... on User { batchChangesCodeHosts { nodes { \
        externalServiceURL credential { isSiteCredential externalServiceKind externalServiceURL sshPublicKey \
        codeHostUser scopes expiresAt warnings lastCheckedAt lastCheckError needsAttention username sshKeyPending } } } } } }";
    let view = |auth: TestUser| {
        let app = &s.app;
        async move {
            let data = app
                .graphql_ok(&auth.auth, DETAILS, json!({ "user": auth.id }))
                .await;
            data["node"]["batchChangesCodeHosts"]["nodes"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let bob = s.app.sign_in_with_token("bob").await;
    let hosts = view(bob.clone()).await;
    assert_eq!(hosts.len(), 2);
    for host in &hosts {
        let c = &host["credential"];
        assert_eq!(c["isSiteCredential"], true, "{host}");
        assert_eq!(c["externalServiceURL"], host["externalServiceURL"]);
        for hidden in [
            "codeHostUser",
            "scopes",
            "expiresAt",
            "lastCheckedAt",
            "lastCheckError",
            "username",
        ] {
            assert_eq!(c[hidden], Value::Null, "{hidden} shown to a user: {host}");
        }
        assert_eq!(c["warnings"], json!([]));
        assert_eq!(c["needsAttention"], false);
    }
    assert_eq!(hosts[0]["credential"]["sshPublicKey"], Value::Null);
    assert!(
        hosts[1]["credential"]["sshPublicKey"]
            .as_str()
            .unwrap()
            .starts_with("ssh-ed25519 ")
    );
    // The site admin's own list shows everything.
    let hosts = view(s.admin.clone()).await;
    assert_eq!(hosts[0]["credential"]["codeHostUser"], "batch-bot");
    assert!(hosts[0]["credential"]["lastCheckError"].is_string());
    assert_eq!(hosts[1]["credential"]["codeHostUser"], "gl-bot");
    assert!(hosts[1]["credential"]["scopes"].is_array());

    // The web page: the notice for both, the account and error for the
    // admin only, the public key for both.
    let public_key = view(bob.clone()).await[1]["credential"]["sshPublicKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_page = Browser::signed_in(&s.app, "bob")
        .await
        .get(SETTINGS)
        .await
        .1;
    let admin_page = Browser::signed_in(&s.app, "admin")
        .await
        .get(SETTINGS)
        .await
        .1;
    for page in [&bob_page, &admin_page] {
        assert_eq!(page.matches("A global token is configured").count(), 2);
        assert!(page.contains(&public_key));
    }
    for detail in ["batch-bot", "gl-bot", "rejected", "its last check failed"] {
        assert!(!bob_page.contains(detail), "{detail} shown to bob");
    }
    assert!(admin_page.contains("batch-bot") && admin_page.contains("its last check failed"));

    // Where the policy keeps Bob from the global token, it does not cover
    // him: his list offers him to add his own.
    set_policy(
        &s.app,
        &s.admin,
        &s.host,
        "SELECTED",
        Some(&["alice"]),
        None,
    )
    .await;
    let hosts = view(bob.clone()).await;
    assert_eq!(hosts[0]["credential"], Value::Null);
    assert_eq!(hosts[1]["credential"]["isSiteCredential"], true);
    let alice = s.app.sign_in_with_token("alice").await;
    assert_eq!(view(alice).await[0]["credential"]["isSiteCredential"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_and_lists_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&batchcred(
        &data,
        &["users", "create", "--admin", "admin"],
        "long password\n",
    ));
    ok(&batchcred(
        &data,
        &["users", "create", "bob"],
        "long password\n",
    ));
    let url = "https://github.example.com";
    ok(&batchcred(
        &data,
        &["codehosts", "add", "--kind", "GITHUB", "--url", url],
        "",
    ));
    let listed = ok(&batchcred(&data, &["codehosts", "list"], ""));
    assert!(listed.contains("everyone; any repository"), "{listed}");

    let out = ok(&batchcred(
        &data,
        &[
            "codehosts",
            "policy",
            "--url",
            url,
            "--users",
            "bob",
            "--repositories",
            "acme/*,tools/cli",
        ],
        "",
    ));
    assert!(out.contains("bob; repositories acme/*, tools/cli"), "{out}");
    // Unknown users and bad patterns are refused; nothing changes.
    for args in [
        &["--users", "bob,mallory"][..],
        &["--everyone", "--repositories", "acme/[x"][..],
        &["--nobody", "--everyone"][..],
    ] {
        let mut argv = vec!["codehosts", "policy", "--url", url];
        argv.extend_from_slice(args);
        let output = batchcred(&data, &argv, "");
        assert!(!output.status.success(), "{args:?}");
    }
    let listed = ok(&batchcred(&data, &["codehosts", "list"], ""));
    assert!(
        listed.contains("bob; repositories acme/*, tools/cli"),
        "{listed}"
    );
    ok(&batchcred(
        &data,
        &["codehosts", "policy", "--url", url, "--nobody"],
        "",
    ));
    let listed = ok(&batchcred(&data, &["codehosts", "list"], ""));
    assert!(listed.contains(" nobody"), "{listed}");
}
