//! Azure DevOps pull requests: opening or updating the active one for a
//! head branch, reading where one stands (reviewers' votes, statuses),
//! abandoning and reactivating it, and deleting its branch.

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::{AzureDevOps, branch_name};
use crate::codehost::http;
use crate::codehost::{
    ChecksState, Error, PullRequest, PullRequestDraft, PullRequestState, PullRequestStatus,
    ReviewState,
};

/// Azure refuses a pull request description longer than this many
/// characters.
const MAX_DESCRIPTION_CHARS: usize = 4000;

/// The object id that deletes a ref.
const ZERO_OBJECT_ID: &str = "0000000000000000000000000000000000000000";

/// A pull request as Azure returns it.
#[derive(Deserialize)]
struct Pull {
    #[serde(rename = "pullRequestId")]
    id: u64,
    /// `active`, `abandoned` or `completed` (merged).
    #[serde(default)]
    status: String,
    #[serde(rename = "isDraft", default)]
    is_draft: bool,
    #[serde(default)]
    title: String,
    #[serde(rename = "sourceRefName", default)]
    source_ref: String,
    #[serde(rename = "targetRefName", default)]
    target_ref: String,
    #[serde(default)]
    reviewers: Vec<Reviewer>,
    repository: Option<PullRepository>,
}

#[derive(Deserialize)]
struct PullRepository {
    name: String,
    project: Option<super::Project>,
}

#[derive(Deserialize)]
struct Reviewer {
    /// 10 approved, 5 approved with suggestions, 0 no vote, -5 waiting
    /// for the author, -10 rejected.
    #[serde(default)]
    vote: i32,
}

/// A listing (`{count, value}`).
#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
}

/// `GET …/pullrequests/{id}/statuses`.
#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    id: u64,
    /// `succeeded`, `failed`, `error`, `pending`, `notSet` or
    /// `notApplicable`.
    #[serde(default)]
    state: String,
    context: Option<StatusContext>,
}

#[derive(Deserialize, Default, PartialEq, Eq, Clone)]
struct StatusContext {
    name: Option<String>,
    genre: Option<String>,
}

/// `GET …/refs?filter=heads/x`.
#[derive(Deserialize)]
struct Ref {
    name: String,
    #[serde(rename = "objectId")]
    object_id: String,
}

/// One entry of `POST …/refs`' answer.
#[derive(Deserialize)]
struct RefUpdate {
    #[serde(default)]
    success: bool,
    #[serde(rename = "updateStatus", default)]
    update_status: String,
}

/// What closing and reopening set a pull request's status to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    Abandon,
    Reactivate,
}

fn heads(branch: &str) -> String {
    format!("refs/heads/{branch}")
}

/// The description cut to what Azure accepts.
fn description(body: &str) -> String {
    match body.char_indices().nth(MAX_DESCRIPTION_CHARS) {
        Some((cut, _)) => {
            let marker = "\n\n…";
            let keep = body[..cut]
                .char_indices()
                .nth(MAX_DESCRIPTION_CHARS - marker.chars().count())
                .map_or(cut, |(at, _)| at);
            format!("{}{marker}", &body[..keep])
        }
        None => body.to_owned(),
    }
}

fn pull_state(pull: &Pull) -> PullRequestState {
    match pull.status.as_str() {
        "completed" => PullRequestState::Merged,
        "abandoned" => PullRequestState::Closed,
        _ if pull.is_draft => PullRequestState::Draft,
        _ => PullRequestState::Open,
    }
}

/// A rejection or a wait for the author outweighs approvals; reviewers
/// without a vote make the review pending.
fn review_state(reviewers: &[Reviewer]) -> Option<ReviewState> {
    if reviewers.iter().any(|r| r.vote < 0) {
        Some(ReviewState::ChangesRequested)
    } else if reviewers.iter().any(|r| r.vote > 0) {
        Some(ReviewState::Approved)
    } else if !reviewers.is_empty() {
        Some(ReviewState::Pending)
    } else {
        None
    }
}

