//! The authorization matrix: anonymous, user A, user B and a site admin
//! against every operation. Each cell gets fresh targets, made by the
//! admin, so outcomes are independent of each other.

use serde_json::{Value, json};

use crate::helpers::{Auth, Backend, TestApp, TestUser, error_code, spawn_app, unique_token};

/// What a caller should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    /// `node(id:)` answers null: indistinguishable from a missing id.
    Null,
    Denied(&'static str),
}

use Outcome::{Allowed, Denied, Null};

const UNAUTH: Outcome = Denied("UNAUTHENTICATED");
const FORBIDDEN: Outcome = Denied("FORBIDDEN");
const NOT_FOUND: Outcome = Denied("NOT_FOUND");

#[derive(Debug, Clone, Copy)]
enum Operation {
    ViewUserCodeHosts,
    ViewSiteCodeHosts,
    CreateUserCredential,
    CreateSiteCredential,
    ViewUserCredential,
    CheckUserCredential,
    DeleteUserCredential,
    DeleteSiteCredential,
    AddCodeHost,
    DeleteCodeHost,
    ListUsers,
    CreateUser,
    CreateAccessTokenForA,
}

/// Expected outcome for [anonymous, A, B, admin]; A owns the targets.
fn expected(operation: Operation) -> [Outcome; 4] {
    use Operation::*;
    match operation {
        ViewUserCodeHosts | ViewUserCredential => [UNAUTH, Allowed, Null, Allowed],
        CreateUserCredential | CheckUserCredential | DeleteUserCredential => {
            [UNAUTH, Allowed, NOT_FOUND, Allowed]
        }
        // Tokens are minted for yourself only, site admins included.
        CreateAccessTokenForA => [UNAUTH, Allowed, NOT_FOUND, FORBIDDEN],
        DeleteSiteCredential => [UNAUTH, NOT_FOUND, NOT_FOUND, Allowed],
        ViewSiteCodeHosts | CreateSiteCredential | AddCodeHost | DeleteCodeHost | ListUsers
        | CreateUser => [UNAUTH, FORBIDDEN, FORBIDDEN, Allowed],
    }
}

struct Fixture {
    app: TestApp,
    admin: TestUser,
    alice: TestUser,
}

impl Fixture {
    /// A fresh code host only this cell uses.
    async fn fresh_host(&self) -> (String, String) {
        let url = self
            .app
            .codehosts
            .url(&uuid::Uuid::new_v4().simple().to_string());
        let id = self
            .app
            .add_code_host(&self.admin, "GITHUB", &url, "HTTP")
            .await;
        (id, url)
    }

