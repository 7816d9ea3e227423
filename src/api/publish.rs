//! `publishChangesets`: publishing from the API (and so the web UI). Only
//! diffs are accepted here; commits from a local repository are for the
//! CLI, which runs where the repository is.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};

use super::changesets::Changeset;
use super::context_parts;
use super::error::{IntoGraphql, to_graphql};
use super::ids;
use crate::service::{ChangeSpec, ChangesetSpec};
use crate::service::{ChangesetReport, Error, MAX_PUBLISH_CONCURRENCY, PublishResult};

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
    /// Recorded and queued: a worker publishes it (follow it with
    /// `changesets`).
    Queued,
    Opened,
    Updated,
    Unchanged,
    Failed,
}

/// What happened to one changeset.
#[derive(SimpleObject)]
pub struct ChangesetResult {
    /// The changeset, once recorded (follow it with `changeset(id:)`).
    id: Option<ID>,
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
                    PublishResult::Queued => ChangesetPublishState::Queued,
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
            id: published.as_ref().map(|p| ids::changeset_id(p.id)),
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
    /// host, else the global one. Each changeset is checked, recorded and
    /// queued, and the answer comes at once: `QUEUED` with its `id`,
    /// `UNCHANGED` when that spec is already published, or `FAILED` with
    /// why it was refused. Workers then push each branch and open its pull
    /// request, or update the open one; follow them with `changesets` or
    /// `changeset(id:)`. `concurrency` (1–64) is accepted for older
    /// clients; the workers set the pace.
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
        if !(1..=MAX_PUBLISH_CONCURRENCY).contains(&usize::try_from(concurrency).unwrap_or(0)) {
            return Err(Error::InvalidInput(format!(
                "concurrency must be between 1 and {MAX_PUBLISH_CONCURRENCY}"
            )))
            .gql();
        }
        let specs = changesets.into_iter().map(ChangesetSpec::from).collect();
        let reports = service
            .enqueue_changesets(caller, user, specs)
            .await
            .gql()?;
        Ok(reports.into_iter().map(ChangesetResult::from).collect())
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
        Ok(Changeset(service.changeset(caller, record.id).await.gql()?))
    }
}
