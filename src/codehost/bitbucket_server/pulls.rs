//! Following a Bitbucket Server pull request once it is open: its state,
//! its reviewers' statuses, the builds on its head commit, declining and
//! reopening it, and deleting its branch.

use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;

use super::{BitbucketServer, Links};
use crate::codehost::gitlab::urlencode_path;
use crate::codehost::http;
use crate::codehost::{ChecksState, Error, PullRequestState, PullRequestStatus, ReviewState};

/// `GET …/pull-requests/{id}`: the parts a status is made of.
#[derive(Deserialize)]
struct PullDetails {
    id: u64,
    version: i64,
    /// `OPEN`, `DECLINED` or `MERGED`.
    state: String,
    /// Bitbucket 8.18+.
    #[serde(default)]
    draft: bool,
    title: String,
    #[serde(rename = "fromRef")]
    from_ref: PullRef,
    #[serde(rename = "toRef")]
    to_ref: PullRef,
    #[serde(default)]
    reviewers: Vec<Reviewer>,
    #[serde(default)]
    links: Links,
}

#[derive(Deserialize)]
struct PullRef {
    #[serde(rename = "displayId")]
    display_id: String,
    #[serde(rename = "latestCommit")]
    latest_commit: Option<String>,
}

#[derive(Deserialize)]
struct Reviewer {
    /// `APPROVED`, `NEEDS_WORK` or `UNAPPROVED`.
    status: String,
}

/// `GET /rest/build-status/1.0/commits/{sha}`: the builds on a commit.
#[derive(Deserialize)]
struct Builds {
    #[serde(default)]
    values: Vec<Build>,
}

#[derive(Deserialize)]
struct Build {
    /// `SUCCESSFUL`, `FAILED` or `INPROGRESS`.
    state: String,
}

impl BitbucketServer {
    /// The pull request with the builds on its head commit.
    pub(super) async fn pull_status(
        &self,
        token: &SecretString,
        repository: &str,
        number: u64,
    ) -> Result<PullRequestStatus, Error> {
        let pull = self.pull_details(token, repository, number).await?;
        self.status_of(token, repository, pull).await
    }

    /// Bitbucket answers 204 whether or not the branch existed.
    pub(super) async fn delete_head_branch(
        &self,
        token: &SecretString,
        repository: &str,
        branch: &str,
    ) -> Result<(), Error> {
        let (project, slug) = self.split(repository)?;
        let path = format!("/rest/branch-utils/1.0/projects/{project}/repos/{slug}/branches");
        let request = self
            .request_url(Method::DELETE, format!("{}{path}", self.root()), token)
            .json(&serde_json::json!({
                "name": format!("refs/heads/{branch}"),
                "dryRun": false,
            }));
        let response = self
            .api
            .send(self.call("delete_branch"), request, token)
            .await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, &path, response, token).await);
        }
        Ok(())
    }

    /// The pull request as it stands, without its builds.
    async fn pull_details(
        &self,
        token: &SecretString,
        repository: &str,
        id: u64,
    ) -> Result<PullDetails, Error> {
        let (project, slug) = self.split(repository)?;
        let path = format!("/projects/{project}/repos/{slug}/pull-requests/{id}");
        let request = self.request(Method::GET, &path, token);
        let response = self
            .api
            .send(self.call("pull_request"), request, token)
            .await?;
        http::read_pull_request(&self.target, repository, id, &path, response, token).await
    }

    /// Completes a pull request with the builds on its head commit.
    async fn status_of(
        &self,
        token: &SecretString,
        repository: &str,
        pull: PullDetails,
    ) -> Result<PullRequestStatus, Error> {
        let (project, slug) = self.split(repository)?;
        let checks = match &pull.from_ref.latest_commit {
            Some(sha) => self.checks(token, sha).await?,
            None => None,
        };
        Ok(PullRequestStatus {
            number: pull.id,
            url: self.web_url(&pull.links, pull.id, project, slug),
            state: pull_state(&pull),
            review: review_state(&pull.reviewers),
            checks,
            title: pull.title,
            head_branch: pull.from_ref.display_id,
            base_branch: pull.to_ref.display_id,
        })
    }

    async fn checks(&self, token: &SecretString, sha: &str) -> Result<Option<ChecksState>, Error> {
        let path = format!("/rest/build-status/1.0/commits/{}", urlencode_path(sha));
        let request = self
            .request_url(Method::GET, format!("{}{path}", self.root()), token)
            .query(&[("limit", BUILDS_READ)]);
        let response = self
            .api
            .send(self.call("commit_builds"), request, token)
            .await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, &path, response, token).await);
        }
        let builds: Builds = http::read_json(&self.target, &path, response).await?;
        Ok(ChecksState::combine(
            builds.values.iter().map(|b| build_checks_state(&b.state)),
        ))
    }

    /// Declines or reopens (`action`) the pull request, unless it already
    /// is in the state `wanted`: Bitbucket refuses both on a pull request
    /// not in the opposite state.
    pub(super) async fn transition(
        &self,
        token: &SecretString,
        repository: &str,
        id: u64,
        action: &'static str,
        wanted: &[PullRequestState],
    ) -> Result<PullRequestStatus, Error> {
        let current = self.pull_details(token, repository, id).await?;
        if wanted.contains(&pull_state(&current)) {
            return self.status_of(token, repository, current).await;
        }
        let (project, slug) = self.split(repository)?;
        let path = format!("/projects/{project}/repos/{slug}/pull-requests/{id}/{action}");
        let version = current.version.to_string();
        let request = self
            .request(Method::POST, &path, token)
            .query(&[("version", version.as_str())])
            .json(&serde_json::json!({}));
        let operation = if action == "decline" {
            "close_pull_request"
        } else {
            "reopen_pull_request"
        };
        let response = self.api.send(self.call(operation), request, token).await?;
        let pull =
            http::read_pull_request(&self.target, repository, id, &path, response, token).await?;
        self.status_of(token, repository, pull).await
    }
}

