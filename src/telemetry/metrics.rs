//! Prometheus metrics: the names and labels batchcred records, the
//! functions that record them, and the process-wide recorder `/metrics`
//! renders. Labels only ever take values from a small fixed set (route
//! templates, code host kinds, outcomes, status codes) so that ids, user
//! names or URLs can never multiply the series.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::domain::JobState;
use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "batchcred_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "batchcred_http_request_duration_seconds";
pub const GRAPHQL_OPERATIONS: &str = "batchcred_graphql_operations_total";
pub const CODEHOST_REQUESTS: &str = "batchcred_codehost_requests_total";
pub const CODEHOST_REQUEST_DURATION: &str = "batchcred_codehost_request_duration_seconds";
pub const RATE_LIMIT_WAITS: &str = "batchcred_rate_limit_waits_total";
pub const RATE_LIMIT_WAIT_SECONDS: &str = "batchcred_rate_limit_wait_seconds_total";
pub const CREDENTIAL_CHECKS: &str = "batchcred_credential_checks_total";
pub const CHANGESET_PUBLISHES: &str = "batchcred_changeset_publishes_total";
pub const CHANGESET_JOBS: &str = "batchcred_changeset_jobs_total";
pub const CHANGESET_JOB_STATES: &str = "batchcred_changeset_jobs";
pub const RECHECK_RUNS: &str = "batchcred_recheck_runs_total";
pub const DB_POOL_CONNECTIONS: &str = "batchcred_db_pool_connections";
pub const DB_POOL_MAX_CONNECTIONS: &str = "batchcred_db_pool_max_connections";

/// Histogram buckets, in seconds: from a fast local request to a code host
/// call at the default 10 s timeout and beyond.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The most distinct GraphQL operation names counted; names beyond are
/// counted as `other`. Clients choose the names, so without a bound one
/// client could create unbounded series.
const MAX_GRAPHQL_OPERATION_NAMES: usize = 100;

/// The recorder's handle, installed on first use. A process has one
/// global recorder: every server in it (tests start many) shares it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Only an empty bucket list is refused; without buckets the
        // histograms would be rendered as summaries.
        let builder = PrometheusBuilder::new()
            .set_buckets(DURATION_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics stays empty");
        }
        describe();
        handle
    })
}

/// The Prometheus text exposition of everything recorded so far.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by route template, method and status"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        ::metrics::Unit::Seconds,
        "HTTP request latency by route template and method"
    );
    describe_counter!(
        GRAPHQL_OPERATIONS,
        "GraphQL operations by operation name and outcome"
    );
    describe_counter!(
        CODEHOST_REQUESTS,
        "Calls to code host APIs by kind, operation, outcome and HTTP status"
    );
    describe_histogram!(
        CODEHOST_REQUEST_DURATION,
        ::metrics::Unit::Seconds,
        "Code host API call latency by kind and operation"
    );
    describe_counter!(
        RATE_LIMIT_WAITS,
        "Waits for a code host rate limit before retrying"
    );
    describe_counter!(
        RATE_LIMIT_WAIT_SECONDS,
        ::metrics::Unit::Seconds,
        "Time spent waiting for code host rate limits"
    );
    describe_counter!(CREDENTIAL_CHECKS, "Credential checks by result");
    describe_counter!(CHANGESET_PUBLISHES, "Changeset publishes by outcome");
    describe_gauge!(
        CHANGESET_JOB_STATES,
        "Changesets by the state of their job (queue depth), sampled at each scrape"
    );
    describe_counter!(
        CHANGESET_JOBS,
        "Changeset jobs by action (publish, close, reopen, sync) and outcome (queued, completed, errored, failed, released, lease_lost)"
    );
    describe_counter!(
        RECHECK_RUNS,
        "Background credential re-check rounds by outcome"
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database pool connections by state (idle, in_use), sampled when scraped"
    );
    describe_gauge!(DB_POOL_MAX_CONNECTIONS, "Database pool size limit");
}

/// One HTTP request, under its route template (`/settings/tokens/{id}`),
/// never its path.
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    counter!(
        HTTP_REQUESTS,
        "route" => route.to_owned(),
        "method" => method.to_owned(),
        "status" => status.to_string(),
    )
    .increment(1);
    histogram!(
        HTTP_REQUEST_DURATION,
        "route" => route.to_owned(),
        "method" => method.to_owned(),
    )
    .record(elapsed.as_secs_f64());
}

