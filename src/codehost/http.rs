//! The HTTP client all code host modules share. It bounds every call by a
//! timeout, refuses redirects to another origin (a token must never follow
//! one: GitLab's `PRIVATE-TOKEN` header is not stripped on redirect the way
//! `Authorization` is), recognises rate limits, and turns failures into
//! [`Error`]s that name the code host and never contain the token.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, Response, StatusCode, redirect};
use secrecy::{ExposeSecret, SecretString};

use super::Error;
use crate::domain::CodeHostKind;
use crate::telemetry::metrics;

/// Longest code host message quoted in an error.
const MAX_DETAIL_LEN: usize = 300;

/// Largest answer body read from a code host: far above any real answer
/// (a page of pull requests is a few hundred KiB), small enough that a
/// misbehaving or hostile host cannot make batchcred buffer gigabytes.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Largest error body read to quote the code host's explanation.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Why a body could not be read in full.
enum BodyError {
    TooLarge,
    Read(reqwest::Error),
}

/// Reads a response body, refusing one longer than `limit` bytes without
/// reading the rest (whether or not it announced its length).
async fn read_capped(mut response: Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A redirect to another origin, refused by the redirect policy.
#[derive(Debug, thiserror::Error)]
#[error("redirect to another host: {0}")]
struct CrossOriginRedirect(String);

/// One call to a code host API: who it goes to, and what it does as the
/// metrics name it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Names the code host in errors ("GitHub https://github.com").
    pub target: &'a str,
    pub kind: CodeHostKind,
    /// A fixed name ("check_token", "create_pull_request"), never a path,
    /// so that repository names cannot multiply the metric series.
    pub operation: &'static str,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl ApiClient {
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let policy = redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if !same_origin {
                let to = attempt.url().origin().ascii_serialization();
                attempt.error(CrossOriginRedirect(to))
            } else if attempt.previous().len() >= 5 {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .user_agent(concat!("batchcred/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(policy)
            .build()?;
        Ok(Self { http, timeout })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends a request carrying `token`. Transport failures, 401/403, rate
    /// limits and 5xx become errors; every other answer is returned for
    /// the caller to read. Every call is counted and timed by outcome.
    pub async fn send(
        &self,
        call: Call<'_>,
        request: RequestBuilder,
        token: &SecretString,
    ) -> Result<Response, Error> {
        self.send_with(call, request, token, false).await
    }

    /// [`send`](Self::send), except that a 403 that is not a rate limit is
    /// returned for the caller to read: Bitbucket Cloud names the scopes a
    /// token lacks in its body.
    pub async fn send_reading_forbidden(
        &self,
        call: Call<'_>,
        request: RequestBuilder,
        token: &SecretString,
    ) -> Result<Response, Error> {
        self.send_with(call, request, token, true).await
    }

    async fn send_with(
        &self,
        call: Call<'_>,
        request: RequestBuilder,
        token: &SecretString,
        read_forbidden: bool,
    ) -> Result<Response, Error> {
        let started = Instant::now();
        let result = request.send().await;
        let elapsed = started.elapsed();
        let record = |outcome: &'static str, status: Option<StatusCode>| {
            metrics::codehost_request(
                call.kind.as_str(),
                call.operation,
                outcome,
                status.map(|s| s.as_u16()),
                elapsed,
            );
        };
        let target = call.target;
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                let error = self.transport_error(target, &error);
                let outcome = if matches!(error, Error::Redirected { .. }) {
                    "redirected"
                } else {
                    "unreachable"
                };
                record(outcome, None);
                return Err(error);
            }
        };
        let status = response.status();
        if let Some(retry_after) = rate_limit(status, response.headers()) {
            record("rate_limited", Some(status));
            return Err(Error::RateLimited {
                target: target.to_owned(),
                retry_after,
            });
        }
        if status == StatusCode::UNAUTHORIZED
            || (status == StatusCode::FORBIDDEN && !read_forbidden)
        {
            record("rejected", Some(status));
            let detail = error_detail(response, token).await;
            return Err(Error::Rejected {
                target: target.to_owned(),
                detail,
            });
        }
        if status.is_server_error() {
            record("server_error", Some(status));
            let detail = error_detail(response, token).await;
            return Err(Error::Unreachable {
                target: target.to_owned(),
                reason: format!("it answered {}: {detail}", status.as_u16()),
            });
        }
        if status.is_redirection() {
            // Only an unfollowed same-origin redirect chain gets here.
            record("redirected", Some(status));
            return Err(Error::Unreachable {
                target: target.to_owned(),
                reason: "too many redirects".into(),
            });
        }
        record("answered", Some(status));
        Ok(response)
    }

    fn transport_error(&self, target: &str, error: &reqwest::Error) -> Error {
        if let Some(redirect) = find_source::<CrossOriginRedirect>(error) {
            return Error::Redirected {
                target: target.to_owned(),
                location: redirect.0.clone(),
            };
        }
        let reason = if error.is_timeout() {
            format!("no answer within {} s", self.timeout.as_secs_f32())
        } else {
            innermost_cause(error)
        };
        Error::Unreachable {
            target: target.to_owned(),
            reason,
        }
    }
}

