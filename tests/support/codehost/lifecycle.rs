//! The emulator's pull request lifecycle: reading a pull request with its
//! reviews and checks in each code host's shape, Bitbucket's decline and
//! reopen, branch deletion, and the test helpers that merge, review,
//! check and delete pull requests behind batchcred's back.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{EmulatedPull, Emulator, Shared, json_response};

/// Where an emulated pull request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullState {
    Open,
    Closed,
    Merged,
}

/// What an emulated pull request's reviewers said, rendered in each code
/// host's own terms (GitHub reviews with history, GitLab approvals,
/// Bitbucket reviewer statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmulatedReview {
    Approved,
    ChangesRequested,
    /// A reviewer is asked, with no verdict yet.
    Requested,
}

/// How the checks on an emulated pull request's head commit went,
/// rendered as GitHub statuses and check runs, a GitLab pipeline or
/// Bitbucket builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmulatedChecks {
    Passed,
    /// One check passed, another failed.
    Failed,
    Running,
}

impl Emulator {
    fn update_pull(&self, repository: &str, number: u64, change: impl FnOnce(&mut EmulatedPull)) {
        let mut shared = self.lock();
        let pull = shared
            .pulls
            .iter_mut()
            .find(|p| p.repository == repository && p.number == number)
            .expect("known pull request");
        change(pull);
        pull.version += 1;
    }

    /// Merges the pull request, as someone on the code host would.
    pub fn merge_pull(&self, repository: &str, number: u64) {
        self.update_pull(repository, number, |pull| pull.state = PullState::Merged);
    }

    pub fn set_pull_review(&self, repository: &str, number: u64, review: Option<EmulatedReview>) {
        self.update_pull(repository, number, |pull| pull.review = review);
    }

    pub fn set_pull_checks(&self, repository: &str, number: u64, checks: Option<EmulatedChecks>) {
        self.update_pull(repository, number, |pull| pull.checks = checks);
    }

    /// Deletes the pull request, as an admin or a repository deletion
    /// would: asking for it answers 404 from now on.
    pub fn delete_pull(&self, repository: &str, number: u64) {
        let mut shared = self.lock();
        let before = shared.pulls.len();
        shared
            .pulls
            .retain(|p| !(p.repository == repository && p.number == number));
        assert!(shared.pulls.len() < before, "known pull request");
    }

    /// `(repository, branch)` for each branch deleted through the API,
    /// once each, in order.
    pub fn deleted_branches(&self) -> Vec<(String, String)> {
        self.lock().deleted_branches.clone()
    }
}

