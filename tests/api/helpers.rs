//! Starting the real server for a test, on SQLite or on its own
//! PostgreSQL database, and talking to it.

use std::net::SocketAddr;
use std::time::Duration;

use batchcred::app::Server;
use batchcred::app::ServerConfig;
use batchcred::auth::Caller;
use batchcred::config::{DatabaseUrl, StoreConfig};
use batchcred::crypto::Keyring;
use batchcred::domain::{ChangesetId, ChangesetRecord, JobState};
use batchcred::service::{NotifySettings, PublishSettings, QueueSettings, Service, SignInLimits};

use crate::support::codehost::Emulator;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;

/// The database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use; each test creates its own database.
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Generates `<name>_sqlite` and `<name>_postgres` tests from one async
/// function taking the backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// A running server with its own data.
pub struct TestApp {
    pub address: SocketAddr,
    /// Where `/metrics` is served, when [`AppOptions::metrics`] asked.
    pub metrics_address: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub store: StoreConfig,
    /// The service behind the server, for tests of library functions.
    pub service: Service,
    /// Code hosts (accepting any token) for tests not about validation;
    /// `codehosts.url("name")` is a code host URL.
    pub codehosts: Emulator,
    /// Removed when the app is dropped.
    _data_dir: tempfile::TempDir,
    postgres_database: Option<String>,
    server: tokio::task::JoinHandle<()>,
}

/// Options for [`spawn_app_with`].
pub struct AppOptions {
    pub session_ttl: Duration,
    pub session_idle_timeout: Option<Duration>,
    pub code_host_timeout: Duration,
    pub recheck_interval: Option<Duration>,
    pub audit_retention: Option<Duration>,
    pub publish: PublishSettings,
    /// On PostgreSQL, keep the keyring in a file (`<data dir>/keyring`,
    /// mode 0600) instead of `BATCHCRED_ENCRYPTION_KEY`, so that it can be
    /// rotated. SQLite always uses a file.
    pub keyring_file: bool,
    pub sign_in: SignInLimits,
    pub external_url: url::Url,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Serve `/metrics` on a loopback port of its own.
    pub metrics: bool,
    /// Expiry warnings: sent nowhere unless a test sets a channel.
    pub notify: NotifySettings,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(3600),
            session_idle_timeout: None,
            code_host_timeout: Duration::from_secs(10),
            recheck_interval: None,
            audit_retention: None,
            // Tests run against emulators: no pacing, short waits.
            publish: PublishSettings {
                github_pull_request_interval: Duration::ZERO,
                backoff: batchcred::publish::Backoff {
                    default_wait: Duration::from_secs(1),
                    ..batchcred::publish::Backoff::default()
                },
                queue: QueueSettings {
                    poll_interval: Duration::from_millis(100),
                    retry_base: Duration::from_millis(200),
                    // Tests sync when they mean to.
                    sync_interval: None,
                    ..QueueSettings::default()
                },
                ..PublishSettings::default()
            },
            keyring_file: false,
            sign_in: SignInLimits::default(),
            trusted_proxies: Vec::new(),
            metrics: false,
            notify: NotifySettings::default(),
            external_url: "http://batchcred.test".parse().expect("url"),
        }
    }
}

/// The GraphQL `User` ID of a user.
pub fn graphql_user_id(id: batchcred::domain::UserId) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("User:\"{id}\""))
}

/// The changeset a GraphQL `Changeset` ID names.
pub fn changeset_id_from_graphql(id: &str) -> ChangesetId {
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(id)
        .expect("base64 ID");
    let text = String::from_utf8(decoded).expect("UTF-8 ID");
    let raw = text
        .strip_prefix("Changeset:\"")
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("a Changeset ID");
    raw.parse().expect("a changeset id")
}

