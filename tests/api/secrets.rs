//! A planted token never appears in any response, log line or database
//! file, with the real binary logging at `RUST_LOG=trace`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, USER_CODE_HOSTS_QUERY};
use crate::support::codehost::{Behaviour, Emulator};

/// The server binary, run as a child process with captured logs.
pub struct ServerProcess {
    child: Child,
    logs: Arc<Mutex<String>>,
    pub address: String,
}

impl ServerProcess {
    pub fn start(data_dir: &std::path::Path, rust_log: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_batchcred"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--drain-secs",
                "0",
                "--data-dir",
            ])
            .arg(data_dir)
            .env("RUST_LOG", rust_log)
            .env_remove("BATCHCRED_DATABASE_URL")
            .env_remove("BATCHCRED_ENCRYPTION_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start batchcred serve");
        let logs = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().expect("stdout")),
        ] {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut logs = logs.lock().unwrap();
                    logs.push_str(&line);
                    logs.push('\n');
                }
            });
        }
        let started = Instant::now();
        let address = loop {
            let text = logs.lock().unwrap().clone();
            if let Some(line) = text.lines().find(|l| l.contains("listening")) {
                let address = line
                    .split("address=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .expect("listening line names the address");
                break address.to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            child,
            logs,
            address,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// Stops the server gracefully (SIGTERM) and returns everything it logged.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Records every response body so they can be searched afterwards.
struct Recorder {
    server_url: String,
    cookies: reqwest::Client,
    responses: Vec<String>,
}

impl Recorder {
    async fn post(&mut self, path: &str, body: Value, token: Option<&str>) -> Value {
        let mut request = self
            .cookies
            .post(format!("{}{}", self.server_url, path))
            .header("X-Requested-With", "test")
            .json(&body);
        if let Some(token) = token {
            request = request.header("Authorization", format!("token {token}"));
        }
        let response = request.send().await.unwrap();
        let text = response.text().await.unwrap();
        self.responses.push(text.clone());
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn graphql(&mut self, token: &str, query: &str, variables: Value) -> Value {
        self.post(
            "/.api/graphql",
            json!({ "query": query, "variables": variables }),
            Some(token),
        )
        .await
    }
}

#[tokio::test]
async fn planted_token_never_appears_in_responses_logs_or_database() {
    let planted = format!("ghp_PLANTED{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = ServerProcess::start(&data_dir, "trace");
    let mut api = Recorder {
        server_url: server.url(""),
        cookies: reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap(),
        responses: Vec::new(),
    };

    api.post(
        "/-/site-init",
        json!({ "username": "admin", "password": PASSWORD }),
        None,
    )
    .await;
    let me = api
        .post(
            "/.api/graphql",
            json!({ "query": "{ currentUser { id } }" }),
            None,
        )
        .await;
    let admin_id = me["data"]["currentUser"]["id"].as_str().unwrap().to_owned();
    let token = api
        .post(
            "/.api/graphql",
            json!({ "query": "mutation($u: ID!) { createAccessToken(user: $u) { token } }", "variables": { "u": admin_id } }),
            None,
        )
        .await["data"]["createAccessToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = token.as_str();
    let codehosts = Emulator::accepting_any_token().await;
    let (github, gitlab) = (codehosts.url("github"), codehosts.url("gitlab"));
    // A code host that quotes rejected tokens back in its error body.
    let echoing = Emulator::start().await;
    echoing.set_behaviour(Behaviour::EchoTokens);
    let echo_url = echoing.url("echo");

    let https_host = api
        .graphql(
            t,
            "mutation($u: String!) { addCodeHost(kind: GITHUB, url: $u) { id } }",
            json!({ "u": github }),
        )
        .await["data"]["addCodeHost"]["id"]
        .clone();
    api.graphql(
        t,
        "mutation($u: String!) { addCodeHost(kind: GITLAB, url: $u, gitURLType: SSH) { id } }",
        json!({ "u": gitlab }),
    )
    .await;
    api.graphql(
        t,
        "mutation($u: String!) { addCodeHost(kind: GITHUB, url: $u) { id } }",
        json!({ "u": echo_url }),
    )
    .await;
    let create = "mutation($user: ID, $k: ExternalServiceKind!, $u: String!, $c: String!) { \
                  createBatchChangesCredential(user: $user, externalServiceKind: $k, externalServiceURL: $u, credential: $c) { id sshPublicKey } }";
    let user_credential = api
        .graphql(
            t,
            create,
            json!({ "user": admin_id, "k": "GITHUB", "u": github, "c": planted }),
        )
        .await["data"]["createBatchChangesCredential"]["id"]
        .clone();
    assert!(user_credential.is_string(), "credential was not created");
    let site_credential = api
        .graphql(
            t,
            create,
            json!({ "user": null, "k": "GITLAB", "u": gitlab, "c": planted }),
        )
        .await["data"]["createBatchChangesCredential"]["id"]
        .clone();
    // Error paths with the token in the input must not echo it either.
    api.graphql(
        t,
        create,
        json!({ "user": admin_id, "k": "GITHUB", "u": github, "c": planted }),
    )
    .await;
    api.graphql(
        t,
        create,
        json!({ "user": admin_id, "k": "GITHUB", "u": github, "c": format!("{planted} x") }),
    )
    .await;
    api.graphql(t, create, json!({ "user": admin_id, "k": "GITLAB", "u": "https://nowhere.example.com", "c": planted })).await;
    let echoed = api
        .graphql(
            t,
            create,
            json!({ "user": admin_id, "k": "GITHUB", "u": echo_url, "c": planted }),
        )
        .await;
    assert!(
        echoed.to_string().contains("[REDACTED]"),
        "the code host's echo of the token was not redacted: {echoed}"
    );
    assert!(
        echoing
            .seen()
            .iter()
            .any(|r| r.token.as_deref() == Some(planted.as_str())),
        "the rejected token never reached the code host"
    );
    api.graphql(
        t,
        create,
        json!({ "user": admin_id, "k": "GITLAB", "u": github, "c": planted }),
    )
    .await;

    api.graphql(t, USER_CODE_HOSTS_QUERY, json!({ "user": admin_id }))
        .await;
    api.graphql(
        t,
        "{ batchChangesCodeHosts { nodes { credential { id sshPublicKey } } } }",
        json!({}),
    )
    .await;
    let node = "query($id: ID!) { node(id: $id) { ... on BatchChangesCredential { id sshPublicKey externalServiceURL } } }";
    api.graphql(t, node, json!({ "id": user_credential })).await;
    api.graphql(t, "query($id: ID!) { checkBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }", json!({ "id": user_credential })).await;
    api.graphql(
        t,
        "mutation($id: ID!) { updateCodeHost(id: $id, gitURLType: SSH) { id } }",
        json!({ "id": https_host }),
    )
    .await;
    api.graphql(t, "mutation($id: ID!) { confirmBatchChangesCredentialSSHKey(batchChangesCredential: $id) { id } }", json!({ "id": user_credential })).await;
    api.graphql(
        t,
        "{ codeHosts { nodes { url sshKnownHosts } } users { nodes { username } } }",
        json!({}),
    )
    .await;
    api.graphql(t, "mutation($id: ID!) { deleteBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }", json!({ "id": site_credential })).await;
    api.post("/-/sign-out", json!({}), None).await;

    let logs = server.stop();
    assert!(logs.contains("TRACE"), "trace logging was not on:\n{logs}");
    assert!(logs.contains("credential created"), "{logs}");
    for (n, body) in api.responses.iter().enumerate() {
        assert!(
            !body.contains(&planted),
            "response {n} leaks the token: {body}"
        );
        assert!(
            !body.contains("PRIVATE KEY"),
            "response {n} leaks a private key: {body}"
        );
    }
    assert!(!logs.contains(&planted), "logs leak the token");
    assert!(!logs.contains("PRIVATE KEY"), "logs leak a private key");
    assert!(!logs.contains(PASSWORD), "logs leak a password");

    for entry in std::fs::read_dir(&data_dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let found = bytes
            .windows(planted.len())
            .any(|w| w == planted.as_bytes());
        assert!(!found, "{} contains the token", path.display());
    }
    // The audit log recorded it all, and its export holds no secret either.
    let exported = crate::cli::ok(&crate::cli::batchcred(
        &data_dir,
        &["audit", "list", "--json", "--limit", "1000"],
        "",
    ));
    for event in [
        "credential.created",
        "credential.checked",
        "credential.deleted",
        "sign_out",
    ] {
        assert!(
            exported.contains(&format!("\"event\":\"{event}\"")),
            "no {event}:\n{exported}"
        );
    }
    assert!(
        !exported.contains(&planted),
        "the audit export leaks the token"
    );
    assert!(
        !exported.contains(PASSWORD),
        "the audit export leaks a password"
    );
    assert!(
        !exported.contains(t),
        "the audit export leaks an access token"
    );
    let verified = crate::cli::ok(&crate::cli::batchcred(&data_dir, &["audit", "verify"], ""));
    assert!(verified.contains("intact"), "{verified}");
}
