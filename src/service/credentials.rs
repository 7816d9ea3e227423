//! Code host credentials: creating, reading, deleting, and the encrypted
//! secret each one carries.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{Error, Result, Service, not_found};
use crate::auth::Caller;
use crate::codehost::CheckOptions;
use crate::crypto::{Sealed, SshKeypair, generate_ssh_keypair};
use crate::domain::{
    AuthStrategy, CodeHostConfig, CodeHostKind, CodeHostUrl, CredentialId, CredentialOwner,
    GitHubAppInfo, GitUrlType, SigningKey, SshKeyAlgorithm, Token, UserId,
};
use crate::store::{CheckState, CredentialRecord, NewCredential, SecretUpdate};

/// A request to store a credential.
pub struct CreateCredential {
    /// `None` stores the global (site) credential.
    pub user: Option<UserId>,
    pub kind: CodeHostKind,
    pub url: String,
    pub username: Option<String>,
    /// Wiped from memory when dropped.
    pub token: SecretString,
    /// Also check that the token may push to this repository
    /// (`owner/name`): the only check possible for GitHub fine-grained
    /// tokens.
    pub repository: Option<String>,
}

impl std::fmt::Debug for CreateCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateCredential")
            .field("user", &self.user)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

/// What may be shown about a credential: never its secret.
#[derive(Debug, Clone)]
pub struct CredentialView {
    pub id: CredentialId,
    pub owner: CredentialOwner,
    pub kind: CodeHostKind,
    pub url: CodeHostUrl,
    pub username: Option<String>,
    pub ssh_public_key: Option<String>,
    pub ssh_key_pending: bool,
    /// The key commits are signed with; `None` while signing is off.
    pub signing: Option<SigningKey>,
    /// Whether the code host verifies SSH-signed commits, so signing may
    /// be turned on.
    pub supports_signing: bool,
    /// A token, or a GitHub App.
    pub auth_strategy: AuthStrategy,
    /// The App and its installations, for GitHub App credentials.
    pub github_app: Option<Box<GitHubAppInfo>>,
    pub created_at: DateTime<Utc>,
    /// The code host account the token belongs to.
    pub code_host_user: Option<String>,
    /// `None` where the code host does not report scopes.
    pub scopes: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub warnings: Vec<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    /// Why the last check failed; `None` when it passed.
    pub last_check_error: Option<String>,
}

impl CredentialView {
    pub(crate) fn new(record: &CredentialRecord, host: &CodeHostConfig) -> Self {
        Self {
            id: record.id,
            owner: record.owner,
            kind: host.kind,
            url: host.url.clone(),
            username: record.username.clone(),
            ssh_public_key: record.ssh_public_key.clone(),
            ssh_key_pending: record.ssh_key_pending,
            signing: record.signing.clone(),
            supports_signing: host.kind.descriptor().supports_ssh_signing,
            auth_strategy: record.auth_strategy,
            github_app: record.github_app.clone().map(Box::new),
            created_at: record.created_at,
            code_host_user: record.check.code_host_user.clone(),
            scopes: record.check.scopes.clone(),
            expires_at: record.check.expires_at,
            warnings: record.check.warnings.clone(),
            last_checked_at: record.check.last_checked_at,
            last_check_error: record.check.last_check_error.clone(),
        }
    }

    pub fn is_site_credential(&self) -> bool {
        self.owner == CredentialOwner::Site
    }

    /// Whether its owner should act: the token expires within a week (or
    /// has expired), or the last check against the code host failed.
    pub fn needs_attention(&self) -> bool {
        self.attention_reason().is_some()
    }

