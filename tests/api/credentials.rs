//! Storing, listing, resolving and removing credentials.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    Backend, CREATE_CREDENTIAL, TestApp, TestUser, error_code, error_message, post_graphql,
    spawn_app, unique_token,
};

both_backends!(
    user_credential_turns_indicator_green_and_removal_turns_it_red,
    global_credential_covers_users_without_their_own,
    ssh_code_hosts_generate_a_keypair_shown_now_and_later,
    switching_a_code_host_to_ssh_gives_existing_credentials_keys,
    duplicate_and_concurrent_creates_leave_exactly_one,
    bad_credential_input_changes_nothing,
    code_host_pages_and_cascading_delete,
);

/// The URLs of two emulated code hosts.
fn urls(app: &TestApp) -> (String, String) {
    (app.codehosts.url("github"), app.codehosts.url("gitlab"))
}

async fn setup(backend: Backend) -> (TestApp, TestUser, TestUser) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let alice = app.create_user(&admin, "alice").await;
    (app, admin, alice)
}

/// The credential shown for each code host URL in a user's list.
fn credentials_by_url(body: &Value) -> Vec<(String, Value)> {
    body["data"]["node"]["batchChangesCodeHosts"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no code hosts in {body}"))
        .iter()
        .map(|n| {
            (
                n["externalServiceURL"].as_str().unwrap().to_owned(),
                n["credential"].clone(),
            )
        })
        .collect()
}

async fn user_credential_turns_indicator_green_and_removal_turns_it_red(backend: Backend) {
    let (app, admin, alice) = setup(backend).await;
    let (github, gitlab) = urls(&app);
    app.add_code_host(&admin, "GITHUB", github.as_str(), "HTTP")
        .await;
    app.add_code_host(&admin, "GITLAB", gitlab.as_str(), "HTTP")
        .await;

    let before = credentials_by_url(&app.user_code_hosts(&alice.auth, &alice.id).await);
    assert_eq!(before.len(), 2);
    assert!(before.iter().all(|(_, c)| c.is_null()), "{before:?}");

    // The URL is matched after normalisation.
    let created = app
        .create_credential(
            &alice.auth,
            Some(&alice.id),
            "GITHUB",
            &format!("HTTP://{}/github/", app.codehosts.address),
            &unique_token("ghp_"),
        )
        .await;
    let credential = &created["data"]["createBatchChangesCredential"];
    assert_eq!(credential["isSiteCredential"], false, "{created}");
    assert_eq!(credential["sshPublicKey"], Value::Null);

    let after = credentials_by_url(&app.user_code_hosts(&alice.auth, &alice.id).await);
    assert_eq!(after[0].0, github.as_str());
    assert_eq!(after[0].1["id"], credential["id"]);
    assert!(after[1].1.is_null());

    let deleted = app
        .graphql_ok(
            &alice.auth,
            "mutation($id: ID!) { deleteBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }",
            json!({ "id": credential["id"] }),
        )
        .await;
    assert_eq!(
        deleted["deleteBatchChangesCredential"]["alwaysNil"],
        Value::Null
    );
    let removed = credentials_by_url(&app.user_code_hosts(&alice.auth, &alice.id).await);
    assert!(removed.iter().all(|(_, c)| c.is_null()));
    assert_eq!(app.count_credentials().await, 0);

    let again = app
        .graphql(
            &alice.auth,
            "mutation($id: ID!) { deleteBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }",
            json!({ "id": credential["id"] }),
        )
        .await;
    assert_eq!(error_code(&again), Some("NOT_FOUND"));
}

async fn global_credential_covers_users_without_their_own(backend: Backend) {
    let (app, admin, alice) = setup(backend).await;
    let github = app.codehosts.url("github");
    app.add_code_host(&admin, "GITHUB", github.as_str(), "HTTP")
        .await;
    let global = app
        .create_credential(
            &admin.auth,
            None,
            "GITHUB",
            github.as_str(),
            &unique_token("ghp_"),
        )
        .await;
    let global_id = global["data"]["createBatchChangesCredential"]["id"].clone();
    assert_eq!(
        global["data"]["createBatchChangesCredential"]["isSiteCredential"],
        true
    );

    // Alice has none of her own: she sees the global one, marked as such.
    let seen = credentials_by_url(&app.user_code_hosts(&alice.auth, &alice.id).await);
    assert_eq!(seen[0].1["id"], global_id);
    assert_eq!(seen[0].1["isSiteCredential"], true);

    // Her own token takes precedence once added.
    let own = app
        .create_credential(
            &alice.auth,
            Some(&alice.id),
            "GITHUB",
            github.as_str(),
            &unique_token("ghp_"),
        )
        .await;
    let seen = credentials_by_url(&app.user_code_hosts(&alice.auth, &alice.id).await);
    assert_eq!(
        seen[0].1["id"],
        own["data"]["createBatchChangesCredential"]["id"]
    );
    assert_eq!(seen[0].1["isSiteCredential"], false);

    // The site view shows only the global credential.
    let site = app
        .graphql_ok(
            &admin.auth,
            "{ batchChangesCodeHosts { totalCount nodes { credential { id isSiteCredential } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        site["batchChangesCodeHosts"]["nodes"][0]["credential"]["id"],
        global_id
    );

    // Alice cannot delete the global credential: it does not exist for her.
    let attempt = app
        .graphql(
            &alice.auth,
            "mutation($id: ID!) { deleteBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }",
            json!({ "id": global_id }),
        )
        .await;
    assert_eq!(error_code(&attempt), Some("NOT_FOUND"));
    assert_eq!(app.count_credentials().await, 2);
}

async fn ssh_code_hosts_generate_a_keypair_shown_now_and_later(backend: Backend) {
    let (app, admin, alice) = setup(backend).await;
    let gitlab = app.codehosts.url("gitlab");
    app.add_code_host(&admin, "GITLAB", gitlab.as_str(), "SSH")
        .await;
    let created = app
        .create_credential(
            &alice.auth,
            Some(&alice.id),
            "GITLAB",
            gitlab.as_str(),
            &unique_token("glpat-"),
        )
        .await;
    let credential = &created["data"]["createBatchChangesCredential"];
    let public_key = credential["sshPublicKey"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    assert!(public_key.starts_with("ssh-ed25519 AAAA"), "{public_key}");
    assert!(
        public_key.ends_with(" batchcred@batchcred.test"),
        "{public_key}"
    );

    let listed = app.user_code_hosts(&alice.auth, &alice.id).await;
    let host = &listed["data"]["node"]["batchChangesCodeHosts"]["nodes"][0];
    assert_eq!(host["requiresSSH"], true);
    assert_eq!(host["credential"]["sshPublicKey"], public_key);

    let node = app
        .graphql_ok(
            &alice.auth,
            "query($id: ID!) { node(id: $id) { ... on BatchChangesCredential { sshPublicKey sshKeyPending } } }",
            json!({ "id": credential["id"] }),
        )
        .await;
    assert_eq!(node["node"]["sshPublicKey"], public_key);
    assert_eq!(node["node"]["sshKeyPending"], false);
}

async fn switching_a_code_host_to_ssh_gives_existing_credentials_keys(backend: Backend) {
    let (app, admin, alice) = setup(backend).await;
    let github = app.codehosts.url("github");
    let host_id = app
        .add_code_host(&admin, "GITHUB", github.as_str(), "HTTP")
        .await;
    let created = app
        .create_credential(
            &alice.auth,
            Some(&alice.id),
            "GITHUB",
            github.as_str(),
            &unique_token("ghp_"),
        )
        .await;
    let id = created["data"]["createBatchChangesCredential"]["id"].clone();
    app.graphql_ok(
        &admin.auth,
        "mutation($id: ID!) { updateCodeHost(id: $id, gitURLType: SSH) { gitURLType } }",
        json!({ "id": host_id }),
    )
    .await;
    let query = "query($id: ID!) { node(id: $id) { ... on BatchChangesCredential { sshPublicKey sshKeyPending } } }";
    let node = app
        .graphql_ok(&alice.auth, query, json!({ "id": id }))
        .await;
    assert!(
        node["node"]["sshPublicKey"]
            .as_str()
            .unwrap()
            .starts_with("ssh-ed25519 ")
    );
    assert_eq!(node["node"]["sshKeyPending"], true);

    let confirmed = app
        .graphql_ok(
            &alice.auth,
            "mutation($id: ID!) { confirmBatchChangesCredentialSSHKey(batchChangesCredential: $id) { sshKeyPending } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        confirmed["confirmBatchChangesCredentialSSHKey"]["sshKeyPending"],
        false
    );
    let check = app
        .graphql_ok(
            &alice.auth,
            "query($id: ID!) { checkBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        check["checkBatchChangesCredential"]["alwaysNil"],
        Value::Null
    );
}

async fn duplicate_and_concurrent_creates_leave_exactly_one(backend: Backend) {
    let (app, admin, alice) = setup(backend).await;
    let github = app.codehosts.url("github");
    app.add_code_host(&admin, "GITHUB", github.as_str(), "HTTP")
        .await;
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (url, auth, user, github) = (
            app.url("/.api/graphql"),
            alice.auth.clone(),
            alice.id.clone(),
            github.clone(),
        );
        attempts.spawn(async move {
            post_graphql(
                &url,
                &auth,
                CREATE_CREDENTIAL,
                json!({
                    "user": user, "k": "GITHUB", "u": github, "c": "ghp_concurrent",
                }),
            )
            .await
        });
    }
    let results = attempts.join_all().await;
    let successes = results.iter().filter(|r| r.get("errors").is_none()).count();
    assert_eq!(successes, 1, "{results:?}");
    for failure in results.iter().filter(|r| r.get("errors").is_some()) {
        assert_eq!(error_code(failure), Some("CONFLICT"), "{failure}");
        assert!(error_message(failure).contains("already exists"));
    }
    assert_eq!(app.count_credentials().await, 1);
}

async fn bad_credential_input_changes_nothing(backend: Backend) {
    let (app, admin, alice) = setup(backend).await;
    let github = app.codehosts.url("github");
    app.add_code_host(&admin, "GITHUB", github.as_str(), "HTTP")
        .await;
    let cases = [
        (
            "GITHUB",
            "https://unknown.example.com",
            "ghp_x",
            "NOT_FOUND",
            "unknown code host",
        ),
        ("GITHUB", github.as_str(), "", "BAD_USER_INPUT", "empty"),
        ("GITHUB", github.as_str(), "   ", "BAD_USER_INPUT", "empty"),
        (
            "GITHUB",
            github.as_str(),
            "ghp_has space",
            "BAD_USER_INPUT",
            "whitespace",
        ),
        (
            "GITLAB",
            github.as_str(),
            "ghp_x",
            "BAD_USER_INPUT",
            "not GITLAB",
        ),
        (
            "GITHUB",
            "not a url",
            "ghp_x",
            "BAD_USER_INPUT",
            "invalid code host URL",
        ),
    ];
    for (kind, url, token, code, message) in cases {
        let body = app
            .create_credential(&alice.auth, Some(&alice.id), kind, url, token)
            .await;
        assert_eq!(
            error_code(&body),
            Some(code),
            "{kind} {url} {token:?}: {body}"
        );
        assert!(error_message(&body).contains(message), "{body}");
    }
    let oversized = "x".repeat(2000);
    let body = app
        .create_credential(
            &alice.auth,
            Some(&alice.id),
            "GITHUB",
            github.as_str(),
            &oversized,
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));
    assert!(!body.to_string().contains(&oversized));

    let malformed_id = app
        .graphql(
            &alice.auth,
            "mutation { deleteBatchChangesCredential(batchChangesCredential: \"nonsense\") { alwaysNil } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&malformed_id), Some("BAD_USER_INPUT"));
    assert_eq!(app.count_credentials().await, 0);
}

async fn code_host_pages_and_cascading_delete(backend: Backend) {
    let (app, admin, alice) = setup(backend).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            app.add_code_host(
                &admin,
                "GITHUB",
                &app.codehosts.url(&format!("ghe{n}")),
                "HTTP",
            )
            .await,
        );
    }
    let duplicate = app
        .graphql(
            &admin.auth,
            "mutation($u: String!) { addCodeHost(kind: GITHUB, url: $u) { id } }",
            json!({ "u": format!("HTTP://{}/ghe0/", app.codehosts.address) }),
        )
        .await;
    assert_eq!(error_code(&duplicate), Some("CONFLICT"));

    let query = "query($user: ID!, $after: String) { node(id: $user) { ... on User { \
                 batchChangesCodeHosts(first: 2, after: $after) { totalCount \
                 pageInfo { hasNextPage endCursor } nodes { externalServiceURL } } } } }";
    let first = app
        .graphql_ok(&alice.auth, query, json!({ "user": alice.id }))
        .await;
    let page = &first["node"]["batchChangesCodeHosts"];
    assert_eq!(page["totalCount"], 3);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    assert_eq!(page["nodes"].as_array().unwrap().len(), 2);
    let second = app
        .graphql_ok(
            &alice.auth,
            query,
            json!({ "user": alice.id, "after": page["pageInfo"]["endCursor"] }),
        )
        .await;
    let page = &second["node"]["batchChangesCodeHosts"];
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
    assert_eq!(
        page["nodes"][0]["externalServiceURL"],
        app.codehosts.url("ghe2")
    );

    app.create_credential(
        &alice.auth,
        Some(&alice.id),
        "GITHUB",
        &app.codehosts.url("ghe0"),
        "ghp_x",
    )
    .await;
    assert_eq!(app.count_credentials().await, 1);
    app.graphql_ok(
        &admin.auth,
        "mutation($id: ID!) { deleteCodeHost(id: $id) { alwaysNil } }",
        json!({ "id": ids[0] }),
    )
    .await;
    assert_eq!(app.count_credentials().await, 0);
}

#[tokio::test]
async fn rsa_keys_can_be_chosen_per_code_host() {
    let (app, admin, alice) = setup(Backend::Sqlite).await;
    app.graphql_ok(
        &admin.auth,
        "mutation($u: String!) { addCodeHost(kind: BITBUCKETSERVER, url: $u, \
         gitURLType: SSH, sshKeyAlgorithm: RSA_4096) { sshKeyAlgorithm } }",
        json!({ "u": app.codehosts.url("bitbucket") }),
    )
    .await;
    let created = app
        .create_credential(
            &alice.auth,
            Some(&alice.id),
            "BITBUCKETSERVER",
            &app.codehosts.url("bitbucket"),
            "bbtoken",
        )
        .await;
    let key = created["data"]["createBatchChangesCredential"]["sshPublicKey"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    assert!(key.starts_with("ssh-rsa AAAA"), "{key}");
    // A 4096-bit modulus makes the base64 blob about 716 characters.
    assert!(key.split(' ').nth(1).unwrap().len() > 700);
}
