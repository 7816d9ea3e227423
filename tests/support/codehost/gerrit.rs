//! A Gerrit emulator: the REST API under `/a/` (HTTP Basic with a username
//! and HTTP password, answers prefixed with `)]}'`) and git over HTTPS at
//! `/a/{project}` on the same port, as Gerrit serves them.
//!
//! Git is real: requests for `/a/{project}/info/refs`, `…/git-upload-pack`
//! and `…/git-receive-pack` are checked like REST calls, then handed to a
//! [`GitHttpServer`] holding the projects as bare repositories. Each
//! project has hooks that act like Gerrit's receive: a push to
//! `refs/for/<branch>[%topic=…,wip|ready]` must carry a `Change-Id`
//! trailer ("missing Change-Id in message footer"), becomes a new change
//! or a new patch set of the change with that Change-Id on that branch
//! (kept as `refs/changes/NN/<number>/<patch set>`), is refused with "no
//! new changes" when the commit is already the current patch set, and
//! leaves no `refs/for/*` ref behind. The hooks write the changes into a
//! directory of plain files, which the REST side reads; what only the REST
//! side changes (abandoned, merged, votes) lives in memory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use crate::support::git_http::GitHttpServer;

/// A Gerrit account and what it may do.
#[derive(Debug, Clone)]
pub struct GerritAccount {
    pub username: String,
    pub http_password: String,
    pub name: String,
    pub account_id: u64,
    /// Projects it can read; `None`: every project.
    pub readable: Option<Vec<String>>,
    /// Whether it has the Abandon right (also needed to restore).
    pub can_abandon: bool,
}

impl GerritAccount {
    pub fn new(username: &str, http_password: &str) -> Self {
        Self {
            username: username.to_owned(),
            http_password: http_password.to_owned(),
            name: format!("{username} (full name)"),
            account_id: 1_000_000,
            readable: None,
            can_abandon: true,
        }
    }

    pub fn reading_only(mut self, projects: &[&str]) -> Self {
        self.readable = Some(projects.iter().map(|p| (*p).to_owned()).collect());
        self
    }

    pub fn without_abandon(mut self) -> Self {
        self.can_abandon = false;
        self
    }

    fn can_read(&self, project: &str) -> bool {
        self.readable
            .as_ref()
            .is_none_or(|projects| projects.iter().any(|p| p == project))
    }
}

/// A change as the emulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedChange {
    pub number: u64,
    pub project: String,
    pub branch: String,
    pub change_id: String,
    pub topic: Option<String>,
    /// The current patch set's subject.
    pub subject: String,
    pub work_in_progress: bool,
    /// The commit of each patch set, oldest first.
    pub patch_sets: Vec<String>,
    /// `NEW`, `MERGED` or `ABANDONED`.
    pub status: String,
}

/// A request as the emulator saw it.
#[derive(Debug, Clone)]
pub struct SeenGerritRequest {
    pub method: String,
    pub path: String,
    /// The Basic username it carried, if any.
    pub username: Option<String>,
}

#[derive(Default)]
struct Shared {
    accounts: Vec<GerritAccount>,
    projects: Vec<String>,
    heads: HashMap<String, String>,
    /// The SSH download URL template, when SSH is offered.
    ssh_url: Option<String>,
    /// Status set through REST (abandon, restore) or by a test (merge), by
    /// change number; the hooks' files say `NEW` otherwise.
    statuses: HashMap<u64, String>,
    /// Votes by change number: label → vote.
    votes: HashMap<u64, HashMap<String, i32>>,
    /// Further REST and git requests refused with 429, and the wait named.
    rate_limited: u32,
    rate_limit_wait: u64,
    seen: Vec<SeenGerritRequest>,
}