/// The lifecycle endpoints of the three APIs, below a served repository
/// (`rest` is the path after it); `None` when the request is for
/// something else.
pub(super) fn lifecycle_api(
    shared: &mut Shared,
    kind: &str,
    method: &Method,
    rest: &[&str],
    query: &str,
    repository: &str,
    pull_url: &dyn Fn(u64) -> String,
) -> Option<Response> {
    match (kind, method.as_str(), rest) {
        (_, "GET", ["pulls" | "merge_requests" | "pull-requests", number]) => {
            let Some(pull) = find_pull(shared, repository, number) else {
                return Some(not_found(kind));
            };
            Some(json_response(
                StatusCode::OK,
                render_pull(kind, pull, &pull_url(pull.number)),
            ))
        }
        ("github", "GET", ["pulls", number, "reviews"]) => {
            let Some(pull) = find_pull(shared, repository, number) else {
                return Some(not_found(kind));
            };
            let review =
                |login: &str, state: &str| json!({"user": {"login": login}, "state": state});
            // Histories, so that only each reviewer's latest verdict counts.
            let reviews = match pull.review {
                Some(EmulatedReview::Approved) => vec![
                    review("reviewer-a", "CHANGES_REQUESTED"),
                    review("reviewer-a", "APPROVED"),
                    review("reviewer-a", "COMMENTED"),
                ],
                Some(EmulatedReview::ChangesRequested) => vec![
                    review("reviewer-a", "APPROVED"),
                    review("reviewer-b", "CHANGES_REQUESTED"),
                ],
                Some(EmulatedReview::Requested) | None => vec![],
            };
            Some(json_response(StatusCode::OK, Value::Array(reviews)))
        }
        ("gitlab", "GET", ["merge_requests", number, "approvals"]) => {
            let Some(pull) = find_pull(shared, repository, number) else {
                return Some(not_found(kind));
            };
            let approvals = match pull.review {
                Some(EmulatedReview::Approved) => json!({"approved": true, "approvals_required": 1,
                    "approvals_left": 0, "approved_by": [{"user": {"username": "reviewer-a"}}]}),
                Some(EmulatedReview::Requested | EmulatedReview::ChangesRequested) => {
                    json!({"approved": false, "approvals_required": 1, "approvals_left": 1, "approved_by": []})
                }
                // As GitLab without approval rules: "approved" by nobody.
                None => {
                    json!({"approved": true, "approvals_required": 0, "approvals_left": 0, "approved_by": []})
                }
            };
            Some(json_response(StatusCode::OK, approvals))
        }
        ("github", "GET", ["commits", sha, "status" | "check-runs"]) => {
            let checks = shared
                .pulls
                .iter()
                .find(|p| p.repository == repository && p.sha == *sha)
                .and_then(|p| p.checks);
            let statuses = rest[2] == "status";
            let (state, count, runs) = match checks {
                None => ("pending", 0, vec![]),
                Some(EmulatedChecks::Passed) => (
                    "success",
                    1,
                    vec![json!({"status": "completed", "conclusion": "success"})],
                ),
                // The statuses pass; a check run fails.
                Some(EmulatedChecks::Failed) => (
                    "success",
                    1,
                    vec![
                        json!({"status": "completed", "conclusion": "success"}),
                        json!({"status": "completed", "conclusion": "failure"}),
                    ],
                ),
                Some(EmulatedChecks::Running) => ("pending", 1, vec![]),
            };
            Some(json_response(
                StatusCode::OK,
                if statuses {
                    json!({"state": state, "total_count": count, "sha": sha,
                           "statuses": (0..count).map(|_| json!({"state": state})).collect::<Vec<_>>()})
                } else {
                    json!({"total_count": runs.len(), "check_runs": runs})
                },
            ))
        }
        ("bitbucket", "POST", ["pull-requests", number, action @ ("decline" | "reopen")]) => {
            let Some(pull) = find_pull_mut(shared, repository, number) else {
                return Some(not_found(kind));
            };
            let version = url::form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "version")
                .and_then(|(_, value)| value.parse::<i64>().ok());
            if version != Some(pull.version) {
                return Some(json_response(
                    StatusCode::CONFLICT,
                    json!({"errors": [{"exceptionName": "com.atlassian.bitbucket.pull.PullRequestOutOfDateException",
                           "message": "You are attempting to modify a pull request based on out-of-date information.",
                           "currentVersion": pull.version}]}),
                ));
            }
            let (from, to) = if *action == "decline" {
                (PullState::Open, PullState::Closed)
            } else {
                (PullState::Closed, PullState::Open)
            };
            if pull.state != from {
                return Some(json_response(
                    StatusCode::CONFLICT,
                    json!({"errors": [{"exceptionName": "com.atlassian.bitbucket.pull.IllegalPullRequestStateException",
                           "message": format!("The pull request cannot be {action}d in its current state.")}]}),
                ));
            }
            pull.state = to;
            pull.version += 1;
            let url = pull_url(pull.number);
            Some(json_response(StatusCode::OK, render_pull(kind, pull, &url)))
        }
        ("github", "DELETE", ["git", "refs", "heads", branch @ ..]) => {
            let branch = percent_decode(&branch.join("/"));
            delete_branch(shared, kind, repository, &branch)
        }
        ("gitlab", "DELETE", ["repository", "branches", branch]) => {
            let branch = percent_decode(branch);
            delete_branch(shared, kind, repository, &branch)
        }
        _ => None,
    }
}

fn find_pull<'a>(shared: &'a Shared, repository: &str, number: &str) -> Option<&'a EmulatedPull> {
    let number: u64 = number.parse().ok()?;
    shared
        .pulls
        .iter()
        .find(|p| p.repository == repository && p.number == number)
}

pub(super) fn find_pull_mut<'a>(
    shared: &'a mut Shared,
    repository: &str,
    number: &str,
) -> Option<&'a mut EmulatedPull> {
    let number: u64 = number.parse().ok()?;
    shared
        .pulls
        .iter_mut()
        .find(|p| p.repository == repository && p.number == number)
}

/// Each code host's 404 for a pull request that does not exist.
pub(super) fn not_found(kind: &str) -> Response {
    let body = match kind {
        "github" => json!({"message": "Not Found"}),
        "gitlab" => json!({"message": "404 Not found"}),
        _ => {
            json!({"errors": [{"exceptionName": "com.atlassian.bitbucket.pull.NoSuchPullRequestException",
                                "message": "Pull request does not exist."}]})
        }
    };
    json_response(StatusCode::NOT_FOUND, body)
}

