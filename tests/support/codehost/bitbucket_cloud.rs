//! A Bitbucket Cloud API emulator: `/api/2.0` on a loopback port (any
//! prefix before it is ignored, so `http://127.0.0.1:PORT/bb` is a code
//! host URL), with Bitbucket Cloud's shapes, headers and errors.
//!
//! It authenticates as Bitbucket does: HTTP Basic, an API token only with
//! its Atlassian account email, an app password only with its Bitbucket
//! username; anything else (or a revoked or expired token) is a 401 that
//! does not say why. Each endpoint needs a scope; a token without it gets
//! the 403 naming the scopes required and granted. `X-OAuth-Scopes` is
//! sent only for tokens set to report it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::{EmulatedChecks, EmulatedReview, PullState};

pub const READ_USER: &str = "read:user:bitbucket";
pub const READ_REPOSITORY: &str = "read:repository:bitbucket";
pub const WRITE_REPOSITORY: &str = "write:repository:bitbucket";
pub const READ_PULL_REQUESTS: &str = "read:pullrequest:bitbucket";
pub const WRITE_PULL_REQUESTS: &str = "write:pullrequest:bitbucket";

/// Everything batchcred needs, as an API token names it.
pub const API_TOKEN_SCOPES: &[&str] = &[
    READ_USER,
    READ_REPOSITORY,
    WRITE_REPOSITORY,
    READ_PULL_REQUESTS,
    WRITE_PULL_REQUESTS,
];
/// Everything batchcred needs, as an app password names it.
pub const APP_PASSWORD_SCOPES: &[&str] = &["account", "repository:write", "pullrequest:write"];

/// One API token or app password.
#[derive(Debug, Clone)]
pub struct CloudToken {
    /// The Bitbucket username of its account.
    pub username: String,
    /// `Some` for an API token: sent as the Basic username instead.
    pub email: Option<String>,
    pub scopes: Vec<String>,
    /// Whether answers carry `X-OAuth-Scopes`.
    pub reports_scopes: bool,
    pub revoked: bool,
    pub expired: bool,
}

impl CloudToken {
    pub fn api_token(email: &str, username: &str, scopes: &[&str]) -> Self {
        Self {
            username: username.to_owned(),
            email: Some(email.to_owned()),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            reports_scopes: false,
            revoked: false,
            expired: false,
        }
    }

    pub fn app_password(username: &str, scopes: &[&str]) -> Self {
        Self {
            email: None,
            ..Self::api_token("", username, scopes)
        }
    }

    pub fn reporting_scopes(mut self) -> Self {
        self.reports_scopes = true;
        self
    }

    /// The Basic username Bitbucket accepts with it.
    fn basic_user(&self) -> &str {
        self.email.as_deref().unwrap_or(&self.username)
    }

    fn uuid(&self) -> String {
        format!("{{{}-uuid}}", self.username)
    }

    /// Whether it carries `required` (an API token name), directly or
    /// through an app password scope that implies it.
    fn grants(&self, required: &str) -> bool {
        self.scopes.iter().any(|granted| {
            granted == required
                || match granted.as_str() {
                    "account" | "account:write" => required == READ_USER,
                    "repository" => required == READ_REPOSITORY,
                    "repository:write" => [READ_REPOSITORY, WRITE_REPOSITORY].contains(&required),
                    "pullrequest" => [READ_PULL_REQUESTS, READ_REPOSITORY].contains(&required),
                    "pullrequest:write" => [
                        READ_PULL_REQUESTS,
                        WRITE_PULL_REQUESTS,
                        READ_REPOSITORY,
                        WRITE_REPOSITORY,
                    ]
                    .contains(&required),
                    _ => false,
                }
        })
    }

    /// `required` as this kind of token names it.
    fn scope_name(&self, required: &str) -> String {
        if self.email.is_some() {
            return required.to_owned();
        }
        match required {
            READ_USER => "account",
            READ_REPOSITORY => "repository",
            WRITE_REPOSITORY => "repository:write",
            READ_PULL_REQUESTS => "pullrequest",
            _ => "pullrequest:write",
        }
        .to_owned()
    }
}

