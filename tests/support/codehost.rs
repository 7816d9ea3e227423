//! A code host API emulator: GitHub (Enterprise, under `/api/v3`), GitLab
//! (`/api/v4`) and Bitbucket Server (`/rest/api/1.0`, with its build status
//! and branch utils APIs) on one loopback port, with the real response
//! shapes and headers, driven by a table of tokens.
//!
//! Pull requests opened through it live on: tests can read, close, reopen,
//! merge and delete them, give them reviews and checks, and see which
//! branches were deleted.
//!
//! Every URL `http://127.0.0.1:PORT/<prefix>` is a separate code host to
//! batchcred; the prefix is ignored when routing, so one emulator serves as
//! many code hosts as a test registers.

pub mod azure_devops;
pub mod bitbucket_cloud;
pub mod gerrit;
pub mod github_app;
pub mod github_graphql;
mod lifecycle;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub use lifecycle::{EmulatedChecks, EmulatedReview, PullState};
use lifecycle::{bitbucket_builds, delete_branch, find_pull_mut, not_found, render_pull};

/// What the emulator knows about one token.
#[derive(Debug, Clone)]
pub struct EmulatedToken {
    /// The code host account it belongs to.
    pub owner: String,
    /// GitHub/GitLab scopes; for Bitbucket Server `PROJECT_WRITE` and
    /// `REPO_WRITE` stand for the permissions.
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    /// A GitHub fine-grained token: no `X-OAuth-Scopes` header.
    pub fine_grained: bool,
    /// Repositories (`owner/name`) it may push to, for repository checks.
    pub push_repositories: Vec<String>,
}

impl EmulatedToken {
    pub fn new(owner: &str, scopes: &[&str]) -> Self {
        Self {
            owner: owner.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: None,
            revoked: false,
            fine_grained: false,
            push_repositories: vec![],
        }
    }

    pub fn expiring(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    pub fn revoked(mut self) -> Self {
        self.revoked = true;
        self
    }

    pub fn fine_grained(mut self) -> Self {
        self.fine_grained = true;
        self
    }

    pub fn pushing_to(mut self, repository: &str) -> Self {
        self.push_repositories.push(repository.to_owned());
        self
    }

    fn expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= Utc::now())
    }
}

pub const GITHUB_SCOPES: &[&str] = &[
    "repo",
    "read:org",
    "user:email",
    "read:discussion",
    "workflow",
];
pub const GITLAB_SCOPES: &[&str] = &["api", "read_repository", "write_repository"];
pub const BITBUCKET_SCOPES: &[&str] = &["PROJECT_WRITE", "REPO_WRITE"];

/// How the emulator misbehaves, for the failure paths.
#[derive(Debug, Clone, Default)]
pub enum Behaviour {
    #[default]
    Normal,
    /// Every answer is a 503.
    ServerError,
    /// Every answer comes after this delay.
    Slow(Duration),
    /// Every request is redirected to this origin (`http://host:port`).
    RedirectTo(String),
    /// Every answer is a rate-limit refusal, waiting this many seconds.
    RateLimited(u64),
    /// GitLab before 15.5: no `/personal_access_tokens/self`.
    OldGitLab,
    /// Error bodies quote the token they were sent (to test redaction).
    EchoTokens,
    /// Every answer is a 200 with a JSON body this many bytes long.
    Oversized(usize),
}

/// A request as the emulator saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    /// The token it carried, if any.
    pub token: Option<String>,
}

#[derive(Default)]
struct Shared {
    tokens: HashMap<String, EmulatedToken>,
    /// Unknown tokens are accepted with every scope (for tests about
    /// something else than validation).
    accept_any: bool,
    behaviour: Behaviour,
    seen: Vec<SeenRequest>,
    repositories: HashMap<String, EmulatedRepo>,
    /// Default branches other than `main`, by repository.
    default_branches: HashMap<String, String>,
    /// Repositories served under an old name: old → current name.
    moved: HashMap<String, String>,
    pulls: Vec<EmulatedPull>,
    /// The number of the last pull request opened (numbers are never
    /// reused, even after [`Emulator::delete_pull`]).
    last_pull_number: u64,
    /// `(repository, branch)`, in the order they were deleted.
    deleted_branches: Vec<(String, String)>,
    pull_rate_limits: u32,
    pull_rate_limit_wait: u64,
    pull_attempts: Vec<std::time::Instant>,
    /// Where `createCommitOnBranch` writes, by repository.
    commit_targets: HashMap<String, github_graphql::CommitTarget>,
    commits_created: usize,
    /// GitHub Apps, their installations and minted tokens.
    apps: github_app::AppState,
}

