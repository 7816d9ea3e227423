//! `batchcred credentials …`.

use anyhow::Result;
use batchcred::domain::CodeHostKind;
use batchcred::service::{CreateCredential, CredentialView, Service};
use batchcred::store::CredentialOwner;
use clap::Subcommand;
use secrecy::ExposeSecret;

use super::OPERATOR;
use super::input::read_secret;

/// Whose credential: a user's, or the global one.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct OwnerArgs {
    /// A user's credential.
    #[arg(long)]
    user: Option<String>,
    /// The global (site) credential, used for users without their own.
    #[arg(long)]
    global: bool,
}

#[derive(Subcommand, Debug)]
pub enum CredentialsCommand {
    /// List credentials (never their secrets).
    List {
        #[command(flatten)]
        owner: OwnerArgs,
    },
    /// Add a credential; the token is read from the terminal or stdin.
    Add {
        #[command(flatten)]
        owner: OwnerArgs,
        /// GITHUB, GITLAB or BITBUCKETSERVER.
        #[arg(long)]
        kind: CodeHostKind,
        /// The code host's URL.
        #[arg(long)]
        url: String,
        /// Code host username, for kinds that need one.
        #[arg(long)]
        username: Option<String>,
    },
    /// Remove a credential (and its SSH key) for good.
    Remove {
        #[command(flatten)]
        owner: OwnerArgs,
        /// The code host's URL.
        #[arg(long)]
        url: String,
    },
}

async fn resolve_owner(service: &Service, owner: OwnerArgs) -> Result<CredentialOwner> {
    Ok(match owner.user {
        Some(name) => CredentialOwner::User(service.user_by_username(&OPERATOR, &name).await?.id),
        None => CredentialOwner::Site,
    })
}

fn print_credential(credential: &CredentialView) {
    let scope = if credential.is_site_credential() {
        "global"
    } else {
        "user"
    };
    println!(
        "{:<16} {:<7} {:<40} {}",
        credential.kind.as_str(),
        scope,
        credential.url,
        credential.created_at.to_rfc3339()
    );
}

pub async fn run(service: &Service, command: CredentialsCommand) -> Result<()> {
    match command {
        CredentialsCommand::List { owner } => {
            let owner = resolve_owner(service, owner).await?;
            println!("{:<16} {:<7} {:<40} CREATED", "KIND", "SCOPE", "URL");
            for credential in service.list_credentials(&OPERATOR, owner).await? {
                print_credential(&credential);
            }
        }
        CredentialsCommand::Add {
            owner,
            kind,
            url,
            username,
        } => {
            let owner = resolve_owner(service, owner).await?;
            let token = read_secret("Token: ", false)?;
            let request = CreateCredential {
                user: match owner {
                    CredentialOwner::User(id) => Some(id),
                    CredentialOwner::Site => None,
                },
                kind,
                url,
                username,
                token: token.expose_secret().to_owned(),
            };
            let credential = service.create_credential(&OPERATOR, request).await?;
            println!("added credential for {}", credential.url);
            if let Some(key) = &credential.ssh_public_key {
                println!("add this SSH public key to the code host:\n{key}");
            }
        }
        CredentialsCommand::Remove { owner, url } => {
            let owner = resolve_owner(service, owner).await?;
            let found = service
                .list_credentials(&OPERATOR, owner)
                .await?
                .into_iter()
                .find(|c| batchcred::domain::CodeHostUrl::parse(&url).is_ok_and(|u| u == c.url));
            let Some(credential) = found else {
                anyhow::bail!("no such credential for {url}");
            };
            service.delete_credential(&OPERATOR, credential.id).await?;
            println!("removed credential for {}", credential.url);
        }
    }
    Ok(())
}
