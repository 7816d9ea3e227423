//! API access tokens, stored as SHA-256 hashes. Revoking a token deletes
//! its row, so the next lookup on any replica fails.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::AuditEntry;
use super::users::{user_columns, user_from_row};
use super::{Result, Store, from_millis, parse_column, to_millis};
use crate::domain::{AccessTokenId, AccessTokenInfo, UserAccount, UserId};

/// How often a token's `last_used_at` is written at most: API traffic
/// must not turn every read into a write.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// What is stored for a new token.
pub struct NewAccessToken<'a> {
    pub id: AccessTokenId,
    pub user_id: UserId,
    pub token_hash: &'a str,
    /// The token's first characters, shown to recognise it; not secret.
    pub prefix: &'a str,
    pub note: &'a str,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The token columns every token query selects.
macro_rules! token_columns {
    () => {
        "id, user_id, token_prefix, note, created_at, last_used_at, expires_at"
    };
}

fn optional_time(row: &AnyRow, column: &str) -> Result<Option<DateTime<Utc>>> {
    row.try_get::<Option<i64>, _>(column)?
        .map(from_millis)
        .transpose()
}

fn token_from_row(row: &AnyRow) -> Result<AccessTokenInfo> {
    Ok(AccessTokenInfo {
        id: parse_column("access_tokens.id", &row.try_get::<String, _>("id")?)?,
        user_id: parse_column(
            "access_tokens.user_id",
            &row.try_get::<String, _>("user_id")?,
        )?,
        prefix: row.try_get("token_prefix")?,
        note: row.try_get("note")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        last_used_at: optional_time(row, "last_used_at")?,
        expires_at: optional_time(row, "expires_at")?,
    })
}

impl Store {
    pub async fn insert_access_token(
        &self,
        audit: &AuditEntry,
        token: NewAccessToken<'_>,
    ) -> Result<()> {
        self.write_audited(
            audit,
            sqlx::query(
                "INSERT INTO access_tokens \
             (id, user_id, token_hash, token_prefix, note, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(token.id.to_string())
            .bind(token.user_id.to_string())
            .bind(token.token_hash)
            .bind(token.prefix)
            .bind(token.note)
            .bind(to_millis(token.created_at))
            .bind(token.expires_at.map(to_millis)),
            Some("this access token already exists"),
        )
        .await
    }

    /// The owner of the unexpired token with this hash, recording the use
    /// (at most once a minute). Expired and revoked tokens are not found:
    /// the check is made on the database every time, so a revocation
    /// takes effect at once on every replica.
    pub async fn find_user_by_access_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<UserAccount> {
        let row = self
            .fetch_one(
                sqlx::query(concat!(
                    "SELECT ",
                    user_columns!(),
                    ", access_tokens.last_used_at FROM access_tokens \
             JOIN users ON users.id = access_tokens.user_id \
             WHERE access_tokens.token_hash = $1 \
             AND (access_tokens.expires_at IS NULL OR access_tokens.expires_at > $2)"
                ))
                .bind(token_hash)
                .bind(to_millis(now)),
            )
            .await?;
        let last_used = row.try_get::<Option<i64>, _>("last_used_at")?;
        if last_used.is_none_or(|at| at <= to_millis(now) - LAST_USED_RESOLUTION_MS) {
            sqlx::query("UPDATE access_tokens SET last_used_at = $1 WHERE token_hash = $2")
                .bind(to_millis(now))
                .bind(token_hash)
                .execute(&self.pool)
                .await?;
        }
        user_from_row(&row)
    }

    /// A user's tokens, oldest first (ids are time-ordered), after `after`.
    pub async fn list_access_tokens(
        &self,
        user_id: UserId,
        after: Option<AccessTokenId>,
        limit: i64,
    ) -> Result<Vec<AccessTokenInfo>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM access_tokens \
             WHERE user_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(user_id.to_string())
        .bind(after.map(|id| id.to_string()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn count_access_tokens(&self, user_id: UserId) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM access_tokens WHERE user_id = $1")
            .bind(user_id.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn find_access_token(&self, id: AccessTokenId) -> Result<AccessTokenInfo> {
        let row = self
            .fetch_one(
                sqlx::query(concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM access_tokens WHERE id = $1"
                ))
                .bind(id.to_string()),
            )
            .await?;
        token_from_row(&row)
    }

    /// Revokes a token for good.
    pub async fn delete_access_token(&self, audit: &AuditEntry, id: AccessTokenId) -> Result<()> {
        self.write_audited(
            audit,
            sqlx::query("DELETE FROM access_tokens WHERE id = $1").bind(id.to_string()),
            None,
        )
        .await
    }
}
