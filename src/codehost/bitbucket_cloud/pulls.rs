//! Bitbucket Cloud pull requests: opening one or updating the one open for
//! the head branch, reading where it stands (state, participants' verdicts,
//! commit statuses), declining it, and deleting its branch. Bitbucket Cloud
//! cannot reopen a declined pull request; asking to is an
//! [`Error::NotPossible`].

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::BitbucketCloud;
use crate::codehost::gitlab::urlencode_path;
use crate::codehost::http;
use crate::codehost::{
    ChecksState, Error, PullRequest, PullRequestDraft, PullRequestState, PullRequestStatus,
    ReviewState,
};

/// A page of pull requests (`GET …/pullrequests`).
#[derive(Deserialize)]
struct PullPage {
    #[serde(default)]
    values: Vec<PullDetails>,
}

/// A pull request as `GET …/pullrequests/{id}` has it (listings leave
/// some fields out, hence the defaults).
#[derive(Deserialize)]
struct PullDetails {
    id: u64,
    /// `OPEN`, `MERGED`, `DECLINED` or `SUPERSEDED`.
    #[serde(default)]
    state: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    title: String,
    source: Option<Endpoint>,
    destination: Option<Endpoint>,
    #[serde(default)]
    reviewers: Vec<Account>,
    #[serde(default)]
    participants: Vec<Participant>,
    #[serde(default)]
    links: PullLinks,
}

#[derive(Deserialize)]
struct Endpoint {
    branch: Option<BranchName>,
    commit: Option<Commit>,
}

#[derive(Deserialize)]
struct BranchName {
    name: String,
}

#[derive(Deserialize)]
struct Commit {
    hash: String,
}

#[derive(Deserialize)]
struct Account {
    uuid: Option<String>,
}

#[derive(Deserialize)]
struct Participant {
    /// `REVIEWER` or `PARTICIPANT`.
    #[serde(default)]
    role: String,
    #[serde(default)]
    approved: bool,
    /// `approved`, `changes_requested` or null.
    state: Option<String>,
}

#[derive(Deserialize, Default)]
struct PullLinks {
    html: Option<Href>,
}

#[derive(Deserialize)]
struct Href {
    href: String,
}

/// `GET …/commit/{hash}/statuses`.
#[derive(Deserialize)]
struct Statuses {
    #[serde(default)]
    values: Vec<CommitStatus>,
}

#[derive(Deserialize)]
struct CommitStatus {
    /// `SUCCESSFUL`, `FAILED`, `INPROGRESS` or `STOPPED`.
    state: String,
}

/// The most pull requests or statuses read at once: one page.
const PAGE_LENGTH: &str = "50";