    /// A fresh credential on a fresh host: Alice's, or the site's.
    async fn fresh_credential(&self, site: bool) -> String {
        let (_, url) = self.fresh_host().await;
        let user = (!site).then_some(self.alice.id.as_str());
        let created = self
            .app
            .create_credential(
                &self.admin.auth,
                user,
                "GITHUB",
                &url,
                &unique_token("ghp_"),
            )
            .await;
        created["data"]["createBatchChangesCredential"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{created}"))
            .to_owned()
    }

    /// Runs the operation as `caller`; returns the response and, for
    /// mutations, whether the change is visible to the admin afterwards.
    async fn run(&self, operation: Operation, caller: &Auth) -> (Value, Option<bool>) {
        use Operation::*;
        let app = &self.app;
        let credential_query = "query($id: ID!) { node(id: $id) { id } }";
        match operation {
            ViewUserCodeHosts => (app.user_code_hosts(caller, &self.alice.id).await, None),
            ViewSiteCodeHosts => (
                app.graphql(
                    caller,
                    "{ batchChangesCodeHosts { totalCount } }",
                    json!({}),
                )
                .await,
                None,
            ),
            CreateUserCredential | CreateSiteCredential => {
                let (_, url) = self.fresh_host().await;
                let user =
                    matches!(operation, CreateUserCredential).then_some(self.alice.id.as_str());
                let body = app
                    .create_credential(caller, user, "GITHUB", &url, &unique_token("ghp_"))
                    .await;
                let id = body["data"]["createBatchChangesCredential"]["id"].clone();
                let exists = !id.is_null()
                    && !app
                        .graphql_ok(&self.admin.auth, credential_query, json!({ "id": id }))
                        .await["node"]
                        .is_null();
                (body, Some(exists))
            }
            ViewUserCredential => {
                let id = self.fresh_credential(false).await;
                (
                    app.graphql(caller, credential_query, json!({ "id": id }))
                        .await,
                    None,
                )
            }
            CheckUserCredential => {
                let id = self.fresh_credential(false).await;
                let query = "query($id: ID!) { checkBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }";
                (app.graphql(caller, query, json!({ "id": id })).await, None)
            }
            DeleteUserCredential | DeleteSiteCredential => {
                let id = self
                    .fresh_credential(matches!(operation, DeleteSiteCredential))
                    .await;
                let body = app
                    .graphql(
                        caller,
                        "mutation($id: ID!) { deleteBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }",
                        json!({ "id": id }),
                    )
                    .await;
                let gone = app
                    .graphql_ok(&self.admin.auth, credential_query, json!({ "id": id }))
                    .await["node"]
                    .is_null();
                (body, Some(gone))
            }
            AddCodeHost => {
                let url = format!("https://{}.example.com", uuid::Uuid::new_v4().simple());
                let body = app
                    .graphql(
                        caller,
                        "mutation($u: String!) { addCodeHost(kind: GITLAB, url: $u) { id } }",
                        json!({ "u": url }),
                    )
                    .await;
                let hosts = app
                    .graphql_ok(
                        &self.admin.auth,
                        "{ codeHosts(first: 1000) { nodes { url } } }",
                        json!({}),
                    )
                    .await;
                let added = hosts["codeHosts"]["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["url"] == url.as_str());
                (body, Some(added))
            }
            DeleteCodeHost => {
                let (id, url) = self.fresh_host().await;
                let body = app
                    .graphql(
                        caller,
                        "mutation($id: ID!) { deleteCodeHost(id: $id) { alwaysNil } }",
                        json!({ "id": id }),
                    )
                    .await;
                let hosts = app
                    .graphql_ok(
                        &self.admin.auth,
                        "{ codeHosts(first: 1000) { nodes { url } } }",
                        json!({}),
                    )
                    .await;
                let gone = !hosts["codeHosts"]["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["url"] == url.as_str());
                (body, Some(gone))
            }
            ListUsers => (
                app.graphql(caller, "{ users { totalCount } }", json!({}))
                    .await,
                None,
            ),
            CreateUser => {
                let name = format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                let body = app
                    .graphql(
                        caller,
                        "mutation($u: String!) { createUser(username: $u, password: \"long enough\") { id } }",
                        json!({ "u": name }),
                    )
                    .await;
                let users = app
                    .graphql_ok(
                        &self.admin.auth,
                        "{ users(first: 1000) { nodes { username } } }",
                        json!({}),
                    )
                    .await;
                let created = users["users"]["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|u| u["username"] == name.as_str());
                (body, Some(created))
            }
            CreateAccessTokenForA => (
                app.graphql(
                    caller,
                    "mutation($u: ID!) { createAccessToken(user: $u, note: \"m\") { token } }",
                    json!({ "u": self.alice.id }),
                )
                .await,
                None,
            ),
        }
    }
}

fn outcome_of(operation: Operation, body: &Value) -> Outcome {
    if let Some(code) = error_code(body) {
        return match code {
            "UNAUTHENTICATED" => UNAUTH,
            "FORBIDDEN" => FORBIDDEN,
            "NOT_FOUND" => NOT_FOUND,
            other => panic!("unexpected error code {other}: {body}"),
        };
    }
    match operation {
        Operation::ViewUserCodeHosts | Operation::ViewUserCredential
            if body["data"]["node"].is_null() =>
        {
            Null
        }
        _ => Allowed,
    }
}

async fn authorization_matrix(backend: Backend) {
    use Operation::*;
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    let alice = app.create_user(&admin, "alice").await;
    let bob = app.create_user(&admin, "bob").await;
    let callers = [
        ("anonymous", Auth::Anonymous),
        ("A", alice.auth.clone()),
        ("B", bob.auth.clone()),
        ("admin", admin.auth.clone()),
    ];
    let fixture = Fixture { app, admin, alice };
    let operations = [
        ViewUserCodeHosts,
        ViewSiteCodeHosts,
        CreateUserCredential,
        CreateSiteCredential,
        ViewUserCredential,
        CheckUserCredential,
        DeleteUserCredential,
        DeleteSiteCredential,
        AddCodeHost,
        DeleteCodeHost,
        ListUsers,
        CreateUser,
        CreateAccessTokenForA,
    ];
    let mut failures = Vec::new();
    for operation in operations {
        for ((name, auth), want) in callers.iter().zip(expected(operation)) {
            let (body, changed) = fixture.run(operation, auth).await;
            let got = outcome_of(operation, &body);
            if got != want {
                failures.push(format!(
                    "{operation:?} as {name}: expected {want:?}, got {got:?}: {body}"
                ));
            }
            // A refused mutation must change nothing; an allowed one must.
            if let Some(changed) = changed
                && changed != (want == Allowed)
            {
                failures.push(format!(
                    "{operation:?} as {name}: state changed = {changed}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization failures:\n{}",
        failures.join("\n")
    );
}

crate::both_backends!(authorization_matrix);
