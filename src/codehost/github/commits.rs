//! Commits GitHub creates and signs itself: the GraphQL mutation
//! `createCommitOnBranch`. Made with a GitHub App's installation token,
//! the commit is signed by GitHub and shown as Verified, which branch
//! protection rules demanding signed commits accept.
//!
//! The mutation has limits a git push has not: the branch must already
//! exist, the new commit has exactly one parent (the branch's head,
//! which must be `expectedHeadOid`), author and committer are chosen by
//! GitHub, and files are sent whole, as regular non-executable files (no
//! symlinks, submodules or modes). `publish::git::file_changes` turns a
//! committed diff into [`FileChanges`], or says why it cannot.
//!
//! Intended flow, for a changeset's diff on `base` published to `head`:
//! 1. apply and commit the diff locally on the base commit (as a push
//!    does), and compute its [`FileChanges`] from base to that commit;
//!    where that is refused, push unsigned and say why;
//! 2. create or reset `head` at the base commit (a push with lease of the
//!    base commit: GitHub requires the branch to exist);
//! 3. call [`GitHub::create_commit_on_branch`] with
//!    `expected_head` = the base commit. [`CommitOnBranchError::BranchMoved`]
//!    means someone moved `head` in between: nothing was written.
//!
//! The commit on `head` is then GitHub's, not the local one: its oid
//! ([`CreatedCommit::oid`]) is what batchcred records as pushed, and the
//! lease of the next reset in step 2. Inside a push, step 1 is
//! `Session::commit_diff` followed by `file_changes::collect` on the same
//! scratch repository, with the fetched base commit as base.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::GitHub;
use crate::codehost::Error;
use crate::codehost::http;

/// The files one commit adds (or changes) and deletes, paths relative to
/// the repository root with `/` separators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileChanges {
    /// Files written whole, new or changed.
    pub additions: Vec<FileAddition>,
    /// Paths removed.
    pub deletions: Vec<String>,
}

/// One file as it should be after the commit.
#[derive(Clone, PartialEq, Eq)]
pub struct FileAddition {
    pub path: String,
    /// Its full contents (sent base64-encoded).
    pub contents: Vec<u8>,
}

// Contents can be large: show their size, not their bytes.
impl std::fmt::Debug for FileAddition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileAddition")
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .finish()
    }
}

/// A commit to create on an existing branch.
#[derive(Debug, Clone)]
pub struct CommitOnBranch<'a> {
    /// `owner/name`.
    pub repository: &'a str,
    /// The branch, without `refs/heads/`; it must exist.
    pub branch: &'a str,
    /// The commit the branch must be at: the new commit's parent.
    pub expected_head: &'a str,
    /// The whole commit message: its first line becomes GitHub's
    /// headline, the rest its body.
    pub message: &'a str,
    pub changes: &'a FileChanges,
}

/// The commit GitHub created (and signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedCommit {
    pub oid: String,
    /// Its page on GitHub.
    pub url: String,
}

/// Why GitHub did not create the commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitOnBranchError {
    /// The branch is not at the expected commit (someone pushed to it, or
    /// it is not where batchcred left it): GitHub wrote nothing. The
    /// caller decides whether to reset the branch and try again.
    #[error(
        "branch {branch} of {repository} on {target} is no longer at {expected}, so GitHub created no commit: {detail}"
    )]
    BranchMoved {
        target: String,
        repository: String,
        branch: String,
        expected: String,
        detail: String,
    },
    /// Any other failure, as for every other call to GitHub: the token
    /// refused or lacking permission ([`Error::Rejected`]), rate limits,
    /// an unreachable host, a missing repository.
    #[error(transparent)]
    CodeHost(#[from] Error),
}

const CREATE_COMMIT_ON_BRANCH: &str =
    "mutation CreateCommitOnBranch($input: CreateCommitOnBranchInput!) {
  createCommitOnBranch(input: $input) { commit { oid url } }
}";

#[derive(Deserialize)]
struct GraphQlAnswer {
    data: Option<MutationData>,
    #[serde(default)]
    errors: Vec<GraphQlError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MutationData {
    create_commit_on_branch: Option<MutationPayload>,
}

#[derive(Deserialize)]
struct MutationPayload {
    commit: Option<CommitNode>,
}

#[derive(Deserialize)]
struct CommitNode {
    oid: String,
    url: String,
}

/// One entry of a GraphQL `errors` list: GitHub adds a `type`
/// (`STALE_DATA`, `FORBIDDEN`, `NOT_FOUND`, `RATE_LIMITED`…).
#[derive(Deserialize)]
struct GraphQlError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: String,
}