/// A BBQL string literal: quotes and backslashes escaped.
fn bbql_string(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The BBQL query for the pull requests from `branch` of `repository`
/// itself (not a fork's branch of the same name).
fn open_pull_query(repository: &str, branch: &str) -> String {
    format!(
        "source.branch.name = {} AND source.repository.full_name = {}",
        bbql_string(branch),
        // Bitbucket's workspace IDs and slugs are lowercase.
        bbql_string(&repository.to_ascii_lowercase())
    )
}

impl BitbucketCloud {
    pub(super) async fn publish(
        &self,
        token: &SecretString,
        draft: &PullRequestDraft,
    ) -> Result<PullRequest, Error> {
        let pulls = format!("{}/pullrequests", self.repository_path(&draft.repository)?);
        if let Some(open) = self.find_open_pull(token, draft, &pulls).await? {
            return self.update_pull(token, draft, open.id, &pulls).await;
        }
        let body = json!({
            "title": draft.title,
            "description": draft.body,
            "source": {"branch": {"name": draft.head_branch}},
            "destination": {"branch": {"name": draft.base_branch}},
            "close_source_branch": false,
            "draft": draft.draft,
        });
        let request = self.request(Method::POST, &pulls, token).json(&body);
        let response = self.send("create_pull_request", request, token).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Err(Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: draft.repository.clone(),
            }),
            status if status.is_success() => {
                let pull: PullDetails = http::read_json(&self.target, &pulls, response).await?;
                Ok(PullRequest {
                    number: pull.id,
                    url: self.pull_url(&pull, &draft.repository),
                    created: true,
                })
            }
            _ => Err(http::unexpected(&self.target, &pulls, response, token).await),
        }
    }

    async fn find_open_pull(
        &self,
        token: &SecretString,
        draft: &PullRequestDraft,
        pulls: &str,
    ) -> Result<Option<PullDetails>, Error> {
        let query = open_pull_query(&draft.repository, &draft.head_branch);
        let request = self.request(Method::GET, pulls, token).query(&[
            ("state", "OPEN"),
            ("q", query.as_str()),
            ("pagelen", PAGE_LENGTH),
        ]);
        let response = self.send("find_pull_request", request, token).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Err(Error::RepositoryNotFound {
                target: self.target.clone(),
                repository: draft.repository.clone(),
            }),
            status if status.is_success() => {
                let page: PullPage = http::read_json(&self.target, pulls, response).await?;
                Ok(page.values.into_iter().next())
            }
            _ => Err(http::unexpected(&self.target, pulls, response, token).await),
        }
    }

    /// `PUT` replaces the pull request: the reviewers are read first and
    /// sent back, or Bitbucket would remove them.
    async fn update_pull(
        &self,
        token: &SecretString,
        draft: &PullRequestDraft,
        id: u64,
        pulls: &str,
    ) -> Result<PullRequest, Error> {
        let current = self.pull_details(token, &draft.repository, id).await?;
        let reviewers: Vec<serde_json::Value> = current
            .reviewers
            .iter()
            .filter_map(|r| r.uuid.as_ref())
            .map(|uuid| json!({"uuid": uuid}))
            .collect();
        let body = json!({
            "title": draft.title,
            "description": draft.body,
            "destination": {"branch": {"name": draft.base_branch}},
            "reviewers": reviewers,
        });
        let path = format!("{pulls}/{id}");
        let request = self.request(Method::PUT, &path, token).json(&body);
        let response = self.send("update_pull_request", request, token).await?;
        let pull: PullDetails =
            http::read_pull_request(&self.target, &draft.repository, id, &path, response, token)
                .await?;
        Ok(PullRequest {
            number: pull.id,
            url: self.pull_url(&pull, &draft.repository),
            created: false,
        })
    }

    /// The pull request with the statuses on its head commit.
    pub(super) async fn pull_status(
        &self,
        token: &SecretString,
        repository: &str,
        id: u64,
    ) -> Result<PullRequestStatus, Error> {
        let pull = self.pull_details(token, repository, id).await?;
        self.status_of(token, repository, pull).await
    }

    async fn pull_details(
        &self,
        token: &SecretString,
        repository: &str,
        id: u64,
    ) -> Result<PullDetails, Error> {
        let path = format!("{}/pullrequests/{id}", self.repository_path(repository)?);
        let request = self.request(Method::GET, &path, token);
        let response = self.send("pull_request", request, token).await?;
        http::read_pull_request(&self.target, repository, id, &path, response, token).await
    }

    /// Completes a pull request with the statuses on its head commit.
    async fn status_of(
        &self,
        token: &SecretString,
        repository: &str,
        pull: PullDetails,
    ) -> Result<PullRequestStatus, Error> {
        let head_commit = pull
            .source
            .as_ref()
            .and_then(|s| s.commit.as_ref())
            .map(|c| c.hash.clone());
        let checks = match head_commit {
            Some(hash) => self.checks(token, repository, &hash).await?,
            None => None,
        };
        let branch = |endpoint: &Option<Endpoint>| {
            endpoint
                .as_ref()
                .and_then(|e| e.branch.as_ref())
                .map(|b| b.name.clone())
                .unwrap_or_default()
        };
        Ok(PullRequestStatus {
            number: pull.id,
            url: self.pull_url(&pull, repository),
            state: pull_state(&pull),
            review: review_state(&pull),
            checks,
            head_branch: branch(&pull.source),
            base_branch: branch(&pull.destination),
            title: pull.title,
        })
    }

    async fn checks(
        &self,
        token: &SecretString,
        repository: &str,
        hash: &str,
    ) -> Result<Option<ChecksState>, Error> {
        let path = format!(
            "{}/commit/{}/statuses",
            self.repository_path(repository)?,
            urlencode_path(hash)
        );
        let request = self
            .request(Method::GET, &path, token)
            .query(&[("pagelen", PAGE_LENGTH)]);
        let response = self.send("commit_statuses", request, token).await?;
        if response.status() == StatusCode::NOT_FOUND {
            // The commit is gone (force-pushed away): nothing ran on it.
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, &path, response, token).await);
        }
        let statuses: Statuses = http::read_json(&self.target, &path, response).await?;
        Ok(ChecksState::combine(
            statuses
                .values
                .iter()
                .map(|s| status_checks_state(&s.state)),
        ))
    }

    /// Declines the pull request unless it is already declined (or
    /// merged: nothing is left to decline).
    pub(super) async fn decline(
        &self,
        token: &SecretString,
        repository: &str,
        id: u64,
    ) -> Result<PullRequestStatus, Error> {
        let current = self.pull_details(token, repository, id).await?;
        if matches!(
            pull_state(&current),
            PullRequestState::Closed | PullRequestState::Merged
        ) {
            return self.status_of(token, repository, current).await;
        }
        let path = format!(
            "{}/pullrequests/{id}/decline",
            self.repository_path(repository)?
        );
        let request = self.request(Method::POST, &path, token);
        let response = self.send("close_pull_request", request, token).await?;
        let pull =
            http::read_pull_request(&self.target, repository, id, &path, response, token).await?;
        self.status_of(token, repository, pull).await
    }

    /// An open pull request stays as it is; a declined or merged one
    /// cannot be reopened on Bitbucket Cloud.
    pub(super) async fn reopen(
        &self,
        token: &SecretString,
        repository: &str,
        id: u64,
    ) -> Result<PullRequestStatus, Error> {
        let current = self.pull_details(token, repository, id).await?;
        let reason = match pull_state(&current) {
            PullRequestState::Open | PullRequestState::Draft => {
                return self.status_of(token, repository, current).await;
            }
            PullRequestState::Merged => "it is merged",
            PullRequestState::Closed => {
                "Bitbucket Cloud cannot reopen a declined pull request; publish the changeset \
                 as a new one instead"
            }
        };
        Err(Error::NotPossible {
            target: self.target.clone(),
            action: format!("reopen pull request #{id} in {repository}"),
            reason: reason.to_owned(),
        })
    }

    /// A branch that is already gone (404) counts as deleted.
    pub(super) async fn delete_head_branch(
        &self,
        token: &SecretString,
        repository: &str,
        branch: &str,
    ) -> Result<(), Error> {
        let path = format!(
            "{}/refs/branches/{}",
            self.repository_path(repository)?,
            urlencode_path(branch)
        );
        let request = self.request(Method::DELETE, &path, token);
        let response = self.send("delete_branch", request, token).await?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(http::unexpected(&self.target, &path, response, token).await)
        }
    }

    fn pull_url(&self, pull: &PullDetails, repository: &str) -> String {
        pull.links.html.as_ref().map_or_else(
            || format!("{}/{repository}/pull-requests/{}", self.web, pull.id),
            |link| link.href.clone(),
        )
    }
}

