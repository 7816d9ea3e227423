//! Browser sessions, stored so that any replica accepts them, and every
//! replica sees a revoked session gone at once.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::audit::AuditEntry;
use super::users::{user_columns, user_from_row};
use super::{Result, Store, from_millis, to_millis};
use crate::domain::{UserAccount, UserId};

/// A stored session, as the request that presents it needs it.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user: UserAccount,
    pub expires_at: DateTime<Utc>,
    /// When a request last used it (to the minute), for the idle timeout.
    pub last_seen_at: DateTime<Utc>,
}

impl Store {
    pub async fn insert_session(
        &self,
        audit: &AuditEntry,
        token_hash: &str,
        user_id: UserId,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        self.write_audited(
            audit,
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $3)",
            )
            .bind(token_hash)
            .bind(user_id.to_string())
            .bind(to_millis(created_at))
            .bind(to_millis(expires_at)),
            None,
        )
        .await
    }

    /// The session with this hash: its user, expiry and last use.
    pub async fn find_session(&self, token_hash: &str) -> Result<SessionRecord> {
        let row = self
            .fetch_one(
                sqlx::query(concat!(
                    "SELECT ",
                    user_columns!(),
                    ", sessions.expires_at, sessions.last_seen_at FROM sessions \
             JOIN users ON users.id = sessions.user_id WHERE sessions.token_hash = $1"
                ))
                .bind(token_hash),
            )
            .await?;
        Ok(SessionRecord {
            user: user_from_row(&row)?,
            expires_at: from_millis(row.try_get("expires_at")?)?,
            last_seen_at: from_millis(row.try_get("last_seen_at")?)?,
        })
    }

    /// Records that the session was used at `now`.
    pub async fn touch_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(to_millis(now))
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a session; `audit` records a sign-out (a lapsed session
    /// removed on sight is not an event).
    pub async fn delete_session(&self, audit: Option<&AuditEntry>, token_hash: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await?;
        if let Some(audit) = audit.filter(|_| done.rows_affected() > 0) {
            super::audit::append(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of a user; returns how many were ended.
    pub async fn delete_user_sessions(&self, audit: &AuditEntry, user_id: UserId) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?;
        super::audit::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Removes sessions that expired before `now`, or, with an idle
    /// cut-off, were last used before it; returns how many.
    pub async fn delete_expired_sessions(
        &self,
        now: DateTime<Utc>,
        idle_cutoff: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM sessions WHERE expires_at <= $1 \
             OR ($2 IS NOT NULL AND last_seen_at <= $2)",
        )
        .bind(to_millis(now))
        .bind(idle_cutoff.map(to_millis))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