/// A running Gerrit emulator; stops when dropped.
pub struct GerritEmulator {
    pub address: SocketAddr,
    pub git: GitHttpServer,
    shared: Arc<Mutex<Shared>>,
    /// Where the hooks record changes.
    changes_dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for GerritEmulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Context {
    shared: Arc<Mutex<Shared>>,
    changes_dir: PathBuf,
    git_origin: String,
    http: reqwest::Client,
}

impl GerritEmulator {
    pub async fn start() -> Self {
        let git = GitHttpServer::start_without_auth().await;
        let changes_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(changes_dir.path().join("keys")).unwrap();
        std::fs::create_dir_all(changes_dir.path().join("changes")).unwrap();
        std::fs::write(changes_dir.path().join("next"), "0\n").unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let context = Arc::new(Context {
            shared: Arc::clone(&shared),
            changes_dir: changes_dir.path().to_owned(),
            git_origin: format!("http://{}", git.address),
            http: reqwest::Client::new(),
        });
        let app = Router::new().fallback(handle).with_state(context);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            address,
            git,
            shared,
            changes_dir,
            server,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap()
    }

    /// The code host URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn add_account(&self, account: GerritAccount) {
        self.lock().accounts.push(account);
    }

    /// Creates project `name` (a bare repository with `main`, and the
    /// receive hooks); returns the repository's path.
    pub fn create_project(&self, name: &str) -> PathBuf {
        let path = self.git.create_repo(name);
        install_hooks(&path, name, self.changes_dir.path());
        self.lock().projects.push(name.to_owned());
        path
    }

    /// Offers SSH with this download URL template (`${project}` is
    /// replaced by the project's name).
    pub fn offer_ssh(&self, template: &str) {
        self.lock().ssh_url = Some(template.to_owned());
    }

    /// The directory holding each project's repository, for SSH URLs.
    pub fn repositories_root(&self) -> PathBuf {
        let api = self.git.repo_path("x");
        api.parent().unwrap().to_owned()
    }

    /// Refuses every upload to `project` as Gerrit does for an account
    /// without the Push right on `refs/for/*`.
    pub fn deny_uploads(&self, project: &str) {
        std::fs::write(self.git.repo_path(project).join("gerrit-deny-uploads"), "").unwrap();
    }

    /// The next `count` requests answer 429 with `Retry-After: wait_secs`.
    pub fn rate_limit(&self, count: u32, wait_secs: u64) {
        let mut shared = self.lock();
        shared.rate_limited = count;
        shared.rate_limit_wait = wait_secs;
    }

    /// Gives change `number` a vote on `label` (Code-Review, Verified).
    pub fn vote(&self, number: u64, label: &str, value: i32) {
        self.lock()
            .votes
            .entry(number)
            .or_default()
            .insert(label.to_owned(), value);
    }

    /// Makes `branch` the project's `HEAD`.
    pub fn set_default_branch(&self, project: &str, branch: &str) {
        self.lock()
            .heads
            .insert(project.to_owned(), branch.to_owned());
    }

    /// Submits change `number`.
    pub fn merge(&self, number: u64) {
        self.lock().statuses.insert(number, "MERGED".into());
    }

    pub fn seen(&self) -> Vec<SeenGerritRequest> {
        self.lock().seen.clone()
    }

    /// Every change uploaded so far, by number.
    pub fn changes(&self) -> Vec<EmulatedChange> {
        let shared = self.lock();
        read_changes(self.changes_dir.path(), &shared)
    }
}

