//! Metrics, request ids and structured logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{AppOptions, Backend, TestApp, spawn_app_with};

async fn app_with_metrics() -> TestApp {
    spawn_app_with(
        Backend::Sqlite,
        AppOptions {
            metrics: true,
            // The first background round runs at start.
            recheck_interval: Some(Duration::from_secs(3600)),
            ..AppOptions::default()
        },
    )
    .await
}

/// The lines of a Prometheus text exposition for `metric` carrying every
/// one of `labels` (`name="value"`).
fn series<'a>(body: &'a str, metric: &str, labels: &[&str]) -> Vec<&'a str> {
    body.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .collect()
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let app = app_with_metrics().await;
    let admin = app.init_site_admin("alice").await;
    let github = app.codehosts.url("github");
    app.add_code_host(&admin, "GITHUB", &github, "HTTP").await;
    let created = app
        .create_credential(&admin.auth, None, "GITHUB", &github, "ghp_observed")
        .await;
    assert!(created["errors"].is_null(), "{created}");
    // Named in the document only, as most clients send it.
    let named = app
        .graphql(
            &admin.auth,
            "query ObservabilityProbe { currentUser { id } }",
            json!({}),
        )
        .await;
    assert!(named["errors"].is_null(), "{named}");
    // A publish to a repository the code host does not have fails.
    let published = app
        .graphql(
            &admin.auth,
            "mutation($c: [ChangesetInput!]!) { publishChangesets(changesets: $c) { id state } }",
            json!({ "c": [{ "codeHost": github, "repository": "acme/missing",
                "baseBranch": "main", "headBranch": "batch/metrics", "title": "Metrics",
                "diff": "--- a/README\n+++ b/README\n@@ -1 +1 @@\n-a\n+b\n" }] }),
        )
        .await;
    let queued = &published["data"]["publishChangesets"][0];
    assert_eq!(queued["state"], "QUEUED", "{published}");
    let id = crate::helpers::changeset_id_from_graphql(queued["id"].as_str().unwrap());
    crate::helpers::wait_for_jobs(&app.service, &[id]).await;
    app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    app.client
        .post(app.url(&format!("/site-admin/code-hosts/{id}")))
        .send()
        .await
        .unwrap();

    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);

    let metrics_address = app.metrics_address.expect("metrics listener");
    let response = reqwest::get(format!("http://{metrics_address}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
    let body = response.text().await.unwrap();
    let expect = |metric: &str, labels: &[&str]| {
        assert!(
            !series(&body, metric, labels).is_empty(),
            "no {metric} with {labels:?} in:\n{body}"
        );
    };
    expect(
        "batchcred_http_requests_total",
        &[r#"route="/healthz""#, r#"method="GET""#, r#"status="200""#],
    );
    expect(
        "batchcred_http_request_duration_seconds_bucket",
        &[r#"route="/.api/graphql""#, r#"method="POST""#],
    );
    // Paths with ids are counted under their template, never the id.
    expect(
        "batchcred_http_requests_total",
        &[r#"route="/site-admin/code-hosts/{id}""#],
    );
    assert!(!body.contains(&id), "a raw path reached the labels");
    expect(
        "batchcred_graphql_operations_total",
        &[r#"operation="ObservabilityProbe""#, r#"outcome="ok""#],
    );
    expect(
        "batchcred_codehost_requests_total",
        &[
            r#"kind="GITHUB""#,
            r#"operation="current_user""#,
            r#"outcome="answered""#,
            r#"status="200""#,
        ],
    );
    expect(
        "batchcred_codehost_request_duration_seconds_bucket",
        &[r#"kind="GITHUB""#],
    );
    expect(
        "batchcred_codehost_requests_total",
        &[r#"operation="repository""#, r#"status="404""#],
    );
    expect("batchcred_credential_checks_total", &[r#"result="ok""#]);
    expect(
        "batchcred_changeset_publishes_total",
        &[r#"outcome="failed""#],
    );
    expect(
        "batchcred_changeset_jobs_total",
        &[r#"action="publish""#, r#"outcome="failed""#],
    );
    expect("batchcred_changeset_jobs", &[r#"state="failed""#]);
    expect("batchcred_recheck_runs_total", &[r#"outcome="ok""#]);
    expect("batchcred_db_pool_connections", &[r#"state="idle""#]);
    expect("batchcred_db_pool_connections", &[r#"state="in_use""#]);
    assert!(
        body.contains("batchcred_db_pool_max_connections "),
        "{body}"
    );
    assert!(!body.contains("ghp_observed"));
}

#[tokio::test]
async fn unnamed_graphql_operations_count_as_anonymous() {
    let app = app_with_metrics().await;
    let admin = app.init_site_admin("alice").await;
    app.graphql(&admin.auth, "{ currentUser { id } }", json!({}))
        .await;
    let metrics_address = app.metrics_address.expect("metrics listener");
    let body = reqwest::get(format!("http://{metrics_address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !series(
            &body,
            "batchcred_graphql_operations_total",
            &[r#"operation="anonymous""#]
        )
        .is_empty(),
        "{body}"
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = app_with_metrics().await;
    let given = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "probe-42.a:b_c")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "probe-42.a:b_c");

    let generated = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "not a UUID: {id}");

    // Ids that could forge or bloat log lines are replaced.
    for bad in ["two words", "quote\"d", &"x".repeat(200)] {
        let replaced = app
            .client
            .get(app.url("/healthz"))
            .header("X-Request-Id", bad)
            .send()
            .await
            .unwrap();
        let id = replaced.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{bad:?} kept as {id}");
    }

    // Unmatched paths and GraphQL answers carry one too.
    let missing = app
        .client
        .get(app.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-request-id"));
    let graphql = app
        .client
        .post(app.url("/.api/graphql"))
        .header("X-Request-Id", "graphql-probe")
        .json(&json!({ "query": "{ currentUser { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(graphql.headers()["x-request-id"], "graphql-probe");
}

/// `batchcred serve` as a child process, its stderr collected line by line.
struct JsonLoggingServer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl JsonLoggingServer {
    fn start(data_dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_batchcred"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--data-dir",
            ])
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .env_remove("BATCHCRED_DATABASE_URL")
            .env_remove("BATCHCRED_ENCRYPTION_KEY")
            .env_remove("BATCHCRED_LOG_FORMAT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start batchcred serve");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, lines }
    }

    /// Every line so far, each of which must be a JSON object.
    fn events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    }

    fn raw(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for the first event satisfying `wanted`.
    async fn wait_for(&self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            if let Some(event) = self.events().into_iter().find(&wanted) {
                return event;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no {what} in:\n{}",
                self.raw()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The address logged with `message` (`listening`, `serving /metrics`).
    async fn address(&self, message: &str) -> String {
        let event = self
            .wait_for(message, |e| e["fields"]["message"] == message)
            .await;
        event["fields"]["address"]
            .as_str()
            .expect("an address field")
            .to_owned()
    }
}

impl Drop for JsonLoggingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = JsonLoggingServer::start(&dir.path().join("data"));
    let address = server.address("listening").await;
    let metrics_address = server.address("serving /metrics").await;
    let secret = "bcp_querysecret0123456789";

    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{address}/healthz?access_token={secret}"))
        .header("X-Request-Id", "json-log-probe")
        .header("Authorization", format!("token {secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let access = server
        .wait_for("access log line", |e| {
            e["span"]["request_id"] == "json-log-probe" && e["fields"]["message"] == "served"
        })
        .await;
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["span"]["route"], "/healthz");
    assert_eq!(access["span"]["method"], "GET");
    assert_eq!(access["fields"]["status"], 200);
    assert!(access["fields"]["latency_ms"].is_number(), "{access}");

    // The flag wires /metrics to its own port, and not to the public one.
    let metrics = reqwest::get(format!("http://{metrics_address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("batchcred_http_requests_total{"),
        "{metrics}"
    );
    let public = client
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);

    let logs = server.raw();
    assert!(!logs.contains(secret), "a secret reached the logs:\n{logs}");
    assert!(
        !logs.contains("access_token"),
        "the query string was logged"
    );
}
