//! Browser sessions, stored so that any replica accepts them.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::users::{user_columns, user_from_row};
use super::{Error, Result, Store, from_millis, to_millis};
use crate::domain::UserId;

impl Store {
    pub async fn insert_session(
        &self,
        token_hash: &str,
        user_id: UserId,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id.to_string())
        .bind(to_millis(created_at))
        .bind(to_millis(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session's user and when the session expires.
    pub async fn find_session(
        &self,
        token_hash: &str,
    ) -> Result<(super::UserRecord, DateTime<Utc>)> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", sessions.expires_at FROM sessions \
             JOIN users ON users.id = sessions.user_id WHERE sessions.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound)?;
        Ok((
            user_from_row(&row)?,
            from_millis(row.try_get("expires_at")?)?,
        ))
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes sessions that expired before `now`; returns how many.
    pub async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(to_millis(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
