//! SSH commit signing for a credential (GitHub and GitLab): turning it on,
//! with a generated key or the credential's SSH key, and off. The state
//! shows on `BatchChangesCredential` (`signingPublicKey`,
//! `signingKeySource`).

use async_graphql::{Context, Enum, ID, Object};

use super::context_parts;
use super::error::IntoGraphql;
use super::ids;
use super::types::BatchChangesCredential;
use crate::domain::SigningKeySource;

/// Where a credential's commit-signing key came from.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "CommitSigningKeySource")]
pub enum CommitSigningKeySource {
    /// An Ed25519 key generated for signing alone.
    Generated,
    /// The credential's SSH key (credentials on SSH code hosts).
    SshKey,
}

impl From<SigningKeySource> for CommitSigningKeySource {
    fn from(source: SigningKeySource) -> Self {
        match source {
            SigningKeySource::Generated => Self::Generated,
            SigningKeySource::SshKey => Self::SshKey,
        }
    }
}

impl From<CommitSigningKeySource> for SigningKeySource {
    fn from(source: CommitSigningKeySource) -> Self {
        match source {
            CommitSigningKeySource::Generated => Self::Generated,
            CommitSigningKeySource::SshKey => Self::SshKey,
        }
    }
}

/// Turning a credential's commit signing on and off.
#[derive(Default)]
pub struct SshSigningMutation;

#[Object]
impl SshSigningMutation {
    /// Signs the commits batchcred creates with this credential from now
    /// on (GitHub and GitLab), with a generated key (the default) or the
    /// credential's SSH key. Upload `signingPublicKey` to the code host as
    /// a signing key. Enabling again with the same source keeps the key.
    async fn enable_batch_changes_credential_commit_signing(
        &self,
        ctx: &Context<'_>,
        batch_changes_credential: ID,
        #[graphql(default_with = "CommitSigningKeySource::Generated")]
        source: CommitSigningKeySource,
    ) -> async_graphql::Result<BatchChangesCredential> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_credential_id(&batch_changes_credential).gql()?;
        Ok(BatchChangesCredential(
            service
                .enable_commit_signing(caller, id, source.into())
                .await
                .gql()?,
        ))
    }

    /// Stops signing commits with this credential; a generated signing key
    /// is destroyed.
    async fn disable_batch_changes_credential_commit_signing(
        &self,
        ctx: &Context<'_>,
        batch_changes_credential: ID,
    ) -> async_graphql::Result<BatchChangesCredential> {
        let (service, caller) = context_parts(ctx)?;
        let id = ids::parse_credential_id(&batch_changes_credential).gql()?;
        Ok(BatchChangesCredential(
            service.disable_commit_signing(caller, id).await.gql()?,
        ))
    }
}
