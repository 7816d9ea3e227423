//! Following a GitHub pull request once it is open: its state, its
//! reviews (each reviewer's latest verdict) and its checks (commit
//! statuses and check runs), closing and reopening it, and deleting its
//! branch.

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;

use super::{GitHub, User};
use crate::codehost::gitlab::urlencode_path;
use crate::codehost::http;
use crate::codehost::{ChecksState, Error, PullRequestState, PullRequestStatus, ReviewState};

/// `GET /repos/{o}/{r}/pulls/{n}`: the parts a status is made of.
#[derive(Deserialize)]
struct PullDetails {
    number: u64,
    html_url: String,
    /// `open` or `closed` (merged pull requests are closed too).
    state: String,
    #[serde(default)]
    merged: bool,
    merged_at: Option<String>,
    #[serde(default)]
    draft: bool,
    title: String,
    head: PullRef,
    base: PullRef,
    /// Reviewers asked who have not reviewed yet.
    #[serde(default)]
    requested_reviewers: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct PullRef {
    #[serde(rename = "ref")]
    name: String,
    sha: Option<String>,
}

/// One entry of `GET …/pulls/{n}/reviews`, oldest first.
#[derive(Deserialize)]
struct Review {
    user: Option<User>,
    state: String,
}

/// `GET /repos/{o}/{r}/commits/{sha}/status`: the commit statuses.
#[derive(Deserialize)]
struct CombinedStatus {
    state: String,
    #[serde(default)]
    total_count: u64,
}

/// `GET /repos/{o}/{r}/commits/{sha}/check-runs`: GitHub Actions and
/// other apps report here instead of through statuses.
#[derive(Deserialize)]
struct CheckRuns {
    #[serde(default)]
    check_runs: Vec<CheckRun>,
}

#[derive(Deserialize)]
struct CheckRun {
    status: String,
    conclusion: Option<String>,
}

/// The most reviews and check runs read per pull request: one page. A
/// pull request with more is rare, and its newest entries are what count.
const PER_PAGE: &str = "100";

impl GitHub {
    /// The pull request with its reviews and checks.
    pub(super) async fn pull_status(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        let endpoint = format!("/repos/{repository}/pulls/{number}");
        let response = self
            .api
            .send(
                self.call("pull_request"),
                self.request(Method::GET, &endpoint, token),
                token,
            )
            .await?;
        let pull =
            http::read_pull_request(&self.target, repository, number, &endpoint, response, token)
                .await?;
        self.status_of(token, repository, pull).await
    }

    /// Deletes `branch`; one already gone counts as deleted.
    pub(super) async fn delete_head_branch(
        &self,
        token: &SecretString,
        repository: &str,
        branch: &str,
    ) -> Result<(), Error> {
        // Each segment escaped, the slashes of `feature/x` kept: the ref
        // path is `heads/feature/x`.
        let encoded: Vec<String> = branch.split('/').map(urlencode_path).collect();
        let endpoint = format!("/repos/{repository}/git/refs/heads/{}", encoded.join("/"));
        let response = self
            .api
            .send(
                self.call("delete_branch"),
                self.request(Method::DELETE, &endpoint, token),
                token,
            )
            .await?;
        match response.status() {
            // "Reference does not exist": already deleted.
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::NOT_FOUND => Ok(()),
            status if status.is_success() => Ok(()),
            _ => Err(http::unexpected(&self.target, &endpoint, response, token).await),
        }
    }

