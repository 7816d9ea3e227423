//! `batchcred codehosts …`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use batchcred::domain::{CodeHostKind, CodeHostUpdate, GitUrlType, PolicyMode, SshKeyAlgorithm};
use batchcred::service::{AddCodeHost, PageRequest, PolicyRequest, Service};
use clap::Subcommand;

use super::OPERATOR;

#[derive(Subcommand, Debug)]
pub enum CodeHostsCommand {
    /// Register a code host.
    Add {
        /// GITHUB, GITLAB or BITBUCKETSERVER.
        #[arg(long)]
        kind: CodeHostKind,
        /// Base URL, e.g. https://github.com or https://ghe.example.com.
        #[arg(long)]
        url: String,
        /// How git reaches repositories: http or ssh.
        #[arg(long, default_value = "http")]
        git_url_type: GitUrlType,
        /// File with the host's known_hosts lines (for ssh).
        #[arg(long)]
        ssh_known_hosts_file: Option<PathBuf>,
        /// Keypair algorithm for credentials: ed25519 or rsa-4096.
        #[arg(long, default_value = "ed25519")]
        ssh_key_algorithm: SshKeyAlgorithm,
    },
    /// Change a code host. Switching to ssh generates keypairs for its
    /// existing credentials.
    Update {
        /// The code host's URL.
        url: String,
        #[arg(long)]
        git_url_type: Option<GitUrlType>,
        #[arg(long)]
        ssh_known_hosts_file: Option<PathBuf>,
        #[arg(long)]
        ssh_key_algorithm: Option<SshKeyAlgorithm>,
    },
    /// Set who may publish with the code host's global credential, and to
    /// which repositories. Replaces the whole policy.
    Policy {
        /// The code host's URL.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        users: PolicyUsersArgs,
        /// Only to repositories matching one of these glob patterns,
        /// comma-separated (`acme/*,tools/cli`; `*` does not cross `/`).
        /// Without it: any repository.
        #[arg(long, value_delimiter = ',')]
        repositories: Vec<String>,
    },
    /// Set up (or replace) the secret the code host signs its webhooks
    /// with; prints it once, with the path to configure on the code host.
    Webhook {
        /// The code host's URL.
        #[arg(long)]
        url: String,
        /// Remove the secret instead: webhooks are refused from then on.
        #[arg(long)]
        remove: bool,
    },
    /// List code hosts.
    List,
    /// Remove a code host and every credential for it.
    Remove {
        /// The code host's URL.
        url: String,
    },
}

/// Who may use the global credential: exactly one of these.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct PolicyUsersArgs {
    /// Every user without a token of their own (the default policy).
    #[arg(long)]
    everyone: bool,
    /// No user: everyone needs their own token.
    #[arg(long)]
    nobody: bool,
    /// Only these users, comma-separated usernames.
    #[arg(long, value_delimiter = ',')]
    users: Option<Vec<String>>,
}

impl PolicyUsersArgs {
    fn mode_and_names(self) -> (PolicyMode, Vec<String>) {
        match self.users {
            Some(names) => (PolicyMode::Selected, names),
            None if self.nobody => (PolicyMode::Nobody, Vec::new()),
            None => (PolicyMode::Everyone, Vec::new()),
        }
    }
}

fn read_known_hosts(path: Option<PathBuf>) -> Result<Option<String>> {
    path.map(|p| std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display())))
        .transpose()
}

pub async fn run(service: &Service, command: CodeHostsCommand) -> Result<()> {
    match command {
        CodeHostsCommand::Add {
            kind,
            url,
            git_url_type,
            ssh_known_hosts_file,
            ssh_key_algorithm,
        } => {
            let request = AddCodeHost {
                kind,
                url,
                git_url_type,
                ssh_known_hosts: read_known_hosts(ssh_known_hosts_file)?,
                ssh_key_algorithm,
            };
            let host = service.add_code_host(&OPERATOR, request).await?;
            println!(
                "added {} code host {} (git over {})",
                host.kind,
                host.url,
                host.git_url_type.as_str()
            );
        }
        CodeHostsCommand::Update {
            url,
            git_url_type,
            ssh_known_hosts_file,
            ssh_key_algorithm,
        } => {
            let host = service.code_host_by_url(&OPERATOR, &url).await?;
            let update = CodeHostUpdate {
                git_url_type,
                ssh_known_hosts: read_known_hosts(ssh_known_hosts_file)?.map(Some),
                ssh_key_algorithm,
                ..CodeHostUpdate::default()
            };
            let host = service.update_code_host(&OPERATOR, host.id, update).await?;
            println!(
                "updated {} (git over {})",
                host.url,
                host.git_url_type.as_str()
            );
        }
        CodeHostsCommand::Policy {
            url,
            users,
            repositories,
        } => {
            let host = service.code_host_by_url(&OPERATOR, &url).await?;
            let (mode, usernames) = users.mode_and_names();
            let request = PolicyRequest {
                mode,
                usernames,
                repositories,
            };
            let host = service
                .set_global_credential_policy(&OPERATOR, host.id, request)
                .await?;
            let policy = service.global_credential_policy(&OPERATOR, &host).await?;
            println!(
                "global credential of {} may be used by: {}",
                host.url,
                policy.summary()
            );
        }
        CodeHostsCommand::Webhook { url, remove: true } => {
            service.remove_webhook(&OPERATOR, &url).await?;
            println!("removed the webhook secret of {url}; its webhooks are refused from now on");
        }
        CodeHostsCommand::Webhook { url, remove: false } => {
            let setup = service.set_up_webhook(&OPERATOR, &url).await?;
            println!(
                "webhook URL: <this server's external URL>{}\nsecret (shown once; \
                 GitHub and Bitbucket Server sign with it, GitLab sends it as its token): {}",
                setup.path,
                secrecy::ExposeSecret::expose_secret(&setup.secret)
            );
        }
        CodeHostsCommand::List => {
            let page = PageRequest {
                first: Some(PageRequest::MAX_FIRST),
                after: None,
            };
            let hosts = service.list_code_hosts(&OPERATOR, &page).await?;
            println!(
                "{:<16} {:<5} {:<9} {:<32} GLOBAL CREDENTIAL FOR",
                "KIND", "GIT", "SSH KEYS", "URL"
            );
            for host in hosts.items {
                let policy = service.global_credential_policy(&OPERATOR, &host).await?;
                println!(
                    "{:<16} {:<5} {:<9} {:<32} {}",
                    host.kind,
                    host.git_url_type.as_str(),
                    host.ssh_key_algorithm.as_str(),
                    host.url,
                    policy.summary()
                );
            }
        }
        CodeHostsCommand::Remove { url } => {
            let host = service.code_host_by_url(&OPERATOR, &url).await?;
            service.delete_code_host(&OPERATOR, host.id).await?;
            println!("removed {} and its credentials", host.url);
        }
    }
    Ok(())
}
