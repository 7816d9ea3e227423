//! An Azure DevOps emulator: the REST API batchcred uses (connection
//! data, repositories, pull requests with reviewers' votes and statuses,
//! refs) and git over HTTP at `/{collection}/{project}/_git/{repository}`,
//! which checks the credential as Azure does and then hands the request
//! to a real git server (tests/support/git_http.rs).
//!
//! `http://127.0.0.1:PORT/<collection>` is a code host (an Azure DevOps
//! Server collection, or a Services organisation); the first path segment
//! is the collection. Like Server 2022, it refuses an `api-version` above
//! 7.0, and `connectionData` without `-preview`.
//!
//! Tokens are sent as Basic `username:PAT`. As on Azure, the API ignores
//! the username; the git front can be told to require one, so tests see
//! that batchcred sends the credential's. Unknown tokens get Azure's 203
//! sign-in page (or, with anonymous access on, an anonymous identity),
//! revoked ones a 401 `TF400813`, expired ones a 401 saying so; a token
//! without the needed `vso.code*` scope gets a 401, and git a 403
//! `TF401027 … GenericContribute` when pushing without `vso.code_write`.

mod pulls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

pub use pulls::AzurePull;

/// Every scope batchcred asks for.
pub const AZURE_SCOPES: &[&str] = &["vso.code_write", "vso.profile"];

/// What the emulator knows about one personal access token.
#[derive(Debug, Clone)]
pub struct AzureToken {
    /// The account's sign-in name (`properties.Account`).
    pub account: String,
    pub display_name: String,
    /// `vso.code`, `vso.code_write`, `vso.profile`…
    pub scopes: Vec<String>,
    pub expired: bool,
    pub revoked: bool,
}

impl AzureToken {
    pub fn new(account: &str, scopes: &[&str]) -> Self {
        Self {
            account: account.to_owned(),
            display_name: format!("{account} (display name)"),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expired: false,
            revoked: false,
        }
    }

    pub fn expired(mut self) -> Self {
        self.expired = true;
        self
    }

    pub fn revoked(mut self) -> Self {
        self.revoked = true;
        self
    }

    fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Code (Read): any of the code scopes.
    fn reads_code(&self) -> bool {
        ["vso.code", "vso.code_write", "vso.code_full"]
            .iter()
            .any(|scope| self.has(scope))
    }

    fn writes_code(&self) -> bool {
        self.has("vso.code_write") || self.has("vso.code_full")
    }
}

/// A repository the emulator serves.
#[derive(Debug, Clone)]
pub struct AzureRepo {
    pub project: String,
    pub name: String,
    /// The real git server's URL of this repository, which git requests
    /// to `/_git/` are handed to.
    pub upstream: Option<String>,
    /// The bare repository on disk, for the refs API.
    pub bare: Option<PathBuf>,
    pub ssh_url: Option<String>,
    /// `None` for an empty repository.
    pub default_branch: Option<String>,
}

/// A request as the emulator saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub username: Option<String>,
    pub token: Option<String>,
}

#[derive(Default)]
struct Shared {
    tokens: HashMap<String, AzureToken>,
    /// Unknown tokens get an anonymous identity instead of a sign-in page
    /// (an organisation with public projects).
    anonymous_access: bool,
    server_error: bool,
    /// The next this many API requests are refused as rate limited.
    rate_limited_requests: u32,
    /// The next this many pull request creations are refused as rate
    /// limited.
    rate_limited_creates: u32,
    rate_limit_wait: u64,
    create_attempts: Vec<Instant>,
    /// The username git must send, when set.
    git_username: Option<String>,
    seen: Vec<SeenRequest>,
    repos: Vec<AzureRepo>,
    pulls: Vec<AzurePull>,
    last_pull_id: u64,
    last_status_id: u64,
    /// The next pull request search answers nothing, as when another
    /// publish opens the pull request in between.
    hide_next_search: bool,
    deleted_branches: Vec<(String, String)>,
}