/// The most builds read per commit: one page.
const BUILDS_READ: &str = "100";

fn pull_state(pull: &PullDetails) -> PullRequestState {
    match pull.state.as_str() {
        "MERGED" => PullRequestState::Merged,
        "DECLINED" => PullRequestState::Closed,
        _ if pull.draft => PullRequestState::Draft,
        _ => PullRequestState::Open,
    }
}

/// A reviewer who needs work outweighs approvals; reviewers without a
/// verdict yet make the review pending.
fn review_state(reviewers: &[Reviewer]) -> Option<ReviewState> {
    let any = |status: &str| reviewers.iter().any(|r| r.status == status);
    if any("NEEDS_WORK") {
        Some(ReviewState::ChangesRequested)
    } else if any("APPROVED") {
        Some(ReviewState::Approved)
    } else if !reviewers.is_empty() {
        Some(ReviewState::Pending)
    } else {
        None
    }
}

fn build_checks_state(state: &str) -> ChecksState {
    match state {
        "SUCCESSFUL" => ChecksState::Passed,
        "FAILED" => ChecksState::Failed,
        // INPROGRESS, and anything newer (e.g. UNKNOWN) until it settles.
        _ => ChecksState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reviewers(statuses: &[&str]) -> Vec<Reviewer> {
        statuses
            .iter()
            .map(|status| Reviewer {
                status: (*status).to_owned(),
            })
            .collect()
    }

    #[test]
    fn needs_work_outweighs_approvals() {
        assert_eq!(
            review_state(&reviewers(&["APPROVED", "NEEDS_WORK"])),
            Some(ReviewState::ChangesRequested)
        );
        assert_eq!(
            review_state(&reviewers(&["UNAPPROVED", "APPROVED"])),
            Some(ReviewState::Approved)
        );
        assert_eq!(
            review_state(&reviewers(&["UNAPPROVED"])),
            Some(ReviewState::Pending)
        );
        assert_eq!(review_state(&[]), None);
    }

    #[test]
    fn build_states_map_to_checks() {
        assert_eq!(build_checks_state("SUCCESSFUL"), ChecksState::Passed);
        assert_eq!(build_checks_state("FAILED"), ChecksState::Failed);
        assert_eq!(build_checks_state("INPROGRESS"), ChecksState::Pending);
    }
}
