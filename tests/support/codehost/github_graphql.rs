//! GitHub's GraphQL endpoint (`/api/graphql`), as far as batchcred uses
//! it: the `createCommitOnBranch` mutation, applied for real to a bare
//! repository (one a [`crate::support::git_http::GitHttpServer`] serves,
//! so a test can fetch the commit), with GitHub's answers and errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::{EmulatedToken, Emulator, Shared, json_response};

/// Where the emulator creates the commits of one repository.
#[derive(Debug, Clone)]
pub(super) struct CommitTarget {
    bare: PathBuf,
}

impl Emulator {
    /// Lets `createCommitOnBranch` write to `repository` (`owner/name`),
    /// whose branches live in the bare repository `bare`.
    pub fn serve_commits_to(&self, repository: &str, bare: &Path) {
        self.lock().commit_targets.insert(
            repository.to_owned(),
            CommitTarget {
                bare: bare.to_owned(),
            },
        );
    }

    /// How many `createCommitOnBranch` calls created a commit.
    pub fn commits_created(&self) -> usize {
        self.lock().commits_created
    }
}

/// A GraphQL error answer, as GitHub gives it: status 200, no data.
fn graphql_error(kind: &str, message: &str) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "data": {"createCommitOnBranch": null},
            "errors": [{"type": kind, "path": ["createCommitOnBranch"],
                        "locations": [{"line": 2, "column": 3}], "message": message}],
        }),
    )
}

/// Answers a request to `/api/graphql`. `token` is the caller's usable
/// token, `None` for a missing, unknown, revoked or expired one.
pub(super) fn handle(
    shared: &std::sync::Mutex<Shared>,
    token: Option<&EmulatedToken>,
    body: &[u8],
    origin: &str,
) -> Response {
    let Some(token) = token else {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/graphql"}),
        );
    };
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let query = request["query"].as_str().unwrap_or_default();
    if !query.contains("createCommitOnBranch") {
        return json_response(
            StatusCode::OK,
            json!({"errors": [{"message": "this emulator only knows createCommitOnBranch"}]}),
        );
    }
    let input = &request["variables"]["input"];
    let repository = input["branch"]["repositoryNameWithOwner"]
        .as_str()
        .unwrap_or_default();
    let branch = input["branch"]["branchName"].as_str().unwrap_or_default();
    let target = {
        let state = shared.lock().expect("emulator state");
        state.commit_targets.get(repository).cloned()
    };
    let Some(target) = target else {
        return graphql_error(
            "NOT_FOUND",
            &format!("Could not resolve to a Repository with the name '{repository}'."),
        );
    };
    let may_write = token.scopes.iter().any(|s| s == "repo")
        || token.push_repositories.iter().any(|r| r == repository);
    if !may_write {
        return graphql_error("FORBIDDEN", "Resource not accessible by integration");
    }
    match create_commit(&target.bare, branch, input, &token.owner) {
        Ok(oid) => {
            shared.lock().expect("emulator state").commits_created += 1;
            json_response(
                StatusCode::OK,
                json!({"data": {"createCommitOnBranch": {"commit": {
                    "oid": oid, "url": format!("{origin}/{repository}/commit/{oid}"),
                }}}}),
            )
        }
        Err((kind, message)) => graphql_error(kind, &message),
    }
}

