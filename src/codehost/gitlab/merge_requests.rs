//! Following a GitLab merge request once it is open: its state, its
//! approvals (and changes requested), its head pipeline, closing and
//! reopening it, and deleting its source branch.

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;

use super::{GitLab, urlencode_path};
use crate::codehost::http;
use crate::codehost::{ChecksState, Error, PullRequestState, PullRequestStatus, ReviewState};

/// `GET /projects/:id/merge_requests/:iid`: the parts a status is made of.
#[derive(Deserialize)]
struct MergeRequestDetails {
    iid: u64,
    web_url: String,
    /// `opened`, `closed`, `merged` or `locked`.
    state: String,
    #[serde(default)]
    draft: bool,
    /// The name of `draft` before GitLab 13.2 (still sent, deprecated).
    #[serde(default)]
    work_in_progress: bool,
    title: String,
    source_branch: String,
    target_branch: String,
    head_pipeline: Option<Pipeline>,
    /// `requested_changes` once a reviewer asked for changes (GitLab 17+).
    detailed_merge_status: Option<String>,
    #[serde(default)]
    reviewers: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Pipeline {
    status: String,
}

/// `GET /projects/:id/merge_requests/:iid/approvals`.
#[derive(Deserialize)]
struct Approvals {
    /// Who approved. (`approved` alone is true on an instance that
    /// requires no approvals, even when nobody approved.)
    #[serde(default)]
    approved_by: Vec<serde_json::Value>,
    #[serde(default)]
    approvals_left: u64,
}

impl GitLab {
    /// The merge request with its approvals and pipeline.
    pub(super) async fn merge_request_status(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        let path = format!(
            "/projects/{}/merge_requests/{number}",
            urlencode_path(repository)
        );
        let response = self.get("pull_request", &path, token).await?;
        let mr = http::read_pull_request(&self.target, repository, number, &path, response, token)
            .await?;
        self.status_of(token, repository, mr).await
    }

    /// Deletes `branch`; one already gone counts as deleted.
    pub(super) async fn delete_source_branch(
        &self,
        token: &SecretString,
        repository: &str,
        branch: &str,
    ) -> Result<(), Error> {
        let path = format!(
            "/projects/{}/repository/branches/{}",
            urlencode_path(repository),
            urlencode_path(branch)
        );
        let request = self.request(Method::DELETE, &path, token);
        let response = self
            .api
            .send(self.call("delete_branch"), request, token)
            .await?;
        match response.status() {
            // "404 Branch Not Found": already deleted.
            StatusCode::NOT_FOUND => Ok(()),
            status if status.is_success() => Ok(()),
            _ => Err(http::unexpected(&self.target, &path, response, token).await),
        }
    }

    /// Completes a merge request with its approvals.
    async fn status_of(
        &self,
        token: &SecretString,
        repository: &str,
        mr: MergeRequestDetails,
    ) -> Result<PullRequestStatus, Error> {
        let path = format!(
            "/projects/{}/merge_requests/{}/approvals",
            urlencode_path(repository),
            mr.iid
        );
        let response = self.get("merge_request_approvals", &path, token).await?;
        let approvals: Option<Approvals> = match response.status() {
            // Approvals are not offered here (very old GitLab).
            StatusCode::NOT_FOUND => None,
            status if status.is_success() => {
                Some(http::read_json(&self.target, &path, response).await?)
            }
            _ => return Err(http::unexpected(&self.target, &path, response, token).await),
        };
        Ok(PullRequestStatus {
            number: mr.iid,
            state: merge_request_state(&mr),
            review: review_state(&mr, approvals.as_ref()),
            checks: mr
                .head_pipeline
                .as_ref()
                .and_then(|p| pipeline_checks_state(&p.status)),
            url: mr.web_url,
            title: mr.title,
            head_branch: mr.source_branch,
            base_branch: mr.target_branch,
        })
    }

