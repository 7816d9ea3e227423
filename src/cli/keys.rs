//! `batchcred keys …`: generating, rotating and inspecting the keyring.

use anyhow::{Result, bail};
use batchcred::service::{KeyId, KeySource, Keyring};
use clap::Subcommand;

use batchcred::service::KeyringChange;

use super::{Local, OPERATOR};
use batchcred::domain::CredentialOwner;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Print a new keyring (one key) to put in a key file or in
    /// BATCHCRED_ENCRYPTION_KEY.
    Generate,
    /// Add a new primary key to the keyring file and re-encrypt every
    /// credential with it. Safe while the server runs; if interrupted, run
    /// `keys reencrypt` to finish.
    Rotate,
    /// Re-encrypt every credential not yet under the primary key
    /// (resumes an interrupted rotation).
    Reencrypt,
    /// Show the keys and how many credentials each one seals.
    Status,
    /// Remove a key from the keyring file. Refused for the primary key and
    /// while any credential is still sealed with it (run `keys reencrypt`
    /// first).
    Retire {
        /// The key id, as `keys status` shows it.
        key_id: String,
    },
}

/// Credentials named when `keys retire` refuses.
const SHOWN_KEY_USES: i64 = 20;

pub async fn run(local: &Local, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Generate => {
            print!("{}", Keyring::generate()?.to_text().as_str());
        }
        KeysCommand::Rotate => {
            let path = keyring_file(
                local,
                "append a new entry (from `batchcred keys generate`) to it on every replica, \
                 restart them, then run `batchcred keys reencrypt`",
            )?;
            let rotated = Keyring::load(&KeySource::File(path.clone()))?.with_new_primary()?;
            rotated.write_file(&path)?;
            println!(
                "added primary key {} to {}",
                rotated.primary_id(),
                path.display()
            );
            local
                .open()
                .await?
                .record_keyring_change(&OPERATOR, KeyringChange::Rotated, rotated.primary_id())
                .await?;
            reencrypt(local).await?;
        }
        KeysCommand::Reencrypt => reencrypt(local).await?,
        KeysCommand::Retire { key_id } => retire(local, &key_id).await?,
        KeysCommand::Status => {
            let status = local.open().await?.key_status(&OPERATOR).await?;
            println!("primary key: {}", status.primary);
            println!("keys: {}", status.known.join(", "));
            for (key, count) in status.credentials_by_key {
                println!("  {key}: {count} credential(s)");
            }
        }
    }
    Ok(())
}

/// The keyring file of this instance; with BATCHCRED_ENCRYPTION_KEY there
/// is none, and `instead` says what to do.
fn keyring_file(local: &Local, instead: &str) -> Result<std::path::PathBuf> {
    match batchcred::app::resolve_store(&local.store)?.key_source {
        KeySource::File(path) => Ok(path),
        KeySource::Inline(_) => {
            bail!("the keyring comes from BATCHCRED_ENCRYPTION_KEY: {instead}")
        }
    }
}

async fn retire(local: &Local, key_id: &str) -> Result<()> {
    let path = keyring_file(
        local,
        "once `batchcred keys status` shows no credential under the key, remove its entry \
         on every replica and restart them",
    )?;
    let keyring = Keyring::load(&KeySource::File(path.clone()))?;
    let key = KeyId::parse(key_id)?;
    if !keyring.key_ids().any(|k| k == &key) {
        bail!("key {key} is not in {}", path.display());
    }
    if keyring.primary_id() == &key {
        bail!("key {key} is the primary key: run `batchcred keys rotate` first, then retire it");
    }
    let service = local.open().await?;
    let uses = service
        .credentials_sealed_with(&OPERATOR, &key, SHOWN_KEY_USES)
        .await?;
    if !uses.is_empty() {
        for found in &uses {
            let owner = match (found.owner, &found.username) {
                (CredentialOwner::User(_), Some(name)) => format!("user {name}"),
                (CredentialOwner::User(id), None) => format!("user {id}"),
                (CredentialOwner::Site, _) => "site".to_owned(),
            };
            eprintln!(
                "  credential {} ({owner}) on {}",
                found.credential, found.code_host
            );
        }
        let more = if uses.len() as i64 == SHOWN_KEY_USES {
            " (first ones shown)"
        } else {
            ""
        };
        bail!(
            "key {key} still seals the credentials above{more}: run `batchcred keys reencrypt`, \
             then retire it"
        );
    }
    let webhooks = service.webhook_secrets_sealed_with(&OPERATOR, &key).await?;
    if !webhooks.is_empty() {
        for host in &webhooks {
            eprintln!("  webhook secret of {host}");
        }
        bail!(
            "key {key} still seals the webhook secrets above: run `batchcred keys reencrypt`, \
             then retire it"
        );
    }
    keyring.without(&key)?.write_file(&path)?;
    service
        .record_keyring_change(&OPERATOR, KeyringChange::Retired, &key)
        .await?;
    println!("retired key {key} from {}", path.display());
    Ok(())
}

async fn reencrypt(local: &Local) -> Result<()> {
    let service = local.open().await?;
    let report = service
        .reencrypt_credentials(&OPERATOR, |progress| {
            if progress.reencrypted % 100 == 0 && progress.reencrypted > 0 {
                eprintln!("re-encrypted {} credential(s)…", progress.reencrypted);
            }
        })
        .await?;
    println!(
        "re-encrypted {} credential(s) and {} webhook secret(s); {} changed concurrently \
         and were left as they are",
        report.reencrypted, report.webhook_secrets, report.skipped
    );
    if !report.mismatched.is_empty() {
        let ids: Vec<String> = report.mismatched.iter().map(ToString::to_string).collect();
        bail!(
            "{} credential(s) do not match their seal (changed outside batchcred) and were \
             left as they are, flagged as needing attention: {}",
            ids.len(),
            ids.join(", ")
        );
    }
    Ok(())
}
