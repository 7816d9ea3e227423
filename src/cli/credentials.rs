//! `batchcred credentials …`.

use anyhow::Result;
use secrecy::SecretString;
use std::time::Duration;

use batchcred::domain::{
    AuthStrategy, CodeHostKind, CodeHostUrl, CredentialOwner, SigningKeySource,
};
use batchcred::service::CheckOptions;
use batchcred::service::{CreateCredential, CreateGitHubAppCredential, CredentialView, Service};
use clap::Subcommand;

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
        /// Also check that the token may push to this repository
        /// (owner/name): the only check possible for GitHub fine-grained
        /// tokens.
        #[arg(long)]
        repository: Option<String>,
    },
    /// Add a GitHub App credential for an existing App: its id and
    /// private key (PEM, read from a file or stdin, never an argument),
    /// and the installations to use (every one unless named).
    AddGithubApp {
        #[command(flatten)]
        owner: OwnerArgs,
        /// The GitHub code host's URL.
        #[arg(long)]
        url: String,
        /// The App's id (App settings → About → App ID).
        #[arg(long)]
        app_id: u64,
        /// A file holding the App's private key (PEM); `-` reads stdin.
        #[arg(long, value_name = "PATH")]
        private_key_file: std::path::PathBuf,
        /// Use this installation (repeat for several); all when omitted.
        #[arg(long = "installation", value_name = "ID")]
        installations: Vec<u64>,
        /// Only list the App's installations (id and account), store nothing.
        #[arg(long)]
        list_installations: bool,
    },
    /// Check a credential against its code host again and record the result.
    Check {
        #[command(flatten)]
        owner: OwnerArgs,
        /// The code host's URL.
        #[arg(long)]
        url: String,
        /// Also check that the token may push to this repository.
        #[arg(long)]
        repository: Option<String>,
        /// The GitHub App credential (where a token is stored too).
        #[arg(long)]
        github_app: bool,
    },
    /// Check every credential not checked within the given age (what the
    /// server does in the background).
    Recheck {
        /// Only credentials last checked longer ago than this many hours.
        #[arg(long, default_value_t = 0)]
        older_than_hours: u64,
    },
    /// Sign the commits batchcred creates with a credential (GitHub,
    /// GitLab), or stop.
    Signing {
        #[command(subcommand)]
        action: SigningCommand,
    },
    /// Remove a credential (and its SSH key) for good.
    Remove {
        #[command(flatten)]
        owner: OwnerArgs,
        /// The code host's URL.
        #[arg(long)]
        url: String,
        /// The GitHub App credential (where a token is stored too).
        #[arg(long)]
        github_app: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SigningCommand {
    /// Sign commits with a generated Ed25519 key (or the credential's SSH
    /// key); prints the public key to upload as a signing key.
    Enable {
        #[command(flatten)]
        owner: OwnerArgs,
        /// The code host's URL.
        #[arg(long)]
        url: String,
        /// Sign with the credential's SSH key instead of a new key.
        #[arg(long)]
        use_ssh_key: bool,
    },
    /// Stop signing commits (a generated signing key is destroyed).
    Disable {
        #[command(flatten)]
        owner: OwnerArgs,
        /// The code host's URL.
        #[arg(long)]
        url: String,
    },
}

/// Reads a private key (PEM) from a file, or all of stdin for `-`.
fn read_pem(path: &std::path::Path) -> Result<SecretString> {
    use std::io::Read;
    let mut pem = zeroize::Zeroizing::new(String::new());
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut pem)
            .map_err(|e| anyhow::anyhow!("reading the private key from standard input: {e}"))?;
    } else {
        *pem = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading the private key from {}: {e}", path.display()))?;
    }
    if !pem.contains("PRIVATE KEY-----") {
        anyhow::bail!("the private key must be in PEM form (-----BEGIN RSA PRIVATE KEY-----)");
    }
    Ok(SecretString::from(pem.trim()))
}