/// A repository the emulator serves.
#[derive(Debug, Clone)]
pub struct CloudRepo {
    pub http_clone_url: String,
    pub ssh_clone_url: Option<String>,
    pub main_branch: String,
}

/// A pull request opened through the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudPull {
    pub id: u64,
    pub repository: String,
    pub source: String,
    pub destination: String,
    pub title: String,
    pub description: String,
    pub draft: bool,
    pub close_source_branch: bool,
    pub state: PullState,
    /// Reviewer UUIDs.
    pub reviewers: Vec<String>,
    pub review: Option<EmulatedReview>,
    pub checks: Option<EmulatedChecks>,
    /// The token that opened it.
    pub opened_with: String,
    /// How many times it was updated (`PUT`).
    pub updates: u32,
    pub hash: String,
}

/// A request as the emulator saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// The path below `/api/2.0`.
    pub path: String,
    pub query: String,
    /// The Basic username it carried.
    pub username: Option<String>,
    pub status: u16,
    pub at: Instant,
}

#[derive(Default)]
struct Shared {
    /// By secret.
    tokens: HashMap<String, CloudToken>,
    repositories: HashMap<String, CloudRepo>,
    pulls: Vec<CloudPull>,
    last_id: u64,
    deleted_branches: Vec<(String, String)>,
    /// The next this many requests are refused with 429.
    rate_limited: u32,
    retry_after: Option<u64>,
    seen: Vec<SeenRequest>,
}

/// A running emulator; stops when dropped.
pub struct BitbucketCloudEmulator {
    pub address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for BitbucketCloudEmulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts an emulator that knows no tokens or repositories yet.
pub async fn start() -> BitbucketCloudEmulator {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let app = Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind emulator");
    let address = listener.local_addr().expect("emulator address");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    BitbucketCloudEmulator {
        address,
        shared,
        server,
    }
}

impl BitbucketCloudEmulator {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().expect("emulator state")
    }

    /// A code host URL served by this emulator.
    pub fn url(&self, prefix: &str) -> String {
        format!("http://{}/{prefix}", self.address)
    }

    pub fn add_token(&self, secret: &str, token: CloudToken) {
        self.lock().tokens.insert(secret.to_owned(), token);
    }

    /// Changes a known token (revoke it, let it expire…).
    pub fn update_token(&self, secret: &str, change: impl FnOnce(&mut CloudToken)) {
        change(self.lock().tokens.get_mut(secret).expect("known token"));
    }

    /// Serves `repository` (`workspace/slug`).
    pub fn add_repository(&self, repository: &str, repo: CloudRepo) {
        self.lock().repositories.insert(repository.to_owned(), repo);
    }

    /// The next `count` requests get a 429, with `Retry-After` if given.
    pub fn rate_limit(&self, count: u32, retry_after: Option<u64>) {
        let mut shared = self.lock();
        shared.rate_limited = count;
        shared.retry_after = retry_after;
    }

    pub fn pulls(&self) -> Vec<CloudPull> {
        self.lock().pulls.clone()
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.lock().seen.clone()
    }

    /// `(repository, branch)` for each branch deleted, in order.
    pub fn deleted_branches(&self) -> Vec<(String, String)> {
        self.lock().deleted_branches.clone()
    }

    fn update_pull(&self, repository: &str, id: u64, change: impl FnOnce(&mut CloudPull)) {
        let mut shared = self.lock();
        let pull = shared
            .pulls
            .iter_mut()
            .find(|p| p.repository == repository && p.id == id)
            .expect("known pull request");
        change(pull);
    }

    /// Merges it, as someone on Bitbucket would.
    pub fn merge_pull(&self, repository: &str, id: u64) {
        self.update_pull(repository, id, |p| p.state = PullState::Merged);
    }

    /// Adds a reviewer, as someone on Bitbucket would.
    pub fn add_reviewer(&self, repository: &str, id: u64, uuid: &str) {
        self.update_pull(repository, id, |p| p.reviewers.push(uuid.to_owned()));
    }

    pub fn set_pull_review(&self, repository: &str, id: u64, review: Option<EmulatedReview>) {
        self.update_pull(repository, id, |p| p.review = review);
    }

    pub fn set_pull_checks(&self, repository: &str, id: u64, checks: Option<EmulatedChecks>) {
        self.update_pull(repository, id, |p| p.checks = checks);
    }