/// A pull request in the shape `kind`'s API answers with.
pub(super) fn render_pull(kind: &str, pull: &EmulatedPull, url: &str) -> Value {
    let requested = pull.review == Some(EmulatedReview::Requested);
    let base_sha = "0".repeat(40);
    match kind {
        "github" => json!({
            "number": pull.number, "html_url": url, "title": pull.title, "body": pull.body,
            "state": if pull.state == PullState::Open { "open" } else { "closed" },
            "merged": pull.state == PullState::Merged,
            "merged_at": (pull.state == PullState::Merged).then_some("2026-01-01T00:00:00Z"),
            "draft": pull.draft,
            "head": {"ref": pull.head, "sha": pull.sha},
            "base": {"ref": pull.base, "sha": base_sha},
            "requested_reviewers": if requested { vec![json!({"login": "reviewer-a"})] } else { vec![] },
        }),
        "gitlab" => json!({
            "iid": pull.number, "web_url": url, "title": pull.title, "description": pull.body,
            "state": match pull.state {
                PullState::Open => "opened",
                PullState::Closed => "closed",
                PullState::Merged => "merged",
            },
            "draft": pull.draft, "work_in_progress": pull.draft,
            "source_branch": pull.head, "target_branch": pull.base, "sha": pull.sha,
            "head_pipeline": pull.checks.map(|checks| json!({"status": match checks {
                EmulatedChecks::Passed => "success",
                EmulatedChecks::Failed => "failed",
                EmulatedChecks::Running => "running",
            }})),
            "detailed_merge_status": if pull.review == Some(EmulatedReview::ChangesRequested) {
                "requested_changes"
            } else {
                "mergeable"
            },
            "reviewers": if pull.review.is_some() { vec![json!({"username": "reviewer-a"})] } else { vec![] },
        }),
        _ => {
            let reviewer = |status: &str| json!({"user": {"name": "reviewer"}, "role": "REVIEWER", "status": status});
            let reviewers = match pull.review {
                Some(EmulatedReview::Approved) => {
                    vec![reviewer("APPROVED"), reviewer("UNAPPROVED")]
                }
                Some(EmulatedReview::ChangesRequested) => {
                    vec![reviewer("APPROVED"), reviewer("NEEDS_WORK")]
                }
                Some(EmulatedReview::Requested) => vec![reviewer("UNAPPROVED")],
                None => vec![],
            };
            json!({
                "id": pull.number, "version": pull.version, "title": pull.title,
                "description": pull.body, "draft": pull.draft,
                "state": match pull.state {
                    PullState::Open => "OPEN",
                    PullState::Closed => "DECLINED",
                    PullState::Merged => "MERGED",
                },
                "fromRef": {"id": format!("refs/heads/{}", pull.head), "displayId": pull.head, "latestCommit": pull.sha},
                "toRef": {"id": format!("refs/heads/{}", pull.base), "displayId": pull.base, "latestCommit": base_sha},
                "reviewers": reviewers,
                "links": {"self": [{"href": url}]},
            })
        }
    }
}

/// `GET /rest/build-status/1.0/commits/{sha}`: the builds on any pull
/// request's head commit.
pub(super) fn bitbucket_builds(shared: &Shared, path: &str) -> Option<Response> {
    let sha = path.strip_prefix("/commits/")?;
    let checks = shared
        .pulls
        .iter()
        .find(|p| p.sha == sha)
        .and_then(|p| p.checks);
    let build = |state: &str| json!({"state": state, "key": format!("build-{state}"), "url": "http://ci.invalid"});
    let builds = match checks {
        None => vec![],
        Some(EmulatedChecks::Passed) => vec![build("SUCCESSFUL")],
        Some(EmulatedChecks::Failed) => vec![build("SUCCESSFUL"), build("FAILED")],
        Some(EmulatedChecks::Running) => vec![build("INPROGRESS")],
    };
    Some(json_response(
        StatusCode::OK,
        json!({"size": builds.len(), "limit": 100, "isLastPage": true, "start": 0, "values": builds}),
    ))
}

/// Records the deletion; a branch deleted before is gone, which GitHub
/// answers with 422 and GitLab with 404 (Bitbucket does not tell).
pub(super) fn delete_branch(
    shared: &mut Shared,
    kind: &str,
    repository: &str,
    branch: &str,
) -> Option<Response> {
    let entry = (repository.to_owned(), branch.to_owned());
    if !shared.deleted_branches.contains(&entry) {
        shared.deleted_branches.push(entry);
        return Some(StatusCode::NO_CONTENT.into_response());
    }
    Some(match kind {
        "github" => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "Reference does not exist"}),
        ),
        "gitlab" => json_response(
            StatusCode::NOT_FOUND,
            json!({"message": "404 Branch Not Found"}),
        ),
        _ => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `%XX` escapes decoded (branch names in paths).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| text.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                at += 3;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