async fn resolve_owner(service: &Service, owner: OwnerArgs) -> Result<CredentialOwner> {
    Ok(match owner.user {
        Some(name) => CredentialOwner::User(service.user_by_username(&OPERATOR, &name).await?.id),
        None => CredentialOwner::Site,
    })
}

async fn find_credential(service: &Service, owner: OwnerArgs, url: &str) -> Result<CredentialView> {
    find_credential_with(service, owner, url, AuthStrategy::PersonalAccessToken).await
}

/// The owner's credential for `url`: of `strategy` where there are both a
/// token and a GitHub App, else the only one.
async fn find_credential_with(
    service: &Service,
    owner: OwnerArgs,
    url: &str,
    strategy: AuthStrategy,
) -> Result<CredentialView> {
    let owner = resolve_owner(service, owner).await?;
    let url = CodeHostUrl::parse(url)?;
    let mut found: Vec<CredentialView> = service
        .list_credentials(&OPERATOR, owner)
        .await?
        .into_iter()
        .filter(|c| c.url == url)
        .collect();
    if found.len() > 1 {
        found.retain(|c| c.auth_strategy == strategy);
    }
    found
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no such credential for {url}"))
}

fn strategy(github_app: bool) -> AuthStrategy {
    if github_app {
        AuthStrategy::GitHubApp
    } else {
        AuthStrategy::PersonalAccessToken
    }
}

const LIST_HEADER: &str = "KIND             SCOPE   URL                                      CODE HOST USER   EXPIRES     STATUS";

fn print_credential(credential: &CredentialView) {
    let scope = if credential.is_site_credential() {
        "global"
    } else {
        "user"
    };
    println!(
        "{:<16} {:<7} {:<40} {:<16} {:<11} {}",
        credential.kind.as_str(),
        scope,
        credential.url,
        credential.code_host_user.as_deref().unwrap_or("-"),
        credential
            .expires_at
            .map_or_else(|| "-".to_owned(), |at| at.format("%Y-%m-%d").to_string()),
        status(credential),
    );
}

/// "ok", or what needs its owner's attention.
fn status(credential: &CredentialView) -> String {
    if let Some(error) = &credential.last_check_error {
        return format!("NEEDS ATTENTION: last check failed: {error}");
    }
    if credential.needs_attention() {
        return "NEEDS ATTENTION: expires within 7 days".to_owned();
    }
    if credential.ssh_key_pending {
        return "ssh key not yet added to the code host".to_owned();
    }
    "ok".to_owned()
}

fn print_details(credential: &CredentialView) {
    if let Some(user) = &credential.code_host_user {
        println!("code host user: {user}");
    }
    match &credential.scopes {
        Some(scopes) => println!("scopes: {}", scopes.join(", ")),
        None => println!("scopes: not reported by the code host"),
    }
    if let Some(at) = credential.expires_at {
        println!("expires: {}", at.format("%Y-%m-%d %H:%M UTC"));
    }
    for warning in &credential.warnings {
        println!("warning: {warning}");
    }
    if let Some(app) = &credential.github_app {
        println!("GitHub App: {} (id {})", app.name, app.app_id);
        for installation in &app.installations {
            let permissions: Vec<String> = installation
                .permissions
                .iter()
                .map(|(name, level)| format!("{name}:{level}"))
                .collect();
            println!(
                "installation {} on {}: {}",
                installation.id,
                installation.account,
                permissions.join(", ")
            );
        }
    }
    if let Some(signing) = &credential.signing {
        println!(
            "commit signing: on ({} key {})",
            signing.source.as_str(),
            signing.public_key
        );
    }
}