    /// Deletes it: asking for it answers 404 from now on.
    pub fn delete_pull(&self, repository: &str, id: u64) {
        self.lock()
            .pulls
            .retain(|p| !(p.repository == repository && p.id == id));
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"type": "error", "error": {"message": message}})),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The user name and password of a Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.strip_prefix("Basic ")?)
        .ok()?;
    let (user, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))?;
    Some((user, password))
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let query = uri.query().unwrap_or("").to_owned();
    let Some(api_path) = path
        .find("/api/2.0")
        .map(|at| &path[at + "/api/2.0".len()..])
    else {
        return error(StatusCode::NOT_FOUND, "not an API path");
    };
    let credentials = basic_credentials(&headers);
    let origin = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default();
    let mut shared = shared.lock().expect("emulator state");
    let response = respond(
        &mut shared,
        &method,
        api_path,
        &query,
        credentials.as_ref(),
        &body,
        &origin,
    );
    shared.seen.push(SeenRequest {
        method: method.to_string(),
        path: api_path.to_owned(),
        query,
        username: credentials.map(|(user, _)| user),
        status: response.status().as_u16(),
        at: Instant::now(),
    });
    response
}

fn respond(
    shared: &mut Shared,
    method: &Method,
    path: &str,
    query: &str,
    credentials: Option<&(String, String)>,
    body: &[u8],
    origin: &str,
) -> Response {
    if shared.rate_limited > 0 {
        shared.rate_limited -= 1;
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit for this resource has been exceeded",
        );
        if let Some(wait) = shared.retry_after {
            response
                .headers_mut()
                .insert("retry-after", wait.to_string().parse().expect("header"));
        }
        return response;
    }
    let token = credentials.and_then(|(user, secret)| {
        shared
            .tokens
            .get(secret)
            .filter(|t| t.basic_user() == user && !t.revoked && !t.expired)
            .map(|t| (t.clone(), secret.clone()))
    });
    let Some((token, secret)) = token else {
        let mut response = error(StatusCode::UNAUTHORIZED, "Unauthorized");
        response.headers_mut().insert(
            "www-authenticate",
            "Basic realm=\"Bitbucket.org HTTP\""
                .parse()
                .expect("header"),
        );
        return response;
    };
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let Some(required) = required_scope(method, &segments) else {
        return error(StatusCode::NOT_FOUND, "Resource not found");
    };
    if !token.grants(required) {
        let granted: Vec<&String> = token.scopes.iter().collect();
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"type": "error", "error": {
                "message": "Your credentials lack one or more required privilege scopes.",
                "detail": {"required": [token.scope_name(required)], "granted": granted},
            }})),
        )
            .into_response();
    }
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut response = route(
        shared, method, &segments, query, &body, &token, &secret, origin,
    );
    if token.reports_scopes {
        let scopes = token.scopes.join(", ");
        response
            .headers_mut()
            .insert("x-oauth-scopes", scopes.parse().expect("header"));
    }
    response
}

/// The scope (API token name) each endpoint needs; `None` for an
/// endpoint the emulator does not serve.
fn required_scope(method: &Method, segments: &[&str]) -> Option<&'static str> {
    let write = *method != Method::GET;
    Some(match segments {
        ["user"] => READ_USER,
        ["repositories"] => READ_REPOSITORY,
        ["repositories", _, _] => READ_REPOSITORY,
        ["repositories", _, _, "pullrequests", ..] if write => WRITE_PULL_REQUESTS,
        ["repositories", _, _, "pullrequests", ..] => READ_PULL_REQUESTS,
        ["repositories", _, _, "commit", _, "statuses"] => READ_REPOSITORY,
        ["repositories", _, _, "refs", "branches", ..] if write => WRITE_REPOSITORY,
        _ => return None,
    })
}