/// One GraphQL operation; `name` is `None` for unnamed operations.
pub fn graphql_operation(name: Option<&str>, succeeded: bool) {
    let operation = bounded_operation_name(name);
    counter!(
        GRAPHQL_OPERATIONS,
        "operation" => operation,
        "outcome" => if succeeded { "ok" } else { "error" },
    )
    .increment(1);
}

/// `anonymous` for unnamed operations, `other` past the first
/// [`MAX_GRAPHQL_OPERATION_NAMES`] names or for names GraphQL would not
/// accept, else the name.
fn bounded_operation_name(name: Option<&str>) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return "anonymous".to_owned();
    };
    let valid = name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return "other".to_owned();
    }
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.contains(name) || seen.len() < MAX_GRAPHQL_OPERATION_NAMES {
        seen.insert(name.to_owned());
        name.to_owned()
    } else {
        "other".to_owned()
    }
}

/// One call to a code host API. `status` is `None` when no answer came.
pub fn codehost_request(
    kind: &'static str,
    operation: &'static str,
    outcome: &'static str,
    status: Option<u16>,
    elapsed: Duration,
) {
    counter!(
        CODEHOST_REQUESTS,
        "kind" => kind,
        "operation" => operation,
        "outcome" => outcome,
        "status" => status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
    )
    .increment(1);
    histogram!(
        CODEHOST_REQUEST_DURATION,
        "kind" => kind,
        "operation" => operation,
    )
    .record(elapsed.as_secs_f64());
}

/// A wait for a code host's rate limit.
pub fn rate_limit_wait(wait: Duration) {
    counter!(RATE_LIMIT_WAITS).increment(1);
    counter!(RATE_LIMIT_WAIT_SECONDS).increment(wait.as_secs());
}

/// One check of a token against its code host; `result` is `ok` or what
/// was wrong (see `codehost::Error::metric_label`).
pub fn credential_check(result: &'static str) {
    counter!(CREDENTIAL_CHECKS, "result" => result).increment(1);
}

/// One changeset publish: `opened`, `updated`, `unchanged` or `failed`.
pub fn changeset_publish(outcome: &'static str) {
    counter!(CHANGESET_PUBLISHES, "outcome" => outcome).increment(1);
}

/// A changeset job queued or ended.
pub fn changeset_job(action: &'static str, outcome: &'static str) {
    counter!(CHANGESET_JOBS, "action" => action, "outcome" => outcome).increment(1);
}

/// One background re-check round.
pub fn recheck_run(succeeded: bool) {
    counter!(RECHECK_RUNS, "outcome" => if succeeded { "ok" } else { "error" }).increment(1);
}

/// The database pool's state when `/metrics` is scraped.
pub fn db_pool(size: u32, idle: usize, max: u32) {
    let idle = idle as f64;
    gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(idle);
    gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set((f64::from(size) - idle).max(0.0));
    gauge!(DB_POOL_MAX_CONNECTIONS).set(f64::from(max));
}

/// Changesets by job state, as counted at a scrape; states with none are
/// reported as zero.
pub fn changeset_job_states(counts: &[(JobState, i64)]) {
    use JobState;
    for state in [
        JobState::Queued,
        JobState::Processing,
        JobState::Completed,
        JobState::Errored,
        JobState::Failed,
    ] {
        let count = counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n);
        gauge!(CHANGESET_JOB_STATES, "state" => state.as_str()).set(count as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded() {
        assert_eq!(bounded_operation_name(None), "anonymous");
        assert_eq!(bounded_operation_name(Some("")), "anonymous");
        assert_eq!(bounded_operation_name(Some("a b")), "other");
        assert_eq!(bounded_operation_name(Some(&"x".repeat(65))), "other");
        assert_eq!(bounded_operation_name(Some("CurrentUser")), "CurrentUser");
        for n in 0..MAX_GRAPHQL_OPERATION_NAMES {
            bounded_operation_name(Some(&format!("Op{n}")));
        }
        assert_eq!(bounded_operation_name(Some("OneTooMany")), "other");
        // Names already counted keep their own series.
        assert_eq!(bounded_operation_name(Some("CurrentUser")), "CurrentUser");
    }
}