impl GitHub {
    /// GitHub's GraphQL endpoint: `https://api.github.com/graphql`, or
    /// `<url>/api/graphql` for Enterprise.
    fn graphql_url(&self) -> String {
        match self.base.strip_suffix("/v3") {
            Some(api) if self.base != "https://api.github.com" => format!("{api}/graphql"),
            _ => format!("{}/graphql", self.base),
        }
    }

    /// Creates `commit` on its branch through `createCommitOnBranch`,
    /// only if the branch is at `commit.expected_head`. With a GitHub
    /// App installation token, GitHub signs the commit.
    #[tracing::instrument(skip_all, fields(repository = commit.repository, branch = commit.branch))]
    pub async fn create_commit_on_branch(
        &self,
        token: &SecretString,
        commit: &CommitOnBranch<'_>,
    ) -> Result<CreatedCommit, CommitOnBranchError> {
        const ENDPOINT: &str = "/graphql (createCommitOnBranch)";
        let (headline, body) = split_message(commit.message);
        let changes = commit.changes;
        let input = json!({
            "branch": {
                "repositoryNameWithOwner": commit.repository,
                "branchName": commit.branch,
            },
            "expectedHeadOid": commit.expected_head,
            "message": { "headline": headline, "body": body },
            "fileChanges": {
                "additions": changes.additions.iter().map(|file| json!({
                    "path": file.path,
                    "contents": STANDARD.encode(&file.contents),
                })).collect::<Vec<_>>(),
                "deletions": changes.deletions.iter().map(|path| json!({ "path": path }))
                    .collect::<Vec<_>>(),
            },
        });
        let request = self
            .api
            .http()
            .request(Method::POST, self.graphql_url())
            .bearer_auth(token.expose_secret())
            .header("Accept", "application/json")
            .json(&json!({ "query": CREATE_COMMIT_ON_BRANCH, "variables": { "input": input } }));
        let response = self
            .api
            .send(self.call("create_commit_on_branch"), request, token)
            .await?;
        if response.status() != StatusCode::OK {
            return Err(http::unexpected(&self.target, ENDPOINT, response, token)
                .await
                .into());
        }
        // GraphQL answers 200 even to a refusal; a rate limit is told
        // by its `type` and these headers.
        let retry_after =
            http::rate_limit(StatusCode::TOO_MANY_REQUESTS, response.headers()).flatten();
        let answer: GraphQlAnswer = http::read_json(&self.target, ENDPOINT, response).await?;
        let created = answer
            .data
            .and_then(|data| data.create_commit_on_branch)
            .and_then(|payload| payload.commit);
        match (created, answer.errors.first()) {
            (Some(node), None) => Ok(CreatedCommit {
                oid: node.oid,
                url: node.url,
            }),
            (_, Some(error)) => Err(self.refusal(token, commit, error, retry_after)),
            (None, None) => Err(Error::Unexpected {
                target: self.target.clone(),
                status: 200,
                endpoint: ENDPOINT.to_owned(),
                detail: "GitHub answered neither a commit nor an error".to_owned(),
            }
            .into()),
        }
    }

    /// What a GraphQL error from `createCommitOnBranch` means.
    fn refusal(
        &self,
        token: &SecretString,
        commit: &CommitOnBranch<'_>,
        error: &GraphQlError,
        retry_after: Option<std::time::Duration>,
    ) -> CommitOnBranchError {
        // GitHub's words, never the token should it be echoed.
        let detail = http::redact(&error.message, token);
        let lower = detail.to_lowercase();
        match error.kind.as_deref() {
            Some("STALE_DATA") => CommitOnBranchError::BranchMoved {
                target: self.target.clone(),
                repository: commit.repository.to_owned(),
                branch: commit.branch.to_owned(),
                expected: commit.expected_head.to_owned(),
                detail,
            },
            // Older answers carry no type: GitHub's stale-head wording.
            None if lower.contains("expected branch to point to") => {
                CommitOnBranchError::BranchMoved {
                    target: self.target.clone(),
                    repository: commit.repository.to_owned(),
                    branch: commit.branch.to_owned(),
                    expected: commit.expected_head.to_owned(),
                    detail,
                }
            }
            Some("RATE_LIMITED") => Error::RateLimited {
                target: self.target.clone(),
                retry_after,
            }
            .into(),
            Some("FORBIDDEN" | "UNAUTHORIZED") => Error::Rejected {
                target: self.target.clone(),
                detail: format!(
                    "it may not create commits in {} ({detail}); a GitHub App needs Contents: read and write",
                    commit.repository
                ),
            }
            .into(),
            // "Could not resolve to a Repository with the name 'o/r'."
            Some("NOT_FOUND") if lower.contains("resolve to a repository") => Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: commit.repository.to_owned(),
            }
            .into(),
            _ => Error::Unexpected {
                target: self.target.clone(),
                status: 200,
                endpoint: "/graphql (createCommitOnBranch)".to_owned(),
                detail,
            }
            .into(),
        }
    }
}

