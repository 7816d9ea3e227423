//! `batchcred changesets …`.

use anyhow::{Context, Result};
use batchcred::domain::ChangesetId;
use batchcred::service::{ChangesetQuery, ChangesetStatus, PageRequest, Service};
use clap::Subcommand;

use super::OPERATOR;

#[derive(Subcommand, Debug)]
pub enum ChangesetsCommand {
    /// Give a changeset to another user: from then on only they may publish
    /// it. The previous owner and the time are recorded with it.
    HandOver {
        /// The code host's URL, as configured.
        #[arg(long)]
        code_host: String,
        /// `owner/name`, `group/project` or `PROJECT/repo`.
        #[arg(long)]
        repository: String,
        /// The changeset's head branch.
        #[arg(long)]
        head_branch: String,
        /// The username of the new owner.
        #[arg(long)]
        to: String,
    },
    /// List changesets with their status, newest first.
    List {
        /// One user's (default: everyone's).
        #[arg(long)]
        user: Option<String>,
        /// Only those with this status (pending, queued, processing,
        /// retrying, failed, open, draft, merged, closed, deleted).
        #[arg(long)]
        status: Option<String>,
        /// Only those on this code host (its URL).
        #[arg(long)]
        code_host: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i32,
    },
    /// Queue a failed changeset's job again, attempts reset.
    Retry {
        /// The changeset's id (from `changesets list`).
        id: String,
    },
    /// Queue closing a changeset's pull request.
    Close {
        id: String,
        /// Also delete the head branch batchcred pushed.
        #[arg(long)]
        delete_branch: bool,
    },
    /// Queue reopening a changeset's closed pull request.
    Reopen { id: String },
    /// Queue reading a changeset's pull request state from its code host.
    Sync { id: String },
    /// Track a pull request opened outside batchcred, as a user's
    /// changeset (read with their credential, else the global one).
    Import {
        #[arg(long)]
        user: String,
        #[arg(long)]
        code_host: String,
        #[arg(long)]
        repository: String,
        /// The pull (merge) request's number.
        #[arg(long)]
        number: u64,
    },
}

fn changeset_id(raw: &str) -> Result<ChangesetId> {
    raw.parse()
        .ok()
        .with_context(|| format!("{raw:?} is not a changeset id (see `changesets list`)"))
}

pub async fn run(service: &Service, command: ChangesetsCommand) -> Result<()> {
    match command {
        ChangesetsCommand::HandOver {
            code_host,
            repository,
            head_branch,
            to,
        } => {
            let new_owner = service.user_by_username(&OPERATOR, &to).await?;
            let handed = service
                .hand_over_changeset(
                    &OPERATOR,
                    &code_host,
                    &repository,
                    &head_branch,
                    new_owner.id,
                )
                .await?;
            let previous = match handed.previous_user_id {
                Some(id) => service
                    .user(&OPERATOR, id)
                    .await
                    .map_or_else(|_| format!("deleted user {id}"), |user| user.username),
                None => "nobody".to_owned(),
            };
            println!(
                "handed {}:{} over to {} (it was {previous}'s)",
                handed.repository, handed.head_branch, new_owner.username
            );
            Ok(())
        }
        ChangesetsCommand::List {
            user,
            status,
            code_host,
            limit,
        } => {
            let user = match user {
                Some(name) => Some(service.user_by_username(&OPERATOR, &name).await?.id),
                None => None,
            };
            let query = ChangesetQuery {
                user,
                code_host,
                status: status.map(|s| s.parse::<ChangesetStatus>()).transpose()?,
            };
            let page = PageRequest {
                first: Some(limit),
                after: None,
            };
            let page = service.list_changesets(&OPERATOR, &query, &page).await?;
            println!(
                "{:<36}  {:<10}  {:<9}  CHANGESET / PULL REQUEST / ERROR",
                "ID", "STATUS", "ATTEMPTS"
            );
            for view in &page.items {
                let record = &view.record;
                let detail = record
                    .error
                    .clone()
                    .or_else(|| record.pr_url.clone())
                    .unwrap_or_default();
                println!(
                    "{:<36}  {:<10}  {:<9}  {}:{} {detail}",
                    record.id,
                    view.status.as_str(),
                    record.job_attempts,
                    record.repository,
                    record.head_branch
                );
            }
            println!("{} of {} shown", page.items.len(), page.total_count);
            Ok(())
        }
        ChangesetsCommand::Retry { id } => {
            let queued = service
                .retry_changeset(&OPERATOR, changeset_id(&id)?)
                .await?;
            println!("queued {}:{} again", queued.repository, queued.head_branch);
            Ok(())
        }
        ChangesetsCommand::Close { id, delete_branch } => {
            let queued = service
                .close_changeset(&OPERATOR, changeset_id(&id)?, delete_branch)
                .await?;
            println!(
                "queued closing {}:{}",
                queued.repository, queued.head_branch
            );
            Ok(())
        }
        ChangesetsCommand::Reopen { id } => {
            let queued = service
                .reopen_changeset(&OPERATOR, changeset_id(&id)?)
                .await?;
            println!(
                "queued reopening {}:{}",
                queued.repository, queued.head_branch
            );
            Ok(())
        }
        ChangesetsCommand::Sync { id } => {
            let queued = service
                .sync_changeset(&OPERATOR, changeset_id(&id)?)
                .await?;
            println!(
                "queued a sync of {}:{}",
                queued.repository, queued.head_branch
            );
            Ok(())
        }
        ChangesetsCommand::Import {
            user,
            code_host,
            repository,
            number,
        } => {
            let owner = service.user_by_username(&OPERATOR, &user).await?;
            let imported = service
                .import_changeset(&OPERATOR, owner.id, &code_host, &repository, number)
                .await?;
            println!(
                "imported {} as changeset {} ({}:{}, {})",
                imported.pr_url.as_deref().unwrap_or_default(),
                imported.id,
                imported.repository,
                imported.head_branch,
                imported.external_state.as_deref().unwrap_or("open")
            );
            Ok(())
        }
    }
}