/// A running emulator; stops when dropped.
pub struct AzureEmulator {
    pub address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for AzureEmulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Mutex<Shared>>,
    http: reqwest::Client,
}

/// Starts an emulator that knows only the tokens it is given.
pub async fn start() -> AzureEmulator {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let state = AppState {
        shared: Arc::clone(&shared),
        http: reqwest::Client::new(),
    };
    let app = Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind emulator");
    let address = listener.local_addr().expect("emulator address");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    AzureEmulator {
        address,
        shared,
        server,
    }
}

impl AzureEmulator {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().expect("emulator state")
    }

    /// The URL of collection (or organisation) `collection`.
    pub fn url(&self, collection: &str) -> String {
        format!("http://{}/{collection}", self.address)
    }

    /// Where git reaches `project/name` in `collection`.
    pub fn git_url(&self, collection: &str, project: &str, name: &str) -> String {
        format!("{}/{project}/_git/{name}", self.url(collection))
    }

    pub fn add_token(&self, token: &str, spec: AzureToken) {
        self.lock().tokens.insert(token.to_owned(), spec);
    }

    pub fn update_token(&self, token: &str, change: impl FnOnce(&mut AzureToken)) {
        change(self.lock().tokens.get_mut(token).expect("known token"));
    }

    pub fn add_repository(&self, repo: AzureRepo) {
        self.lock().repos.push(repo);
    }

    pub fn set_anonymous_access(&self, on: bool) {
        self.lock().anonymous_access = on;
    }

    pub fn set_server_error(&self, on: bool) {
        self.lock().server_error = on;
    }

    /// The next `count` API requests get a 429 asking to wait `wait_secs`.
    pub fn rate_limit_requests(&self, count: u32, wait_secs: u64) {
        let mut shared = self.lock();
        shared.rate_limited_requests = count;
        shared.rate_limit_wait = wait_secs;
    }

    /// The next `count` pull request creations get a 429.
    pub fn rate_limit_creates(&self, count: u32, wait_secs: u64) {
        let mut shared = self.lock();
        shared.rate_limited_creates = count;
        shared.rate_limit_wait = wait_secs;
    }

    /// When each pull request creation (refused or not) arrived.
    pub fn create_attempts(&self) -> Vec<Instant> {
        self.lock().create_attempts.clone()
    }

    /// Git requests must carry this username.
    pub fn require_git_username(&self, username: &str) {
        self.lock().git_username = Some(username.to_owned());
    }

    pub fn hide_next_pull_search(&self) {
        self.lock().hide_next_search = true;
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.lock().seen.clone()
    }

    /// `(project/repository, branch)` deleted through the refs API.
    pub fn deleted_branches(&self) -> Vec<(String, String)> {
        self.lock().deleted_branches.clone()
    }
}

/// The username and token of a Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, token) = text.split_once(':')?;
    Some((user.to_owned(), token.to_owned()))
}

pub(super) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Azure's error body.
fn azure_error(status: StatusCode, message: &str, type_key: &str) -> Response {
    json_response(
        status,
        json!({"$id": "1", "innerException": null, "message": message,
               "typeName": format!("Microsoft.VisualStudio.Services.{type_key}"),
               "typeKey": type_key, "errorCode": 0, "eventId": 3000}),
    )
}

fn not_authorized(who: &str) -> Response {
    azure_error(
        StatusCode::UNAUTHORIZED,
        &format!("TF400813: The user '{who}' is not authorized to access this resource."),
        "UnauthorizedRequestException",
    )
}

/// What Azure serves a token it does not accept on a GET.
fn sign_in_page() -> Response {
    (
        StatusCode::NON_AUTHORITATIVE_INFORMATION,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html><head><title>Azure DevOps Services | Sign In</title></head><body></body></html>",
    )
        .into_response()
}