/// The error an unexpected status turns into, quoting the code host.
pub async fn unexpected(
    target: &str,
    endpoint: &str,
    response: Response,
    token: &SecretString,
) -> Error {
    let status = response.status().as_u16();
    Error::Unexpected {
        target: target.to_owned(),
        status,
        endpoint: endpoint.to_owned(),
        detail: error_detail(response, token).await,
    }
}

/// Reads an answer carrying pull request `number` of `repository`: its
/// JSON, or [`Error::PullRequestNotFound`] on a 404 (it is gone, or the
/// token cannot see it any more).
pub async fn read_pull_request<T: serde::de::DeserializeOwned>(
    target: &str,
    repository: &str,
    number: u64,
    endpoint: &str,
    response: Response,
    token: &SecretString,
) -> Result<T, Error> {
    match response.status() {
        StatusCode::NOT_FOUND => Err(Error::PullRequestNotFound {
            target: target.to_owned(),
            repository: repository.to_owned(),
            number,
        }),
        status if status.is_success() => read_json(target, endpoint, response).await,
        _ => Err(unexpected(target, endpoint, response, token).await),
    }
}

/// Reads a JSON body of at most [`MAX_RESPONSE_BYTES`], or says the code
/// host sent something else.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    target: &str,
    endpoint: &str,
    response: Response,
) -> Result<T, Error> {
    let status = response.status().as_u16();
    let unexpected = |detail: String| Error::Unexpected {
        target: target.to_owned(),
        status,
        endpoint: endpoint.to_owned(),
        detail,
    };
    let body = read_capped(response, MAX_RESPONSE_BYTES)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge => unexpected(format!(
                "the answer is larger than the {} MiB batchcred reads",
                MAX_RESPONSE_BYTES / (1024 * 1024)
            )),
            BodyError::Read(e) => unexpected(format!("unreadable answer: {}", innermost_cause(&e))),
        })?;
    serde_json::from_slice(without_xssi_guard(&body))
        .map_err(|e| unexpected(format!("unreadable answer: {e}")))
}

/// Gerrit starts every JSON answer with the line `)]}'` so that a browser
/// cannot run it as a script; no other code host sends it, and it is never
/// JSON, so it is dropped wherever it appears.
fn without_xssi_guard(body: &[u8]) -> &[u8] {
    body.strip_prefix(b")]}'".as_slice()).unwrap_or(body)
}

/// `Some(wait)` when the response is a rate-limit refusal: 429, or a 403
/// with no requests left or a `Retry-After` (GitHub's secondary limits).
pub fn rate_limit(status: StatusCode, headers: &HeaderMap) -> Option<Option<Duration>> {
    let exhausted = ["x-ratelimit-remaining", "ratelimit-remaining"]
        .iter()
        .any(|name| header_str(headers, name) == Some("0"));
    let retry_after = header_str(headers, "retry-after").and_then(|v| v.parse::<u64>().ok());
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && (exhausted || retry_after.is_some()));
    if !limited {
        return None;
    }
    let reset = ["x-ratelimit-reset", "ratelimit-reset"]
        .iter()
        .find_map(|name| header_str(headers, name)?.parse::<u64>().ok())
        .map(seconds_until);
    Some(retry_after.map(Duration::from_secs).or(reset))
}