/// GitHub's headline is one line; everything after the first line (less
/// the blank line that separates it) is the body.
fn split_message(message: &str) -> (&str, &str) {
    let message = message.trim();
    match message.split_once('\n') {
        Some((headline, body)) => (headline.trim_end(), body.trim()),
        None => (message, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codehost::ApiClient;
    use crate::domain::CodeHostUrl;

    #[test]
    fn graphql_lives_beside_the_rest_api() -> Result<(), Box<dyn std::error::Error>> {
        let api = ApiClient::new(std::time::Duration::from_secs(1))?;
        let at = |url: &str| -> Result<String, Box<dyn std::error::Error>> {
            Ok(GitHub::new(api.clone(), &CodeHostUrl::parse(url)?, String::new()).graphql_url())
        };
        assert_eq!(at("https://github.com")?, "https://api.github.com/graphql");
        assert_eq!(
            at("https://ghe.example.com/")?,
            "https://ghe.example.com/api/graphql"
        );
        Ok(())
    }

    #[test]
    fn graphql_errors_are_sorted_without_the_token() -> Result<(), Box<dyn std::error::Error>> {
        let api = ApiClient::new(std::time::Duration::from_secs(1))?;
        let github = GitHub::new(
            api,
            &CodeHostUrl::parse("https://github.com")?,
            "GitHub https://github.com".to_owned(),
        );
        let token = SecretString::from("ghs_secret");
        let changes = FileChanges::default();
        let commit = CommitOnBranch {
            repository: "acme/app",
            branch: "batch/x",
            expected_head: "abc",
            message: "m",
            changes: &changes,
        };
        let refusal = |kind: Option<&str>, message: &str| {
            let error = GraphQlError {
                kind: kind.map(str::to_owned),
                message: message.to_owned(),
            };
            let wait = Some(std::time::Duration::from_secs(9));
            github.refusal(&token, &commit, &error, wait)
        };
        let stale = "Expected branch to point to \"abc\" but it did not. Pull and try again.";
        for kind in [Some("STALE_DATA"), None] {
            assert!(matches!(
                refusal(kind, stale),
                CommitOnBranchError::BranchMoved { expected, .. } if expected == "abc"
            ));
        }
        assert!(matches!(
            refusal(Some("RATE_LIMITED"), "API rate limit exceeded"),
            CommitOnBranchError::CodeHost(Error::RateLimited {
                retry_after: Some(_),
                ..
            })
        ));
        let forbidden = refusal(
            Some("FORBIDDEN"),
            "Resource not accessible by integration ghs_secret",
        );
        assert!(matches!(
            &forbidden,
            CommitOnBranchError::CodeHost(Error::Rejected { .. })
        ));
        assert!(!forbidden.to_string().contains("ghs_secret"), "{forbidden}");
        assert!(matches!(
            refusal(
                Some("NOT_FOUND"),
                "Could not resolve to a Repository with the name 'acme/app'."
            ),
            CommitOnBranchError::CodeHost(Error::RepositoryNotFound { .. })
        ));
        assert!(matches!(
            refusal(
                Some("NOT_FOUND"),
                "A ref named \"refs/heads/batch/x\" does not exist"
            ),
            CommitOnBranchError::CodeHost(Error::Unexpected { .. })
        ));
        Ok(())
    }

    #[test]
    fn the_first_line_is_the_headline() {
        assert_eq!(split_message("Fix it"), ("Fix it", ""));
        assert_eq!(
            split_message("Fix it\n\nBecause.\nReally.\n"),
            ("Fix it", "Because.\nReally.")
        );
        assert_eq!(split_message("Fix it\r\nBody"), ("Fix it", "Body"));
    }
}
