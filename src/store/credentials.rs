//! Code host credentials, user-owned or site-wide. The secret column holds
//! a ciphertext; this module never sees plaintext.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::AuditEntry;
use super::{Error, Result, Store, from_millis, parse_column, to_millis};
use crate::crypto::{KeyId, Sealed};
use crate::domain::{
    AuthStrategy, CodeHostId, CredentialId, CredentialOwner, GitHubAppInfo, SigningKey,
    SigningKeySource,
};

/// A credential as stored.
#[derive(Debug, Clone)]
pub struct CredentialRecord {
    pub id: CredentialId,
    pub code_host_id: CodeHostId,
    pub owner: CredentialOwner,
    /// The code host username, where the kind needs one.
    pub username: Option<String>,
    pub secret: Sealed,
    /// Which associated data `secret` is sealed with (the service decides
    /// what each version binds).
    pub seal_version: i64,
    pub ssh_public_key: Option<String>,
    /// The keypair was generated after the credential was added (the code
    /// host switched to SSH), so its owner has not seen the public key yet.
    pub ssh_key_pending: bool,
    /// The SSH key commits are signed with, when signing is on.
    pub signing: Option<SigningKey>,
    /// A token, or a GitHub App (whose public facts are in `github_app`).
    pub auth_strategy: AuthStrategy,
    pub github_app: Option<GitHubAppInfo>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub check: CheckState,
}

/// What the last check against the code host found. A failed check keeps
/// what earlier ones learned and records the error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckState {
    /// The code host account the token belongs to.
    pub code_host_user: Option<String>,
    /// `None` where the code host does not report scopes.
    pub scopes: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub warnings: Vec<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_check_error: Option<String>,
}

/// A credential to store.
pub type NewCredential = CredentialRecord;

/// A new ciphertext (and possibly keypair) for an existing credential.
pub struct SecretUpdate {
    pub secret: Sealed,
    pub seal_version: i64,
    pub ssh_public_key: Option<String>,
    pub ssh_key_pending: bool,
    pub updated_at: DateTime<Utc>,
}

macro_rules! credential_columns {
    () => {
        "id, code_host_id, user_id, username, secret_key_id, secret, ssh_public_key, ssh_key_pending, created_at, updated_at, \
         code_host_user, scopes, token_expires_at, warnings, last_checked_at, last_check_error, seal_version, \
         signing_public_key, signing_key_source, auth_strategy, github_app"
    };
}

fn credential_from_row(row: &AnyRow) -> Result<CredentialRecord> {
    let user_id: Option<String> = row.try_get("user_id")?;
    let owner = match user_id {
        Some(id) => CredentialOwner::User(parse_column("credentials.user_id", &id)?),
        None => CredentialOwner::Site,
    };
    Ok(CredentialRecord {
        id: parse_column("credentials.id", &row.try_get::<String, _>("id")?)?,
        code_host_id: parse_column(
            "credentials.code_host_id",
            &row.try_get::<String, _>("code_host_id")?,
        )?,
        owner,
        username: row.try_get("username")?,
        secret: Sealed {
            key_id: KeyId::from_stored(row.try_get("secret_key_id")?),
            bytes: row.try_get("secret")?,
        },
        seal_version: row.try_get("seal_version")?,
        ssh_public_key: row.try_get("ssh_public_key")?,
        ssh_key_pending: row.try_get::<i64, _>("ssh_key_pending")? != 0,
        signing: signing_from_row(row)?,
        auth_strategy: {
            let stored: String = row.try_get("auth_strategy")?;
            AuthStrategy::from_stored(&stored).ok_or_else(|| {
                Error::Corrupt(format!("column credentials.auth_strategy holds {stored:?}"))
            })?
        },
        github_app: row
            .try_get::<Option<String>, _>("github_app")?
            .map(|json| {
                serde_json::from_str(&json).map_err(|_| {
                    Error::Corrupt("column credentials.github_app is malformed".into())
                })
            })
            .transpose()?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
        check: CheckState {
            code_host_user: row.try_get("code_host_user")?,
            scopes: row
                .try_get::<Option<String>, _>("scopes")?
                .map(|json| from_json_list("credentials.scopes", &json))
                .transpose()?,
            expires_at: optional_millis(row.try_get("token_expires_at")?)?,
            warnings: from_json_list(
                "credentials.warnings",
                &row.try_get::<String, _>("warnings")?,
            )?,
            last_checked_at: optional_millis(row.try_get("last_checked_at")?)?,
            last_check_error: row.try_get("last_check_error")?,
        },
    })
}