/// A reset header holds either epoch seconds (GitHub, GitLab) or a delay.
fn seconds_until(value: u64) -> Duration {
    const EPOCH_THRESHOLD: u64 = 1_000_000_000;
    if value < EPOCH_THRESHOLD {
        return Duration::from_secs(value);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(value.saturating_sub(now))
}

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// The code host's own explanation from an error body, shortened, with
/// the token removed in case the code host echoed it.
pub async fn error_detail(response: Response, token: &SecretString) -> String {
    let status = response.status();
    let body = match read_capped(response, MAX_ERROR_BODY_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        // Too long or unreadable: the status says enough.
        Err(_) => String::new(),
    };
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| json_message(&json))
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("no explanation")
                .to_owned()
        });
    redact(&shorten(&message), token)
}

/// GitHub and GitLab say `message` (a string, list or map), GitLab's
/// OAuth layer `error_description`, Bitbucket Server `errors[].message`,
/// Bitbucket Cloud `error.message`.
fn json_message(json: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    json.get("error_description")
        .and_then(text)
        .or_else(|| json.get("message").and_then(text))
        .or_else(|| json.get("error")?.get("message").and_then(text))
        .or_else(|| {
            json.get("errors")?
                .as_array()?
                .iter()
                .filter_map(|e| e.get("message").and_then(text))
                .reduce(|a, b| format!("{a}; {b}"))
        })
}

fn shorten(message: &str) -> String {
    let single_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match single_line.char_indices().nth(MAX_DETAIL_LEN) {
        Some((cut, _)) => format!("{}…", &single_line[..cut]),
        None => single_line,
    }
}

pub fn redact(text: &str, token: &SecretString) -> String {
    let secret = token.expose_secret();
    if secret.is_empty() {
        return text.to_owned();
    }
    text.replace(secret, "[REDACTED]")
}

fn find_source<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The root cause (e.g. "Connection refused (os error 111)", "dns error:
/// failed to lookup address"), without reqwest's URL-bearing wrapper.
fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    let mut messages = vec![];
    while let Some(source) = current.source() {
        messages.push(source.to_string());
        current = source;
    }
    messages
        .into_iter()
        .rev()
        .find(|m| !m.is_empty())
        .unwrap_or_else(|| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn rate_limits_are_recognised_with_their_wait() {
        assert_eq!(
            rate_limit(
                StatusCode::TOO_MANY_REQUESTS,
                &headers(&[("retry-after", "7")])
            ),
            Some(Some(Duration::from_secs(7)))
        );
        assert_eq!(
            rate_limit(
                StatusCode::FORBIDDEN,
                &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "30")])
            ),
            Some(Some(Duration::from_secs(30)))
        );
        assert_eq!(
            rate_limit(StatusCode::TOO_MANY_REQUESTS, &headers(&[])),
            Some(None)
        );
        // A plain 403 is a permission problem, not a rate limit.
        assert_eq!(
            rate_limit(
                StatusCode::FORBIDDEN,
                &headers(&[("x-ratelimit-remaining", "4999")])
            ),
            None
        );
    }

    #[test]
    fn epoch_resets_become_delays() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let wait = seconds_until(now + 60);
        assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(58));
        assert_eq!(seconds_until(now - 10), Duration::ZERO);
    }

    #[test]
    fn messages_are_read_from_each_code_hosts_error_shape() {
        let github = serde_json::json!({"message": "Bad credentials"});
        let gitlab = serde_json::json!({"error": "invalid_token", "error_description": "Token was revoked."});
        let bitbucket = serde_json::json!({"errors": [{"message": "a"}, {"message": "b"}]});
        assert_eq!(json_message(&github).as_deref(), Some("Bad credentials"));
        assert_eq!(json_message(&gitlab).as_deref(), Some("Token was revoked."));
        assert_eq!(json_message(&bitbucket).as_deref(), Some("a; b"));
        let cloud = serde_json::json!({"type": "error", "error": {"message": "No changes"}});
        assert_eq!(json_message(&cloud).as_deref(), Some("No changes"));
    }

    #[test]
    fn gerrits_xssi_guard_is_dropped_before_parsing() {
        assert_eq!(without_xssi_guard(b")]}'\n{\"a\":1}"), b"\n{\"a\":1}");
        assert_eq!(without_xssi_guard(b"{}"), b"{}");
    }

    #[test]
    fn echoed_tokens_are_redacted_and_long_messages_shortened() {
        let token = SecretString::from("ghp_secret");
        assert_eq!(
            redact("bad token ghp_secret", &token),
            "bad token [REDACTED]"
        );
        let long = "x".repeat(1000);
        assert_eq!(shorten(&long).chars().count(), MAX_DETAIL_LEN + 1);
    }
}
