//! API access tokens, stored as SHA-256 hashes.

use chrono::{DateTime, Utc};

use super::users::{user_columns, user_from_row};
use super::{Error, Result, Store, UserRecord, conflict_on_unique, to_millis};
use crate::domain::UserId;

impl Store {
    pub async fn insert_access_token(
        &self,
        id: uuid::Uuid,
        user_id: UserId,
        token_hash: &str,
        note: &str,
        created_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO access_tokens (id, user_id, token_hash, note, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.to_string())
        .bind(user_id.to_string())
        .bind(token_hash)
        .bind(note)
        .bind(to_millis(created_at))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, "this access token already exists"))?;
        Ok(())
    }

    /// The owner of the token with this hash, recording the use (at most
    /// once a minute, so API traffic does not turn every read into a write).
    pub async fn find_user_by_access_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<UserRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM access_tokens \
             JOIN users ON users.id = access_tokens.user_id WHERE access_tokens.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound)?;
        sqlx::query(
            "UPDATE access_tokens SET last_used_at = $1 WHERE token_hash = $2 \
             AND (last_used_at IS NULL OR last_used_at < $1 - 60000)",
        )
        .bind(to_millis(now))
        .bind(token_hash)
        .execute(&self.pool)
        .await?;
        user_from_row(&row)
    }
}
