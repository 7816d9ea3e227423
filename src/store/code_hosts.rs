//! Configured code hosts.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Error, Result, Store, conflict_on_unique, from_millis, parse_column, to_millis};
use crate::domain::{CodeHostId, CodeHostKind, CodeHostUrl, GitUrlType, SshKeyAlgorithm};

/// A code host as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeHostRecord {
    pub id: CodeHostId,
    pub kind: CodeHostKind,
    pub url: CodeHostUrl,
    pub git_url_type: GitUrlType,
    /// `known_hosts` lines pinning the host's SSH key, for SSH pushes.
    pub ssh_known_hosts: Option<String>,
    pub ssh_key_algorithm: SshKeyAlgorithm,
    pub created_at: DateTime<Utc>,
}

/// A code host to register.
pub type NewCodeHost = CodeHostRecord;

/// Changes to a code host; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct CodeHostUpdate {
    pub git_url_type: Option<GitUrlType>,
    /// `Some(None)` clears the recorded host key.
    pub ssh_known_hosts: Option<Option<String>>,
    pub ssh_key_algorithm: Option<SshKeyAlgorithm>,
}

macro_rules! code_host_columns {
    () => {
        "id, kind, url, git_url_type, ssh_known_hosts, ssh_key_algorithm, created_at"
    };
}

fn code_host_from_row(row: &AnyRow) -> Result<CodeHostRecord> {
    let url: String = row.try_get("url")?;
    Ok(CodeHostRecord {
        id: parse_column("code_hosts.id", &row.try_get::<String, _>("id")?)?,
        kind: parse_column("code_hosts.kind", &row.try_get::<String, _>("kind")?)?,
        url: CodeHostUrl::parse(&url).map_err(|e| Error::Corrupt(e.to_string()))?,
        git_url_type: parse_column(
            "code_hosts.git_url_type",
            &row.try_get::<String, _>("git_url_type")?,
        )?,
        ssh_known_hosts: row.try_get("ssh_known_hosts")?,
        ssh_key_algorithm: parse_column(
            "code_hosts.ssh_key_algorithm",
            &row.try_get::<String, _>("ssh_key_algorithm")?,
        )?,
        created_at: from_millis(row.try_get("created_at")?)?,
    })
}

impl Store {
    pub async fn insert_code_host(&self, host: &NewCodeHost) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO code_hosts (",
            code_host_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(host.id.to_string())
        .bind(host.kind.as_str())
        .bind(host.url.as_str())
        .bind(host.git_url_type.as_str())
        .bind(host.ssh_known_hosts.as_deref())
        .bind(host.ssh_key_algorithm.as_str())
        .bind(to_millis(host.created_at))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, "a code host with this URL already exists"))?;
        Ok(())
    }

    pub async fn find_code_host(&self, id: CodeHostId) -> Result<CodeHostRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            code_host_columns!(),
            " FROM code_hosts WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound)?;
        code_host_from_row(&row)
    }

    pub async fn find_code_host_by_url(&self, url: &CodeHostUrl) -> Result<CodeHostRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            code_host_columns!(),
            " FROM code_hosts WHERE url = $1"
        ))
        .bind(url.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound)?;
        code_host_from_row(&row)
    }

    /// Code hosts in registration order, starting after `after`.
    pub async fn list_code_hosts(
        &self,
        after: Option<CodeHostId>,
        limit: i64,
    ) -> Result<Vec<CodeHostRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            code_host_columns!(),
            " FROM code_hosts WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ))
        .bind(after.map(|id| id.to_string()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(code_host_from_row).collect()
    }

    pub async fn count_code_hosts(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM code_hosts")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Applies `update` and returns the code host as it now is.
    pub async fn update_code_host(
        &self,
        id: CodeHostId,
        update: CodeHostUpdate,
    ) -> Result<CodeHostRecord> {
        let current = self.find_code_host(id).await?;
        let git_url_type = update.git_url_type.unwrap_or(current.git_url_type);
        let ssh_known_hosts = update.ssh_known_hosts.unwrap_or(current.ssh_known_hosts);
        let algorithm = update
            .ssh_key_algorithm
            .unwrap_or(current.ssh_key_algorithm);
        let done = sqlx::query(
            "UPDATE code_hosts SET git_url_type = $1, ssh_known_hosts = $2, \
             ssh_key_algorithm = $3 WHERE id = $4",
        )
        .bind(git_url_type.as_str())
        .bind(ssh_known_hosts.as_deref())
        .bind(algorithm.as_str())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        self.find_code_host(id).await
    }

    /// Removes a code host and, by cascade, every credential for it.
    pub async fn delete_code_host(&self, id: CodeHostId) -> Result<()> {
        let done = sqlx::query("DELETE FROM code_hosts WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }
}
