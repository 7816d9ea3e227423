//! Which credential publishes a changeset: the user's own for the code
//! host, else the global one where the site policy allows it, else a clear
//! error telling them what to do.

use super::credentials::CredentialSecret;
use super::{Error, Result, Service};
use crate::auth::Caller;
use crate::domain::{
    AuthStrategy, CodeHostConfig, CodeHostId, CodeHostUrl, CredentialId, CredentialOwner,
    PolicyRefusal, SigningKey, SigningKeySource, UserId,
};
use crate::publish::git::CommitSigning;
use crate::store::CredentialRecord;

/// Whose credential was used; recorded with each published changeset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// The user's own token: changesets are created under their name.
    User,
    /// The global service account, because the user has no token.
    Site,
}

impl CredentialSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Site => "site",
        }
    }
}

/// A credential ready to use, with its decrypted secret.
pub struct ResolvedCredential {
    pub credential_id: CredentialId,
    pub source: CredentialSource,
    pub code_host: CodeHostConfig,
    /// The code host username stored with the credential, if any.
    pub username: Option<String>,
    /// The code host account the token belongs to, from its last check.
    pub code_host_user: Option<String>,
    pub ssh_public_key: Option<String>,
    /// The key the credential signs commits with, when signing is on.
    pub signing: Option<SigningKey>,
    pub secret: CredentialSecret,
}

impl ResolvedCredential {
    /// The key to sign the commits of a push with: `None` when signing is
    /// off or the code host does not verify SSH signatures.
    pub fn commit_signing(&self) -> Option<CommitSigning> {
        if !self.code_host.kind.descriptor().supports_ssh_signing {
            return None;
        }
        let signing = self.signing.as_ref()?;
        let private_key = match signing.source {
            SigningKeySource::Generated => self.secret.signing_private_key.clone(),
            SigningKeySource::SshKey => self.secret.ssh_private_key.clone(),
        }?;
        Some(CommitSigning {
            private_key,
            public_key: signing.public_key.clone(),
        })
    }
}

impl std::fmt::Debug for ResolvedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedCredential")
            .field("credential_id", &self.credential_id)
            .field("source", &self.source)
            .field("code_host", &self.code_host.url)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Resolves the credential that publishes on `user`'s behalf to
    /// `repository` on the code host at `url`. The caller must be that
    /// user themselves or the operator (never a site admin for someone
    /// else: the secret is decrypted to publish with). The global credential is only
    /// handed out where the code host's policy allows it for this user and
    /// repository; this runs before anything is asked of the code host, so
    /// a refused user learns nothing through the service account.
    pub async fn resolve_credential(
        &self,
        caller: &Caller,
        user: UserId,
        url: &CodeHostUrl,
        repository: &str,
    ) -> Result<ResolvedCredential> {
        caller.require_publishing_as(user)?;
        let code_host = self.configured_code_host(url).await?;
        let (record, source) = match self
            .own_credential(code_host.id, CredentialOwner::User(user), repository)
            .await?
        {
            Some(record) => (record, CredentialSource::User),
            None => match self
                .own_credential(code_host.id, CredentialOwner::Site, repository)
                .await?
            {
                Some(record) => {
                    self.check_global_policy(&code_host, user, repository)
                        .await?;
                    (record, CredentialSource::Site)
                }
                None => {
                    return Err(Error::NotFound(format!(
                        "no credential for {} {}: add a token in Settings → Batch Changes, \
                         or ask a site admin to add a global one",
                        code_host.kind.display_name(),
                        code_host.url
                    )));
                }
            },
        };
        let mut secret = self.open_secret_to_use(&record, &code_host).await?;
        if let Some(app) = &record.github_app {
            // An App credential is only chosen with an installation on the
            // repository's namespace; it acts through a token minted for it.
            let installation = app.installation_for(repository).ok_or_else(|| {
                Error::Internal("GitHub App chosen without an installation".into())
            })?;
            secret.token = self
                .installation_token(record.id, &code_host, app, installation, &secret)
                .await?;
        }
        Ok(ResolvedCredential {
            credential_id: record.id,
            source,
            code_host,
            username: record.username,
            code_host_user: record.check.code_host_user,
            ssh_public_key: record.ssh_public_key,
            signing: record.signing,
            secret,
        })
    }

    /// One owner's credential for `repository`: a GitHub App installed on
    /// its namespace before a token.
    async fn own_credential(
        &self,
        code_host: CodeHostId,
        owner: CredentialOwner,
        repository: &str,
    ) -> Result<Option<CredentialRecord>> {
        if let Some(app) = self
            .store
            .find_credential_with(code_host, owner, AuthStrategy::GitHubApp)
            .await?
            && app
                .github_app
                .as_ref()
                .is_some_and(|info| info.installation_for(repository).is_some())
        {
            return Ok(Some(app));
        }
        Ok(self.store.find_credential_for(code_host, owner).await?)
    }

    /// Refuses with a message naming the policy (never the credential's
    /// account) when the policy keeps `user` from the global credential.
    async fn check_global_policy(
        &self,
        code_host: &CodeHostConfig,
        user: UserId,
        repository: &str,
    ) -> Result<()> {
        let policy = &code_host.global_credential_policy;
        let Err(refusal) = policy.check(user, repository) else {
            return Ok(());
        };
        let whom = match refusal {
            PolicyRefusal::User => format!("by {}", self.store.find_user(user).await?.username),
            PolicyRefusal::Repository => format!("for {repository}"),
        };
        Err(Error::Forbidden(format!(
            "the global credential for {} {} may not be used {whom} (site policy: {}); \
             add your own token in Settings → Batch Changes",
            code_host.kind.display_name(),
            code_host.url,
            policy.describe(refusal)
        )))
    }
}