    /// Closes or reopens (`state_event`) the merge request.
    pub(super) async fn set_state(
        &self,
        token: &SecretString,
        repository: &str,
        iid: u64,
        state_event: &'static str,
        operation: &'static str,
    ) -> Result<PullRequestStatus, Error> {
        let path = format!(
            "/projects/{}/merge_requests/{iid}",
            urlencode_path(repository)
        );
        let body = serde_json::json!({ "state_event": state_event });
        let response = self
            .send_json(operation, Method::PUT, &path, &body, token)
            .await?;
        let mr =
            http::read_pull_request(&self.target, repository, iid, &path, response, token).await?;
        self.status_of(token, repository, mr).await
    }
}

/// `locked` is the short moment while GitLab merges: still open.
fn merge_request_state(mr: &MergeRequestDetails) -> PullRequestState {
    match mr.state.as_str() {
        "merged" => PullRequestState::Merged,
        "closed" => PullRequestState::Closed,
        _ if mr.draft || mr.work_in_progress => PullRequestState::Draft,
        _ => PullRequestState::Open,
    }
}

/// Changes asked for outweigh approvals; approvals still missing, or
/// reviewers assigned, make the review pending.
fn review_state(mr: &MergeRequestDetails, approvals: Option<&Approvals>) -> Option<ReviewState> {
    if mr.detailed_merge_status.as_deref() == Some("requested_changes") {
        return Some(ReviewState::ChangesRequested);
    }
    match approvals {
        Some(a) if !a.approved_by.is_empty() && a.approvals_left == 0 => {
            Some(ReviewState::Approved)
        }
        Some(a) if !a.approved_by.is_empty() || a.approvals_left > 0 => Some(ReviewState::Pending),
        _ if !mr.reviewers.is_empty() => Some(ReviewState::Pending),
        _ => None,
    }
}

/// A pipeline's status; skipped pipelines say nothing about the change.
fn pipeline_checks_state(status: &str) -> Option<ChecksState> {
    match status {
        "success" => Some(ChecksState::Passed),
        "failed" | "canceled" => Some(ChecksState::Failed),
        "skipped" => None,
        // created, waiting_for_resource, preparing, pending, running,
        // manual, scheduled.
        _ => Some(ChecksState::Pending),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge_request(extra: serde_json::Value) -> MergeRequestDetails {
        let mut json = serde_json::json!({
            "iid": 1, "web_url": "u", "state": "opened", "title": "t",
            "source_branch": "x", "target_branch": "main", "head_pipeline": null,
        });
        if let (Some(base), Some(extra)) = (json.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(json).expect("merge request")
    }

    fn approvals(approvers: usize, left: u64) -> Approvals {
        Approvals {
            approved_by: vec![serde_json::Value::Null; approvers],
            approvals_left: left,
        }
    }

    #[test]
    fn approvals_count_only_when_someone_approved() {
        let plain = merge_request(serde_json::json!({}));
        // GitLab without approval rules says "approved" with no approver.
        assert_eq!(review_state(&plain, Some(&approvals(0, 0))), None);
        assert_eq!(
            review_state(&plain, Some(&approvals(1, 0))),
            Some(ReviewState::Approved)
        );
        assert_eq!(
            review_state(&plain, Some(&approvals(1, 1))),
            Some(ReviewState::Pending)
        );
        let with_reviewer = merge_request(serde_json::json!({"reviewers": [{"id": 3}]}));
        assert_eq!(
            review_state(&with_reviewer, None),
            Some(ReviewState::Pending)
        );
        let changes =
            merge_request(serde_json::json!({"detailed_merge_status": "requested_changes"}));
        assert_eq!(
            review_state(&changes, Some(&approvals(1, 0))),
            Some(ReviewState::ChangesRequested)
        );
    }

    #[test]
    fn merge_request_states_and_pipelines_map_to_the_common_terms() {
        let state = |json| merge_request_state(&merge_request(json));
        assert_eq!(
            state(serde_json::json!({"state": "locked"})),
            PullRequestState::Open
        );
        assert_eq!(
            state(serde_json::json!({"work_in_progress": true})),
            PullRequestState::Draft
        );
        assert_eq!(
            state(serde_json::json!({"state": "closed", "draft": true})),
            PullRequestState::Closed
        );
        assert_eq!(pipeline_checks_state("canceled"), Some(ChecksState::Failed));
        assert_eq!(
            pipeline_checks_state("waiting_for_resource"),
            Some(ChecksState::Pending)
        );
        assert_eq!(pipeline_checks_state("skipped"), None);
    }
}
