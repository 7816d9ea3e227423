//! `batchcred users …`.

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
    /// Set a user's password (read from the terminal or stdin) and end
    /// all their sessions.
    SetPassword {
        /// Login name.
        username: String,
    },
    /// End all of a user's sessions (sign them out everywhere); their API
    /// access tokens keep working.
    RevokeSessions {
        /// Login name.
        username: String,
    },
    /// Set where a user's credential expiry warnings are mailed; an empty
    /// ADDRESS clears it.
    SetEmail {
        /// Login name.
        username: String,
        /// Email address, or "" to clear it.
        address: String,
    },
    /// Forget an account's failed sign-ins, ending its back-off (when
    /// someone keeps guessing to lock it out).
    Unlock {
        /// Login name.
        username: String,
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
        UsersCommand::SetPassword { username } => {
            let user = service.user_by_username(&OPERATOR, &username).await?;
            let password = read_secret("New password: ", true)?;
            service
                .set_user_password(&OPERATOR, user.id, password)
                .await?;
            println!(
                "password set for {}; their sessions are ended",
                user.username
            );
        }
        UsersCommand::RevokeSessions { username } => {
            let user = service.user_by_username(&OPERATOR, &username).await?;
            let ended = service.end_sessions(&OPERATOR, user.id).await?;
            println!("ended {ended} session(s) of {}", user.username);
        }
        UsersCommand::SetEmail { username, address } => {
            let user = service.user_by_username(&OPERATOR, &username).await?;
            match service
                .set_user_email(&OPERATOR, user.id, Some(&address))
                .await?
            {
                Some(email) => println!("expiry warnings for {} go to {email}", user.username),
                None => println!("{} gets no warning emails", user.username),
            }
        }
        UsersCommand::Unlock { username } => {
            service
                .forget_sign_in_failures(&OPERATOR, &username)
                .await?;
            println!("{username} can sign in again at once");
        }
    }
    Ok(())
}
