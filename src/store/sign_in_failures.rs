//! Failed sign-ins per account name, shared by every replica so the
//! per-account back-off holds whichever replica a guess reaches. Names
//! that belong to no account are counted too: otherwise the back-off
//! itself would tell which accounts exist.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, from_millis, to_millis};

/// The failures recorded for one account name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInFailures {
    pub count: i64,
    pub last_failure_at: DateTime<Utc>,
}

impl Store {
    pub async fn sign_in_failures(&self, account: &str) -> Result<Option<SignInFailures>> {
        let row = sqlx::query(
            "SELECT failures, last_failure_at FROM sign_in_failures WHERE account = $1",
        )
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(SignInFailures {
                count: row.try_get("failures")?,
                last_failure_at: from_millis(row.try_get("last_failure_at")?)?,
            })
        })
        .transpose()
    }

    /// Counts an attempt on `account` as a failure at `now`, but only if
    /// its failures are still what the caller read (`seen`; `None`: no
    /// row): of concurrent attempts that read the same state, exactly one
    /// is counted and allowed. Failures last recorded before
    /// `forget_before` are forgotten and the count starts again. Returns
    /// whether this attempt was the one counted.
    pub async fn claim_sign_in_attempt(
        &self,
        account: &str,
        seen: Option<SignInFailures>,
        now: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<bool> {
        let done = match seen {
            None => {
                sqlx::query(
                    "INSERT INTO sign_in_failures (account, failures, last_failure_at) \
                     VALUES ($1, 1, $2) ON CONFLICT (account) DO NOTHING",
                )
                .bind(account)
                .bind(to_millis(now))
                .execute(&self.pool)
                .await?
            }
            Some(seen) => {
                sqlx::query(
                    "UPDATE sign_in_failures SET \
                     failures = CASE WHEN last_failure_at < $3 THEN 1 ELSE failures + 1 END, \
                     last_failure_at = $2 \
                     WHERE account = $1 AND failures = $4 AND last_failure_at = $5",
                )
                .bind(account)
                .bind(to_millis(now))
                .bind(to_millis(forget_before))
                .bind(seen.count)
                .bind(to_millis(seen.last_failure_at))
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    /// Forgets an account's failures (after a successful sign-in).
    pub async fn clear_sign_in_failures(&self, account: &str) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE account = $1")
            .bind(account)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes failures last recorded before `before`; returns how many.
    pub async fn delete_sign_in_failures_before(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sign_in_failures WHERE last_failure_at < $1")
            .bind(to_millis(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