fn signing_from_row(row: &AnyRow) -> Result<Option<SigningKey>> {
    let public_key: Option<String> = row.try_get("signing_public_key")?;
    let source: Option<String> = row.try_get("signing_key_source")?;
    match (public_key, source) {
        (Some(public_key), Some(source)) => Ok(Some(SigningKey {
            public_key,
            source: SigningKeySource::from_stored(&source).ok_or_else(|| {
                Error::Corrupt(format!(
                    "column credentials.signing_key_source holds {source:?}"
                ))
            })?,
        })),
        (None, None) => Ok(None),
        _ => Err(Error::Corrupt(
            "credentials.signing_public_key and signing_key_source are set apart".into(),
        )),
    }
}

fn github_app_json(app: &GitHubAppInfo) -> Result<String> {
    serde_json::to_string(app).map_err(|e| Error::Corrupt(format!("GitHub App facts: {e}")))
}

fn from_json_list(column: &str, json: &str) -> Result<Vec<String>> {
    serde_json::from_str(json)
        .map_err(|_| Error::Corrupt(format!("column {column} holds {json:?}")))
}

fn to_json_list(list: &[String]) -> String {
    serde_json::Value::from(list).to_string()
}

fn optional_millis(millis: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    millis.map(from_millis).transpose()
}

impl Store {
    /// Stores a credential; a second one for the same owner and code host
    /// is a conflict (the partial unique indexes decide, so concurrent
    /// creates leave exactly one).
    pub async fn insert_credential(
        &self,
        audit: &AuditEntry,
        credential: &NewCredential,
    ) -> Result<()> {
        self.write_audited(audit, sqlx::query(concat!(
            "INSERT INTO credentials (",
            credential_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        ))
        .bind(credential.id.to_string())
        .bind(credential.code_host_id.to_string())
        .bind(credential.owner.user_id())
        .bind(credential.username.as_deref())
        .bind(credential.secret.key_id.as_str())
        .bind(credential.secret.bytes.as_slice())
        .bind(credential.ssh_public_key.as_deref())
        .bind(i64::from(credential.ssh_key_pending))
        .bind(to_millis(credential.created_at))
        .bind(to_millis(credential.updated_at))
        .bind(credential.check.code_host_user.as_deref())
        .bind(credential.check.scopes.as_deref().map(to_json_list))
        .bind(credential.check.expires_at.map(to_millis))
        .bind(to_json_list(&credential.check.warnings))
        .bind(credential.check.last_checked_at.map(to_millis))
        .bind(credential.check.last_check_error.as_deref())
        .bind(credential.seal_version)
        .bind(credential.signing.as_ref().map(|s| s.public_key.as_str()))
        .bind(credential.signing.as_ref().map(|s| s.source.as_str()))
        .bind(credential.auth_strategy.as_str())
        .bind(credential.github_app.as_ref().map(github_app_json).transpose()?), Some("a credential for this code host already exists"))
            .await
    }

    pub async fn find_credential(&self, id: CredentialId) -> Result<CredentialRecord> {
        let row = self
            .fetch_one(
                sqlx::query(concat!(
                    "SELECT ",
                    credential_columns!(),
                    " FROM credentials WHERE id = $1"
                ))
                .bind(id.to_string()),
            )
            .await?;
        credential_from_row(&row)
    }

