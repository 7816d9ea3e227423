//! Key rotation: re-encrypting every stored secret under the primary key.

use chrono::Utc;

use super::{Result, Service};
use crate::auth::Caller;
use crate::store::SecretUpdate;

/// The outcome of a re-encryption pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReencryptReport {
    /// Rows now sealed with the primary key.
    pub reencrypted: usize,
    /// Rows changed or deleted by someone else meanwhile (left as they are:
    /// a concurrent write already used the primary key).
    pub skipped: usize,
}

/// Which keys seal how many credentials.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub primary: String,
    pub known: Vec<String>,
    pub credentials_by_key: Vec<(String, i64)>,
}

/// Rows re-encrypted per database round trip.
const BATCH: i64 = 100;

impl Service {
    /// Re-encrypts, in batches, every credential not sealed with the
    /// primary key. Each row is its own compare-and-swap update, so the
    /// service stays online, and a crash halfway loses nothing: running it
    /// again picks up the rows still on an older key.
    pub async fn reencrypt_credentials(
        &self,
        caller: &Caller,
        mut progress: impl FnMut(&ReencryptReport),
    ) -> Result<ReencryptReport> {
        caller.require_site_admin()?;
        self.encryptor.reload()?;
        let primary = self.encryptor.primary_key_id();
        let mut report = ReencryptReport::default();
        let mut skipped_ids = std::collections::HashSet::new();
        loop {
            let batch = self
                .store
                .list_credentials_not_under_key(&primary, BATCH + skipped_ids.len() as i64)
                .await?;
            let pending: Vec<_> = batch
                .into_iter()
                .filter(|record| !skipped_ids.contains(&record.id))
                .collect();
            if pending.is_empty() {
                break;
            }
            for record in pending {
                let secret = self.open_secret(&record)?;
                let update = SecretUpdate {
                    secret: self.seal_secret(record.id, &secret)?,
                    ssh_public_key: record.ssh_public_key.clone(),
                    ssh_key_pending: record.ssh_key_pending,
                    updated_at: Utc::now(),
                };
                if self
                    .store
                    .replace_credential_secret(record.id, &record.secret, update)
                    .await?
                {
                    report.reencrypted += 1;
                } else {
                    report.skipped += 1;
                    skipped_ids.insert(record.id);
                }
                progress(&report);
            }
        }
        tracing::info!(
            reencrypted = report.reencrypted,
            skipped = report.skipped,
            primary = %primary,
            "re-encryption finished"
        );
        Ok(report)
    }

    /// The keyring and how many credentials each key seals.
    pub async fn key_status(&self, caller: &Caller) -> Result<KeyStatus> {
        caller.require_site_admin()?;
        self.encryptor.reload()?;
        Ok(KeyStatus {
            primary: self.encryptor.primary_key_id().to_string(),
            known: self
                .encryptor
                .key_ids()
                .iter()
                .map(ToString::to_string)
                .collect(),
            credentials_by_key: self.store.count_credentials_by_key().await?,
        })
    }
}
