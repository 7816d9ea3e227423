//! User accounts.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::AuditEntry;
use super::{Error, Result, Store, conflict_on_unique, from_millis, parse_column, to_millis};
use crate::domain::{UserAccount, UserId};

/// What is needed to create a user.
pub struct NewUser {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub site_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// The user columns every user query selects.
macro_rules! user_columns {
    () => {
        "users.id, users.username, users.site_admin, users.created_at"
    };
}
pub(super) use user_columns;

pub(super) fn user_from_row(row: &AnyRow) -> Result<UserAccount> {
    Ok(UserAccount {
        id: parse_column("users.id", &row.try_get::<String, _>("id")?)?,
        username: row.try_get("username")?,
        site_admin: row.try_get::<i64, _>("site_admin")? != 0,
        created_at: from_millis(row.try_get("created_at")?)?,
    })
}

impl Store {
    /// Creates a user. The very first user of an instance is always made a
    /// site admin; a marker row claimed in the same transaction makes that
    /// race-free, and keeps a later empty users table from re-opening it.
    pub async fn insert_user(&self, audit: &AuditEntry, user: NewUser) -> Result<UserAccount> {
        // Not asked to be the first, the insert always yields the record.
        self.insert_user_claiming_first(audit, user, false)
            .await?
            .ok_or(Error::NotFound)
    }

    /// Creates the instance's first user, a site admin, only if it is the
    /// first: the claim on the marker row and the insert commit together,
    /// so of any number of concurrent callers exactly one gets `Some`.
    pub async fn insert_first_user(
        &self,
        audit: &AuditEntry,
        user: NewUser,
    ) -> Result<Option<UserAccount>> {
        self.insert_user_claiming_first(audit, user, true).await
    }

    async fn insert_user_claiming_first(
        &self,
        audit: &AuditEntry,
        user: NewUser,
        only_if_first: bool,
    ) -> Result<Option<UserAccount>> {
        let mut tx = self.pool.begin().await?;
        let first = sqlx::query(
            "INSERT INTO site_initialized (singleton) VALUES (1) ON CONFLICT DO NOTHING",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if only_if_first && !first {
            tx.rollback().await?;
            return Ok(None);
        }
        let record = UserAccount {
            id: user.id,
            username: user.username,
            site_admin: user.site_admin || first,
            created_at: user.created_at,
        };
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, site_admin, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(record.id.to_string())
        .bind(&record.username)
        .bind(&user.password_hash)
        .bind(i64::from(record.site_admin))
        .bind(to_millis(record.created_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, "a user with this username already exists"))?;
        // Whether it became a site admin is only known here.
        let mut audit = audit.clone();
        audit.detail["site_admin"] = record.site_admin.into();
        super::audit::append(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Some(record))
    }

    /// Whether any user was ever created (the first-run page uses this).
    pub async fn site_initialized(&self) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM site_initialized")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    pub async fn find_user(&self, id: UserId) -> Result<UserAccount> {
        let row = self
            .fetch_one(
                sqlx::query(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE id = $1"
                ))
                .bind(id.to_string()),
            )
            .await?;
        user_from_row(&row)
    }

    pub async fn find_user_by_username(&self, username: &str) -> Result<UserAccount> {
        self.find_user_with_password_hash(username)
            .await
            .map(|(user, _)| user)
    }

    /// The user and their password hash, for signing in.
    pub async fn find_user_with_password_hash(
        &self,
        username: &str,
    ) -> Result<(UserAccount, String)> {
        let row = self
            .fetch_one(
                sqlx::query(concat!(
                    "SELECT ",
                    user_columns!(),
                    ", users.password_hash FROM users WHERE username = $1"
                ))
                .bind(username),
            )
            .await?;
        Ok((user_from_row(&row)?, row.try_get("password_hash")?))
    }

    /// A user's password hash, for checking their current password.
    pub async fn find_password_hash(&self, id: UserId) -> Result<String> {
        let row = self
            .fetch_one(
                sqlx::query("SELECT password_hash FROM users WHERE id = $1").bind(id.to_string()),
            )
            .await?;
        Ok(row.try_get("password_hash")?)
    }

    /// Sets a user's password and ends all their sessions but `keep` (a
    /// session hash), in one transaction: a stolen session never outlives
    /// the password change that was meant to end it.
    pub async fn set_password_and_end_sessions(
        &self,
        audit: &AuditEntry,
        id: UserId,
        password_hash: &str,
        keep: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR token_hash <> $2)")
            .bind(id.to_string())
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        super::audit::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Users in creation order, starting after `after`.
    pub async fn list_users(&self, after: Option<UserId>, limit: i64) -> Result<Vec<UserAccount>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind(after.map(|id| id.to_string()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn count_users(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn set_site_admin(
        &self,
        audit: &AuditEntry,
        id: UserId,
        site_admin: bool,
    ) -> Result<()> {
        self.write_audited(
            audit,
            sqlx::query("UPDATE users SET site_admin = $1 WHERE id = $2")
                .bind(i64::from(site_admin))
                .bind(id.to_string()),
            None,
        )
        .await
    }

    /// Deletes a user with their sessions, tokens and credentials.
    pub async fn delete_user(&self, audit: &AuditEntry, id: UserId) -> Result<()> {
        self.write_audited(
            audit,
            sqlx::query("DELETE FROM users WHERE id = $1").bind(id.to_string()),
            None,
        )
        .await
    }
}