/// A running emulator; stops when dropped.
pub struct Emulator {
    pub address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Emulator {
    /// An emulator that knows only the tokens it is given.
    pub async fn start() -> Self {
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
        Self {
            address,
            shared,
            server,
        }
    }

    /// An emulator that accepts any token with every scope.
    pub async fn accepting_any_token() -> Self {
        let emulator = Self::start().await;
        emulator.lock().accept_any = true;
        emulator
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().expect("emulator state")
    }

    /// The base URL of a code host served by this emulator.
    pub fn url(&self, prefix: &str) -> String {
        format!("http://{}/{prefix}", self.address)
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn add_token(&self, token: &str, spec: EmulatedToken) {
        self.lock().tokens.insert(token.to_owned(), spec);
    }

    /// Changes a known token (revoke it, let it expire…).
    pub fn update_token(&self, token: &str, change: impl FnOnce(&mut EmulatedToken)) {
        let mut shared = self.lock();
        change(shared.tokens.get_mut(token).expect("known token"));
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.lock().behaviour = behaviour;
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.lock().seen.clone()
    }
}

/// The token a request carries, in any of the accepted headers.
fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers.get("private-token").and_then(|v| v.to_str().ok()) {
        return Some(token.to_owned());
    }
    let value = headers.get("authorization")?.to_str().ok()?;
    let (_, token) = value.split_once(' ')?;
    Some(token.trim().to_owned())
}

/// Which API a path belongs to, with the path inside that API.
enum Api<'a> {
    GitHub(&'a str),
    GitLab(&'a str),
    Bitbucket(&'a str),
    /// Bitbucket Server's `/rest/build-status/1.0`.
    BitbucketBuilds(&'a str),
    /// Bitbucket Server's `/rest/branch-utils/1.0`.
    BitbucketBranches(&'a str),
}

fn route(path: &str) -> Option<Api<'_>> {
    let after = |marker: &str| path.find(marker).map(|at| &path[at + marker.len()..]);
    if let Some(rest) = after("/api/v3") {
        Some(Api::GitHub(rest))
    } else if let Some(rest) = after("/api/v4") {
        Some(Api::GitLab(rest))
    } else if let Some(rest) = after("/rest/build-status/1.0") {
        Some(Api::BitbucketBuilds(rest))
    } else if let Some(rest) = after("/rest/branch-utils/1.0") {
        Some(Api::BitbucketBranches(rest))
    } else {
        after("/rest/api/1.0").map(Api::Bitbucket)
    }
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = token_of(&headers);
    let (behaviour, known, accept_any) = {
        let mut state = shared.lock().expect("emulator state");
        state.seen.push(SeenRequest {
            method: method.to_string(),
            path: uri.path().to_owned(),
            token: token.clone(),
        });
        let known = token.as_ref().and_then(|t| state.tokens.get(t).cloned());
        (state.behaviour.clone(), known, state.accept_any)
    };
    let spec = known.or_else(|| {
        accept_any.then(|| {
            let mut all: Vec<&str> = GITHUB_SCOPES.to_vec();
            all.extend(GITLAB_SCOPES);
            all.extend(BITBUCKET_SCOPES);
            EmulatedToken::new("emulated-user", &all)
        })
    });
    let token = token.unwrap_or_default();
    let echo = matches!(behaviour, Behaviour::EchoTokens);
    let old_gitlab = matches!(behaviour, Behaviour::OldGitLab);
    match behaviour {
        Behaviour::ServerError => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "<html><body>503 Service Unavailable</body></html>",
            )
                .into_response();
        }
        Behaviour::Slow(delay) => tokio::time::sleep(delay).await,
        Behaviour::RedirectTo(origin) => {
            let target = format!(
                "{origin}{}",
                uri.path_and_query().map_or("", |p| p.as_str())
            );
            return (StatusCode::FOUND, [("location", target)]).into_response();
        }
        Behaviour::RateLimited(wait) => return rate_limited(uri.path(), wait),
        Behaviour::Oversized(len) => {
            let mut body = vec![b' '; len];
            body[0] = b'[';
            body[len - 1] = b']';
            return (StatusCode::OK, [("content-type", "application/json")], body).into_response();
        }
        Behaviour::Normal | Behaviour::OldGitLab | Behaviour::EchoTokens => {}
    }
    if uri.path().ends_with("/api/graphql") {
        let origin = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(|h| format!("http://{h}"))
            .unwrap_or_default();
        return github_graphql::handle(&shared, usable(spec.as_ref()), &body, &origin);
    }
    let query = uri.query().unwrap_or("");
    let Some(api) = route(uri.path()) else {
        return (StatusCode::NOT_FOUND, "not an API path").into_response();
    };
    if let Api::GitHub(path) = &api {
        let mut state = shared.lock().expect("emulator state");
        if let Some(response) = github_app::handle(&mut state, path, &method, &token) {
            return response;
        }
    }
    if usable(spec.as_ref()).is_some() {
        let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let origin = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(|h| format!("http://{h}"))
            .unwrap_or_default();
        let mut state = shared.lock().expect("emulator state");
        if let Some(response) = pulls_api(
            &mut state, &api, &method, query, &json_body, &token, &origin,
        ) {
            return response;
        }
    }
    match Some(api) {
        Some(Api::GitHub(path)) => github(path, spec.as_ref(), echo.then_some(token.as_str())),
        Some(Api::GitLab(path)) => gitlab(path, spec.as_ref(), old_gitlab),
        Some(Api::Bitbucket(path) | Api::BitbucketBuilds(path) | Api::BitbucketBranches(path)) => {
            bitbucket(path, query, spec.as_ref())
        }
        None => (StatusCode::NOT_FOUND, "not an API path").into_response(),
    }
}

fn rate_limited(path: &str, wait: u64) -> Response {
    let reset = (Utc::now().timestamp() as u64 + wait).to_string();
    if path.contains("/api/v3") || path.contains("/api/graphql") {
        (
            StatusCode::FORBIDDEN,
            [
                ("x-ratelimit-limit", "5000".to_owned()),
                ("x-ratelimit-remaining", "0".to_owned()),
                ("x-ratelimit-reset", reset),
            ],
            axum::Json(json!({"message": "API rate limit exceeded"})),
        )
            .into_response()
    } else {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("ratelimit-remaining", "0".to_owned()),
                ("ratelimit-reset", reset),
                ("retry-after", wait.to_string()),
            ],
            "Retry later",
        )
            .into_response()
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A usable token: known (or accepted), not revoked, not expired.
fn usable(spec: Option<&EmulatedToken>) -> Option<&EmulatedToken> {
    spec.filter(|t| !t.revoked && !t.expired())
}

fn github(path: &str, spec: Option<&EmulatedToken>, echo: Option<&str>) -> Response {
    let Some(token) = usable(spec) else {
        let message = match echo {
            Some(sent) => format!("Bad credentials: {sent}"),
            None => "Bad credentials".to_owned(),
        };
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
        );
    };
    if path == "/user" {
        let mut response = json_response(
            StatusCode::OK,
            json!({"login": token.owner, "id": 1, "type": "User"}),
        );
        let headers = response.headers_mut();
        if !token.fine_grained {
            let scopes = token.scopes.join(", ");
            headers.insert("x-oauth-scopes", scopes.parse().expect("header"));
        }
        if let Some(at) = token.expires_at {
            let value = at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
            headers.insert(
                "github-authentication-token-expiration",
                value.parse().expect("header"),
            );
        }
        headers.insert("x-ratelimit-remaining", "4999".parse().expect("header"));
        return response;
    }
    if let Some(repository) = path.strip_prefix("/repos/") {
        let push = token.push_repositories.iter().any(|r| r == repository);
        if !push {
            // Repositories the emulator does not serve do not exist (and
            // fine-grained tokens see only those granted to them).
            return json_response(StatusCode::NOT_FOUND, json!({"message": "Not Found"}));
        }
        return json_response(
            StatusCode::OK,
            json!({"full_name": repository, "permissions": {"admin": false, "push": push, "pull": true}}),
        );
    }
    json_response(StatusCode::NOT_FOUND, json!({"message": "Not Found"}))
}

fn gitlab(path: &str, spec: Option<&EmulatedToken>, old: bool) -> Response {
    let unauthorized = |description: &str| {
        json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_token", "error_description": description}),
        )
    };
    let Some(token) = spec else {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"message": "401 Unauthorized"}),
        );
    };
    if token.revoked {
        return unauthorized("Token was revoked. You have to re-authorize from the user.");
    }
    if token.expired() {
        return unauthorized("Token has expired.");
    }
    match path {
        "/personal_access_tokens/self" if old => {
            json_response(StatusCode::NOT_FOUND, json!({"error": "404 Not Found"}))
        }
        "/personal_access_tokens/self" => json_response(
            StatusCode::OK,
            json!({
                "id": 42, "name": "batch changes", "revoked": false, "active": true,
                "created_at": "2026-01-01T00:00:00.000Z", "user_id": 7,
                "scopes": token.scopes,
                "expires_at": token.expires_at.map(|at| at.format("%Y-%m-%d").to_string()),
            }),
        ),
        "/user" => json_response(
            StatusCode::OK,
            json!({"id": 7, "username": token.owner, "state": "active"}),
        ),
        _ => {
            if let Some(project) = path.strip_prefix("/projects/") {
                let decoded = project.replace("%2F", "/");
                let level = if token.push_repositories.contains(&decoded) {
                    30
                } else {
                    20
                };
                return json_response(
                    StatusCode::OK,
                    json!({"path_with_namespace": decoded,
                           "permissions": {"project_access": {"access_level": level}, "group_access": null}}),
                );
            }
            json_response(StatusCode::NOT_FOUND, json!({"message": "404 Not Found"}))
        }
    }
}

