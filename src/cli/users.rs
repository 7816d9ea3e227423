//! `batchcred users …` and `batchcred tokens …`.

use anyhow::Result;
use batchcred::service::{PageRequest, Service};
use clap::Subcommand;

use super::OPERATOR;
use super::input::read_secret;

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Create a user; the password is read from the terminal or stdin.
    /// The first user of an instance is always a site admin.
    Create {
        /// Login name.
        username: String,
        /// Make the user a site admin.
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List,
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Create an API access token for a user and print it (shown once).
    Create {
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// What the token is for.
        #[arg(long, default_value = "")]
        note: String,
    },
}

pub async fn run_users(service: &Service, command: UsersCommand) -> Result<()> {
    match command {
        UsersCommand::Create { username, admin } => {
            let password = read_secret("Password: ", true)?;
            let user = service
                .create_user(&OPERATOR, &username, password, admin)
                .await?;
            let role = if user.site_admin { " (site admin)" } else { "" };
            println!("created user {}{role}", user.username);
        }
        UsersCommand::List => {
            let mut page = PageRequest {
                first: Some(PageRequest::MAX_FIRST),
                after: None,
            };
            println!("{:<32} {:<10} CREATED", "USERNAME", "ROLE");
            loop {
                let users = service.list_users(&OPERATOR, &page).await?;
                for user in &users.items {
                    let role = if user.site_admin {
                        "site admin"
                    } else {
                        "user"
                    };
                    println!(
                        "{:<32} {:<10} {}",
                        user.username,
                        role,
                        user.created_at.to_rfc3339()
                    );
                }
                if !users.has_next_page {
                    break;
                }
                page.after = users.end_cursor;
            }
        }
    }
    Ok(())
}

pub async fn run_tokens(service: &Service, command: TokensCommand) -> Result<()> {
    match command {
        TokensCommand::Create { user, note } => {
            let user = service.user_by_username(&OPERATOR, &user).await?;
            let created = service
                .create_access_token(&OPERATOR, user.id, &note)
                .await?;
            eprintln!(
                "access token for {} (shown once; use `Authorization: token <value>`):",
                user.username
            );
            println!("{}", created.token.expose());
        }
    }
    Ok(())
}
