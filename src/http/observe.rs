//! What every request leaves behind: a request id (the caller's
//! `X-Request-Id` when it is sane, else a new UUID) echoed in the response,
//! a span carrying it around every log line of the request, one access log
//! line, and the HTTP metrics. The access line names the route template,
//! never the path or query string (which may carry ids or tokens), and no
//! header.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::telemetry::metrics;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest caller-given request id kept.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Drops a caller's `X-Request-Id` that is too long or holds characters
/// other than letters, digits and `-_.:`, so that log lines cannot be
/// forged or bloated through it; a new id is generated instead.
pub(super) async fn sanitize_request_id(mut request: Request) -> Request {
    let headers = request.headers_mut();
    if headers
        .get(REQUEST_ID_HEADER)
        .is_some_and(|value| !is_sane_request_id(value))
    {
        headers.remove(REQUEST_ID_HEADER);
    }
    request
}

fn is_sane_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

/// Runs the request inside a span with its id, then logs the access line
/// and records the metrics.
pub(super) async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    // Requests no route matched share one label, whatever their path.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!("request", %method, %route, %request_id);
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "served"
        );
    });
    metrics::http_request(&route, &method, status, elapsed);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_request_ids_are_kept() {
        let sane = |s: &str| is_sane_request_id(&HeaderValue::from_str(s).expect("header"));
        assert!(sane("4f1c2a9e-0b7d-4c4e-9d1a-6c0f3b2e8a71"));
        assert!(sane("trace_01:abc.def"));
        assert!(!sane(""));
        assert!(!sane("a b"));
        assert!(!sane("x\" injected=\"1"));
        assert!(!sane(&"a".repeat(MAX_REQUEST_ID_LEN + 1)));
    }
}