#[allow(clippy::too_many_arguments)]
fn route(
    shared: &mut Shared,
    method: &Method,
    segments: &[&str],
    query: &str,
    body: &Value,
    token: &CloudToken,
    secret: &str,
    origin: &str,
) -> Response {
    if segments == ["user"] {
        return ok(json!({
            "type": "user", "username": token.username, "nickname": token.username,
            "display_name": format!("{} (display)", token.username),
            "account_id": format!("5f{}", token.username.len()), "uuid": token.uuid(),
        }));
    }
    if segments == ["repositories"] {
        let values: Vec<Value> = shared
            .repositories
            .keys()
            .take(1)
            .map(|name| json!({"full_name": name}))
            .collect();
        return ok(json!({"pagelen": 1, "values": values}));
    }
    let (repository, rest) = match segments {
        ["repositories", workspace, slug, rest @ ..] => (format!("{workspace}/{slug}"), rest),
        _ => return error(StatusCode::NOT_FOUND, "Resource not found"),
    };
    let Some(repo) = shared.repositories.get(&repository).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("Repository {repository} not found"),
        );
    };
    let html = |id: u64| format!("{origin}/{repository}/pull-requests/{id}");
    let param = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    match (method.as_str(), rest) {
        ("GET", []) => {
            // Bitbucket puts the account's username in HTTPS clone links.
            let https = repo
                .http_clone_url
                .replacen("://", &format!("://{}@", token.username), 1);
            let mut clone = vec![json!({"name": "https", "href": https})];
            if let Some(ssh) = &repo.ssh_clone_url {
                clone.push(json!({"name": "ssh", "href": ssh}));
            }
            ok(json!({
                "type": "repository", "full_name": repository,
                "mainbranch": {"type": "branch", "name": repo.main_branch},
                "links": {"clone": clone, "html": {"href": format!("{origin}/{repository}")}},
            }))
        }
        ("GET", ["pullrequests"]) => {
            let state = param("state").unwrap_or_else(|| "OPEN".into());
            let q = param("q").unwrap_or_default();
            let conditions = bbql_conditions(&q);
            let values: Vec<Value> = shared
                .pulls
                .iter()
                .filter(|p| p.repository == repository && state_name(p.state) == state)
                .filter(|p| {
                    conditions
                        .iter()
                        .all(|(field, value)| match field.as_str() {
                            "source.branch.name" => p.source == *value,
                            "source.repository.full_name" => p.repository == *value,
                            _ => false,
                        })
                })
                // Listings leave reviewers and participants out.
                .map(|p| {
                    json!({"id": p.id, "title": p.title, "state": state_name(p.state),
                           "links": {"html": {"href": html(p.id)}}})
                })
                .collect();
            ok(json!({"pagelen": values.len(), "values": values}))
        }
        ("POST", ["pullrequests"]) => {
            let text = |pointer: &str| {
                body.pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let source = text("/source/branch/name");
            let destination = text("/destination/branch/name");
            // Bitbucket answers with the open one for the same branches.
            if let Some(existing) = shared.pulls.iter().find(|p| {
                p.repository == repository
                    && p.source == source
                    && p.destination == destination
                    && p.state == PullState::Open
            }) {
                return ok(render(existing, &html(existing.id)));
            }
            shared.last_id += 1;
            let id = shared.last_id;
            let pull = CloudPull {
                id,
                repository: repository.clone(),
                source,
                destination,
                title: text("/title"),
                description: text("/description"),
                draft: body["draft"].as_bool().unwrap_or(false),
                close_source_branch: body["close_source_branch"].as_bool().unwrap_or(false),
                state: PullState::Open,
                reviewers: vec![],
                review: None,
                checks: None,
                opened_with: secret.to_owned(),
                updates: 0,
                hash: format!("{id:012x}"),
            };
            let response = (StatusCode::CREATED, axum::Json(render(&pull, &html(id))));
            shared.pulls.push(pull);
            response.into_response()
        }
        (_, ["pullrequests", id, action @ ..]) => {
            let Some(pull) = id.parse::<u64>().ok().and_then(|id| {
                shared
                    .pulls
                    .iter_mut()
                    .find(|p| p.repository == repository && p.id == id)
            }) else {
                return error(StatusCode::NOT_FOUND, "Pull request not found");
            };
            match (method.as_str(), action) {
                ("GET", []) => {}
                ("PUT", []) => {
                    if pull.state != PullState::Open {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "Only open pull requests can be updated",
                        );
                    }
                    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str);
                    if let Some(title) = text("/title") {
                        pull.title = title.to_owned();
                    }
                    if let Some(description) = text("/description") {
                        pull.description = description.to_owned();
                    }
                    if let Some(destination) = text("/destination/branch/name") {
                        pull.destination = destination.to_owned();
                    }
                    // A full replace: reviewers not sent are removed.
                    pull.reviewers = body["reviewers"]
                        .as_array()
                        .map(|list| {
                            list.iter()
                                .filter_map(|r| r["uuid"].as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    pull.updates += 1;
                }
                ("POST", ["decline"]) => {
                    if pull.state != PullState::Open {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "Only open pull requests can be declined",
                        );
                    }
                    pull.state = PullState::Closed;
                }
                _ => return error(StatusCode::NOT_FOUND, "Resource not found"),
            }
            ok(render(pull, &html(pull.id)))
        }
        ("GET", ["commit", hash, "statuses"]) => {
            let states: &[&str] = match shared
                .pulls
                .iter()
                .find(|p| p.repository == repository && p.hash == *hash)
                .and_then(|p| p.checks)
            {
                Some(EmulatedChecks::Passed) => &["SUCCESSFUL"],
                Some(EmulatedChecks::Failed) => &["SUCCESSFUL", "FAILED"],
                Some(EmulatedChecks::Running) => &["INPROGRESS"],
                None => &[],
            };
            let values: Vec<Value> = states
                .iter()
                .map(|state| json!({"type": "build", "key": "ci", "state": state}))
                .collect();
            ok(json!({"pagelen": values.len(), "values": values}))
        }
        ("DELETE", ["refs", "branches", branch @ ..]) => {
            let branch = branch.join("/");
            let entry = (repository.clone(), branch.clone());
            if shared.deleted_branches.contains(&entry) {
                return error(StatusCode::NOT_FOUND, &format!("Branch {branch} not found"));
            }
            shared.deleted_branches.push(entry);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "Resource not found"),
    }
}

