//! Following a Gerrit change once it is uploaded: its status, its
//! Code-Review and Verified votes, abandoning and restoring it.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;

use super::{Gerrit, RIGHT_ABANDON};
use crate::codehost::http;
use crate::codehost::{ChecksState, Error, PullRequestState, PullRequestStatus, ReviewState};

/// `GET /a/changes/{project~number}?o=LABELS&o=CURRENT_REVISION`.
#[derive(Deserialize)]
struct ChangeDetails {
    #[serde(rename = "_number")]
    number: u64,
    project: String,
    branch: String,
    topic: Option<String>,
    change_id: String,
    #[serde(default)]
    subject: String,
    /// `NEW`, `MERGED` or `ABANDONED`.
    status: String,
    #[serde(default)]
    work_in_progress: bool,
    #[serde(default)]
    labels: HashMap<String, Label>,
}

/// A label as `o=LABELS` summarises it: who gave its extreme votes.
#[derive(Deserialize, Default)]
struct Label {
    /// The highest vote (+2 on Code-Review, +1 on Verified) was given.
    approved: Option<serde_json::Value>,
    /// The lowest vote (-2, -1) was given.
    rejected: Option<serde_json::Value>,
    /// A positive vote below the highest (+1 on Code-Review).
    recommended: Option<serde_json::Value>,
    /// A negative vote above the lowest (-1 on Code-Review).
    disliked: Option<serde_json::Value>,
}

/// What closing and reopening do on Gerrit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    Abandon,
    Restore,
}

impl Transition {
    fn action(self) -> &'static str {
        match self {
            Self::Abandon => "abandon",
            Self::Restore => "restore",
        }
    }

    fn operation(self) -> &'static str {
        match self {
            Self::Abandon => "close_pull_request",
            Self::Restore => "reopen_pull_request",
        }
    }
}

impl Gerrit {
    /// Where change `number` of `project` stands.
    pub(super) async fn change_status(
        &self,
        token: &SecretString,
        project: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        let path = Self::change_path(project, number);
        let request = self
            .request(Method::GET, &path, token)
            .query(&[("o", "LABELS"), ("o", "CURRENT_REVISION")]);
        let response = self.send("pull_request", request, token).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::PullRequestNotFound {
                target: self.target.clone(),
                repository: project.to_owned(),
                number,
            });
        }
        let change: ChangeDetails = self.json(&path, response, token).await?;
        Ok(self.status_of(change))
    }

    /// Abandons or restores the change. Gerrit answers 409 when it is
    /// already abandoned (or new, or merged): then there is nothing to do
    /// and its status is read as it stands.
    pub(super) async fn transition(
        &self,
        token: &SecretString,
        project: &str,
        number: u64,
        transition: Transition,
    ) -> Result<PullRequestStatus, Error> {
        let path = format!(
            "{}/{}",
            Self::change_path(project, number),
            transition.action()
        );
        let request = self
            .request(Method::POST, &path, token)
            .json(&serde_json::json!({}));
        let response = self
            .send(transition.operation(), request, token)
            .await
            .map_err(|error| self.name_the_missing_right(error))?;
        match response.status() {
            StatusCode::NOT_FOUND => Err(Error::PullRequestNotFound {
                target: self.target.clone(),
                repository: project.to_owned(),
                number,
            }),
            StatusCode::CONFLICT => self.change_status(token, project, number).await,
            status if status.is_success() => {
                let change: ChangeDetails = http::read_json(&self.target, &path, response).await?;
                Ok(self.status_of(change))
            }
            _ => Err(http::unexpected(&self.target, &path, response, token).await),
        }
    }

    /// A 403 to abandoning or restoring means the account lacks the
    /// Abandon right (a rejected password answers 401, "Unauthorized").
    fn name_the_missing_right(&self, error: Error) -> Error {
        match error {
            Error::Rejected { target, detail } if detail == "Forbidden" => Error::MissingScopes {
                target,
                missing: vec![format!("{RIGHT_ABANDON} (on the change's project)")],
            },
            other => other,
        }
    }

    fn status_of(&self, change: ChangeDetails) -> PullRequestStatus {
        let label = |name: &str| change.labels.get(name);
        PullRequestStatus {
            number: change.number,
            url: self.change_url(&change.project, change.number),
            state: change_state(&change.status, change.work_in_progress),
            review: label("Code-Review").and_then(review_state),
            checks: label("Verified").map(checks_state),
            title: change.subject,
            // A change has no branch: its topic is the changeset's head
            // branch, and one uploaded without a topic is known by its
            // Change-Id.
            head_branch: change.topic.unwrap_or(change.change_id),
            base_branch: change.branch,
        }
    }
}

fn change_state(status: &str, work_in_progress: bool) -> PullRequestState {
    match status {
        "MERGED" => PullRequestState::Merged,
        "ABANDONED" => PullRequestState::Closed,
        _ if work_in_progress => PullRequestState::Draft,
        _ => PullRequestState::Open,
    }
}

/// A negative Code-Review vote outweighs approvals; no vote is no review.
fn review_state(label: &Label) -> Option<ReviewState> {
    if label.rejected.is_some() || label.disliked.is_some() {
        Some(ReviewState::ChangesRequested)
    } else if label.approved.is_some() || label.recommended.is_some() {
        Some(ReviewState::Approved)
    } else {
        None
    }
}

/// Verified stands for the checks: a project with the label and no vote
/// yet is waiting for its CI.
fn checks_state(label: &Label) -> ChecksState {
    if label.rejected.is_some() || label.disliked.is_some() {
        ChecksState::Failed
    } else if label.approved.is_some() || label.recommended.is_some() {
        ChecksState::Passed
    } else {
        ChecksState::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(json: serde_json::Value) -> Label {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn code_review_votes_map_to_review_states() {
        let vote = serde_json::json!({"_account_id": 1});
        assert_eq!(
            review_state(&label(serde_json::json!({"approved": vote}))),
            Some(ReviewState::Approved)
        );
        assert_eq!(
            review_state(&label(serde_json::json!({"recommended": vote}))),
            Some(ReviewState::Approved)
        );
        assert_eq!(
            review_state(&label(
                serde_json::json!({"approved": vote, "disliked": vote})
            )),
            Some(ReviewState::ChangesRequested)
        );
        assert_eq!(review_state(&label(serde_json::json!({}))), None);
    }

    #[test]
    fn verified_votes_map_to_checks_and_statuses_to_states() {
        let vote = serde_json::json!({"_account_id": 1});
        assert_eq!(
            checks_state(&label(serde_json::json!({"rejected": vote}))),
            ChecksState::Failed
        );
        assert_eq!(
            checks_state(&label(serde_json::json!({"approved": vote}))),
            ChecksState::Passed
        );
        assert_eq!(
            checks_state(&label(serde_json::json!({}))),
            ChecksState::Pending
        );
        assert_eq!(change_state("NEW", false), PullRequestState::Open);
        assert_eq!(change_state("NEW", true), PullRequestState::Draft);
        assert_eq!(change_state("ABANDONED", false), PullRequestState::Closed);
        assert_eq!(change_state("MERGED", false), PullRequestState::Merged);
    }
}