fn bitbucket(path: &str, query: &str, spec: Option<&EmulatedToken>) -> Response {
    let token = usable(spec);
    let page = |size: usize| {
        json!({"size": size, "limit": 1, "isLastPage": true, "start": 0,
               "values": (0..size).map(|i| json!({"id": i})).collect::<Vec<_>>()})
    };
    if path == "/users" {
        // Anonymous access is on: a bad token still gets a 200, only
        // without X-AUSERNAME.
        let mut response = json_response(StatusCode::OK, page(1));
        if let Some(token) = token {
            response
                .headers_mut()
                .insert("x-ausername", token.owner.parse().expect("header"));
        }
        return response;
    }
    let Some(token) = token else {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"errors": [{"message": "Authentication failed. Please check your credentials and try again."}]}),
        );
    };
    let has = |scope: &str| token.scopes.iter().any(|s| s == scope);
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
    };
    match path {
        "/projects" => json_response(StatusCode::OK, page(usize::from(has("PROJECT_WRITE")))),
        "/repos" => {
            let allowed = match (param("projectname"), param("name")) {
                (Some(project), Some(name)) => {
                    has("REPO_WRITE")
                        && token
                            .push_repositories
                            .contains(&format!("{project}/{name}"))
                }
                _ => has("REPO_WRITE"),
            };
            json_response(StatusCode::OK, page(usize::from(allowed)))
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"errors": [{"message": "not found"}]}),
        ),
    }
}

