//! Command-line interface. Every command except `serve` and `schema` works
//! directly on the local store as the operator, through the same service
//! layer the API uses.

mod audit;
mod changesets;
mod codehosts;
mod credentials;
mod input;
mod keys;
mod publish;
mod serve;
mod tokens;
mod users;

use std::path::PathBuf;

use anyhow::Result;
use batchcred::config::{ConfigFile, DatabaseUrl, StoreConfig};
use batchcred::service::Caller;
use batchcred::service::{Service, ServiceSettings};
use batchcred::telemetry::LogFormat;
use clap::{Parser, Subcommand};
use secrecy::SecretString;

/// batchcred: stores code host credentials for batch changes.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, propagate_version = true)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// How log lines are written to stderr: `text`, or `json` (one object
    /// per line, for log shippers) [default: text].
    #[arg(long, global = true, env = "BATCHCRED_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives; shared by every command.
#[derive(clap::Args, Debug)]
struct StoreArgs {
    /// A TOML file with any of the settings below and `serve`'s (keys are
    /// the flag names with `_`); flags and environment variables win.
    #[arg(long = "config", global = true, env = "BATCHCRED_CONFIG")]
    config_file: Option<PathBuf>,

    /// Directory for the embedded SQLite database and the default keyring
    /// [default: ./batchcred-data].
    #[arg(long, global = true, env = "BATCHCRED_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// Use this database instead of the embedded SQLite one
    /// (postgres://user@host/db, or sqlite://path).
    #[arg(long, global = true, env = "BATCHCRED_DATABASE_URL", value_parser = parse_database_url, hide_env_values = true)]
    database_url: Option<DatabaseUrl>,

    /// Keyring file (`<key id>:<base64 key>` lines; the last is primary).
    /// Default with SQLite: <data dir>/keyring, generated on first start.
    #[arg(long, global = true, env = "BATCHCRED_ENCRYPTION_KEY_FILE")]
    encryption_key_file: Option<PathBuf>,

    /// The keyring itself, in the keyring file's format (entries may be
    /// separated by commas). Environment only, so it never shows in `ps`.
    #[arg(skip = read_inline_key())]
    encryption_key: Option<SecretString>,
}

fn parse_database_url(raw: &str) -> Result<DatabaseUrl, String> {
    DatabaseUrl::parse(raw).map_err(|e| e.to_string())
}

fn read_inline_key() -> Option<SecretString> {
    std::env::var("BATCHCRED_ENCRYPTION_KEY")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(SecretString::from)
}

impl StoreArgs {
    /// The configuration file, if one is named.
    fn file(&self) -> Result<ConfigFile> {
        Ok(match &self.config_file {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        })
    }

    /// Flags and environment over the file, over the defaults.
    fn config(self, file: &mut ConfigFile) -> StoreConfig {
        StoreConfig {
            data_dir: self
                .data_dir
                .or(file.data_dir.take())
                .unwrap_or_else(|| PathBuf::from("./batchcred-data")),
            database_url: self.database_url.or(file.database_url.take()),
            encryption_key_file: self.encryption_key_file.or(file.encryption_key_file.take()),
            encryption_key: self.encryption_key,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP server (web UI, GraphQL API at /.api/graphql).
    Serve(Box<serve::ServeArgs>),
    /// Manage user accounts.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Manage API access tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Manage configured code hosts.
    #[command(subcommand)]
    Codehosts(codehosts::CodeHostsCommand),
    /// Manage stored code host credentials.
    #[command(subcommand)]
    Credentials(credentials::CredentialsCommand),
    /// Manage the encryption keyring.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Publish the changesets a spec file lists (push each branch, open or
    /// update its pull request); resumes where an interrupted run stopped.
    Publish(publish::PublishArgs),
    /// Manage published changesets (hand one over to another user).
    #[command(subcommand)]
    Changesets(changesets::ChangesetsCommand),
    /// Read and check the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Print the GraphQL schema (SDL).
    Schema,
}

impl Args {
    /// Read from the flag or the environment only: logging starts before
    /// the configuration file is read.
    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or_default()
    }

    /// The server narrates what it does; one-shot commands stay quiet.
    pub fn default_log_level(&self) -> &'static str {
        match self.command {
            Command::Serve(_) => "info",
            _ => "warn",
        }
    }
}

pub async fn run(args: Args) -> Result<()> {
    let mut file = args.store.file()?;
    let store = args.store.config(&mut file);
    let local = Local {
        instance_name: serve::default_instance_name(&file),
        rollout_windows: file.rollout_windows()?,
        store,
    };
    match args.command {
        Command::Serve(serve_args) => serve::run(&local.store, *serve_args, file).await,
        Command::Schema => {
            print!("{}", batchcred::api::schema_sdl());
            Ok(())
        }
        Command::Users(command) => users::run_users(&local.open().await?, command).await,
        Command::Tokens(command) => tokens::run(&local.open().await?, command).await,
        Command::Codehosts(command) => codehosts::run(&local.open().await?, command).await,
        Command::Credentials(command) => credentials::run(&local.open().await?, command).await,
        Command::Keys(command) => keys::run(&local, command).await,
        Command::Publish(args) => publish::run(&local.open().await?, args).await,
        Command::Changesets(command) => changesets::run(&local.open().await?, command).await,
        Command::Audit(command) => audit::run(&local.open().await?, command).await,
    }
}

/// The CLI acts as the operator: whoever can run it on this store already
/// holds the database and the keyring.
const OPERATOR: Caller = Caller::Operator;

/// What one-shot commands work on: the local store, as this instance.
struct Local {
    store: StoreConfig,
    /// Names the instance in the comments of SSH keys generated here.
    instance_name: String,
    /// `batchcred publish` works on the queue within them, as servers do.
    rollout_windows: batchcred::domain::RolloutWindows,
}

impl Local {
    async fn open(&self) -> Result<Service> {
        let settings = ServiceSettings {
            instance_name: self.instance_name.clone(),
            session_ttl: serve::DEFAULT_SESSION_TTL,
            session_idle_timeout: None,
            code_host_timeout: batchcred::service::DEFAULT_CODE_HOST_TIMEOUT,
            publish: batchcred::service::PublishSettings {
                rollout_windows: self.rollout_windows.clone(),
                // `publish` hands its running jobs back at once when it
                // stops (Ctrl-C, or its own changesets done).
                queue: batchcred::service::QueueSettings {
                    stop_grace: std::time::Duration::ZERO,
                    ..batchcred::service::QueueSettings::default()
                },
                ..batchcred::service::PublishSettings::default()
            },
            sign_in: batchcred::service::SignInLimits::default(),
            // One-shot commands send no warnings; `serve` does.
            notify: batchcred::service::NotifySettings::default(),
        };
        Ok(batchcred::app::open_service(&self.store, settings).await?)
    }
}