    /// Why [`Self::needs_attention`] holds, in words for its owner.
    pub fn attention_reason(&self) -> Option<String> {
        if let Some(error) = &self.last_check_error {
            return Some(format!("The last check failed: {error}"));
        }
        let now = Utc::now();
        let at = self
            .expires_at
            .filter(|at| crate::codehost::expires_soon(*at, now))?;
        let day = at.format("%Y-%m-%d");
        Some(if at <= now {
            format!("The token expired on {day}: replace it.")
        } else {
            format!("The token expires on {day}: replace it before then.")
        })
    }
}

/// The plaintext sealed into `credentials.secret`. Wiped when dropped.
#[derive(Serialize, Deserialize)]
struct SecretPayload {
    token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ssh_private_key: Option<String>,
    /// A generated commit-signing key (absent in secrets sealed before
    /// signing existed, and when signing is off or uses the SSH key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signing_private_key: Option<String>,
    /// A GitHub App credential's private key (PEM), and the client and
    /// webhook secrets of an App created through the manifest flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    github_app_private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    github_app_client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    github_app_webhook_secret: Option<String>,
}

impl Drop for SecretPayload {
    fn drop(&mut self) {
        self.token.zeroize();
        self.ssh_private_key.zeroize();
        self.signing_private_key.zeroize();
        self.github_app_private_key.zeroize();
        self.github_app_client_secret.zeroize();
        self.github_app_webhook_secret.zeroize();
    }
}

/// The decrypted secret of a credential, for the code paths that use it.
pub struct CredentialSecret {
    pub token: SecretString,
    pub ssh_private_key: Option<SecretString>,
    /// The private half of a generated signing key (see
    /// [`crate::domain::SigningKeySource::Generated`]).
    pub signing_private_key: Option<SecretString>,
    /// Set on GitHub App credentials only (whose `token` is empty until
    /// resolution puts a minted installation token there).
    pub github_app: Option<GitHubAppSecret>,
}

/// The secrets of a GitHub App credential.
pub struct GitHubAppSecret {
    pub private_key: SecretString,
    pub client_secret: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
}

fn expose(secret: Option<&SecretString>) -> Option<String> {
    secret.map(|s| s.expose_secret().to_owned())
}

/// The associated-data version new seals use (see [`associated_data`]).
pub(crate) const SEAL_VERSION: i64 = 2;

/// What a credential's ciphertext is bound to. Version 2 names everything
/// that decides whose token it is and where it is sent: the row, its
/// owner, and its code host's id, kind and (normalised) URL, so a row moved
/// to another user or to the site, or a code host pointed elsewhere, no
/// longer decrypts. Version 1 (rows sealed before it, re-sealed at start-up)
/// names only the row. Fields are NUL-separated: none can contain a NUL.
fn associated_data(
    version: i64,
    id: CredentialId,
    owner: CredentialOwner,
    host: &CodeHostConfig,
) -> Result<Vec<u8>> {
    match version {
        1 => Ok(format!("batchcred/credentials/{id}/secret").into_bytes()),
        2 => {
            let owner = match owner {
                CredentialOwner::User(user) => format!("user:{user}"),
                CredentialOwner::Site => "site".to_owned(),
            };
            Ok(format!(
                "batchcred/credential/v2\0{id}\0{owner}\0{}\0{}\0{}",
                host.id,
                host.kind.as_str(),
                host.url.as_str()
            )
            .into_bytes())
        }
        // An unknown version is itself a record that does not match.
        _ => Err(Error::SealMismatch),
    }
}

const MAX_USERNAME_LEN: usize = 256;

fn validate_username(kind: CodeHostKind, username: Option<String>) -> Result<Option<String>> {
    let username = username
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    match &username {
        None if kind.requires_username() => Err(Error::InvalidInput(format!(
            "{} credentials need a username",
            kind.display_name()
        ))),
        Some(name)
            if name.len() > MAX_USERNAME_LEN
                || name.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Err(Error::InvalidInput(
                "username must be at most 256 characters, without spaces".into(),
            ))
        }
        _ => Ok(username),
    }
}

