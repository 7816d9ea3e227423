//! `batchcred tokens …`: API access tokens.

use std::time::Duration;

use anyhow::{Result, bail};
use batchcred::domain::AccessTokenId;
use batchcred::service::{PageRequest, Service};
use clap::Subcommand;

use super::OPERATOR;

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
        /// Make the token stop working after this many days [default:
        /// never, until revoked].
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u64>,
    },
    /// List a user's tokens: id, prefix, note, dates (never the token).
    List {
        /// Whose tokens.
        #[arg(long)]
        user: String,
    },
    /// Revoke a token by the id `tokens list` shows; refused at once.
    Revoke {
        /// The token's id.
        id: AccessTokenId,
    },
}

pub async fn run(service: &Service, command: TokensCommand) -> Result<()> {
    match command {
        TokensCommand::Create {
            user,
            note,
            expires_in_days,
        } => {
            let user = service.user_by_username(&OPERATOR, &user).await?;
            let lifetime = match expires_in_days {
                None => None,
                Some(0) => bail!("--expires-in-days must be at least 1"),
                Some(days) => Some(Duration::from_secs(days.saturating_mul(86_400))),
            };
            let created = service
                .create_access_token(&OPERATOR, user.id, &note, lifetime)
                .await?;
            let until = created.record.expires_at.map_or_else(
                || "until revoked".to_owned(),
                |at| format!("until {}", at.to_rfc3339()),
            );
            eprintln!(
                "access token {} for {}, valid {until} (shown once; use `Authorization: token <value>`):",
                created.record.id, user.username
            );
            println!("{}", created.token.expose());
        }
        TokensCommand::List { user } => {
            let user = service.user_by_username(&OPERATOR, &user).await?;
            let mut page = PageRequest {
                first: Some(PageRequest::MAX_FIRST),
                after: None,
            };
            let now = chrono::Utc::now();
            println!(
                "{:<36} {:<12} {:<25} {:<25} {:<25} NOTE",
                "ID", "PREFIX", "CREATED", "LAST USED", "EXPIRES"
            );
            loop {
                let tokens = service
                    .list_access_tokens(&OPERATOR, user.id, &page)
                    .await?;
                for token in &tokens.items {
                    let expires = match token.expires_at {
                        None => "never".to_owned(),
                        Some(_) if token.is_expired(now) => "expired".to_owned(),
                        Some(at) => at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    };
                    println!(
                        "{:<36} {:<12} {:<25} {:<25} {:<25} {}",
                        token.id,
                        token.prefix.as_deref().unwrap_or("-"),
                        token
                            .created_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        token.last_used_at.map_or_else(
                            || "never".to_owned(),
                            |at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                        expires,
                        token.note
                    );
                }
                if !tokens.has_next_page {
                    break;
                }
                page.after = tokens.end_cursor;
            }
        }
        TokensCommand::Revoke { id } => {
            service.delete_access_token(&OPERATOR, id).await?;
            println!("revoked access token {id}");
        }
    }
    Ok(())
}
