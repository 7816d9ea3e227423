//! `batchcred changesets …`.

use anyhow::Result;
use batchcred::service::Service;
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
    }
}