fn pull_state(pull: &PullDetails) -> PullRequestState {
    match pull.state.as_str() {
        "MERGED" => PullRequestState::Merged,
        "DECLINED" | "SUPERSEDED" => PullRequestState::Closed,
        _ if pull.draft => PullRequestState::Draft,
        _ => PullRequestState::Open,
    }
}

/// Changes requested outweigh approvals; reviewers without a verdict yet
/// make the review pending.
fn review_state(pull: &PullDetails) -> Option<ReviewState> {
    let participants = &pull.participants;
    if participants
        .iter()
        .any(|p| p.state.as_deref() == Some("changes_requested"))
    {
        Some(ReviewState::ChangesRequested)
    } else if participants
        .iter()
        .any(|p| p.approved || p.state.as_deref() == Some("approved"))
    {
        Some(ReviewState::Approved)
    } else if !pull.reviewers.is_empty() || participants.iter().any(|p| p.role == "REVIEWER") {
        Some(ReviewState::Pending)
    } else {
        None
    }
}

fn status_checks_state(state: &str) -> ChecksState {
    match state {
        "SUCCESSFUL" => ChecksState::Passed,
        // A stopped build did not pass and will not finish.
        "FAILED" | "STOPPED" => ChecksState::Failed,
        // INPROGRESS, and anything newer until it settles.
        _ => ChecksState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(value: serde_json::Value) -> PullDetails {
        serde_json::from_value(value).expect("pull request")
    }

    #[test]
    fn states_map_with_declined_and_superseded_as_closed() {
        let state = |state: &str, draft: bool| {
            pull_state(&pull(json!({"id": 1, "state": state, "draft": draft})))
        };
        assert_eq!(state("OPEN", false), PullRequestState::Open);
        assert_eq!(state("OPEN", true), PullRequestState::Draft);
        assert_eq!(state("MERGED", false), PullRequestState::Merged);
        assert_eq!(state("DECLINED", true), PullRequestState::Closed);
        assert_eq!(state("SUPERSEDED", false), PullRequestState::Closed);
    }

    #[test]
    fn changes_requested_outweigh_approvals() {
        let review = |participants: serde_json::Value| {
            review_state(&pull(json!({"id": 1, "participants": participants})))
        };
        assert_eq!(
            review(json!([
                {"role": "REVIEWER", "approved": true, "state": "approved"},
                {"role": "REVIEWER", "approved": false, "state": "changes_requested"},
            ])),
            Some(ReviewState::ChangesRequested)
        );
        assert_eq!(
            review(json!([{"role": "PARTICIPANT", "approved": true, "state": null}])),
            Some(ReviewState::Approved)
        );
        assert_eq!(
            review(json!([{"role": "REVIEWER", "approved": false, "state": null}])),
            Some(ReviewState::Pending)
        );
        assert_eq!(review(json!([])), None);
    }

    #[test]
    fn commit_statuses_map_to_checks() {
        assert_eq!(status_checks_state("SUCCESSFUL"), ChecksState::Passed);
        assert_eq!(status_checks_state("FAILED"), ChecksState::Failed);
        assert_eq!(status_checks_state("STOPPED"), ChecksState::Failed);
        assert_eq!(status_checks_state("INPROGRESS"), ChecksState::Pending);
    }

    #[test]
    fn the_open_pull_query_quotes_its_values() {
        assert_eq!(
            open_pull_query("Acme/API", r#"batch/"odd"\name"#),
            r#"source.branch.name = "batch/\"odd\"\\name" AND source.repository.full_name = "acme/api""#
        );
    }
}