fn rate_limited(wait: u64) -> Response {
    let reset = (chrono::Utc::now().timestamp() as u64 + wait).to_string();
    let mut response = azure_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource 'Core' in namespace 'User'.",
        "RequestBlockedException",
    );
    let headers = response.headers_mut();
    for (name, value) in [
        ("retry-after", wait.to_string()),
        ("x-ratelimit-resource", "Core".to_owned()),
        ("x-ratelimit-delay", "0".to_owned()),
        ("x-ratelimit-limit", "200".to_owned()),
        ("x-ratelimit-remaining", "0".to_owned()),
        ("x-ratelimit-reset", reset),
    ] {
        headers.insert(name, value.parse().expect("header"));
    }
    response
}

/// `api-version` as Server 2022 takes it: at most 7.0, `-preview` where
/// the API is a preview. `Some` refusal otherwise.
fn check_api_version(query: &str, preview: bool) -> Option<Response> {
    let version = url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "api-version")
        .map(|(_, value)| value.into_owned());
    let Some(version) = version else {
        return Some(azure_error(
            StatusCode::BAD_REQUEST,
            "No api-version was supplied for the request.",
            "VssVersionNotSpecifiedException",
        ));
    };
    let (number, is_preview) = match version.split_once('-') {
        Some((number, tag)) => (number.to_owned(), tag.starts_with("preview")),
        None => (version.clone(), false),
    };
    let parsed: Option<(u32, u32)> = number
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
    match parsed {
        Some(v) if v > (7, 0) => Some(azure_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "The requested REST API version of {version} is out of range for this server. The latest REST API version this server supports is 7.0."
            ),
            "VssVersionOutOfRangeException",
        )),
        None => Some(azure_error(
            StatusCode::BAD_REQUEST,
            &format!("The api-version {version} is invalid."),
            "VssInvalidApiVersionException",
        )),
        Some(_) if preview && !is_preview => Some(azure_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "The requested version \"{version}\" of the resource is under preview. The -preview flag must be supplied in the api-version for such requests."
            ),
            "VssInvalidPreviewVersionException",
        )),
        Some(_) => None,
    }
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let credentials = basic_credentials(&headers);
    let query = uri.query().unwrap_or("").to_owned();
    let path = uri.path().to_owned();
    {
        let mut shared = state.shared.lock().expect("emulator state");
        shared.seen.push(SeenRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            username: credentials.as_ref().map(|(u, _)| u.clone()),
            token: credentials.as_ref().map(|(_, t)| t.clone()),
        });
        if shared.server_error {
            return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
        }
    }
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    if let Some(at) = segments.iter().position(|s| s == "_git") {
        return git(&state, &method, &headers, &segments, at, &query, body).await;
    }
    let Some(at) = segments.iter().position(|s| s == "_apis") else {
        return (StatusCode::NOT_FOUND, "not an API path").into_response();
    };
    let before = &segments[..at];
    let after: Vec<&str> = segments[at + 1..].iter().map(String::as_str).collect();
    let preview = after == ["connectionData"];
    if let Some(refused) = check_api_version(&query, preview) {
        return refused;
    }
    let mut shared = state.shared.lock().expect("emulator state");
    if shared.rate_limited_requests > 0 {
        shared.rate_limited_requests -= 1;
        return rate_limited(shared.rate_limit_wait);
    }
    let token = match authenticate(&shared, credentials.as_ref(), preview) {
        Caller::Token(token) => token,
        // Only connectionData lets anonymous visitors in.
        Caller::Anonymous => return json_response(StatusCode::OK, connection_data(None)),
        Caller::Refused(response) => return response,
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match (before.len(), after.as_slice()) {
        (1, ["connectionData"]) => json_response(StatusCode::OK, connection_data(Some(&token))),
        (1, ["git", "repositories"]) if method == Method::GET => {
            if !token.reads_code() {
                return not_authorized(&token.display_name);
            }
            let host = headers_host(&headers);
            let value: Vec<Value> = shared
                .repos
                .iter()
                .map(|r| repository_json(r, &host, &before[0]))
                .collect();
            json_response(
                StatusCode::OK,
                json!({"count": value.len(), "value": value}),
            )
        }
        (2, ["git", "repositories", name, rest @ ..]) => {
            let project = before[1].as_str();
            let found = shared.repos.iter().find(|r| {
                r.project.eq_ignore_ascii_case(project) && r.name.eq_ignore_ascii_case(name)
            });
            let Some(repo) = found.cloned() else {
                return azure_error(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "TF401019: The Git repository with name or identifier {name} does not exist or you do not have permissions for the operation you are attempting."
                    ),
                    "GitRepositoryNotFoundException",
                );
            };
            let writes = method != Method::GET;
            if !token.reads_code() || (writes && !token.writes_code()) {
                return not_authorized(&token.display_name);
            }
            let context = pulls::Context {
                repo: &repo,
                token: credentials.map(|(_, t)| t).unwrap_or_default(),
                host: headers_host(&headers),
                collection: before[0].clone(),
            };
            pulls::repository_api(&mut shared, &context, &method, rest, &query, &body)
        }
        _ => azure_error(
            StatusCode::NOT_FOUND,
            "The resource cannot be found.",
            "ResourceNotFoundException",
        ),
    }
}

