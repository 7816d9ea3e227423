//! Turning SSH commit signing on and off for a credential. GitHub and
//! GitLab show a commit signed with an SSH key as verified once its owner
//! has uploaded the public key as a signing key; batchcred then signs every
//! commit it creates with that credential (see `publish::git::signing`).
//!
//! The key is either an Ed25519 keypair generated for signing alone, whose
//! private half is sealed inside the credential's secret, or the
//! credential's SSH push key (credentials on SSH code hosts have one).

use chrono::Utc;

use super::credentials::{CredentialView, SEAL_VERSION};
use super::{Error, Result, Service, audit};
use crate::auth::Caller;
use crate::domain::{CredentialId, SigningKey, SigningKeySource, SshKeyAlgorithm};
use crate::store::SecretUpdate;

impl Service {
    /// Signs the commits published with credential `id` from now on, with
    /// a generated key or the credential's SSH key. Whoever may manage the
    /// credential may do this; others' credentials look nonexistent.
    /// Enabling again with the same source keeps the key (so the one
    /// already uploaded stays valid); another source replaces it.
    #[tracing::instrument(skip(self, caller))]
    pub async fn enable_commit_signing(
        &self,
        caller: &Caller,
        id: CredentialId,
        source: SigningKeySource,
    ) -> Result<CredentialView> {
        let (record, host) = self.accessible_credential(caller, id).await?;
        let kind = host.kind;
        if !kind.descriptor().supports_ssh_signing {
            return Err(Error::InvalidInput(format!(
                "{} does not verify SSH-signed commits; commit signing is available for \
                 GitHub and GitLab credentials",
                kind.display_name()
            )));
        }
        if record.signing.as_ref().map(|s| s.source) == Some(source) {
            return Ok(CredentialView::new(&record, &host));
        }
        let mut secret = self.open_secret_to_use(&record, &host).await?;
        let signing = match source {
            SigningKeySource::SshKey => {
                let (Some(public_key), Some(_)) = (
                    record.ssh_public_key.clone(),
                    secret.ssh_private_key.as_ref(),
                ) else {
                    return Err(Error::InvalidInput(format!(
                        "this credential has no SSH key to sign with ({} {} is reached over \
                         HTTPS); use a generated signing key instead",
                        kind.display_name(),
                        host.url
                    )));
                };
                secret.signing_private_key = None;
                SigningKey { public_key, source }
            }
            SigningKeySource::Generated => {
                let keypair = self.generate_keypair(SshKeyAlgorithm::Ed25519).await?;
                secret.signing_private_key = Some(keypair.private_key);
                SigningKey {
                    public_key: keypair.public_key,
                    source,
                }
            }
        };
        let mut entry = audit::about_credential(
            audit::by(caller, audit::event::CREDENTIAL_SIGNING_ENABLED),
            &record,
            &host,
        );
        entry.detail["source"] = source.as_str().into();
        self.write_signing(&record, &host, &secret, Some(&signing), &entry)
            .await?;
        tracing::info!(credential = %id, source = source.as_str(), "commit signing enabled");
        let record = self.store.find_credential(id).await?;
        Ok(CredentialView::new(&record, &host))
    }

    /// Stops signing the commits published with credential `id`; a
    /// generated signing key is destroyed. Nothing happens (and nothing is
    /// recorded) when signing is already off.
    #[tracing::instrument(skip(self, caller))]
    pub async fn disable_commit_signing(
        &self,
        caller: &Caller,
        id: CredentialId,
    ) -> Result<CredentialView> {
        let (record, host) = self.accessible_credential(caller, id).await?;
        let Some(signing) = &record.signing else {
            return Ok(CredentialView::new(&record, &host));
        };
        let mut secret = self.open_secret_to_use(&record, &host).await?;
        secret.signing_private_key = None;
        let mut entry = audit::about_credential(
            audit::by(caller, audit::event::CREDENTIAL_SIGNING_DISABLED),
            &record,
            &host,
        );
        entry.detail["source"] = signing.source.as_str().into();
        self.write_signing(&record, &host, &secret, None, &entry)
            .await?;
        tracing::info!(credential = %id, "commit signing disabled");
        let record = self.store.find_credential(id).await?;
        Ok(CredentialView::new(&record, &host))
    }

    /// Re-seals the secret and records the signing state, audited, only
    /// if the credential was not changed meanwhile.
    async fn write_signing(
        &self,
        record: &crate::store::CredentialRecord,
        host: &crate::domain::CodeHostConfig,
        secret: &super::CredentialSecret,
        signing: Option<&SigningKey>,
        entry: &crate::store::AuditEntry,
    ) -> Result<()> {
        let update = SecretUpdate {
            secret: self.seal_secret(record.id, record.owner, host, secret)?,
            seal_version: SEAL_VERSION,
            ssh_public_key: record.ssh_public_key.clone(),
            ssh_key_pending: record.ssh_key_pending,
            updated_at: Utc::now(),
        };
        self.store
            .replace_credential_signing(entry, record.id, &record.secret, update, signing)
            .await
            .map_err(|error| match error {
                crate::store::Error::NotFound => Error::Conflict(
                    "the credential changed meanwhile (or was removed); try again".into(),
                ),
                other => other.into(),
            })
    }
}