/// A repository the emulator serves metadata and pull requests for.
#[derive(Debug, Clone)]
pub struct EmulatedRepo {
    pub http_clone_url: String,
    pub ssh_clone_url: Option<String>,
}

/// A pull (merge) request opened through the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedPull {
    pub number: u64,
    pub repository: String,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
    /// The token that opened it.
    pub opened_with: String,
    /// Bitbucket Server's optimistic-locking version.
    pub version: i64,
    pub state: PullState,
    pub review: Option<EmulatedReview>,
    pub checks: Option<EmulatedChecks>,
    /// The head commit, derived from the number.
    pub sha: String,
}

impl Emulator {
    /// Serves `repository` (`owner/name`), cloned from the given URLs.
    pub fn add_repository(&self, repository: &str, repo: EmulatedRepo) {
        self.lock().repositories.insert(repository.to_owned(), repo);
    }

    /// Reports `branch` as `repository`'s default branch (`main` otherwise).
    pub fn set_default_branch(&self, repository: &str, branch: &str) {
        self.lock()
            .default_branches
            .insert(repository.to_owned(), branch.to_owned());
    }

    /// Serves `repository` under the name `old` too, as code hosts do
    /// after a rename or transfer (answering with its current name).
    pub fn add_old_name(&self, old: &str, repository: &str) {
        self.lock()
            .moved
            .insert(old.to_owned(), repository.to_owned());
    }

    pub fn pulls(&self) -> Vec<EmulatedPull> {
        self.lock().pulls.clone()
    }