/// The receive hooks of a project (see the module documentation).
fn install_hooks(repository: &Path, project: &str, changes_dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let prelude = format!(
        "#!/bin/sh\nSTATE={}\nPROJECT={}\nZERO=0000000000000000000000000000000000000000\n{}",
        quote(&changes_dir.display().to_string()),
        quote(project),
        r#"change_id() {
    git log -1 --format=%B "$1" | git interpret-trailers --parse |
        sed -n 's/^Change-Id: \(I[0-9a-f]\{40\}\)$/\1/p' | tail -n 1
}
key_of() {
    printf '%s\n%s\n%s\n' "$PROJECT" "$1" "$2" | git hash-object --stdin
}
"#
    );
    let pre_receive = format!(
        "{prelude}{}",
        r#"while read old new ref; do
    case "$ref" in refs/for/*) ;; *) continue ;; esac
    [ "$new" = "$ZERO" ] && continue
    rest=${ref#refs/for/}
    branch=${rest%%%*}
    if [ -f gerrit-deny-uploads ]; then
        echo "prohibited by Gerrit: not permitted: create change on refs/heads/$branch" >&2
        exit 1
    fi
    id=$(change_id "$new")
    if [ -z "$id" ]; then
        echo "ERROR: commit $(echo "$new" | cut -c1-7): missing Change-Id in message footer" >&2
        exit 1
    fi
    key=$(key_of "$branch" "$id")
    if [ -f "$STATE/keys/$key" ]; then
        number=$(cat "$STATE/keys/$key")
        if [ "$(tail -n 1 "$STATE/changes/$number/patch_sets")" = "$new" ]; then
            echo "no new changes" >&2
            exit 1
        fi
    fi
done
exit 0
"#
    );
    let post_receive = format!(
        "{prelude}{}",
        r#"while read old new ref; do
    case "$ref" in refs/for/*) ;; *) continue ;; esac
    [ "$new" = "$ZERO" ] && continue
    rest=${ref#refs/for/}
    branch=${rest%%%*}
    options=
    case "$rest" in *%*) options=${rest#*%} ;; esac
    topic=
    wip=false
    saved_ifs=$IFS
    IFS=,
    for option in $options; do
        case "$option" in
            topic=*) topic=${option#topic=} ;;
            wip) wip=true ;;
            ready) wip=false ;;
        esac
    done
    IFS=$saved_ifs
    id=$(change_id "$new")
    key=$(key_of "$branch" "$id")
    if [ -f "$STATE/keys/$key" ]; then
        number=$(cat "$STATE/keys/$key")
    else
        number=$(( $(cat "$STATE/next") + 1 ))
        echo "$number" > "$STATE/next"
        mkdir -p "$STATE/changes/$number"
        printf '%s' "$PROJECT" > "$STATE/changes/$number/project"
        printf '%s' "$branch" > "$STATE/changes/$number/branch"
        printf '%s' "$id" > "$STATE/changes/$number/change_id"
        echo "$number" > "$STATE/keys/$key"
    fi
    printf '%s' "$topic" > "$STATE/changes/$number/topic"
    echo "$wip" > "$STATE/changes/$number/wip"
    git log -1 --format=%s "$new" > "$STATE/changes/$number/subject"
    echo "$new" >> "$STATE/changes/$number/patch_sets"
    patch_set=$(wc -l < "$STATE/changes/$number/patch_sets" | tr -d ' ')
    shard=$(printf '%02d' $((number % 100)))
    git update-ref "refs/changes/$shard/$number/$patch_set" "$new"
    git update-ref -d "$ref"
    echo "change $number patch set $patch_set" >&2
done
exit 0
"#
    );
    for (name, script) in [("pre-receive", pre_receive), ("post-receive", post_receive)] {
        let hook = repository.join("hooks").join(name);
        std::fs::write(&hook, script).unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn read_changes(changes_dir: &Path, shared: &Shared) -> Vec<EmulatedChange> {
    let mut changes = vec![];
    let Ok(entries) = std::fs::read_dir(changes_dir.join("changes")) else {
        return changes;
    };
    for entry in entries.flatten() {
        let Some(number) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let read = |file: &str| {
            std::fs::read_to_string(entry.path().join(file))
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let topic = read("topic");
        changes.push(EmulatedChange {
            number,
            project: read("project"),
            branch: read("branch"),
            change_id: read("change_id"),
            topic: (!topic.is_empty()).then_some(topic),
            subject: read("subject"),
            work_in_progress: read("wip") == "true",
            patch_sets: read("patch_sets").lines().map(str::to_owned).collect(),
            status: shared
                .statuses
                .get(&number)
                .cloned()
                .unwrap_or_else(|| "NEW".into()),
        });
    }
    changes.sort_by_key(|c| c.number);
    changes
}

/// Gerrit's JSON answer: the XSSI guard line, then the JSON.
fn gerrit_json(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=UTF-8")],
        format!(")]}}'\n{value}"),
    )
        .into_response()
}

fn text(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=UTF-8")],
        format!("{message}\n"),
    )
        .into_response()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.strip_prefix("Basic ")?)
        .ok()?;
    let (user, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(user, password)| (user.to_owned(), password.to_owned()))?;
    Some((user, password))
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// The git smart-HTTP suffixes, after `/a/{project}`.
const GIT_SUFFIXES: [&str; 3] = ["/info/refs", "/git-upload-pack", "/git-receive-pack"];

async fn handle(
    State(context): State<Arc<Context>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let credentials = basic_credentials(&headers);
    let (account, limited) = {
        let mut shared = context.shared.lock().unwrap();
        shared.seen.push(SeenGerritRequest {
            method: method.to_string(),
            path: uri.path().to_owned(),
            username: credentials.as_ref().map(|(user, _)| user.clone()),
        });
        let account = credentials.as_ref().and_then(|(user, password)| {
            shared
                .accounts
                .iter()
                .find(|a| &a.username == user && &a.http_password == password)
                .cloned()
        });
        let limited = (shared.rate_limited > 0).then(|| {
            shared.rate_limited -= 1;
            shared.rate_limit_wait
        });
        (account, limited)
    };
    let Some(path) = uri.path().strip_prefix("/a/") else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    // Gerrit asks for credentials on every `/a/` path, git's included.
    let Some(account) = account else {
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Basic realm=\"Gerrit Code Review\"")],
            "Unauthorized\n",
        )
            .into_response();
    };
    if let Some(wait) = limited {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", wait.to_string())],
            "Too Many Requests\n",
        )
            .into_response();
    }
    if let Some((project, suffix)) = GIT_SUFFIXES
        .iter()
        .find_map(|suffix| path.strip_suffix(suffix).map(|project| (project, *suffix)))
    {
        if !account.can_read(project) {
            return text(StatusCode::NOT_FOUND, "Repository not found");
        }
        return proxy_git(&context, &method, &uri, &headers, body, project, suffix).await;
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let segments: Vec<String> = path.split('/').map(decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let mut shared = context.shared.lock().unwrap();
    rest(
        &mut shared,
        &context.changes_dir,
        &account,
        &method,
        &segments,
        &query,
    )
}

/// Hands a git request to the git server behind, as `{project}.git`.
async fn proxy_git(
    context: &Context,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    project: &str,
    suffix: &str,
) -> Response {
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let url = format!("{}/{project}.git{suffix}{query}", context.git_origin);
    let mut request = context
        .http
        .request(
            reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
            url,
        )
        .body(body.to_vec());
    for name in ["content-type", "content-encoding", "git-protocol", "accept"] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let mut builder = Response::builder().status(status);
    for name in ["content-type", "cache-control", "expires", "pragma"] {
        if let Some(value) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
            builder = builder.header(name, value.to_owned());
        }
    }
    let bytes = response.bytes().await.unwrap();
    builder.body(axum::body::Body::from(bytes)).unwrap()
}

/// The REST API, on the path after `/a/`, split and decoded.
fn rest(
    shared: &mut Shared,
    changes_dir: &Path,
    account: &GerritAccount,
    method: &Method,
    segments: &[&str],
    query: &[(String, String)],
) -> Response {
    let readable =
        |project: &str| account.can_read(project) && shared.projects.iter().any(|p| p == project);
    match (method.as_str(), segments) {
        ("GET", ["accounts", "self"]) => gerrit_json(
            StatusCode::OK,
            &json!({
                "_account_id": account.account_id,
                "name": account.name,
                "email": format!("{}@example.com", account.username),
                "username": account.username,
            }),
        ),
        ("GET", ["config", "server", "info"]) => {
            let mut schemes = json!({
                "http": {"url": "http://review.invalid/${project}", "is_auth_required": true},
            });
            if let Some(ssh) = &shared.ssh_url {
                schemes["ssh"] = json!({"url": ssh, "is_auth_required": true});
            }
            gerrit_json(StatusCode::OK, &json!({"download": {"schemes": schemes}}))
        }
        ("GET", ["projects", project]) if readable(project) => gerrit_json(
            StatusCode::OK,
            &json!({"id": project.replace('/', "%2F"), "name": project, "state": "ACTIVE"}),
        ),
        ("GET", ["projects", project, "HEAD"]) if readable(project) => {
            let head = shared
                .heads
                .get(*project)
                .cloned()
                .unwrap_or_else(|| "main".into());
            gerrit_json(StatusCode::OK, &json!(format!("refs/heads/{head}")))
        }
        ("GET", ["projects", ..]) => text(StatusCode::NOT_FOUND, "Not found"),
        ("GET", ["changes", ""]) => {
            let q = query
                .iter()
                .find(|(k, _)| k == "q")
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            let changes: Vec<Value> = read_changes(changes_dir, shared)
                .iter()
                .filter(|change| readable(&change.project) && matches_query(change, q))
                .map(|change| change_json(shared, change))
                .collect();
            gerrit_json(StatusCode::OK, &Value::Array(changes))
        }
        (_, ["changes", id, rest @ ..]) => {
            let Some(change) =
                find_change(changes_dir, shared, id).filter(|c| readable(&c.project))
            else {
                return text(StatusCode::NOT_FOUND, &format!("Not found: {id}"));
            };
            match (method.as_str(), rest) {
                ("GET", []) => gerrit_json(StatusCode::OK, &change_json(shared, &change)),
                ("POST", ["abandon"]) | ("POST", ["restore"]) => {
                    let abandon = rest == ["abandon"];
                    if !account.can_abandon {
                        let action = if abandon { "abandon" } else { "restore" };
                        return text(StatusCode::FORBIDDEN, &format!("{action} not permitted"));
                    }
                    let wanted_from = if abandon { "NEW" } else { "ABANDONED" };
                    if change.status != wanted_from {
                        return text(
                            StatusCode::CONFLICT,
                            &format!("change is {}", change.status.to_lowercase()),
                        );
                    }
                    let status = if abandon { "ABANDONED" } else { "NEW" };
                    shared.statuses.insert(change.number, status.into());
                    let change = EmulatedChange {
                        status: status.into(),
                        ..change
                    };
                    gerrit_json(StatusCode::OK, &change_json(shared, &change))
                }
                _ => text(StatusCode::NOT_FOUND, "Not found"),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// `project~number`, or a bare number.
fn find_change(changes_dir: &Path, shared: &Shared, id: &str) -> Option<EmulatedChange> {
    let (project, number) = match id.rsplit_once('~') {
        Some((project, number)) => (Some(project), number),
        None => (None, id),
    };
    let number: u64 = number.parse().ok()?;
    read_changes(changes_dir, shared)
        .into_iter()
        .find(|c| c.number == number && project.is_none_or(|p| p == c.project))
}

/// Gerrit's query operators the client uses: `change:`, `project:`,
/// `branch:`, `topic:`, `status:`.
fn matches_query(change: &EmulatedChange, q: &str) -> bool {
    q.split_whitespace().all(|term| match term.split_once(':') {
        Some(("change", id)) => change.change_id == id || change.number.to_string() == id,
        Some(("project", p)) => change.project == p,
        Some(("branch", b)) => change.branch == b,
        Some(("topic", t)) => change.topic.as_deref() == Some(t),
        Some(("status", "open")) => change.status == "NEW",
        Some(("status", s)) => change.status.eq_ignore_ascii_case(s),
        _ => false,
    })
}

fn change_json(shared: &Shared, change: &EmulatedChange) -> Value {
    let current = change.patch_sets.last().cloned().unwrap_or_default();
    let mut labels = json!({"Code-Review": {}, "Verified": {}});
    let vote = json!({"_account_id": 1_000_001, "name": "Reviewer"});
    for (label, value) in shared.votes.get(&change.number).into_iter().flatten() {
        let key = match (label.as_str(), *value) {
            (_, 2) => "approved",
            ("Verified", 1) => "approved",
            (_, 1) => "recommended",
            (_, -2) => "rejected",
            ("Verified", -1) => "rejected",
            (_, -1) => "disliked",
            _ => continue,
        };
        labels[label.as_str()][key] = vote.clone();
        labels[label.as_str()]["value"] = json!(value);
    }
    let mut object = json!({
        "id": format!("{}~{}~{}", change.project.replace('/', "%2F"), change.branch, change.change_id),
        "project": change.project,
        "branch": change.branch,
        "change_id": change.change_id,
        "subject": change.subject,
        "status": change.status,
        "_number": change.number,
        "current_revision": current,
        "revisions": {
            current.clone(): {"_number": change.patch_sets.len(), "ref": format!("refs/changes/{:02}/{}/{}", change.number % 100, change.number, change.patch_sets.len())},
        },
        "labels": labels,
    });
    if let Some(topic) = &change.topic {
        object["topic"] = json!(topic);
    }
    if change.work_in_progress {
        object["work_in_progress"] = json!(true);
    }
    object
}
