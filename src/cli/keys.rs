//! `batchcred keys …`: generating, rotating and inspecting the keyring.

use anyhow::{Result, bail};
use batchcred::crypto::{KeySource, Keyring};
use clap::Subcommand;

use super::{Local, OPERATOR};

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
}

pub async fn run(local: &Local, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Generate => {
            print!("{}", Keyring::generate()?.to_text().as_str());
        }
        KeysCommand::Rotate => {
            let resolved = local.store.resolve()?;
            let KeySource::File(path) = resolved.key_source else {
                bail!(
                    "the keyring comes from BATCHCRED_ENCRYPTION_KEY: append a new entry \
                     (from `batchcred keys generate`) to it on every replica, restart them, \
                     then run `batchcred keys reencrypt`"
                );
            };
            let rotated = Keyring::load(&KeySource::File(path.clone()))?.with_new_primary()?;
            rotated.write_file(&path)?;
            println!(
                "added primary key {} to {}",
                rotated.primary_id(),
                path.display()
            );
            reencrypt(local).await?;
        }
        KeysCommand::Reencrypt => reencrypt(local).await?,
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
        "re-encrypted {} credential(s); {} changed concurrently and were left as they are",
        report.reencrypted, report.skipped
    );
    Ok(())
}