    /// The next `count` requests that open pull requests get a rate-limit
    /// answer asking to wait `wait_secs`.
    pub fn rate_limit_pulls(&self, count: u32, wait_secs: u64) {
        let mut shared = self.lock();
        shared.pull_rate_limits = count;
        shared.pull_rate_limit_wait = wait_secs;
    }

    /// Pull-request-opening requests, including refused ones, with when
    /// they arrived.
    pub fn pull_attempts(&self) -> Vec<std::time::Instant> {
        self.lock().pull_attempts.clone()
    }
}

/// The repository and pull request endpoints, shared by the three APIs;
/// `None` when the request is for something else.
fn pulls_api(
    shared: &mut Shared,
    api: &Api<'_>,
    method: &Method,
    query: &str,
    body: &Value,
    token: &str,
    origin: &str,
) -> Option<Response> {
    let (kind, path) = match api {
        Api::GitHub(p) => ("github", *p),
        Api::GitLab(p) => ("gitlab", *p),
        Api::Bitbucket(p) | Api::BitbucketBranches(p) => ("bitbucket", *p),
        Api::BitbucketBuilds(p) => return bitbucket_builds(shared, p),
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // (repository, rest of the path)
    let (repository, rest): (String, &[&str]) = match (kind, segments.as_slice()) {
        ("github", ["repos", owner, name, rest @ ..]) => (format!("{owner}/{name}"), rest),
        ("gitlab", ["projects", id, rest @ ..]) => (id.replace("%2F", "/"), rest),
        ("bitbucket", ["projects", project, "repos", slug, rest @ ..]) => {
            (format!("{project}/{slug}"), rest)
        }
        _ => return None,
    };
    let current_name = shared
        .moved
        .get(&repository)
        .cloned()
        .unwrap_or_else(|| repository.clone());
    let repo = shared.repositories.get(&current_name).cloned()?;
    if let Api::BitbucketBranches(_) = api {
        return match (method.as_str(), rest) {
            ("DELETE", ["branches"]) => {
                let name = body["name"].as_str().unwrap_or_default();
                let branch = name.trim_start_matches("refs/heads/");
                delete_branch(shared, kind, &repository, branch)
            }
            _ => None,
        };
    }
    let opening = *method == Method::POST
        && matches!(rest, ["pulls"] | ["merge_requests"] | ["pull-requests"]);
    if opening {
        shared.pull_attempts.push(std::time::Instant::now());
        if shared.pull_rate_limits > 0 {
            shared.pull_rate_limits -= 1;
            let wait = shared.pull_rate_limit_wait;
            let marker = if kind == "github" { "/api/v3" } else { "" };
            return Some(rate_limited(marker, wait));
        }
    }
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let open_for = |shared: &Shared, head: &str| {
        shared
            .pulls
            .iter()
            .find(|p| p.repository == repository && p.head == head && p.state == PullState::Open)
            .cloned()
    };
    let pull_url = |number: u64| format!("{origin}/{repository}/pull/{number}");
    let default_branch = shared
        .default_branches
        .get(&repository)
        .cloned()
        .unwrap_or_else(|| "main".to_owned());
    match (kind, method.as_str(), rest) {
        ("github", "GET", []) => Some(json_response(
            StatusCode::OK,
            json!({"full_name": current_name, "clone_url": repo.http_clone_url, "ssh_url": repo.ssh_clone_url,
                   "default_branch": default_branch, "permissions": {"push": true, "pull": true, "admin": false}}),
        )),
        ("gitlab", "GET", []) => Some(json_response(
            StatusCode::OK,
            json!({"path_with_namespace": current_name, "http_url_to_repo": repo.http_clone_url,
                   "ssh_url_to_repo": repo.ssh_clone_url, "default_branch": default_branch,
                   "permissions": {"project_access": {"access_level": 30}, "group_access": null}}),
        )),
        ("bitbucket", "GET", []) => {
            let mut clone = vec![json!({"href": repo.http_clone_url, "name": "http"})];
            if let Some(ssh) = &repo.ssh_clone_url {
                clone.push(json!({"href": ssh, "name": "ssh"}));
            }
            Some(json_response(
                StatusCode::OK,
                json!({"slug": repository, "links": {"clone": clone}}),
            ))
        }
        ("bitbucket", "GET", ["branches", "default"]) => Some(json_response(
            StatusCode::OK,
            json!({"id": format!("refs/heads/{default_branch}"), "displayId": default_branch,
                   "type": "BRANCH", "isDefault": true}),
        )),
        ("github", "GET", ["pulls"]) => {
            let head = url::form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "head")
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default();
            let branch = head.split_once(':').map_or(head.as_str(), |(_, b)| b);
            let found: Vec<Value> = open_for(shared, branch)
                .map(|p| json!({"number": p.number, "html_url": pull_url(p.number)}))
                .into_iter()
                .collect();
            Some(json_response(StatusCode::OK, Value::Array(found)))
        }
        (_, "POST", ["pulls"] | ["merge_requests"] | ["pull-requests"]) => {
            let (head, base, title, description) = match kind {
                "github" => (field("head"), field("base"), field("title"), field("body")),
                "gitlab" => (
                    field("source_branch"),
                    field("target_branch"),
                    field("title"),
                    field("description"),
                ),
                _ => (
                    body["fromRef"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_start_matches("refs/heads/")
                        .to_owned(),
                    body["toRef"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_start_matches("refs/heads/")
                        .to_owned(),
                    field("title"),
                    field("description"),
                ),
            };
            if let Some(existing) = open_for(shared, &head) {
                let owner = repository.split('/').next().unwrap_or_default();
                return Some(match kind {
                    "github" => json_response(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom",
                               "message": format!("A pull request already exists for {owner}:{head}.")}]}),
                    ),
                    "gitlab" => json_response(
                        StatusCode::CONFLICT,
                        json!({"message": [format!("Another open merge request already exists for this source branch: !{}", existing.number)]}),
                    ),
                    _ => json_response(
                        StatusCode::CONFLICT,
                        json!({"errors": [{"exceptionName": "com.atlassian.bitbucket.pull.DuplicatePullRequestException",
                               "message": "Only one pull request may be open for a given source and target branch",
                               "existingPullRequest": {"id": existing.number, "version": existing.version}}]}),
                    ),
                });
            }
            shared.last_pull_number += 1;
            let number = shared.last_pull_number;
            let draft = body.get("draft").and_then(Value::as_bool).unwrap_or(false)
                || title.starts_with("Draft: ");
            shared.pulls.push(EmulatedPull {
                number,
                repository: repository.clone(),
                head,
                base,
                title,
                body: description,
                draft,
                opened_with: token.to_owned(),
                version: 0,
                state: PullState::Open,
                review: None,
                checks: None,
                sha: format!("{number:040x}"),
            });
            let url = pull_url(number);
            Some(json_response(
                StatusCode::CREATED,
                json!({"number": number, "html_url": url, "iid": number, "web_url": url,
                       "id": number, "version": 0, "links": {"self": [{"href": url}]}}),
            ))
        }
        (_, "PATCH" | "PUT", ["pulls" | "merge_requests" | "pull-requests", number]) => {
            let Some(pull) = find_pull_mut(shared, &repository, number) else {
                return Some(not_found(kind));
            };
            if kind == "bitbucket"
                && body.get("version").and_then(Value::as_i64) != Some(pull.version)
            {
                return Some(json_response(
                    StatusCode::CONFLICT,
                    json!({"errors": [{"message": "stale version"}]}),
                ));
            }
            if let Some(title) = body.get("title").and_then(Value::as_str) {
                pull.title = title.to_owned();
            }
            let description = if kind == "github" {
                "body"
            } else {
                "description"
            };
            if let Some(text) = body.get(description).and_then(Value::as_str) {
                pull.body = text.to_owned();
            }
            // GitHub `state`, GitLab `state_event`: whether to (re)open.
            let reopen = match kind {
                "github" => body
                    .get("state")
                    .and_then(Value::as_str)
                    .map(|s| s == "open"),
                "gitlab" => body
                    .get("state_event")
                    .and_then(Value::as_str)
                    .map(|s| s == "reopen"),
                _ => None,
            };
            if let Some(reopen) = reopen {
                if pull.state == PullState::Merged {
                    return Some(json_response(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"message": "Validation Failed",
                               "errors": [{"message": "the pull request is already merged"}]}),
                    ));
                }
                pull.state = if reopen {
                    PullState::Open
                } else {
                    PullState::Closed
                };
            }
            pull.version += 1;
            let url = pull_url(pull.number);
            Some(json_response(StatusCode::OK, render_pull(kind, pull, &url)))
        }
        _ => lifecycle::lifecycle_api(shared, kind, method, rest, query, &repository, &pull_url),
    }
}