    /// A GET whose answer must be a success, read as JSON.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        endpoint: &str,
        token: &SecretString,
    ) -> Result<T, Error> {
        let request = self
            .request(Method::GET, endpoint, token)
            .query(&[("per_page", PER_PAGE)]);
        let response = self.api.send(self.call(operation), request, token).await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, endpoint, response, token).await);
        }
        http::read_json(&self.target, endpoint, response).await
    }

    /// Completes a pull request with its reviews and checks.
    async fn status_of(
        &self,
        token: &SecretString,
        repository: &str,
        pull: PullDetails,
    ) -> Result<PullRequestStatus, Error> {
        let state = pull_state(&pull);
        let reviews: Vec<Review> = self
            .get_json(
                "pull_request_reviews",
                &format!("/repos/{repository}/pulls/{}/reviews", pull.number),
                token,
            )
            .await?;
        let review = review_state(&reviews, !pull.requested_reviewers.is_empty());
        let checks = match &pull.head.sha {
            Some(sha) => self.checks(token, repository, sha).await?,
            None => None,
        };
        Ok(PullRequestStatus {
            number: pull.number,
            url: pull.html_url,
            state,
            review,
            checks,
            title: pull.title,
            head_branch: pull.head.name,
            base_branch: pull.base.name,
        })
    }

    /// The commit statuses and the check runs on `sha`, taken together.
    async fn checks(
        &self,
        token: &SecretString,
        repository: &str,
        sha: &str,
    ) -> Result<Option<ChecksState>, Error> {
        let sha = urlencode_path(sha);
        let combined: CombinedStatus = self
            .get_json(
                "commit_status",
                &format!("/repos/{repository}/commits/{sha}/status"),
                token,
            )
            .await?;
        let runs: CheckRuns = self
            .get_json(
                "commit_check_runs",
                &format!("/repos/{repository}/commits/{sha}/check-runs"),
                token,
            )
            .await?;
        // With no statuses GitHub still says "pending": it means none.
        let from_statuses =
            (combined.total_count > 0).then(|| status_checks_state(&combined.state));
        Ok(ChecksState::combine(
            from_statuses
                .into_iter()
                .chain(runs.check_runs.iter().filter_map(check_run_state)),
        ))
    }

    /// Sets the pull request's state (`open` or `closed`).
    pub(super) async fn set_state(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
        state: &'static str,
        operation: &'static str,
    ) -> Result<PullRequestStatus, Error> {
        let endpoint = format!("/repos/{repository}/pulls/{number}");
        let request = self
            .request(Method::PATCH, &endpoint, token)
            .json(&serde_json::json!({ "state": state }));
        let response = self.api.send(self.call(operation), request, token).await?;
        let pull =
            http::read_pull_request(&self.target, repository, number, &endpoint, response, token)
                .await?;
        self.status_of(token, repository, pull).await
    }
}

/// A merged pull request is also `closed`; a draft is also `open`.
fn pull_state(pull: &PullDetails) -> PullRequestState {
    if pull.merged || pull.merged_at.is_some() {
        PullRequestState::Merged
    } else if pull.state == "closed" {
        PullRequestState::Closed
    } else if pull.draft {
        PullRequestState::Draft
    } else {
        PullRequestState::Open
    }
}

/// Each reviewer's latest verdict counts: one asking for changes outweighs
/// approvals. Comments do not replace an earlier verdict; a dismissal
/// withdraws it. Reviews without a verdict, or reviewers asked who have
/// not answered yet, make the review pending.
fn review_state(reviews: &[Review], reviewers_requested: bool) -> Option<ReviewState> {
    let mut verdicts: Vec<(&str, Option<ReviewState>)> = vec![];
    for review in reviews {
        let verdict = match review.state.as_str() {
            "APPROVED" => Some(ReviewState::Approved),
            "CHANGES_REQUESTED" => Some(ReviewState::ChangesRequested),
            "DISMISSED" => None,
            // COMMENTED, PENDING: no verdict, keeps an earlier one.
            _ => continue,
        };
        let reviewer = review.user.as_ref().map_or("", |u| u.login.as_str());
        match verdicts.iter_mut().find(|(name, _)| *name == reviewer) {
            Some(entry) => entry.1 = verdict,
            None => verdicts.push((reviewer, verdict)),
        }
    }
    let latest = || verdicts.iter().filter_map(|(_, verdict)| *verdict);
    if latest().any(|v| v == ReviewState::ChangesRequested) {
        Some(ReviewState::ChangesRequested)
    } else if latest().any(|v| v == ReviewState::Approved) {
        Some(ReviewState::Approved)
    } else if !reviews.is_empty() || reviewers_requested {
        Some(ReviewState::Pending)
    } else {
        None
    }
}