/// The latest status of each context (name and genre), taken together.
/// Statuses are posted again as checks progress; the newest has the
/// highest id.
fn checks_state(mut statuses: Vec<Status>) -> Option<ChecksState> {
    statuses.sort_by_key(|s| std::cmp::Reverse(s.id));
    let mut seen: Vec<StatusContext> = vec![];
    let mut states = vec![];
    for status in statuses {
        let context = status.context.unwrap_or_default();
        if seen.contains(&context) {
            continue;
        }
        seen.push(context);
        match status.state.as_str() {
            "succeeded" => states.push(ChecksState::Passed),
            "failed" | "error" => states.push(ChecksState::Failed),
            "notApplicable" => {}
            // pending, notSet, and anything newer until it settles.
            _ => states.push(ChecksState::Pending),
        }
    }
    ChecksState::combine(states)
}

impl AzureDevOps {
    /// Finds the active pull request for the head branch and updates it,
    /// else opens one.
    pub(super) async fn publish(
        &self,
        token: &SecretString,
        draft: &PullRequestDraft,
    ) -> Result<PullRequest, Error> {
        let path = format!("{}/pullrequests", self.repository_path(&draft.repository)?);
        if let Some(existing) = self.find_active(token, &path, draft).await? {
            return self.update(token, &path, existing, draft).await;
        }
        let body = json!({
            "sourceRefName": heads(&draft.head_branch),
            "targetRefName": heads(&draft.base_branch),
            "title": draft.title,
            "description": description(&draft.body),
            "isDraft": draft.draft,
        });
        let request = self.request(Method::POST, &path, token).json(&body);
        let response = self.send("create_pull_request", request, token).await?;
        match response.status() {
            status if status.is_success() => {
                let pull: Pull = http::read_json(&self.target, &path, response).await?;
                Ok(self.opened(&draft.repository, &pull, true))
            }
            StatusCode::NOT_FOUND => Err(Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: draft.repository.clone(),
            }),
            // TF401179 (GitPullRequestExistsException): another publish
            // opened it since the search; some versions answer 400.
            status @ (StatusCode::CONFLICT | StatusCode::BAD_REQUEST) => {
                let detail = http::error_detail(response, token).await;
                if !detail.contains("TF401179") {
                    return Err(Error::Unexpected {
                        target: self.target.clone(),
                        status: status.as_u16(),
                        endpoint: path,
                        detail,
                    });
                }
                let existing = self
                    .find_active(token, &path, draft)
                    .await?
                    .ok_or_else(|| Error::Unexpected {
                        target: self.target.clone(),
                        status: status.as_u16(),
                        endpoint: path.clone(),
                        detail: format!("{detail} (but no active pull request was found)"),
                    })?;
                self.update(token, &path, existing, draft).await
            }
            _ => Err(http::unexpected(&self.target, &path, response, token).await),
        }
    }

    /// The active pull request from the head branch, preferring one into
    /// the base branch (Azure allows one per target).
    async fn find_active(
        &self,
        token: &SecretString,
        path: &str,
        draft: &PullRequestDraft,
    ) -> Result<Option<Pull>, Error> {
        let request = self.request(Method::GET, path, token).query(&[
            ("searchCriteria.sourceRefName", heads(&draft.head_branch)),
            ("searchCriteria.status", "active".to_owned()),
        ]);
        let response = self.send("find_pull_request", request, token).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: draft.repository.clone(),
            });
        }
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, path, response, token).await);
        }
        let list: List<Pull> = http::read_json(&self.target, path, response).await?;
        let target = heads(&draft.base_branch);
        let mut active: Vec<Pull> = list
            .value
            .into_iter()
            .filter(|p| p.source_ref == heads(&draft.head_branch))
            .collect();
        let preferred = active.iter().position(|p| p.target_ref == target);
        Ok(match preferred {
            Some(at) => Some(active.swap_remove(at)),
            None => active.into_iter().next(),
        })
    }

    /// Updates title, description and draft flag, then the target branch
    /// if it changed (Azure takes a retarget only on its own).
    async fn update(
        &self,
        token: &SecretString,
        path: &str,
        existing: Pull,
        draft: &PullRequestDraft,
    ) -> Result<PullRequest, Error> {
        let pull_path = format!("{path}/{}", existing.id);
        let mut pull = self
            .patch(
                "update_pull_request",
                token,
                &draft.repository,
                existing.id,
                &pull_path,
                json!({
                    "title": draft.title,
                    "description": description(&draft.body),
                    "isDraft": draft.draft,
                }),
            )
            .await?;
        if pull.target_ref != heads(&draft.base_branch) {
            pull = self
                .patch(
                    "retarget_pull_request",
                    token,
                    &draft.repository,
                    existing.id,
                    &pull_path,
                    json!({ "targetRefName": heads(&draft.base_branch) }),
                )
                .await?;
        }
        Ok(self.opened(&draft.repository, &pull, false))
    }

    /// PATCHes a pull request; 404 means it is gone.
    async fn patch(
        &self,
        operation: &'static str,
        token: &SecretString,
        repository: &str,
        id: u64,
        path: &str,
        body: serde_json::Value,
    ) -> Result<Pull, Error> {
        let request = self.request(Method::PATCH, path, token).json(&body);
        let response = self.send(operation, request, token).await?;
        http::read_pull_request(&self.target, repository, id, path, response, token).await
    }

    fn opened(&self, repository: &str, pull: &Pull, created: bool) -> PullRequest {
        PullRequest {
            number: pull.id,
            url: self.web_url(repository, pull),
            created,
        }
    }

    /// The pull request's page, named as Azure names its repository.
    fn web_url(&self, repository: &str, pull: &Pull) -> String {
        let (project, name) = super::split_repository(repository).unwrap_or((repository, ""));
        let (project, name) = match &pull.repository {
            Some(repo) => (
                repo.project.as_ref().map_or(project, |p| p.name.as_str()),
                repo.name.as_str(),
            ),
            None => (project, name),
        };
        self.pull_url(project, name, pull.id)
    }

    async fn fetch_pull(
        &self,
        token: &SecretString,
        repository: &str,
        id: u64,
    ) -> Result<(Pull, String), Error> {
        let path = format!("{}/pullrequests/{id}", self.repository_path(repository)?);
        let request = self.request(Method::GET, &path, token);
        let response = self.send("pull_request", request, token).await?;
        let pull =
            http::read_pull_request(&self.target, repository, id, &path, response, token).await?;
        Ok((pull, path))
    }

    /// The pull request with its reviewers' votes and statuses.
    pub(super) async fn pull_status(
        &self,
        token: &SecretString,
        repository: &str,
        id: u64,
    ) -> Result<PullRequestStatus, Error> {
        let (pull, path) = self.fetch_pull(token, repository, id).await?;
        self.status_of(token, repository, &path, pull).await
    }

    async fn status_of(
        &self,
        token: &SecretString,
        repository: &str,
        pull_path: &str,
        pull: Pull,
    ) -> Result<PullRequestStatus, Error> {
        let path = format!("{pull_path}/statuses");
        let request = self.request(Method::GET, &path, token);
        let response = self.send("pull_request_statuses", request, token).await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, &path, response, token).await);
        }
        let statuses: List<Status> = http::read_json(&self.target, &path, response).await?;
        Ok(PullRequestStatus {
            number: pull.id,
            url: self.web_url(repository, &pull),
            state: pull_state(&pull),
            review: review_state(&pull.reviewers),
            checks: checks_state(statuses.value),
            head_branch: branch_name(&pull.source_ref).to_owned(),
            base_branch: branch_name(&pull.target_ref).to_owned(),
            title: pull.title,
        })
    }

    /// Abandons or reactivates the pull request, unless it already is
    /// where that would take it.
    pub(super) async fn set_status(
        &self,
        token: &SecretString,
        repository: &str,
        id: u64,
        transition: Transition,
    ) -> Result<PullRequestStatus, Error> {
        let (current, path) = self.fetch_pull(token, repository, id).await?;
        let state = pull_state(&current);
        let (done, status, operation) = match transition {
            Transition::Abandon => (
                matches!(state, PullRequestState::Closed | PullRequestState::Merged),
                "abandoned",
                "close_pull_request",
            ),
            Transition::Reactivate => (
                matches!(state, PullRequestState::Open | PullRequestState::Draft),
                "active",
                "reopen_pull_request",
            ),
        };
        if done {
            return self.status_of(token, repository, &path, current).await;
        }
        let pull = self
            .patch(
                operation,
                token,
                repository,
                id,
                &path,
                json!({ "status": status }),
            )
            .await?;
        self.status_of(token, repository, &path, pull).await
    }

    /// Deletes `refs/heads/<branch>` at the commit it is at now; a branch
    /// already gone counts as deleted.
    pub(super) async fn delete_head_branch(
        &self,
        token: &SecretString,
        repository: &str,
        branch: &str,
    ) -> Result<(), Error> {
        let path = format!("{}/refs", self.repository_path(repository)?);
        let name = heads(branch);
        // The filter matches by prefix: `heads/x` also finds `heads/x-y`.
        let request = self
            .request(Method::GET, &path, token)
            .query(&[("filter", format!("heads/{branch}"))]);
        let response = self.send("find_branch", request, token).await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, &path, response, token).await);
        }
        let refs: List<Ref> = http::read_json(&self.target, &path, response).await?;
        let Some(current) = refs.value.into_iter().find(|r| r.name == name) else {
            return Ok(());
        };
        let request = self.request(Method::POST, &path, token).json(&json!([{
            "name": name,
            "oldObjectId": current.object_id,
            "newObjectId": ZERO_OBJECT_ID,
        }]));
        let response = self.send("delete_branch", request, token).await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, &path, response, token).await);
        }
        let updates: List<RefUpdate> = http::read_json(&self.target, &path, response).await?;
        match updates.value.first() {
            Some(update) if update.success => Ok(()),
            update => Err(Error::Unexpected {
                target: self.target.clone(),
                status: 200,
                endpoint: path,
                detail: format!(
                    "the branch {branch} was not deleted ({})",
                    update.map_or("no answer for it", |u| u.update_status.as_str())
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reviewers(votes: &[i32]) -> Vec<Reviewer> {
        votes.iter().map(|&vote| Reviewer { vote }).collect()
    }

    fn status(id: u64, name: &str, state: &str) -> Status {
        Status {
            id,
            state: state.to_owned(),
            context: Some(StatusContext {
                name: Some(name.to_owned()),
                genre: Some("ci".to_owned()),
            }),
        }
    }

    #[test]
    fn votes_map_to_review_states() {
        assert_eq!(review_state(&[]), None);
        assert_eq!(review_state(&reviewers(&[0])), Some(ReviewState::Pending));
        assert_eq!(
            review_state(&reviewers(&[0, 5])),
            Some(ReviewState::Approved)
        );
        assert_eq!(review_state(&reviewers(&[10])), Some(ReviewState::Approved));
        assert_eq!(
            review_state(&reviewers(&[10, -5])),
            Some(ReviewState::ChangesRequested)
        );
        assert_eq!(
            review_state(&reviewers(&[-10])),
            Some(ReviewState::ChangesRequested)
        );
    }

    #[test]
    fn the_latest_status_of_each_context_counts() {
        assert_eq!(checks_state(vec![]), None);
        // A build that failed, then passed.
        assert_eq!(
            checks_state(vec![
                status(1, "build", "failed"),
                status(2, "build", "succeeded")
            ]),
            Some(ChecksState::Passed)
        );
        assert_eq!(
            checks_state(vec![
                status(1, "build", "succeeded"),
                status(2, "lint", "error")
            ]),
            Some(ChecksState::Failed)
        );
        assert_eq!(
            checks_state(vec![
                status(3, "build", "pending"),
                status(4, "x", "notSet")
            ]),
            Some(ChecksState::Pending)
        );
        assert_eq!(checks_state(vec![status(1, "x", "notApplicable")]), None);
    }

    #[test]
    fn states_and_descriptions_follow_azure() {
        let pull = |status: &str, is_draft: bool| Pull {
            id: 1,
            status: status.to_owned(),
            is_draft,
            title: String::new(),
            source_ref: String::new(),
            target_ref: String::new(),
            reviewers: vec![],
            repository: None,
        };
        assert_eq!(
            pull_state(&pull("completed", false)),
            PullRequestState::Merged
        );
        assert_eq!(
            pull_state(&pull("abandoned", true)),
            PullRequestState::Closed
        );
        assert_eq!(pull_state(&pull("active", true)), PullRequestState::Draft);
        assert_eq!(pull_state(&pull("active", false)), PullRequestState::Open);
        assert_eq!(description("short"), "short");
        let long = "é".repeat(5000);
        let cut = description(&long);
        assert_eq!(cut.chars().count(), MAX_DESCRIPTION_CHARS);
        assert!(cut.ends_with('…'));
    }
}
