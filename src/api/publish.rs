//! `publishChangesets`: publishing from the API (and so the web UI). Only
//! diffs are accepted here; commits from a local repository are for the
//! CLI, which runs where the repository is.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::context_parts;
use super::error::{IntoGraphql, to_graphql};
use super::ids;
use crate::publish::{ChangeSpec, ChangesetSpec};
use crate::service::{ChangesetReport, Error, MAX_PUBLISH_CONCURRENCY, PublishResult};
use crate::store::ChangesetRecord;

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
    /// Publishes changesets as `user` (default: the caller; anyone else,
    /// site admins included, is refused: publishing for a user takes their
    /// own session or access token) with their credential for each code
    /// host, else the global one. Each changeset's branch is pushed and its
    /// pull request opened, or updated if one is open; one failing does not
    /// stop the others. At most `concurrency` (1–64) at a time.
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
        let concurrency = usize::try_from(concurrency)
            .map_err(|_| {
                Error::InvalidInput(format!(
                    "concurrency must be between 1 and {MAX_PUBLISH_CONCURRENCY}"
                ))
            })
            .gql()?;
        let specs = changesets.into_iter().map(ChangesetSpec::from).collect();
        let reports = service
            .publish_changesets(caller, user, specs, concurrency, None)
            .await
            .gql()?;
        Ok(reports.into_iter().map(ChangesetResult::from).collect())
    }
}

/// A recorded changeset: one head branch of a repository, and who owns it.
#[derive(SimpleObject)]
pub struct Changeset {
    id: ID,
    repository: String,
    base_branch: String,
    head_branch: String,
    /// `pending`, `pushed`, `published` or `failed`.
    state: String,
    #[graphql(name = "pullRequestURL")]
    pull_request_url: Option<String>,
    /// The user it belongs to: the only one who may publish it.
    owner: ID,
    /// Set by a hand-over: the owner before it.
    previous_owner: Option<ID>,
    /// The site admin who handed it over (null with `handedOverAt` set: the
    /// local operator, from the CLI).
    handed_over_by: Option<ID>,
    handed_over_at: Option<DateTime<Utc>>,
}

impl From<ChangesetRecord> for Changeset {
    fn from(record: ChangesetRecord) -> Self {
        Self {
            id: ids::changeset_id(record.id),
            repository: record.repository,
            base_branch: record.base_branch,
            head_branch: record.head_branch,
            state: record.state.as_str().to_owned(),
            pull_request_url: record.pr_url,
            owner: ids::user_id(record.user_id),
            previous_owner: record.previous_user_id.map(ids::user_id),
            handed_over_by: record.handed_over_by.map(ids::user_id),
            handed_over_at: record.handed_over_at,
        }
    }
}

#[derive(Default)]
pub struct ChangesetMutation;

#[Object]
impl ChangesetMutation {
    /// Hands the changeset for `headBranch` of `repository` on the code host
    /// at `codeHost` over to `user` (site admins only): from then on only
    /// `user` may publish it. The previous owner, who handed it over and
    /// when are recorded with it.
    async fn hand_over_changeset(
        &self,
        ctx: &Context<'_>,
        code_host: String,
        repository: String,
        head_branch: String,
        user: ID,
    ) -> async_graphql::Result<Changeset> {
        let (service, caller) = context_parts(ctx)?;
        let to = ids::parse_user_id(&user).gql()?;
        let record = service
            .hand_over_changeset(caller, &code_host, &repository, &head_branch, to)
            .await
            .gql()?;
        Ok(record.into())
    }
}