pub async fn run(service: &Service, command: CredentialsCommand) -> Result<()> {
    match command {
        CredentialsCommand::List { owner } => {
            let owner = resolve_owner(service, owner).await?;
            println!("{LIST_HEADER}");
            for credential in service.list_credentials(&OPERATOR, owner).await? {
                print_credential(&credential);
            }
        }
        CredentialsCommand::Add {
            owner,
            kind,
            url,
            username,
            repository,
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
                token,
                repository,
            };
            let credential = service.create_credential(&OPERATOR, request).await?;
            println!("added credential for {}", credential.url);
            print_details(&credential);
            if let Some(key) = &credential.ssh_public_key {
                println!("add this SSH public key to the code host:\n{key}");
            }
        }
        CredentialsCommand::AddGithubApp {
            owner,
            url,
            app_id,
            private_key_file,
            installations,
            list_installations,
        } => {
            let owner = resolve_owner(service, owner).await?;
            let private_key = read_pem(&private_key_file)?;
            if list_installations {
                for installation in service
                    .github_app_installations(&OPERATOR, &url, app_id, &private_key)
                    .await?
                {
                    println!("{}\t{}", installation.id, installation.account);
                }
                return Ok(());
            }
            let request = CreateGitHubAppCredential {
                user: match owner {
                    CredentialOwner::User(id) => Some(id),
                    CredentialOwner::Site => None,
                },
                url,
                app_id,
                private_key,
                installations: (!installations.is_empty()).then_some(installations),
            };
            let credential = service
                .create_github_app_credential(&OPERATOR, request)
                .await?;
            println!("added GitHub App credential for {}", credential.url);
            print_details(&credential);
        }
        CredentialsCommand::Check {
            owner,
            url,
            repository,
            github_app,
        } => {
            let credential =
                find_credential_with(service, owner, &url, strategy(github_app)).await?;
            let options = CheckOptions { repository };
            let credential = service
                .check_credential(&OPERATOR, credential.id, &options)
                .await?;
            println!("credential for {} works", credential.url);
            print_details(&credential);
        }
        CredentialsCommand::Recheck { older_than_hours } => {
            let max_age = Duration::from_secs(older_than_hours.saturating_mul(3600));
            let report = service
                .recheck_stale_credentials(&OPERATOR, max_age)
                .await?;
            println!(
                "checked {} credentials: {} passed, {} failed",
                report.passed + report.failed,
                report.passed,
                report.failed
            );
            if report.failed > 0 {
                anyhow::bail!(
                    "{} credentials failed their check; see `batchcred credentials list`",
                    report.failed
                );
            }
        }
        CredentialsCommand::Signing { action } => signing(service, action).await?,
        CredentialsCommand::Remove {
            owner,
            url,
            github_app,
        } => {
            let credential =
                find_credential_with(service, owner, &url, strategy(github_app)).await?;
            service.delete_credential(&OPERATOR, credential.id).await?;
            println!("removed credential for {}", credential.url);
        }
    }
    Ok(())
}

async fn signing(service: &Service, action: SigningCommand) -> Result<()> {
    match action {
        SigningCommand::Enable {
            owner,
            url,
            use_ssh_key,
        } => {
            let credential = find_credential(service, owner, &url).await?;
            let source = if use_ssh_key {
                SigningKeySource::SshKey
            } else {
                SigningKeySource::Generated
            };
            let credential = service
                .enable_commit_signing(&OPERATOR, credential.id, source)
                .await?;
            let Some(signing) = &credential.signing else {
                anyhow::bail!("signing was not enabled for {}", credential.url);
            };
            println!("commits published with {} are now signed", credential.url);
            if let Some(help) = credential.kind.descriptor().ssh_signing_key_help {
                println!("upload this public key as a signing key ({help}):");
            }
            println!("{}", signing.public_key);
        }
        SigningCommand::Disable { owner, url } => {
            let credential = find_credential(service, owner, &url).await?;
            let credential = service
                .disable_commit_signing(&OPERATOR, credential.id)
                .await?;
            println!(
                "commits published with {} are no longer signed",
                credential.url
            );
        }
    }
    Ok(())
}