fn headers_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned()
}

/// Who a request comes from, as Azure sees it.
enum Caller {
    Token(AzureToken),
    /// A visitor Azure lets in without credentials.
    Anonymous,
    /// Azure's refusal.
    Refused(Response),
}

/// The token behind the credentials, an anonymous visitor where Azure
/// lets one in, or Azure's refusal.
fn authenticate(
    shared: &Shared,
    credentials: Option<&(String, String)>,
    connection_data: bool,
) -> Caller {
    let Some((_, token)) = credentials else {
        return if connection_data {
            Caller::Anonymous
        } else {
            Caller::Refused(not_authorized(""))
        };
    };
    match shared.tokens.get(token) {
        Some(spec) if spec.revoked => Caller::Refused(not_authorized("")),
        Some(spec) if spec.expired => {
            let mut response = azure_error(
                StatusCode::UNAUTHORIZED,
                "Access Denied: The Personal Access Token used has expired.",
                "AccessCheckException",
            );
            response.headers_mut().insert(
                "x-tfs-serviceerror",
                "Access%20Denied%3A%20The%20Personal%20Access%20Token%20used%20has%20expired."
                    .parse()
                    .expect("header"),
            );
            Caller::Refused(response)
        }
        Some(spec) => Caller::Token(spec.clone()),
        None if shared.anonymous_access && connection_data => Caller::Anonymous,
        None => Caller::Refused(sign_in_page()),
    }
}

fn connection_data(token: Option<&AzureToken>) -> Value {
    let user = match token {
        Some(token) => json!({
            "id": "6c3f0e35-0c9b-4b8e-9b1a-3d8d1b7f0a11",
            "descriptor": format!("Microsoft.IdentityModel.Claims.ClaimsIdentity;tenant\\{}", token.account),
            "subjectDescriptor": "aad.NmMzZjBlMzU",
            "providerDisplayName": token.display_name,
            "isActive": true,
            "properties": {"Account": {"$type": "System.String", "$value": token.account}},
            "resourceVersion": 2,
            "metaTypeId": 0,
        }),
        None => json!({
            "id": "aa3d1f7e-0000-0000-0000-000000000000",
            "descriptor": "System:PublicAccess;aa3d1f7e-0000-0000-0000-000000000000",
            "providerDisplayName": "Anonymous",
            "isActive": true,
            "properties": {},
        }),
    };
    json!({
        "authenticatedUser": user,
        "authorizedUser": user,
        "instanceId": "0b8f1b8e-1c3a-4f6e-8f57-2a1e0c9d1f00",
        "deploymentId": "0b8f1b8e-1c3a-4f6e-8f57-2a1e0c9d1f01",
        "deploymentType": "onPremises",
        "locationServiceData": {"serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7"},
    })
}