fn state_name(state: PullState) -> &'static str {
    match state {
        PullState::Open => "OPEN",
        PullState::Closed => "DECLINED",
        PullState::Merged => "MERGED",
    }
}

/// `field = "value" AND field = "value"`, with `\"` and `\\` escapes.
pub fn bbql_conditions(q: &str) -> Vec<(String, String)> {
    let mut conditions = vec![];
    let mut rest = q.trim();
    while let Some((field, after)) = rest.split_once('=') {
        let field = field.trim().trim_start_matches("AND ").trim().to_owned();
        let after = after.trim_start();
        let Some(quoted) = after.strip_prefix('"') else {
            break;
        };
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let mut end = quoted.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => {
                    end = at + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        conditions.push((field, value));
        rest = quoted[end..].trim_start();
    }
    conditions
}

/// A pull request in Bitbucket Cloud's shape, participants and reviewers
/// rendered from the emulated review.
fn render(pull: &CloudPull, html: &str) -> Value {
    let reviewer = |approved: bool, state: Value| {
        json!({"role": "REVIEWER", "approved": approved, "state": state,
               "user": {"uuid": "{reviewer}"}})
    };
    let participants = match pull.review {
        Some(EmulatedReview::Approved) => vec![reviewer(true, json!("approved"))],
        Some(EmulatedReview::ChangesRequested) => vec![
            reviewer(true, json!("approved")),
            reviewer(false, json!("changes_requested")),
        ],
        Some(EmulatedReview::Requested) => vec![reviewer(false, Value::Null)],
        None => vec![],
    };
    let reviewers: Vec<Value> = pull
        .reviewers
        .iter()
        .map(|uuid| json!({"uuid": uuid}))
        .collect();
    let endpoint = |branch: &str| json!({"branch": {"name": branch}, "repository": {"full_name": pull.repository}});
    let mut source = endpoint(&pull.source);
    source["commit"] = json!({"hash": pull.hash});
    json!({
        "type": "pullrequest", "id": pull.id, "title": pull.title,
        "description": pull.description, "state": state_name(pull.state), "draft": pull.draft,
        "source": source, "destination": endpoint(&pull.destination),
        "close_source_branch": pull.close_source_branch,
        "reviewers": reviewers, "participants": participants,
        "links": {"html": {"href": html}},
    })
}
