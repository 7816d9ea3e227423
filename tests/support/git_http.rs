//! A real smart-HTTP git server: `git http-backend` run as CGI behind an
//! axum server on a loopback port, over bare repositories in a temporary
//! directory, requiring HTTP Basic auth with one token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio::io::AsyncWriteExt;

/// Runs git in `dir` with a fixed identity and no user configuration;
/// panics with git's output on failure, returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Creates a bare repository at `path` whose `main` holds one commit with
/// `README.md`, accepting pushes over HTTP.
pub fn create_bare_repo(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    git(
        path,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    git(path, &["config", "http.receivepack", "true"]);
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(work.path().join("README.md"), "hello\n").unwrap();
    git(work.path(), &["add", "README.md"]);
    git(work.path(), &["commit", "--quiet", "-m", "Initial commit"]);
    git(
        work.path(),
        &["push", "--quiet", path.to_str().unwrap(), "main"],
    );
}

/// The commit `branch` points to in the bare repository, if it exists.
pub fn branch_sha(bare: &Path, branch: &str) -> Option<String> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("refs/heads/{branch}"))
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Installs `script` (a `/bin/sh` script body) as the repository's
/// pre-receive hook; exiting non-zero rejects the push.
pub fn install_pre_receive_hook(bare: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let hook = bare.join("hooks").join("pre-receive");
    std::fs::write(&hook, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// What the request handler needs.
struct ServerState {
    root: PathBuf,
    /// Accepted passwords; `None` lets anyone push.
    tokens: Option<Vec<String>>,
    /// Passwords accepted only with this username (as Bitbucket Cloud
    /// accepts an API token only as `x-bitbucket-api-token-auth`).
    required_usernames: Vec<(String, String)>,
    usernames: Mutex<Vec<String>>,
    tokens_seen: Mutex<Vec<String>>,
    gzipped_requests: std::sync::atomic::AtomicUsize,
}

/// A running git HTTP server; stops when dropped.
pub struct GitHttpServer {
    pub address: SocketAddr,
    state: Arc<ServerState>,
    server: tokio::task::JoinHandle<()>,
    _root: tempfile::TempDir,
}

impl GitHttpServer {
    /// A server accepting only HTTP Basic auth with `token` as password
    /// (any username, which it records).
    pub async fn start(token: &str) -> Self {
        Self::start_with(Some(vec![token.to_owned()])).await
    }

    /// A server accepting any of `tokens` as password.
    pub async fn start_with_tokens(tokens: &[&str]) -> Self {
        Self::start_with(Some(tokens.iter().map(|t| (*t).to_owned()).collect())).await
    }

    /// A server that lets anyone push: git never asks for credentials.
    pub async fn start_without_auth() -> Self {
        Self::start_with(None).await
    }

    /// A server accepting each `(username, token)` pair only together.
    pub async fn start_with_users(pairs: &[(&str, &str)]) -> Self {
        let tokens = pairs.iter().map(|(_, t)| (*t).to_owned()).collect();
        let required = pairs
            .iter()
            .map(|(u, t)| ((*t).to_owned(), (*u).to_owned()))
            .collect();
        Self::start_with_required(Some(tokens), required).await
    }

    async fn start_with(tokens: Option<Vec<String>>) -> Self {
        Self::start_with_required(tokens, Vec::new()).await
    }

    async fn start_with_required(
        tokens: Option<Vec<String>>,
        required_usernames: Vec<(String, String)>,
    ) -> Self {
        let root = tempfile::tempdir().unwrap();
        let state = Arc::new(ServerState {
            root: root.path().to_owned(),
            tokens,
            required_usernames,
            usernames: Mutex::new(Vec::new()),
            tokens_seen: Mutex::new(Vec::new()),
            gzipped_requests: std::sync::atomic::AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            address,
            state,
            server,
            _root: root,
        }
    }

    /// Creates `<name>.git` with an initial commit on `main`; returns its path.
    pub fn create_repo(&self, name: &str) -> PathBuf {
        let path = self.repo_path(name);
        create_bare_repo(&path);
        path
    }

    /// Where `<name>.git` lives on disk.
    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.state.root.join(format!("{name}.git"))
    }

    /// The URL git clients use for `<name>.git`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}.git", self.address)
    }

    /// The usernames of every authenticated request so far.
    pub fn usernames(&self) -> Vec<String> {
        self.state.usernames.lock().unwrap().clone()
    }

    /// The token of every authenticated request so far.
    pub fn tokens_seen(&self) -> Vec<String> {
        self.state.tokens_seen.lock().unwrap().clone()
    }

    /// How many request bodies arrived gzip-compressed.
    pub fn gzipped_requests(&self) -> usize {
        self.state
            .gzipped_requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The user name and password of a Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let (user, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(user, password)| (user.to_owned(), password.to_owned()))?;
    Some((user, password))
}

async fn handle(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let mut remote_user = None;
    if let Some(tokens) = &state.tokens {
        match basic_credentials(request.headers()) {
            Some((user, password))
                if tokens.contains(&password)
                    && state
                        .required_usernames
                        .iter()
                        .all(|(token, required)| *token != password || *required == user) =>
            {
                state.usernames.lock().unwrap().push(user.clone());
                state.tokens_seen.lock().unwrap().push(password);
                remote_user = Some(user);
            }
            _ => {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")],
                    "authentication required\n",
                )
                    .into_response();
            }
        }
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let header_value = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &state.root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &state.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        // http-backend enables receive-pack for authenticated users.
        .env("REMOTE_USER", remote_user.as_deref().unwrap_or("anonymous"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (cgi, http) in [
        ("CONTENT_TYPE", "content-type"),
        // Smart HTTP requests are often gzipped; http-backend inflates them.
        ("HTTP_CONTENT_ENCODING", "content-encoding"),
        ("GIT_PROTOCOL", "git-protocol"),
    ] {
        if let Some(value) = header_value(http) {
            command.env(cgi, value);
        }
    }
    if header_value("content-encoding").as_deref() == Some("gzip") {
        state
            .gzipped_requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = async move {
        let _ = stdin.write_all(&body).await;
    };
    let ((), output) = tokio::join!(feed, child.wait_with_output());
    cgi_response(&output.unwrap().stdout)
}

/// Turns a CGI program's output (headers, blank line, body) into a response.
fn cgi_response(output: &[u8]) -> Response {
    let (head, body) = split_headers(output);
    let mut status = StatusCode::OK;
    let mut response = Response::builder();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            status = code.parse().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else {
            response = response.header(name, HeaderValue::from_str(value).unwrap());
        }
    }
    response
        .status(status)
        .body(Body::from(Bytes::copy_from_slice(body)))
        .unwrap()
}

fn split_headers(output: &[u8]) -> (&[u8], &[u8]) {
    // The earliest blank line ends the headers, whichever line ending.
    [&b"\r\n\r\n"[..], &b"\n\n"[..]]
        .into_iter()
        .filter_map(|separator| {
            output
                .windows(separator.len())
                .position(|window| window == separator)
                .map(|at| (at, at + separator.len()))
        })
        .min()
        .map_or((output, &[][..]), |(end, body)| {
            (&output[..end], &output[body..])
        })
}