/// Writes the commit into `bare` the way GitHub does: one parent (the
/// branch head, which must be `expectedHeadOid`), the files given written
/// as regular files, the branch moved only if it is still at its parent.
fn create_commit(
    bare: &Path,
    branch: &str,
    input: &Value,
    author: &str,
) -> Result<String, (&'static str, String)> {
    let reference = format!("refs/heads/{branch}");
    let head = git(
        bare,
        None,
        &["rev-parse", "--verify", "--quiet", &reference],
        None,
    )
    .map_err(|_| {
        (
            "NOT_FOUND",
            format!("A ref named \"{reference}\" does not exist in this repository."),
        )
    })?;
    let expected = input["expectedHeadOid"].as_str().unwrap_or_default();
    let stale = || {
        (
            "STALE_DATA",
            format!(
                "Expected branch to point to \"{expected}\" but it did not. Pull and try again."
            ),
        )
    };
    if head != expected {
        return Err(stale());
    }
    let scratch = tempfile::tempdir().expect("index directory");
    let index = scratch.path().join("index");
    let index = Some(index.as_path());
    let unprocessable = |message: String| ("UNPROCESSABLE", message);
    git(bare, index, &["read-tree", &head], None).map_err(unprocessable)?;
    let changes = &input["fileChanges"];
    for deletion in changes["deletions"].as_array().into_iter().flatten() {
        let path = deletion["path"].as_str().unwrap_or_default();
        if git(
            bare,
            None,
            &["cat-file", "-e", &format!("{head}:{path}")],
            None,
        )
        .is_err()
        {
            return Err(unprocessable(format!(
                "A path was requested for deletion which does not exist as of commit oid `{head}`"
            )));
        }
        git(
            bare,
            index,
            &["update-index", "--force-remove", "--", path],
            None,
        )
        .map_err(unprocessable)?;
    }
    for addition in changes["additions"].as_array().into_iter().flatten() {
        let path = addition["path"].as_str().unwrap_or_default();
        let contents = base64::engine::general_purpose::STANDARD
            .decode(addition["contents"].as_str().unwrap_or_default())
            .map_err(|e| unprocessable(format!("contents of {path} are not base64: {e}")))?;
        let blob = git(
            bare,
            None,
            &["hash-object", "-w", "--stdin"],
            Some(&contents),
        )
        .map_err(unprocessable)?;
        let entry = format!("100644,{blob},{path}");
        git(
            bare,
            index,
            &["update-index", "--add", "--cacheinfo", &entry],
            None,
        )
        .map_err(unprocessable)?;
    }
    let tree = git(bare, index, &["write-tree"], None).map_err(unprocessable)?;
    let headline = input["message"]["headline"].as_str().unwrap_or_default();
    let body = input["message"]["body"].as_str().unwrap_or_default();
    let message = if body.is_empty() {
        format!("{headline}\n")
    } else {
        format!("{headline}\n\n{body}\n")
    };
    let mut commit = Command::new("git");
    commit
        .arg("--git-dir")
        .arg(bare)
        .args(["commit-tree", &tree, "-p", &head, "-F", "-"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", author)
        .env(
            "GIT_AUTHOR_EMAIL",
            format!("{author}@users.noreply.github.com"),
        )
        // GitHub's web-flow commits every signed commit.
        .env("GIT_COMMITTER_NAME", "GitHub")
        .env("GIT_COMMITTER_EMAIL", "noreply@github.com");
    let oid = run(&mut commit, Some(message.as_bytes())).map_err(unprocessable)?;
    // Only if the branch is still at its parent.
    git(bare, None, &["update-ref", &reference, &oid, &head], None).map_err(|_| stale())?;
    Ok(oid)
}

/// Runs git on `bare` (with `index` as its index file); trimmed stdout,
/// or stderr as the error.
fn git(
    bare: &Path,
    index: Option<&Path>,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<String, String> {
    let mut command = Command::new("git");
    command
        .arg("--git-dir")
        .arg(bare)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    if let Some(index) = index {
        // Index commands want a work tree; an empty one, never read.
        let work_tree = index.parent().unwrap_or(index);
        command
            .env("GIT_INDEX_FILE", index)
            .env("GIT_WORK_TREE", work_tree);
    }
    run(&mut command, stdin)
}

fn run(command: &mut Command, stdin: Option<&[u8]>) -> Result<String, String> {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(input) = stdin {
        pipe.write_all(input).map_err(|e| e.to_string())?;
    }
    drop(pipe);
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}
