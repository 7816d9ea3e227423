//! The reference product's current web client lists code hosts with these
//! operations, sent here verbatim: they must validate and answer.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, spawn_app};

both_backends!(reference_client_lists_code_hosts_for_users_and_site_admins);

const CODE_HOST_FIELDS_FRAGMENT: &str = r#"
    fragment BatchChangesCodeHostsFields on BatchChangesCodeHostConnection {
        totalCount
        pageInfo {
            hasNextPage
            endCursor
        }
        nodes {
            ...BatchChangesCodeHostFields
        }
    }

    fragment BatchChangesCodeHostFields on BatchChangesCodeHost {
        externalServiceKind
        externalServiceURL
        requiresSSH
        requiresUsername
        supportsCommitSigning
        credential {
            ...BatchChangesCredentialFields
        }
        commitSigningConfiguration {
            ... on GitHubApp {
                id
                appID
                name
                appURL
                baseURL
                logo
            }
        }
    }

    fragment BatchChangesCredentialFields on BatchChangesCredential {
        id
        sshPublicKey
        isSiteCredential
    }
"#;

const USER_CODE_HOSTS: &str = r#"
    query UserBatchChangesCodeHosts($user: ID!, $first: Int, $after: String) {
        node(id: $user) {
            __typename
            ... on User {
                batchChangesCodeHosts(first: $first, after: $after) {
                    ...BatchChangesCodeHostsFields
                }
            }
        }
    }
"#;

const GLOBAL_CODE_HOSTS: &str = r#"
    query GlobalBatchChangesCodeHosts($first: Int, $after: String) {
        batchChangesCodeHosts(first: $first, after: $after) {
            ...BatchChangesCodeHostsFields
        }
    }
"#;

fn assert_listed(connection: &Value, expected_url: &str) {
    assert_eq!(connection["totalCount"], 1, "{connection}");
    let node = &connection["nodes"][0];
    assert_eq!(node["externalServiceKind"], "GITHUB");
    assert_eq!(node["externalServiceURL"], expected_url);
    // GitHub verifies SSH-signed commits, which batchcred can make.
    assert_eq!(node["supportsCommitSigning"], true);
    assert!(node["commitSigningConfiguration"].is_null(), "{node}");
}

async fn reference_client_lists_code_hosts_for_users_and_site_admins(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let alice = app.create_user(&admin, "alice").await;
    let github = app.codehosts.url("github");
    app.add_code_host(&admin, "GITHUB", &github, "HTTP").await;

    let user_query = format!("{USER_CODE_HOSTS}{CODE_HOST_FIELDS_FRAGMENT}");
    let data = app
        .graphql_ok(
            &alice.auth,
            &user_query,
            json!({ "user": alice.id, "first": 15, "after": null }),
        )
        .await;
    assert_eq!(data["node"]["__typename"], "User");
    assert_listed(&data["node"]["batchChangesCodeHosts"], &github);

    let global_query = format!("{GLOBAL_CODE_HOSTS}{CODE_HOST_FIELDS_FRAGMENT}");
    let data = app
        .graphql_ok(
            &admin.auth,
            &global_query,
            json!({ "first": 30, "after": null }),
        )
        .await;
    assert_listed(&data["batchChangesCodeHosts"], &github);
}
