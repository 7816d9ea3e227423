//! Key rotation: re-encrypting every stored secret under the primary key
//! and the current seal version, and checking which rows a key still seals.

use std::collections::HashSet;

use chrono::Utc;

use super::credentials::SEAL_VERSION;
use super::{Error, Result, Service};
use crate::auth::Caller;
use crate::crypto::KeyId;
use crate::domain::{CodeHostUrl, CredentialId, CredentialOwner};
use crate::store::{CredentialRecord, SecretUpdate};

/// The outcome of a re-encryption pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReencryptReport {
    /// Rows now sealed with the primary key.
    pub reencrypted: usize,
    /// Rows changed or deleted by someone else meanwhile (left as they are:
    /// a concurrent write already used the primary key).
    pub skipped: usize,
    /// Rows that do not match their seal (changed outside batchcred): left
    /// as they are and flagged as needing attention.
    pub mismatched: Vec<CredentialId>,
    /// Code host webhook secrets now sealed with the primary key.
    pub webhook_secrets: usize,
}

/// Which keys seal how many credentials.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub primary: String,
    pub known: Vec<String>,
    pub credentials_by_key: Vec<(String, i64)>,
}

/// A credential still sealed with a key (why `keys retire` refuses).
#[derive(Debug, Clone)]
pub struct KeyUse {
    pub credential: CredentialId,
    pub owner: CredentialOwner,
    /// The owner's username (`None` for the site credential).
    pub username: Option<String>,
    pub code_host: CodeHostUrl,
}

/// Rows re-encrypted per database round trip.
const BATCH: i64 = 100;

/// Which rows a re-sealing pass takes.
enum Pending<'a> {
    /// Not under the primary key, or on an older seal version.
    NotUnder(&'a KeyId),
    /// On an older seal version only.
    OldSealVersion,
}

impl Service {
    /// Re-encrypts, in batches, every credential not sealed with the
    /// primary key and the current seal version. Each row is its own
    /// compare-and-swap update, so the service stays online, and a crash
    /// halfway loses nothing: running it again picks up the rows left.
    pub async fn reencrypt_credentials(
        &self,
        caller: &Caller,
        progress: impl FnMut(&ReencryptReport),
    ) -> Result<ReencryptReport> {
        caller.require_site_admin()?;
        self.encryptor.reload()?;
        let primary = self.encryptor.primary_key_id();
        let mut report = self.reseal(Pending::NotUnder(&primary), progress).await?;
        report.webhook_secrets = self.reseal_webhook_secrets().await?;
        tracing::info!(
            reencrypted = report.reencrypted,
            skipped = report.skipped,
            mismatched = report.mismatched.len(),
            webhook_secrets = report.webhook_secrets,
            primary = %primary,
            "re-encryption finished"
        );
        Ok(report)
    }

    /// Re-seals every credential still on an older seal version (the
    /// server does this in the background after it starts). Rows keep
    /// opening under their old version until then.
    pub async fn upgrade_credential_seals(&self, caller: &Caller) -> Result<ReencryptReport> {
        caller.require_site_admin()?;
        let report = self.reseal(Pending::OldSealVersion, |_| {}).await?;
        if report.reencrypted + report.mismatched.len() > 0 {
            tracing::info!(
                resealed = report.reencrypted,
                mismatched = report.mismatched.len(),
                "re-sealed credentials to the current seal version"
            );
        }
        Ok(report)
    }

    async fn reseal(
        &self,
        pending: Pending<'_>,
        mut progress: impl FnMut(&ReencryptReport),
    ) -> Result<ReencryptReport> {
        let mut report = ReencryptReport::default();
        // Rows left as they are, so the next batch does not return them.
        let mut left: HashSet<CredentialId> = HashSet::new();
        loop {
            let limit = BATCH + left.len() as i64;
            let batch = match pending {
                Pending::NotUnder(primary) => {
                    self.store
                        .list_credentials_to_reseal(primary, SEAL_VERSION, limit)
                        .await?
                }
                Pending::OldSealVersion => {
                    self.store
                        .list_credentials_sealed_before(SEAL_VERSION, limit)
                        .await?
                }
            };
            let batch: Vec<_> = batch
                .into_iter()
                .filter(|record| !left.contains(&record.id))
                .collect();
            if batch.is_empty() {
                break;
            }
            for record in batch {
                if !self.reseal_one(&record, &mut report).await? {
                    left.insert(record.id);
                }
                progress(&report);
            }
        }
        Ok(report)
    }

    /// Re-seals one row; returns whether it was.
    async fn reseal_one(
        &self,
        record: &CredentialRecord,
        report: &mut ReencryptReport,
    ) -> Result<bool> {
        let host = match self.store.find_code_host(record.code_host_id).await {
            Ok(host) => host,
            // Deleted meanwhile, with its credentials.
            Err(crate::store::Error::NotFound) => {
                report.skipped += 1;
                return Ok(false);
            }
            Err(other) => return Err(other.into()),
        };
        let secret = match self.open_secret_to_use(record, &host).await {
            Err(Error::SealMismatch) => {
                report.mismatched.push(record.id);
                return Ok(false);
            }
            opened => opened?,
        };
        let update = SecretUpdate {
            secret: self.seal_secret(record.id, record.owner, &host, &secret)?,
            seal_version: SEAL_VERSION,
            ssh_public_key: record.ssh_public_key.clone(),
            ssh_key_pending: record.ssh_key_pending,
            updated_at: Utc::now(),
        };
        let replaced = self
            .store
            .replace_credential_secret(record.id, &record.secret, update)
            .await?;
        if replaced {
            report.reencrypted += 1;
        } else {
            report.skipped += 1;
        }
        Ok(replaced)
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

    /// The code hosts whose webhook secret is still sealed with `key`.
    pub async fn webhook_secrets_sealed_with(
        &self,
        caller: &Caller,
        key: &KeyId,
    ) -> Result<Vec<CodeHostUrl>> {
        caller.require_site_admin()?;
        let mut hosts = Vec::new();
        for id in self.store.code_hosts_with_webhooks().await? {
            let sealed_with_key = self
                .store
                .webhook_secret(id)
                .await?
                .is_some_and(|sealed| &sealed.key_id == key);
            if sealed_with_key {
                hosts.push(self.store.find_code_host(id).await?.url);
            }
        }
        Ok(hosts)
    }

    /// Up to `limit` credentials still sealed with `key`, with their
    /// owner and code host, to say why the key cannot be retired yet.
    pub async fn credentials_sealed_with(
        &self,
        caller: &Caller,
        key: &KeyId,
        limit: i64,
    ) -> Result<Vec<KeyUse>> {
        caller.require_site_admin()?;
        let records = self.store.list_credentials_under_key(key, limit).await?;
        let mut uses = Vec::with_capacity(records.len());
        for record in records {
            let code_host = self.store.find_code_host(record.code_host_id).await?;
            let username = match record.owner {
                CredentialOwner::User(user) => Some(self.store.find_user(user).await?.username),
                CredentialOwner::Site => None,
            };
            uses.push(KeyUse {
                credential: record.id,
                owner: record.owner,
                username,
                code_host: code_host.url,
            });
        }
        Ok(uses)
    }
}