/// A repository as Azure describes it; `host` and `collection` say where
/// the emulator is reached. Azure puts the organisation in the clone URL
/// as a username (`https://acme@dev.azure.com/acme/…`).
pub(super) fn repository_json(repo: &AzureRepo, host: &str, collection: &str) -> Value {
    let remote = format!(
        "http://{collection}@{host}/{collection}/{}/_git/{}",
        repo.project, repo.name
    );
    json!({
        "id": format!("{}-{}", repo.project, repo.name),
        "name": repo.name,
        "project": {"id": format!("project-{}", repo.project), "name": repo.project, "state": "wellFormed"},
        "defaultBranch": repo.default_branch.as_ref().map(|b| format!("refs/heads/{b}")),
        "remoteUrl": remote,
        "sshUrl": repo.ssh_url,
        "size": 1024,
    })
}

/// Git over HTTP: checks the credential as Azure does, then hands the
/// request to the real git server.
async fn git(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    segments: &[String],
    at: usize,
    query: &str,
    body: Bytes,
) -> Response {
    let challenge = || {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"https://azure.test/\"",
            )],
            "",
        )
            .into_response()
    };
    let (Some(project), Some(name)) = (segments.get(at - 1), segments.get(at + 1)) else {
        return (StatusCode::NOT_FOUND, "no repository").into_response();
    };
    let Some((username, token)) = basic_credentials(headers) else {
        return challenge();
    };
    let pushing = query.contains("service=git-receive-pack")
        || segments.last().is_some_and(|s| s == "git-receive-pack");
    let upstream = {
        let shared = state.shared.lock().expect("emulator state");
        if shared
            .git_username
            .as_ref()
            .is_some_and(|wanted| *wanted != username)
        {
            return challenge();
        }
        let Some(spec) = shared
            .tokens
            .get(&token)
            .filter(|t| !t.revoked && !t.expired)
        else {
            return challenge();
        };
        if !spec.reads_code() {
            return challenge();
        }
        if pushing && !spec.writes_code() {
            return (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/plain")],
                format!(
                    "TF401027: You need the Git 'GenericContribute' permission to perform this action. Details: identity '{}', scope 'repository'.\n",
                    spec.display_name
                ),
            )
                .into_response();
        }
        let repo = shared
            .repos
            .iter()
            .find(|r| r.project.eq_ignore_ascii_case(project) && r.name.eq_ignore_ascii_case(name));
        match repo.and_then(|r| r.upstream.clone()) {
            Some(upstream) => upstream,
            None => return (StatusCode::NOT_FOUND, "TF401019").into_response(),
        }
    };
    let rest: String = segments[at + 2..].iter().map(|s| format!("/{s}")).collect();
    let url = if query.is_empty() {
        format!("{upstream}{rest}")
    } else {
        format!("{upstream}{rest}?{query}")
    };
    let mut request = state.http.request(method.clone(), url).body(body);
    for name in [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::ACCEPT,
    ] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value.clone());
        }
    }
    if let Some(value) = headers.get("git-protocol") {
        request = request.header("git-protocol", value.clone());
    }
    let Ok(answer) = request.send().await else {
        return (StatusCode::BAD_GATEWAY, "git server unreachable").into_response();
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(value) = answer.headers().get(name.as_str()) {
            response = response.header(name, value.as_bytes());
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response
        .body(Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// The branches of a bare repository: `(refs/heads/x, sha)`.
fn bare_branches(bare: &PathBuf) -> Vec<(String, String)> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args([
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads/",
        ])
        .output()
        .expect("git for-each-ref");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, sha) = line.split_once(' ')?;
            Some((name.to_owned(), sha.to_owned()))
        })
        .collect()
}

/// Deletes `reference` if it is at `old`; whether it was.
fn bare_delete(bare: &PathBuf, reference: &str, old: &str) -> bool {
    Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["update-ref", "-d", reference, old])
        .output()
        .is_ok_and(|o| o.status.success())
}