/// The combined state of commit statuses: success, failure, error, pending.
fn status_checks_state(state: &str) -> ChecksState {
    match state {
        "success" => ChecksState::Passed,
        "failure" | "error" => ChecksState::Failed,
        _ => ChecksState::Pending,
    }
}

/// A check run: unfinished runs are pending; finished ones pass unless
/// they concluded badly. Neutral and skipped runs do not count.
fn check_run_state(run: &CheckRun) -> Option<ChecksState> {
    if run.status != "completed" {
        return Some(ChecksState::Pending);
    }
    match run.conclusion.as_deref() {
        Some("success") => Some(ChecksState::Passed),
        Some("neutral" | "skipped") => None,
        Some("action_required") => Some(ChecksState::Pending),
        // failure, cancelled, timed_out, stale, or none given.
        _ => Some(ChecksState::Failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reviews(entries: &[(&str, &str)]) -> Vec<Review> {
        entries
            .iter()
            .map(|(login, state)| Review {
                user: Some(User {
                    login: (*login).to_owned(),
                }),
                state: (*state).to_owned(),
            })
            .collect()
    }

    #[test]
    fn only_each_reviewers_latest_verdict_counts() {
        let changed_mind = reviews(&[
            ("ann", "CHANGES_REQUESTED"),
            ("ann", "APPROVED"),
            ("ann", "COMMENTED"),
        ]);
        assert_eq!(
            review_state(&changed_mind, false),
            Some(ReviewState::Approved)
        );
        let one_objects = reviews(&[("ann", "APPROVED"), ("bob", "CHANGES_REQUESTED")]);
        assert_eq!(
            review_state(&one_objects, false),
            Some(ReviewState::ChangesRequested)
        );
        let dismissed = reviews(&[("ann", "CHANGES_REQUESTED"), ("ann", "DISMISSED")]);
        assert_eq!(review_state(&dismissed, false), Some(ReviewState::Pending));
        let comments = reviews(&[("ann", "COMMENTED")]);
        assert_eq!(review_state(&comments, false), Some(ReviewState::Pending));
        assert_eq!(review_state(&[], true), Some(ReviewState::Pending));
        assert_eq!(review_state(&[], false), None);
    }

    #[test]
    fn check_runs_count_unless_neutral_or_skipped() {
        let run = |status: &str, conclusion: Option<&str>| CheckRun {
            status: status.to_owned(),
            conclusion: conclusion.map(str::to_owned),
        };
        assert_eq!(
            check_run_state(&run("in_progress", None)),
            Some(ChecksState::Pending)
        );
        assert_eq!(
            check_run_state(&run("completed", Some("success"))),
            Some(ChecksState::Passed)
        );
        assert_eq!(
            check_run_state(&run("completed", Some("timed_out"))),
            Some(ChecksState::Failed)
        );
        assert_eq!(check_run_state(&run("completed", Some("skipped"))), None);
        assert_eq!(status_checks_state("error"), ChecksState::Failed);
        assert_eq!(status_checks_state("pending"), ChecksState::Pending);
    }

    #[test]
    fn merged_pull_requests_read_as_merged_not_closed() -> Result<(), serde_json::Error> {
        let pull = |state: &str, merged: bool, draft: bool| -> Result<PullDetails, _> {
            serde_json::from_value(serde_json::json!({
                "number": 1, "html_url": "u", "state": state, "merged": merged,
                "draft": draft, "title": "t",
                "head": {"ref": "x", "sha": "abc"}, "base": {"ref": "main"},
            }))
        };
        assert_eq!(
            pull_state(&pull("closed", true, false)?),
            PullRequestState::Merged
        );
        assert_eq!(
            pull_state(&pull("closed", false, true)?),
            PullRequestState::Closed
        );
        assert_eq!(
            pull_state(&pull("open", false, true)?),
            PullRequestState::Draft
        );
        assert_eq!(
            pull_state(&pull("open", false, false)?),
            PullRequestState::Open
        );
        Ok(())
    }
}