    /// The owner's token credential for one code host, if any.
    pub async fn find_credential_for(
        &self,
        code_host_id: CodeHostId,
        owner: CredentialOwner,
    ) -> Result<Option<CredentialRecord>> {
        self.find_credential_with(code_host_id, owner, AuthStrategy::PersonalAccessToken)
            .await
    }

    /// The owner's credential of one strategy for one code host, if any.
    pub async fn find_credential_with(
        &self,
        code_host_id: CodeHostId,
        owner: CredentialOwner,
        strategy: AuthStrategy,
    ) -> Result<Option<CredentialRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM credentials WHERE code_host_id = $1 AND \
             (($2 IS NULL AND user_id IS NULL) OR user_id = $2) AND auth_strategy = $3"
        ))
        .bind(code_host_id.to_string())
        .bind(owner.user_id())
        .bind(strategy.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(credential_from_row).transpose()
    }

    /// Every credential of one owner (a user's, or all site credentials).
    pub async fn list_credentials_of(
        &self,
        owner: CredentialOwner,
    ) -> Result<Vec<CredentialRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM credentials WHERE \
             ($1 IS NULL AND user_id IS NULL) OR user_id = $1 ORDER BY id"
        ))
        .bind(owner.user_id())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential_from_row).collect()
    }

    /// Up to `limit` credentials whose secret is not sealed with `key` or
    /// not with seal version `version`, for re-encryption in batches.
    pub async fn list_credentials_to_reseal(
        &self,
        key: &KeyId,
        version: i64,
        limit: i64,
    ) -> Result<Vec<CredentialRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM credentials WHERE secret_key_id <> $1 OR seal_version <> $2 \
             ORDER BY id LIMIT $3"
        ))
        .bind(key.as_str())
        .bind(version)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential_from_row).collect()
    }

    /// Up to `limit` credentials sealed with a version below `version`.
    pub async fn list_credentials_sealed_before(
        &self,
        version: i64,
        limit: i64,
    ) -> Result<Vec<CredentialRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM credentials WHERE seal_version < $1 ORDER BY id LIMIT $2"
        ))
        .bind(version)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential_from_row).collect()
    }

    /// Up to `limit` credentials whose secret is sealed with `key`.
    pub async fn list_credentials_under_key(
        &self,
        key: &KeyId,
        limit: i64,
    ) -> Result<Vec<CredentialRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM credentials WHERE secret_key_id = $1 ORDER BY id LIMIT $2"
        ))
        .bind(key.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential_from_row).collect()
    }

    /// Credentials on SSH code hosts that have no keypair yet.
    pub async fn list_credentials_missing_ssh_key(&self) -> Result<Vec<CredentialRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM credentials WHERE ssh_public_key IS NULL AND code_host_id IN \
             (SELECT id FROM code_hosts WHERE git_url_type = 'ssh') ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential_from_row).collect()
    }

    /// How many credentials each key seals, for `keys status`.
    pub async fn count_credentials_by_key(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT secret_key_id, COUNT(*) AS n FROM credentials \
             GROUP BY secret_key_id ORDER BY secret_key_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("secret_key_id")?, row.try_get("n")?)))
            .collect()
    }

    /// Replaces a credential's ciphertext, but only if it still holds
    /// `expected` (compare-and-swap), so a concurrent change is never
    /// overwritten. Returns whether the row was updated.
    pub async fn replace_credential_secret(
        &self,
        id: CredentialId,
        expected: &Sealed,
        update: SecretUpdate,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE credentials SET secret_key_id = $1, secret = $2, ssh_public_key = $3, \
             ssh_key_pending = $4, updated_at = $5, seal_version = $9 \
             WHERE id = $6 AND secret_key_id = $7 AND secret = $8",
        )
        .bind(update.secret.key_id.as_str())
        .bind(update.secret.bytes.as_slice())
        .bind(update.ssh_public_key.as_deref())
        .bind(i64::from(update.ssh_key_pending))
        .bind(to_millis(update.updated_at))
        .bind(id.to_string())
        .bind(expected.key_id.as_str())
        .bind(expected.bytes.as_slice())
        .bind(update.seal_version)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Turns commit signing on (with its key) or off, with the ciphertext
    /// that now holds (or no longer holds) the signing private key. Only if
    /// the row still holds `expected` (compare-and-swap): a concurrent
    /// change answers [`Error::NotFound`] and nothing is written.
    pub async fn replace_credential_signing(
        &self,
        audit: &AuditEntry,
        id: CredentialId,
        expected: &Sealed,
        update: SecretUpdate,
        signing: Option<&SigningKey>,
    ) -> Result<()> {
        self.write_audited(
            audit,
            sqlx::query(
                "UPDATE credentials SET secret_key_id = $1, secret = $2, updated_at = $3, \
                 seal_version = $4, signing_public_key = $5, signing_key_source = $6 \
                 WHERE id = $7 AND secret_key_id = $8 AND secret = $9",
            )
            .bind(update.secret.key_id.as_str())
            .bind(update.secret.bytes.as_slice())
            .bind(to_millis(update.updated_at))
            .bind(update.seal_version)
            .bind(signing.map(|s| s.public_key.as_str()))
            .bind(signing.map(|s| s.source.as_str()))
            .bind(id.to_string())
            .bind(expected.key_id.as_str())
            .bind(expected.bytes.as_slice()),
            None,
        )
        .await
    }

    /// Stores the outcome of a check against the code host.
    pub async fn record_credential_check(
        &self,
        audit: &AuditEntry,
        id: CredentialId,
        check: &CheckState,
    ) -> Result<()> {
        self.write_audited(
            audit,
            sqlx::query(
                "UPDATE credentials SET code_host_user = $1, scopes = $2, token_expires_at = $3, \
             warnings = $4, last_checked_at = $5, last_check_error = $6, \
             check_failed_since = CASE WHEN $6 IS NULL THEN NULL \
             ELSE COALESCE(check_failed_since, $5) END WHERE id = $7",
            )
            .bind(check.code_host_user.as_deref())
            .bind(check.scopes.as_deref().map(to_json_list))
            .bind(check.expires_at.map(to_millis))
            .bind(to_json_list(&check.warnings))
            .bind(check.last_checked_at.map(to_millis))
            .bind(check.last_check_error.as_deref())
            .bind(id.to_string()),
            None,
        )
        .await
    }

    /// Up to `limit` credentials last checked before `cutoff` (or never),
    /// oldest first, for the periodic re-check.
    pub async fn list_credentials_checked_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<CredentialRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            credential_columns!(),
            " FROM credentials WHERE last_checked_at IS NULL OR last_checked_at < $1 \
             ORDER BY last_checked_at, id LIMIT $2"
        ))
        .bind(to_millis(cutoff))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential_from_row).collect()
    }

    /// Records that the owner has added the generated public key.
    pub async fn clear_ssh_key_pending(&self, id: CredentialId) -> Result<()> {
        let done = sqlx::query("UPDATE credentials SET ssh_key_pending = $1 WHERE id = $2")
            .bind(0_i64)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    pub async fn delete_credential(&self, audit: &AuditEntry, id: CredentialId) -> Result<()> {
        self.write_audited(
            audit,
            sqlx::query("DELETE FROM credentials WHERE id = $1").bind(id.to_string()),
            None,
        )
        .await
    }
}

impl Store {
    /// Replaces what is known about a GitHub App credential's App and
    /// installations (after a check found them changed).
    pub async fn update_credential_github_app(
        &self,
        id: CredentialId,
        app: &GitHubAppInfo,
    ) -> Result<()> {
        sqlx::query("UPDATE credentials SET github_app = $1 WHERE id = $2")
            .bind(github_app_json(app)?)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
