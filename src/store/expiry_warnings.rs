//! What expiry warnings need: the credentials to warn about, where to
//! mail them, and the `warnings_sent` claims that make each warning go
//! out once per channel however many replicas look.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Error, Result, Store, from_millis, parse_column, to_millis};
use crate::domain::{CodeHostKind, CodeHostUrl, CredentialId, CredentialOwner, UserId};

/// A credential whose token expires soon or whose last check failed, with
/// what a warning about it names (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlaggedCredential {
    pub id: CredentialId,
    pub owner: CredentialOwner,
    /// The owning user's login; `None` for site credentials.
    pub owner_username: Option<String>,
    /// Where the owning user's warnings are mailed, if anywhere.
    pub owner_email: Option<String>,
    pub code_host_kind: CodeHostKind,
    pub code_host_url: CodeHostUrl,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_check_error: Option<String>,
    /// When the current run of failed checks began.
    pub check_failed_since: Option<DateTime<Utc>>,
}

/// Why a warning is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningReason {
    Expiring,
    CheckFailed,
}

impl WarningReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expiring => "expiring",
            Self::CheckFailed => "check_failed",
        }
    }
}

/// Where a warning is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningChannel {
    Webhook,
    Email,
}

impl WarningChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Email => "email",
        }
    }
}

/// One warning on one channel: the `warnings_sent` key. `occasion` is the
/// token's expiry or the start of the failing checks, so a renewed token
/// or a new run of failures is a new warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarningKey {
    pub credential_id: CredentialId,
    pub reason: WarningReason,
    pub occasion: DateTime<Utc>,
    pub channel: WarningChannel,
}

macro_rules! flagged_query {
    ($where:literal) => {
        concat!(
            "SELECT c.id, c.user_id, u.username AS owner_username, u.email AS owner_email, \
             h.kind, h.url, c.token_expires_at, c.last_check_error, \
             COALESCE(c.check_failed_since, c.last_checked_at) AS check_failed_since \
             FROM credentials c JOIN code_hosts h ON h.id = c.code_host_id \
             LEFT JOIN users u ON u.id = c.user_id \
             WHERE (c.last_check_error IS NOT NULL \
             OR (c.token_expires_at IS NOT NULL AND c.token_expires_at <= $1)) AND ",
            $where
        )
    };
}

fn flagged_from_row(row: &AnyRow) -> Result<FlaggedCredential> {
    let user_id: Option<String> = row.try_get("user_id")?;
    let owner = match user_id {
        Some(id) => CredentialOwner::User(parse_column("credentials.user_id", &id)?),
        None => CredentialOwner::Site,
    };
    let millis = |column: &str| -> Result<Option<DateTime<Utc>>> {
        row.try_get::<Option<i64>, _>(column)?
            .map(from_millis)
            .transpose()
    };
    let url: String = row.try_get("url")?;
    Ok(FlaggedCredential {
        id: parse_column("credentials.id", &row.try_get::<String, _>("id")?)?,
        owner,
        owner_username: row.try_get("owner_username")?,
        owner_email: row.try_get("owner_email")?,
        code_host_kind: parse_column("code_hosts.kind", &row.try_get::<String, _>("kind")?)?,
        code_host_url: CodeHostUrl::parse(&url).map_err(|e| Error::Corrupt(e.to_string()))?,
        expires_at: millis("token_expires_at")?,
        last_check_error: row.try_get("last_check_error")?,
        check_failed_since: millis("check_failed_since")?,
    })
}

impl Store {
    /// Up to `limit` credentials, after `after` in id order, whose token
    /// expires by `expiring_by` or whose last check failed.
    pub async fn list_flagged_credentials(
        &self,
        expiring_by: DateTime<Utc>,
        after: Option<CredentialId>,
        limit: i64,
    ) -> Result<Vec<FlaggedCredential>> {
        let rows = sqlx::query(flagged_query!(
            "($2 IS NULL OR c.id > $2) ORDER BY c.id LIMIT $3"
        ))
        .bind(to_millis(expiring_by))
        .bind(after.map(|id| id.to_string()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(flagged_from_row).collect()
    }

    /// The flagged credentials one user should hear about on every page:
    /// their own and, with `with_site`, the site's; at most `limit`, site
    /// credentials last. One query, as it runs on each page view.
    pub async fn list_flagged_credentials_for(
        &self,
        user: UserId,
        with_site: bool,
        expiring_by: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<FlaggedCredential>> {
        let rows = sqlx::query(flagged_query!(
            "(c.user_id = $2 OR ($3 = 1 AND c.user_id IS NULL)) \
             ORDER BY CASE WHEN c.user_id IS NULL THEN 1 ELSE 0 END, h.url LIMIT $4"
        ))
        .bind(to_millis(expiring_by))
        .bind(user.to_string())
        .bind(i64::from(with_site))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(flagged_from_row).collect()
    }

    /// The addresses of site admins who gave one, for warnings about site
    /// credentials.
    pub async fn site_admin_emails(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT email FROM users WHERE site_admin = 1 AND email IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("email")?))
            .collect()
    }

    /// Sets (or, with `None`, clears) where a user's warnings are mailed.
    pub async fn set_user_email(&self, id: UserId, email: Option<&str>) -> Result<()> {
        let done = sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
            .bind(email)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// Claims the right to send one warning, as `claim` (a fresh random
    /// value). True for exactly one caller: the first, or one taking over
    /// a claim made before `stale_before` that was never marked sent (its
    /// sender died). A sent warning is never claimed again.
    pub async fn claim_warning(
        &self,
        key: &WarningKey,
        claim: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO warnings_sent \
             (credential_id, reason, occasion, channel, claim, claimed_at, sent_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL) \
             ON CONFLICT (credential_id, reason, occasion, channel) DO UPDATE \
             SET claim = excluded.claim, claimed_at = excluded.claimed_at \
             WHERE warnings_sent.sent_at IS NULL AND warnings_sent.claimed_at < $7",
        )
        .bind(key.credential_id.to_string())
        .bind(key.reason.as_str())
        .bind(to_millis(key.occasion))
        .bind(key.channel.as_str())
        .bind(claim)
        .bind(to_millis(now))
        .bind(to_millis(stale_before))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that the warning claimed as `claim` was sent.
    pub async fn mark_warning_sent(
        &self,
        key: &WarningKey,
        claim: &str,
        sent_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE warnings_sent SET sent_at = $1 WHERE credential_id = $2 AND reason = $3 \
             AND occasion = $4 AND channel = $5 AND claim = $6",
        )
        .bind(to_millis(sent_at))
        .bind(key.credential_id.to_string())
        .bind(key.reason.as_str())
        .bind(to_millis(key.occasion))
        .bind(key.channel.as_str())
        .bind(claim)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up the claim `claim` after a failed send, so that a later
    /// round tries again.
    pub async fn release_warning(&self, key: &WarningKey, claim: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM warnings_sent WHERE credential_id = $1 AND reason = $2 \
             AND occasion = $3 AND channel = $4 AND claim = $5 AND sent_at IS NULL",
        )
        .bind(key.credential_id.to_string())
        .bind(key.reason.as_str())
        .bind(to_millis(key.occasion))
        .bind(key.channel.as_str())
        .bind(claim)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
