//! `publishChangesets`: publishing from the API (and so the web UI). Only
//! diffs are accepted here; commits from a local repository are for the
//! CLI, which runs where the repository is.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};

use super::context_parts;
use super::error::{IntoGraphql, to_graphql};
use super::ids;
use crate::publish::{ChangeSpec, ChangesetSpec};
use crate::service::{ChangesetReport, Error, PublishResult};

/// Most changesets one call may publish; more belong in `batchcred publish`.
const MAX_CHANGESETS: usize = 1000;
const MAX_CONCURRENCY: i32 = 32;

/// One changeset to publish.
#[derive(InputObject)]
pub struct ChangesetInput {
    /// The code host's URL, as configured.
    code_host: String,
    /// `owner/name`, `group/project` or `PROJECT/repo`.
    repository: String,
    base_branch: String,
    head_branch: String,
    title: String,
    #[graphql(default)]
    body: String,
    #[graphql(default)]
    draft: bool,
    /// A unified diff applied on top of the base branch.
    diff: String,
    /// The commit message; defaults to the title.
    commit_message: Option<String>,
}

impl From<ChangesetInput> for ChangesetSpec {
    fn from(input: ChangesetInput) -> Self {
        Self {
            code_host: input.code_host,
            repository: input.repository,
            base_branch: input.base_branch,
            head_branch: input.head_branch,
            title: input.title,
            body: input.body,
            draft: input.draft,
            change: ChangeSpec::Diff {
                patch: input.diff,
                message: input.commit_message,
                author_name: None,
                author_email: None,
            },
        }
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ChangesetPublishState {
    Opened,
    Updated,
    Unchanged,
    Failed,
}

/// What happened to one changeset.
#[derive(SimpleObject)]
pub struct ChangesetResult {
    repository: String,
    head_branch: String,
    state: ChangesetPublishState,
    pull_request_number: Option<i64>,
    #[graphql(name = "pullRequestURL")]
    pull_request_url: Option<String>,
    commit: Option<String>,
    /// `user` (the user's own token) or `site` (the global one).
    credential_source: Option<String>,
    /// Why it failed, with `errorCode` as in GraphQL error extensions.
    error: Option<String>,
    error_code: Option<String>,
}

impl From<ChangesetReport> for ChangesetResult {
    fn from(report: ChangesetReport) -> Self {
        let (state, published, error, error_code) = match report.outcome {
            Ok(published) => {
                let state = match published.result {
                    PublishResult::Opened => ChangesetPublishState::Opened,
                    PublishResult::Updated => ChangesetPublishState::Updated,
                    PublishResult::Unchanged => ChangesetPublishState::Unchanged,
                };
                (state, Some(published), None, None)
            }
            Err(error) => {
                let graphql = to_graphql(error);
                let code = graphql
                    .extensions
                    .as_ref()
                    .and_then(|e| e.get("code"))
                    .map(|v| v.to_string().trim_matches('"').to_owned());
                (
                    ChangesetPublishState::Failed,
                    None,
                    Some(graphql.message),
                    code,
                )
            }
        };
        Self {
            repository: report.repository,
            head_branch: report.head_branch,
            state,
            pull_request_number: published.as_ref().and_then(|p| p.pull_request_number),
            pull_request_url: published.as_ref().and_then(|p| p.pull_request_url.clone()),
            commit: published.as_ref().and_then(|p| p.commit.clone()),
            credential_source: published.and_then(|p| p.credential_source),
            error,
            error_code,
        }
    }
}

#[derive(Default)]
pub struct PublishMutation;

#[Object]
impl PublishMutation {
    /// Publishes changesets on `user`'s behalf (default: the caller) with
    /// their credential for each code host, else the global one. Each
    /// changeset's branch is pushed and its pull request opened, or updated
    /// if one is open; one failing does not stop the others.
    async fn publish_changesets(
        &self,
        ctx: &Context<'_>,
        user: Option<ID>,
        changesets: Vec<ChangesetInput>,
        #[graphql(default = 8)] concurrency: i32,
    ) -> async_graphql::Result<Vec<ChangesetResult>> {
        let (service, caller) = context_parts(ctx)?;
        let user = match user {
            Some(id) => ids::parse_user_id(&id).gql()?,
            None => caller
                .user()
                .map(|u| u.id)
                .ok_or_else(|| Error::Unauthenticated("sign in first".into()))
                .gql()?,
        };
        if changesets.len() > MAX_CHANGESETS {
            return Err(async_graphql::Error::new(format!(
                "at most {MAX_CHANGESETS} changesets per call; use `batchcred publish` for more"
            )));
        }
        let specs = changesets.into_iter().map(ChangesetSpec::from).collect();
        let concurrency = concurrency.clamp(1, MAX_CONCURRENCY) as usize;
        let reports = service
            .publish_changesets(caller, user, specs, concurrency, None)
            .await
            .gql()?;
        Ok(reports.into_iter().map(ChangesetResult::from).collect())
    }
}
