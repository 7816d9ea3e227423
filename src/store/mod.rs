//! Persistence. This is the only module that speaks SQL.
//!
//! One implementation serves both backends through `sqlx::Any`: the SQL is
//! written to the common subset of SQLite and PostgreSQL (`$n` parameters,
//! `ON CONFLICT`, partial unique indexes, BIGINT millisecond timestamps),
//! and each backend has its own migration set for the few DDL differences.

mod access_tokens;
mod audit;
mod changeset_jobs;
mod changesets;
mod code_hosts;
mod credentials;
mod database_url;
mod expiry_warnings;
mod sessions;
mod sign_in_failures;
mod users;
mod webhooks;

pub use access_tokens::NewAccessToken;
pub use audit::{AuditEntry, AuditFilter};
pub use changeset_jobs::{
    ChangesetFilter, ClaimFilter, ClaimedJob, JobOutcome, PullRequestSnapshot,
};
pub use credentials::{CheckState, CredentialRecord, NewCredential, SecretUpdate};
pub use database_url::DatabaseUrl;
pub use expiry_warnings::{FlaggedCredential, WarningChannel, WarningKey, WarningReason};
pub use users::NewUser;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};

/// Store failures. Constraint violations that a caller can cause are
/// turned into [`Error::Conflict`] with a message fit to show them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(&'static str),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How many database connections are open, idle, and allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub open: u32,
    pub idle: usize,
    pub max: u32,
}

/// The database: a connection pool plus the queries the service needs.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// The one row `query` finds, or [`Error::NotFound`].
    async fn fetch_one(
        &self,
        query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<AnyRow> {
        query
            .fetch_optional(&self.pool)
            .await?
            .ok_or(Error::NotFound)
    }
}

impl Store {
    /// Connects and runs pending migrations.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = url.backend();
        let options = AnyConnectOptions::from_str(url.expose())?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; FULL sync
                        // makes every acknowledged commit survive power loss;
                        // the busy timeout queues writers instead of failing.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let store = Self { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Answers when the database is reachable (for `/healthz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The connection pool's state right now, for the metrics.
    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            open: self.pool.size(),
            idle: self.pool.num_idle(),
            max: self.pool.options().get_max_connections(),
        }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Turns a unique-constraint violation into a domain conflict; every other
/// error passes through.
fn conflict_on_unique(error: sqlx::Error, message: &'static str) -> Error {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict(message),
        _ => Error::Database(error),
    }
}

/// Milliseconds since the epoch, the stored form of every timestamp.
pub(crate) fn to_millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn from_millis(millis: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| Error::Corrupt(format!("timestamp {millis} out of range")))
}

/// Parses a stored textual value (id, enum) back into its type.
fn parse_column<T: FromStr>(column: &str, raw: &str) -> Result<T> {
    raw.parse()
        .map_err(|_| Error::Corrupt(format!("column {column} holds {raw:?}")))
}