impl Service {
    /// Seals a credential's secret for the row `id` of `owner` on `host`,
    /// with the current [`SEAL_VERSION`].
    pub(crate) fn seal_secret(
        &self,
        id: CredentialId,
        owner: CredentialOwner,
        host: &CodeHostConfig,
        secret: &CredentialSecret,
    ) -> Result<Sealed> {
        let payload = SecretPayload {
            token: secret.token.expose_secret().to_owned(),
            ssh_private_key: secret
                .ssh_private_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned()),
            signing_private_key: secret
                .signing_private_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned()),
            github_app_private_key: expose(secret.github_app.as_ref().map(|a| &a.private_key)),
            github_app_client_secret: expose(
                secret
                    .github_app
                    .as_ref()
                    .and_then(|a| a.client_secret.as_ref()),
            ),
            github_app_webhook_secret: expose(
                secret
                    .github_app
                    .as_ref()
                    .and_then(|a| a.webhook_secret.as_ref()),
            ),
        };
        let plaintext = Zeroizing::new(
            serde_json::to_vec(&payload).map_err(|e| Error::Internal(e.to_string()))?,
        );
        let associated_data = associated_data(SEAL_VERSION, id, owner, host)?;
        Ok(self.encryptor.seal(&plaintext, &associated_data)?)
    }

    /// Opens a credential's secret. [`Error::SealMismatch`] when the
    /// record (owner, code host, ciphertext) is not what was sealed.
    pub(crate) fn open_secret(
        &self,
        record: &CredentialRecord,
        host: &CodeHostConfig,
    ) -> Result<CredentialSecret> {
        if record.code_host_id != host.id {
            return Err(Error::SealMismatch);
        }
        let associated_data = associated_data(record.seal_version, record.id, record.owner, host)?;
        let plaintext = self
            .encryptor
            .open(&record.secret, &associated_data)
            .map_err(|error| match error {
                crate::crypto::Error::Decrypt => Error::SealMismatch,
                other => other.into(),
            })?;
        let mut payload: SecretPayload = serde_json::from_slice(&plaintext).map_err(|_| {
            Error::Internal(format!("credential {} holds a malformed secret", record.id))
        })?;
        Ok(CredentialSecret {
            token: SecretString::from(std::mem::take(&mut payload.token)),
            ssh_private_key: payload.ssh_private_key.take().map(SecretString::from),
            signing_private_key: payload.signing_private_key.take().map(SecretString::from),
            github_app: payload
                .github_app_private_key
                .take()
                .map(|private_key| GitHubAppSecret {
                    private_key: SecretString::from(private_key),
                    client_secret: payload
                        .github_app_client_secret
                        .take()
                        .map(SecretString::from),
                    webhook_secret: payload
                        .github_app_webhook_secret
                        .take()
                        .map(SecretString::from),
                }),
        })
    }

    /// Opens a credential's secret to use it. A record that does not match
    /// its seal is recorded as failing its check (so it shows as needing
    /// attention) and its secret is never used.
    pub(crate) async fn open_secret_to_use(
        &self,
        record: &CredentialRecord,
        host: &CodeHostConfig,
    ) -> Result<CredentialSecret> {
        let opened = self.open_secret(record, host);
        if let Err(Error::SealMismatch) = &opened {
            self.flag_seal_mismatch(record).await?;
        }
        opened
    }

    /// Records that a credential does not match its seal as its last check
    /// error; returns the check state recorded.
    pub(crate) async fn flag_seal_mismatch(&self, record: &CredentialRecord) -> Result<CheckState> {
        tracing::error!(
            credential = %record.id,
            "credential record does not match its seal (changed outside batchcred); its secret is not used"
        );
        let state = CheckState {
            last_checked_at: Some(Utc::now()),
            last_check_error: Some(Error::SealMismatch.to_string()),
            ..record.check.clone()
        };
        let host = self.store.find_code_host(record.code_host_id).await?;
        let mut audit = super::audit::about_credential(
            super::audit::by_system(super::audit::event::CREDENTIAL_CHECKED),
            record,
            &host,
        )
        .failed();
        audit.detail["error"] = "seal_mismatch".into();
        self.store
            .record_credential_check(&audit, record.id, &state)
            .await?;
        Ok(state)
    }

    /// Generates a keypair off the async runtime (RSA takes seconds).
    pub(super) async fn generate_keypair(&self, algorithm: SshKeyAlgorithm) -> Result<SshKeypair> {
        let comment = self.settings.instance_name.clone();
        tokio::task::spawn_blocking(move || generate_ssh_keypair(algorithm, &comment))
            .await
            .map_err(|e| Error::Internal(format!("key generation task failed: {e}")))?
            .map_err(Error::from)
    }

    /// Stores a credential for a user (themselves, or a site admin for
    /// them) or, with no user, the global one (site admins). On an SSH
    /// code host a keypair is generated with it.
    #[tracing::instrument(skip(self, caller, request), fields(kind = %request.kind, url = %request.url, site = request.user.is_none()))]
    pub async fn create_credential(
        &self,
        caller: &Caller,
        request: CreateCredential,
    ) -> Result<CredentialView> {
        let owner = match request.user {
            Some(user_id) => {
                caller.require_acting_for(user_id)?;
                self.store
                    .find_user(user_id)
                    .await
                    .map_err(not_found("user"))?;
                CredentialOwner::User(user_id)
            }
            None => {
                caller.require_site_admin()?;
                CredentialOwner::Site
            }
        };
        let token = Token::parse(request.token.expose_secret())?;
        let url = CodeHostUrl::parse(&request.url)?;
        let host = self.configured_code_host(&url).await?;
        if host.kind != request.kind {
            return Err(Error::InvalidInput(format!(
                "the code host at {url} is {}, not {}",
                host.kind, request.kind
            )));
        }
        let username = validate_username(host.kind, request.username)?;
        if self
            .store
            .find_credential_for(host.id, owner)
            .await?
            .is_some()
        {
            return Err(Error::Conflict(
                "a credential for this code host already exists; remove it first".into(),
            ));
        }

        // Nothing is stored unless the code host accepts the token.
        let token = SecretString::from(token.expose());
        let options = CheckOptions {
            repository: request.repository,
        };
        let check = self
            .check_token(&host, username.as_deref(), &token, &options)
            .await?;

        let keypair = match host.git_url_type {
            GitUrlType::Ssh => Some(self.generate_keypair(host.ssh_key_algorithm).await?),
            GitUrlType::Http => None,
        };
        let id = CredentialId::new();
        let secret = CredentialSecret {
            token,
            ssh_private_key: keypair.as_ref().map(|k| k.private_key.clone()),
            signing_private_key: None,
            github_app: None,
        };
        let now = Utc::now();
        let record = NewCredential {
            id,
            code_host_id: host.id,
            owner,
            username,
            secret: self.seal_secret(id, owner, &host, &secret)?,
            seal_version: SEAL_VERSION,
            ssh_public_key: keypair.map(|k| k.public_key),
            ssh_key_pending: false,
            signing: None,
            auth_strategy: AuthStrategy::PersonalAccessToken,
            github_app: None,
            created_at: now,
            updated_at: now,
            check: CheckState {
                code_host_user: Some(check.user),
                scopes: check.scopes,
                expires_at: check.expires_at,
                warnings: check.warnings,
                last_checked_at: Some(now),
                last_check_error: None,
            },
        };
        let audit = super::audit::about_credential(
            super::audit::by(caller, super::audit::event::CREDENTIAL_CREATED),
            &record,
            &host,
        );
        self.store.insert_credential(&audit, &record).await?;
        tracing::info!(credential = %id, "credential created");
        Ok(CredentialView::new(&record, &host))
    }

    /// Loads a credential the caller may see; others' look nonexistent.
    pub(super) async fn accessible_credential(
        &self,
        caller: &Caller,
        id: CredentialId,
    ) -> Result<(CredentialRecord, CodeHostConfig)> {
        caller.require_signed_in()?;
        let hidden = || Error::NotFound("credential not found".into());
        let record = self.store.find_credential(id).await.map_err(|e| match e {
            crate::store::Error::NotFound => hidden(),
            other => other.into(),
        })?;
        caller
            .require_credential_access(record.owner)
            .map_err(|denied| match denied {
                crate::auth::Denied::Hidden => hidden(),
                other => other.into(),
            })?;
        let host = self.store.find_code_host(record.code_host_id).await?;
        Ok((record, host))
    }

    pub async fn credential(&self, caller: &Caller, id: CredentialId) -> Result<CredentialView> {
        let (record, host) = self.accessible_credential(caller, id).await?;
        Ok(CredentialView::new(&record, &host))
    }

    /// Deletes a credential and its key for good.
    pub async fn delete_credential(&self, caller: &Caller, id: CredentialId) -> Result<()> {
        let (record, host) = self.accessible_credential(caller, id).await?;
        let audit = super::audit::about_credential(
            super::audit::by(caller, super::audit::event::CREDENTIAL_DELETED),
            &record,
            &host,
        );
        self.store
            .delete_credential(&audit, id)
            .await
            .map_err(not_found("credential"))?;
        tracing::info!(credential = %id, "credential deleted");
        Ok(())
    }

    /// Records that the owner added the generated public key to the code host.
    pub async fn confirm_ssh_key_added(
        &self,
        caller: &Caller,
        id: CredentialId,
    ) -> Result<CredentialView> {
        let (record, host) = self.accessible_credential(caller, id).await?;
        if record.ssh_public_key.is_none() {
            return Err(Error::InvalidInput("this credential has no SSH key".into()));
        }
        self.store
            .clear_ssh_key_pending(id)
            .await
            .map_err(not_found("credential"))?;
        let record = self
            .store
            .find_credential(id)
            .await
            .map_err(not_found("credential"))?;
        Ok(CredentialView::new(&record, &host))
    }

    /// Every credential of one owner (the CLI's listing).
    pub async fn list_credentials(
        &self,
        caller: &Caller,
        owner: CredentialOwner,
    ) -> Result<Vec<CredentialView>> {
        caller.require_credential_access(owner)?;
        let records = self.store.list_credentials_of(owner).await?;
        let mut views = Vec::with_capacity(records.len());
        for record in &records {
            let host = self.store.find_code_host(record.code_host_id).await?;
            views.push(CredentialView::new(record, &host));
        }
        Ok(views)
    }

    /// Gives a keypair to every credential on an SSH code host that has
    /// none (the host was switched to SSH after they were added). Safe to
    /// run again after a crash: it only touches credentials still missing a
    /// key, and each update is a compare-and-swap on the old ciphertext.
    pub async fn generate_missing_ssh_keys(&self) -> Result<usize> {
        let mut generated = 0;
        for record in self.store.list_credentials_missing_ssh_key().await? {
            let host = self.store.find_code_host(record.code_host_id).await?;
            // A record that does not match its seal is flagged and skipped:
            // it must not stop the others (or start-up).
            let mut secret = match self.open_secret_to_use(&record, &host).await {
                Err(Error::SealMismatch) => continue,
                opened => opened?,
            };
            let keypair = self.generate_keypair(host.ssh_key_algorithm).await?;
            secret.ssh_private_key = Some(keypair.private_key);
            let update = SecretUpdate {
                secret: self.seal_secret(record.id, record.owner, &host, &secret)?,
                seal_version: SEAL_VERSION,
                ssh_public_key: Some(keypair.public_key),
                ssh_key_pending: true,
                updated_at: Utc::now(),
            };
            if self
                .store
                .replace_credential_secret(record.id, &record.secret, update)
                .await?
            {
                generated += 1;
            }
        }
        if generated > 0 {
            tracing::info!(generated, "generated SSH keys for existing credentials");
        }
        Ok(generated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CodeHostId, GitUrlType, SshKeyAlgorithm};

    fn host(url: &str) -> CodeHostConfig {
        CodeHostConfig {
            id: CodeHostId::new(),
            kind: CodeHostKind::GitHub,
            url: CodeHostUrl::parse(url).expect("url"),
            git_url_type: GitUrlType::Http,
            ssh_known_hosts: None,
            ssh_key_algorithm: SshKeyAlgorithm::Ed25519,
            global_credential_policy: Default::default(),
            created_at: Utc::now(),
        }
    }

    fn aad(
        version: i64,
        id: CredentialId,
        owner: CredentialOwner,
        host: &CodeHostConfig,
    ) -> Vec<u8> {
        associated_data(version, id, owner, host).unwrap_or_default()
    }

    #[test]
    fn v2_associated_data_changes_with_every_bound_field() {
        let id = CredentialId::new();
        let user = CredentialOwner::User(UserId::new());
        let github = host("https://github.example.com");
        let base = aad(2, id, user, &github);
        let text = String::from_utf8_lossy(&base).into_owned();
        assert!(text.starts_with("batchcred/credential/v2\0"), "{text}");
        assert!(
            text.ends_with(&format!(
                "\0{}\0{}",
                github.kind.as_str(),
                github.url.as_str()
            )),
            "{text}"
        );
        let mut moved_host = github.clone();
        moved_host.url = CodeHostUrl::parse("https://evil.example.com").expect("url");
        let mut other_kind = github.clone();
        other_kind.kind = CodeHostKind::GitLab;
        let mut other_id = github.clone();
        other_id.id = CodeHostId::new();
        for changed in [
            aad(2, CredentialId::new(), user, &github),
            aad(2, id, CredentialOwner::Site, &github),
            aad(2, id, CredentialOwner::User(UserId::new()), &github),
            aad(2, id, user, &moved_host),
            aad(2, id, user, &other_kind),
            aad(2, id, user, &other_id),
            aad(1, id, user, &github),
        ] {
            assert!(!changed.is_empty());
            assert_ne!(changed, base);
        }
        assert!(associated_data(3, id, user, &github).is_err());
    }

    #[test]
    fn secrets_sealed_before_signing_still_open_and_signing_keys_round_trip() {
        let old: SecretPayload =
            serde_json::from_str(r#"{"token":"t","ssh_private_key":"k"}"#).expect("old payload");
        assert_eq!(old.signing_private_key, None);
        assert_eq!(old.ssh_private_key.as_deref(), Some("k"));
        let new = SecretPayload {
            token: "t".into(),
            ssh_private_key: None,
            signing_private_key: Some("signing".into()),
            github_app_private_key: None,
            github_app_client_secret: None,
            github_app_webhook_secret: None,
        };
        let json = serde_json::to_string(&new).expect("serialise");
        assert!(!json.contains("ssh_private_key"), "{json}");
        let back: SecretPayload = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.signing_private_key.as_deref(), Some("signing"));
    }

    #[test]
    fn usernames_are_required_only_where_the_kind_needs_one() {
        assert!(validate_username(CodeHostKind::GitHub, None).is_ok());
        assert!(validate_username(CodeHostKind::BitbucketCloud, None).is_err());
        assert!(validate_username(CodeHostKind::BitbucketCloud, Some("  ".into())).is_err());
        assert_eq!(
            validate_username(CodeHostKind::Gerrit, Some(" alice ".into()))
                .ok()
                .flatten()
                .as_deref(),
            Some("alice")
        );
        assert!(validate_username(CodeHostKind::GitHub, Some("a b".into())).is_err());
    }
}
