//! Reading the webhooks code hosts send when a pull request changes, so
//! its changeset can be synced at once instead of at the next poll.
//!
//! A webhook is only believed once it is shown to come from the code host:
//! GitHub and Bitbucket Server sign the body with the shared secret
//! (HMAC-SHA256), GitLab sends the secret itself as a token. Both are
//! compared in constant time. The answer only names the pull request to
//! re-sync; what changed is read from the code host's API, never taken
//! from the (replayable) payload.

use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::CodeHostKind;

/// A pull request a webhook says has changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// `owner/name` (GitHub), `group/project` (GitLab), `PROJECT/repo`
    /// (Bitbucket Server): as [`super::PullRequestDraft::repository`].
    pub repository: String,
    /// GitHub's number, GitLab's `iid`, Bitbucket Server's id.
    pub number: u64,
}

/// Why a webhook was refused. The texts suit a 4xx answer body: they
/// never quote the secret or the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook carries no signature (or secret token) header")]
    MissingSignature,
    #[error("the webhook signature (or secret token) does not match the configured secret")]
    BadSignature,
    /// Also a webhook from a kind of code host batchcred cannot register
    /// (and so never gives a webhook address to).
    #[error("the webhook could not be read: {0}")]
    Malformed(String),
}

/// Checks that a webhook comes from the code host holding `secret`, then
/// reads which pull request it is about. `Ok(None)` for a genuine webhook
/// about nothing batchcred follows (a ping, a push, a comment…).
///
/// An empty secret never verifies: it would let anyone send webhooks.
pub fn verify_and_read(
    kind: CodeHostKind,
    headers: &HeaderMap,
    body: &[u8],
    secret: &[u8],
) -> Result<Option<WebhookEvent>, WebhookError> {
    match kind {
        CodeHostKind::GitHub => {
            verify_hmac(headers, "x-hub-signature-256", body, secret)?;
            read_github(header(headers, "x-github-event")?, body)
        }
        CodeHostKind::GitLab => {
            verify_token(headers, "x-gitlab-token", secret)?;
            read_gitlab(header(headers, "x-gitlab-event")?, body)
        }
        CodeHostKind::BitbucketServer => {
            verify_hmac(headers, "x-hub-signature", body, secret)?;
            read_bitbucket_server(header(headers, "x-event-key")?, body)
        }
        CodeHostKind::BitbucketCloud | CodeHostKind::AzureDevOps | CodeHostKind::Gerrit => {
            Err(WebhookError::Malformed(format!(
                "batchcred does not read webhooks from {} code hosts",
                kind.display_name()
            )))
        }
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>` in header `name`.
fn verify_hmac(
    headers: &HeaderMap,
    name: &str,
    body: &[u8],
    secret: &[u8],
) -> Result<(), WebhookError> {
    let value = headers
        .get(name)
        .ok_or(WebhookError::MissingSignature)?
        .to_str()
        .map_err(|_| WebhookError::BadSignature)?;
    let signature = value
        .trim()
        .strip_prefix("sha256=")
        .and_then(decode_hex)
        .ok_or(WebhookError::BadSignature)?;
    if secret.is_empty() {
        return Err(WebhookError::BadSignature);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| WebhookError::BadSignature)?;
    mac.update(body);
    // Constant time, so the answer's timing does not reveal how much of
    // a forged signature was right.
    mac.verify_slice(&signature)
        .map_err(|_| WebhookError::BadSignature)
}

/// The secret itself in header `name` (GitLab).
fn verify_token(headers: &HeaderMap, name: &str, secret: &[u8]) -> Result<(), WebhookError> {
    let sent = headers.get(name).ok_or(WebhookError::MissingSignature)?;
    if secret.is_empty() || !bool::from(sent.as_bytes().ct_eq(secret)) {
        return Err(WebhookError::BadSignature);
    }
    Ok(())
}

/// The event name header, which a genuine webhook always carries.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, WebhookError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(|| WebhookError::Malformed(format!("no {name} header")))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, WebhookError> {
    serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))
}

#[derive(Deserialize)]
struct GitHubPayload {
    repository: GitHubRepository,
    pull_request: GitHubPull,
}

#[derive(Deserialize)]
struct GitHubRepository {
    full_name: String,
}

#[derive(Deserialize)]
struct GitHubPull {
    number: u64,
}

/// Pull request and review events name the pull request. Check suites
/// and statuses are left to the next poll: they name commits, not one
/// pull request.
fn read_github(event: &str, body: &[u8]) -> Result<Option<WebhookEvent>, WebhookError> {
    match event {
        "pull_request" | "pull_request_review" => {
            let payload: GitHubPayload = parse(body)?;
            Ok(Some(WebhookEvent {
                repository: payload.repository.full_name,
                number: payload.pull_request.number,
            }))
        }
        _ => Ok(None),
    }
}

#[derive(Deserialize)]
struct GitLabProject {
    path_with_namespace: String,
}

#[derive(Deserialize)]
struct GitLabMergeRequestPayload {
    project: GitLabProject,
    object_attributes: GitLabMergeRequest,
}

#[derive(Deserialize)]
struct GitLabPipelinePayload {
    project: GitLabProject,
    /// Set for merge request pipelines only.
    merge_request: Option<GitLabMergeRequest>,
}

#[derive(Deserialize)]
struct GitLabMergeRequest {
    iid: u64,
}

/// Merge request events (opened, closed, merged, approved…), and the
/// pipelines of merge requests, whose status shows as the checks.
fn read_gitlab(event: &str, body: &[u8]) -> Result<Option<WebhookEvent>, WebhookError> {
    match event {
        "Merge Request Hook" => {
            let payload: GitLabMergeRequestPayload = parse(body)?;
            Ok(Some(WebhookEvent {
                repository: payload.project.path_with_namespace,
                number: payload.object_attributes.iid,
            }))
        }
        "Pipeline Hook" => {
            let payload: GitLabPipelinePayload = parse(body)?;
            Ok(payload.merge_request.map(|mr| WebhookEvent {
                repository: payload.project.path_with_namespace,
                number: mr.iid,
            }))
        }
        _ => Ok(None),
    }
}

#[derive(Deserialize)]
struct BitbucketPayload {
    #[serde(rename = "pullRequest")]
    pull_request: BitbucketPull,
}

#[derive(Deserialize)]
struct BitbucketPull {
    id: u64,
    #[serde(rename = "toRef")]
    to_ref: BitbucketRef,
}

#[derive(Deserialize)]
struct BitbucketRef {
    repository: BitbucketRepository,
}

#[derive(Deserialize)]
struct BitbucketRepository {
    slug: String,
    project: BitbucketProject,
}

#[derive(Deserialize)]
struct BitbucketProject {
    key: String,
}

/// Every `pr:*` event (opened, merged, declined, reviewer changes…) names
/// the pull request in the repository it targets.
fn read_bitbucket_server(event: &str, body: &[u8]) -> Result<Option<WebhookEvent>, WebhookError> {
    if !event.starts_with("pr:") {
        // diagnostics:ping, repo:refs_changed, …
        return Ok(None);
    }
    let payload: BitbucketPayload = parse(body)?;
    let repository = payload.pull_request.to_ref.repository;
    Ok(Some(WebhookEvent {
        repository: format!("{}/{}", repository.project.key, repository.slug),
        number: payload.pull_request.id,
    }))
}

/// Lower- or uppercase hex; `None` for anything else.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    const SECRET: &[u8] = b"webhook-secret";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("key");
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256={hex}")
    }

    fn github_pull_body() -> Vec<u8> {
        json!({"action": "closed", "number": 7,
               "pull_request": {"number": 7, "state": "closed", "merged": true},
               "repository": {"full_name": "acme/api", "name": "api"}})
        .to_string()
        .into_bytes()
    }

    fn github(
        event: &str,
        body: &[u8],
        signature: &str,
    ) -> Result<Option<WebhookEvent>, WebhookError> {
        let headers = headers(&[
            ("x-github-event", event),
            ("x-hub-signature-256", signature),
        ]);
        verify_and_read(CodeHostKind::GitHub, &headers, body, SECRET)
    }

    #[test]
    fn a_signed_github_pull_request_event_names_the_pull_request() {
        let body = github_pull_body();
        let event = github("pull_request", &body, &sign(SECRET, &body));
        assert_eq!(
            event,
            Ok(Some(WebhookEvent {
                repository: "acme/api".into(),
                number: 7
            }))
        );
        let review = github("pull_request_review", &body, &sign(SECRET, &body));
        assert_eq!(review.ok().flatten().map(|e| e.number), Some(7));
    }

    #[test]
    fn github_signatures_must_match_the_secret_and_the_body() {
        let body = github_pull_body();
        let other_secret = github("pull_request", &body, &sign(b"guess", &body));
        assert_eq!(other_secret, Err(WebhookError::BadSignature));
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        let other_body = github("pull_request", &tampered, &sign(SECRET, &body));
        assert_eq!(other_body, Err(WebhookError::BadSignature));
        for garbage in ["sha256=zz", "sha1=abcd", "", "sha256=abc"] {
            assert_eq!(
                github("pull_request", &body, garbage),
                Err(WebhookError::BadSignature),
                "{garbage:?}"
            );
        }
        // Uppercase hex is still the same signature.
        let upper = sign(SECRET, &body)
            .to_uppercase()
            .replace("SHA256=", "sha256=");
        assert!(github("pull_request", &body, &upper).is_ok());
    }

    #[test]
    fn a_webhook_without_signature_is_refused_before_it_is_read() {
        let body = b"not even json";
        let unsigned = headers(&[("x-github-event", "pull_request")]);
        assert_eq!(
            verify_and_read(CodeHostKind::GitHub, &unsigned, body, SECRET),
            Err(WebhookError::MissingSignature)
        );
        let bitbucket = headers(&[("x-event-key", "pr:opened")]);
        assert_eq!(
            verify_and_read(CodeHostKind::BitbucketServer, &bitbucket, body, SECRET),
            Err(WebhookError::MissingSignature)
        );
        let gitlab = headers(&[("x-gitlab-event", "Merge Request Hook")]);
        assert_eq!(
            verify_and_read(CodeHostKind::GitLab, &gitlab, body, SECRET),
            Err(WebhookError::MissingSignature)
        );
    }

    #[test]
    fn an_empty_secret_verifies_nothing() {
        let body = github_pull_body();
        let github = headers(&[
            ("x-github-event", "pull_request"),
            ("x-hub-signature-256", &sign(b"", &body)),
        ]);
        assert_eq!(
            verify_and_read(CodeHostKind::GitHub, &github, &body, b""),
            Err(WebhookError::BadSignature)
        );
        let gitlab = headers(&[
            ("x-gitlab-event", "Merge Request Hook"),
            ("x-gitlab-token", ""),
        ]);
        assert_eq!(
            verify_and_read(CodeHostKind::GitLab, &gitlab, &body, b""),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn pings_and_unfollowed_events_are_accepted_and_ignored() {
        let ping = json!({"zen": "Keep it simple.", "hook_id": 1}).to_string();
        assert_eq!(
            github("ping", ping.as_bytes(), &sign(SECRET, ping.as_bytes())),
            Ok(None)
        );
        let push = json!({"ref": "refs/heads/main"}).to_string();
        assert_eq!(
            github("push", push.as_bytes(), &sign(SECRET, push.as_bytes())),
            Ok(None)
        );
        let bitbucket_ping = json!({"test": true}).to_string();
        let headers = headers(&[
            ("x-event-key", "diagnostics:ping"),
            ("x-hub-signature", &sign(SECRET, bitbucket_ping.as_bytes())),
        ]);
        assert_eq!(
            verify_and_read(
                CodeHostKind::BitbucketServer,
                &headers,
                bitbucket_ping.as_bytes(),
                SECRET
            ),
            Ok(None)
        );
    }

    #[test]
    fn malformed_payloads_of_followed_events_are_reported() {
        let body = b"{\"repository\": {\"full_name\": \"acme/api\"}";
        let result = github("pull_request", body, &sign(SECRET, body));
        assert!(
            matches!(result, Err(WebhookError::Malformed(_))),
            "{result:?}"
        );
        let no_number =
            json!({"repository": {"full_name": "acme/api"}, "pull_request": {}}).to_string();
        let result = github(
            "pull_request",
            no_number.as_bytes(),
            &sign(SECRET, no_number.as_bytes()),
        );
        assert!(
            matches!(result, Err(WebhookError::Malformed(_))),
            "{result:?}"
        );
        let no_event = headers(&[("x-hub-signature-256", &sign(SECRET, body))]);
        assert_eq!(
            verify_and_read(CodeHostKind::GitHub, &no_event, body, SECRET),
            Err(WebhookError::Malformed("no x-github-event header".into()))
        );
    }

    #[test]
    fn gitlab_merge_request_events_need_the_secret_token() {
        let body = json!({"object_kind": "merge_request",
                          "project": {"path_with_namespace": "group/sub/project"},
                          "object_attributes": {"iid": 12, "state": "merged"}})
        .to_string();
        let with_token = |token: &str| {
            let headers = headers(&[
                ("x-gitlab-event", "Merge Request Hook"),
                ("x-gitlab-token", token),
            ]);
            verify_and_read(CodeHostKind::GitLab, &headers, body.as_bytes(), SECRET)
        };
        assert_eq!(
            with_token("webhook-secret"),
            Ok(Some(WebhookEvent {
                repository: "group/sub/project".into(),
                number: 12
            }))
        );
        assert_eq!(
            with_token("webhook-secreT"),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            with_token("webhook-secret "),
            Err(WebhookError::BadSignature)
        );
        let malformed = headers(&[
            ("x-gitlab-event", "Merge Request Hook"),
            ("x-gitlab-token", "webhook-secret"),
        ]);
        let result = verify_and_read(CodeHostKind::GitLab, &malformed, b"[1, 2]", SECRET);
        assert!(
            matches!(result, Err(WebhookError::Malformed(_))),
            "{result:?}"
        );
    }

    #[test]
    fn gitlab_pipelines_count_only_for_merge_requests() {
        let read = |payload: serde_json::Value| {
            let headers = headers(&[
                ("x-gitlab-event", "Pipeline Hook"),
                ("x-gitlab-token", "webhook-secret"),
            ]);
            verify_and_read(
                CodeHostKind::GitLab,
                &headers,
                payload.to_string().as_bytes(),
                SECRET,
            )
        };
        let for_merge_request = read(json!({"project": {"path_with_namespace": "g/p"},
                                            "merge_request": {"iid": 3}}));
        assert_eq!(
            for_merge_request,
            Ok(Some(WebhookEvent {
                repository: "g/p".into(),
                number: 3
            }))
        );
        let for_branch = read(json!({"project": {"path_with_namespace": "g/p"},
                                     "merge_request": null}));
        assert_eq!(for_branch, Ok(None));
    }

    #[test]
    fn bitbucket_server_pull_request_events_name_the_target_repository() {
        let body = json!({"eventKey": "pr:merged",
            "pullRequest": {"id": 5, "version": 2, "state": "MERGED",
                "fromRef": {"id": "refs/heads/x", "repository": {"slug": "fork", "project": {"key": "~ALICE"}}},
                "toRef": {"id": "refs/heads/main", "repository": {"slug": "api", "project": {"key": "ACME"}}}}})
        .to_string();
        let read = |signature: &str| {
            let headers = headers(&[("x-event-key", "pr:merged"), ("x-hub-signature", signature)]);
            verify_and_read(
                CodeHostKind::BitbucketServer,
                &headers,
                body.as_bytes(),
                SECRET,
            )
        };
        assert_eq!(
            read(&sign(SECRET, body.as_bytes())),
            Ok(Some(WebhookEvent {
                repository: "ACME/api".into(),
                number: 5
            }))
        );
        assert_eq!(
            read(&sign(b"other", body.as_bytes())),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn other_kinds_are_refused_as_unreadable() {
        assert_eq!(
            verify_and_read(CodeHostKind::Gerrit, &HeaderMap::new(), b"{}", SECRET),
            Err(WebhookError::Malformed(
                "batchcred does not read webhooks from Gerrit code hosts".into()
            ))
        );
    }

    #[test]
    fn hex_decodes_only_whole_hex_bytes() {
        assert_eq!(decode_hex("00ff7F"), Some(vec![0, 255, 127]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("é1"), None);
    }
}