/// Waits until the jobs of these changesets have ended (completed or
/// failed), as the server's workers run them; panics after a minute.
pub async fn wait_for_jobs(service: &Service, ids: &[ChangesetId]) -> Vec<ChangesetRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let current = service
            .changesets_by_ids(&Caller::Operator, ids)
            .await
            .expect("read changesets");
        let ended = current
            .iter()
            .all(|c| matches!(c.job_state, JobState::Completed | JobState::Failed));
        if ended && current.len() == ids.len() {
            return current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs did not end: {:?}",
            current
                .iter()
                .map(|c| (c.head_branch.as_str(), c.job_state, c.error.as_deref()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, AppOptions::default()).await
}

/// A new, empty PostgreSQL database; drop it with [`drop_postgres_database`].
pub async fn create_postgres_database() -> String {
    let name = format!("batchcred_test_{}", uuid::Uuid::new_v4().simple());
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(POSTGRES_ADMIN_URL)
        .await
        .expect("PostgreSQL must run on 127.0.0.1:5432 (see README)");
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create test database");
    pool.close().await;
    name
}

pub async fn spawn_app_with(backend: Backend, options: AppOptions) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let (database_url, postgres_database, encryption_key) = match backend {
        Backend::Sqlite => (None, None, None),
        Backend::Postgres => {
            let name = create_postgres_database().await;
            let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
            let keyring = Keyring::generate().expect("keyring");
            (
                Some(DatabaseUrl::parse(&url).expect("url")),
                Some(name),
                Some(SecretString::from(keyring.to_text().as_str())),
            )
        }
    };
    let (encryption_key_file, encryption_key) = match encryption_key {
        Some(_) if options.keyring_file => {
            let path = data_dir.path().join("keyring");
            Keyring::generate()
                .expect("keyring")
                .write_file(&path)
                .expect("write keyring");
            (Some(path), None)
        }
        inline => (None, inline),
    };
    let store = StoreConfig {
        data_dir: data_dir.path().join("data"),
        database_url,
        encryption_key_file,
        encryption_key,
    };
    start(store, data_dir, postgres_database, options).await
}

/// Starts a server on `store`; `postgres_database` is dropped with it.
async fn start(
    store: StoreConfig,
    data_dir: tempfile::TempDir,
    postgres_database: Option<String>,
    options: AppOptions,
) -> TestApp {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        metrics_listen: options
            .metrics
            .then(|| "127.0.0.1:0".parse().expect("addr")),
        external_url: options.external_url,
        session_ttl: options.session_ttl,
        session_idle_timeout: options.session_idle_timeout,
        code_host_timeout: options.code_host_timeout,
        recheck_interval: options.recheck_interval,
        audit_retention: options.audit_retention,
        publish: options.publish,
        sign_in: options.sign_in,
        trusted_proxies: options.trusted_proxies,
        notify: options.notify,
    };
    let server = Server::build(&store, &config).await.expect("server starts");
    let address = server.local_addr().expect("bound");
    let metrics_address = server.metrics_addr();
    let service = server.service().clone();
    let codehosts = Emulator::accepting_any_token().await;
    let handle = tokio::spawn(async move {
        server
            .run(std::future::pending())
            .await
            .expect("server runs");
    });
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    TestApp {
        address,
        metrics_address,
        client,
        store,
        service,
        codehosts,
        _data_dir: data_dir,
        postgres_database,
        server: handle,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(name) = self.postgres_database.take() {
            drop_postgres_database(name);
        }
    }
}

/// Drops a database [`create_postgres_database`] made; callable outside
/// async context (from `Drop`), on a throwaway runtime of its own.
pub fn drop_postgres_database(name: String) {
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            if let Ok(pool) = PgPoolOptions::new()
                .max_connections(1)
                .connect(POSTGRES_ADMIN_URL)
                .await
            {
                let _ = pool
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await;
                pool.close().await;
            }
        });
    })
    .join();
}

/// An API caller: anonymous or with an access token.
#[derive(Debug, Clone)]
pub enum Auth {
    Anonymous,
    Token(String),
}

/// A signed-up user with an access token.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub auth: Auth,
}

pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    /// Another server on the same database and keyring, as a replica of
    /// this one (it leaves the database to this one to drop).
    pub async fn replica(&self) -> TestApp {
        self.replica_with(AppOptions::default()).await
    }

    /// [`TestApp::replica`] started with `options`.
    pub async fn replica_with(&self, options: AppOptions) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        start(self.store.clone(), data_dir, None, options).await
    }

    /// A connection pool on the app's database, for tests that read or
    /// tamper with rows directly.
    pub async fn database(&self) -> sqlx::AnyPool {
        let resolved = batchcred::app::resolve_store(&self.store).expect("resolve");
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(resolved.database_url.expose())
            .await
            .expect("connect")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// Runs a GraphQL request; returns the whole response body.
    pub async fn graphql(&self, auth: &Auth, query: &str, variables: Value) -> Value {
        post_graphql(&self.url("/.api/graphql"), auth, query, variables).await
    }

    /// Runs a GraphQL request that must succeed; returns `data`.
    pub async fn graphql_ok(&self, auth: &Auth, query: &str, variables: Value) -> Value {
        let body = self.graphql(auth, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Creates the first account (site admin) through the first-run endpoint.
    pub async fn init_site_admin(&self, username: &str) -> TestUser {
        let response = reqwest::Client::new()
            .post(self.url("/-/site-init"))
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .expect("site-init");
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
        self.sign_in_with_token(username).await
    }

    /// Signs in with a cookie session and mints an access token.
    pub async fn sign_in_with_token(&self, username: &str) -> TestUser {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .expect("client");
        let response = client
            .post(self.url("/-/sign-in"))
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .expect("sign-in");
        assert_eq!(response.status(), 200);
        let me: Value = client
            .post(self.url("/.api/graphql"))
            .header("X-Requested-With", "test")
            .json(&json!({ "query": "{ currentUser { id } }" }))
            .send()
            .await
            .expect("graphql")
            .json()
            .await
            .expect("json");
        let id = me["data"]["currentUser"]["id"]
            .as_str()
            .expect("signed in")
            .to_owned();
        let created: Value = client
            .post(self.url("/.api/graphql"))
            .header("X-Requested-With", "test")
            .json(&json!({
                "query": "mutation($user: ID!) { createAccessToken(user: $user, note: \"tests\") { token } }",
                "variables": { "user": id },
            }))
            .send()
            .await
            .expect("graphql")
            .json()
            .await
            .expect("json");
        let token = created["data"]["createAccessToken"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("token created: {created}"))
            .to_owned();
        TestUser {
            id,
            auth: Auth::Token(token),
        }
    }

    /// Creates a regular user (as `admin`) and signs them in.
    pub async fn create_user(&self, admin: &TestUser, username: &str) -> TestUser {
        self.graphql_ok(
            &admin.auth,
            "mutation($u: String!, $p: String!) { createUser(username: $u, password: $p) { id } }",
            json!({ "u": username, "p": PASSWORD }),
        )
        .await;
        self.sign_in_with_token(username).await
    }

    /// Registers a code host; returns its id.
    pub async fn add_code_host(
        &self,
        admin: &TestUser,
        kind: &str,
        url: &str,
        git: &str,
    ) -> String {
        let data = self
            .graphql_ok(
                &admin.auth,
                "mutation($k: ExternalServiceKind!, $u: String!, $g: GitURLType!) { \
                 addCodeHost(kind: $k, url: $u, gitURLType: $g) { id } }",
                json!({ "k": kind, "u": url, "g": git }),
            )
            .await;
        data["addCodeHost"]["id"].as_str().expect("id").to_owned()
    }

    /// Creates a credential; returns the whole GraphQL response.
    pub async fn create_credential(
        &self,
        auth: &Auth,
        user: Option<&str>,
        kind: &str,
        url: &str,
        token: &str,
    ) -> Value {
        self.graphql(
            auth,
            CREATE_CREDENTIAL,
            json!({ "user": user, "k": kind, "u": url, "c": token }),
        )
        .await
    }

    /// The user's code host list as Sourcegraph's settings page queries it.
    pub async fn user_code_hosts(&self, auth: &Auth, user_id: &str) -> Value {
        self.graphql(auth, USER_CODE_HOSTS_QUERY, json!({ "user": user_id }))
            .await
    }

    /// Counts credential rows directly in the database.
    pub async fn count_credentials(&self) -> i64 {
        let resolved = batchcred::app::resolve_store(&self.store).expect("resolve");
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(resolved.database_url.expose())
            .await
            .expect("connect");
        let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM credentials")
            .fetch_one(&pool)
            .await
            .expect("count");
        pool.close().await;
        row.0
    }
}

/// Posts a GraphQL request to `url`; returns the whole response body.
pub async fn post_graphql(url: &str, auth: &Auth, query: &str, variables: Value) -> Value {
    let mut request = reqwest::Client::new()
        .post(url)
        .json(&json!({ "query": query, "variables": variables }));
    if let Auth::Token(token) = auth {
        request = request.header("Authorization", format!("token {token}"));
    }
    let response = request.send().await.expect("request");
    response.json().await.expect("json body")
}

/// `createBatchChangesCredential` with variables `user`, `k`, `u`, `c`.
pub const CREATE_CREDENTIAL: &str = "mutation($user: ID, $k: ExternalServiceKind!, $u: String!, $c: String!) { \
    createBatchChangesCredential(user: $user, externalServiceKind: $k, \
    externalServiceURL: $u, credential: $c) { id sshPublicKey isSiteCredential } }";

/// Sourcegraph's `UserBatchChangesCodeHosts` query, as its web client sends it.
pub const USER_CODE_HOSTS_QUERY: &str = r#"
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
fragment BatchChangesCodeHostsFields on BatchChangesCodeHostConnection {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { ...BatchChangesCodeHostFields }
}
fragment BatchChangesCodeHostFields on BatchChangesCodeHost {
    externalServiceKind
    externalServiceURL
    requiresSSH
    requiresUsername
    supportsCommitSigning
    credential { ...BatchChangesCredentialFields }
}
fragment BatchChangesCredentialFields on BatchChangesCredential {
    id
    sshPublicKey
    isSiteCredential
}
"#;

/// The error code of the first GraphQL error, if any.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// The message of the first GraphQL error, if any.
pub fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

/// Makes a secret-looking token unique to one test.
pub fn unique_token(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}
