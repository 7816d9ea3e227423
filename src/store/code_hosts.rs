//! Configured code hosts.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::AuditEntry;
use super::{Error, Result, Store, conflict_on_unique, from_millis, parse_column, to_millis};
use crate::domain::{
    CodeHostConfig, CodeHostId, CodeHostUpdate, CodeHostUrl, GitUrlType, GlobalCredentialPolicy,
    PolicyMode, PolicyUsers, RepositoryPattern, SshKeyAlgorithm, UserId,
};

/// A code host to register.
pub type NewCodeHost = CodeHostConfig;

macro_rules! code_host_columns {
    () => {
        "id, kind, url, git_url_type, ssh_known_hosts, ssh_key_algorithm, created_at, \
         global_credential_users, global_credential_user_ids, global_credential_repositories"
    };
}

fn code_host_from_row(row: &AnyRow) -> Result<CodeHostConfig> {
    let url: String = row.try_get("url")?;
    Ok(CodeHostConfig {
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
        global_credential_policy: policy_from_row(row)?,
    })
}

fn policy_from_row(row: &AnyRow) -> Result<GlobalCredentialPolicy> {
    let corrupt =
        |column: &str, raw: &str| Error::Corrupt(format!("column {column} holds {raw:?}"));
    let mode: String = row.try_get("global_credential_users")?;
    let ids: String = row.try_get("global_credential_user_ids")?;
    let patterns: String = row.try_get("global_credential_repositories")?;
    let users = match mode
        .parse::<PolicyMode>()
        .map_err(|_| corrupt("code_hosts.global_credential_users", &mode))?
    {
        PolicyMode::Everyone => PolicyUsers::Everyone,
        PolicyMode::Nobody => PolicyUsers::Nobody,
        PolicyMode::Selected => PolicyUsers::Selected(
            serde_json::from_str::<Vec<String>>(&ids)
                .map_err(|_| corrupt("code_hosts.global_credential_user_ids", &ids))?
                .iter()
                .map(|id| parse_column::<UserId>("code_hosts.global_credential_user_ids", id))
                .collect::<Result<_>>()?,
        ),
    };
    let repositories = serde_json::from_str::<Vec<String>>(&patterns)
        .map_err(|_| corrupt("code_hosts.global_credential_repositories", &patterns))?
        .iter()
        .map(|p| {
            RepositoryPattern::parse(p)
                .map_err(|_| corrupt("code_hosts.global_credential_repositories", p))
        })
        .collect::<Result<_>>()?;
    Ok(GlobalCredentialPolicy {
        users,
        repositories,
    })
}

/// The policy's three columns: mode, user ids and patterns (JSON arrays).
fn policy_columns(policy: &GlobalCredentialPolicy) -> (&'static str, String, String) {
    let ids: Vec<String> = match &policy.users {
        PolicyUsers::Selected(ids) => ids.iter().map(ToString::to_string).collect(),
        PolicyUsers::Everyone | PolicyUsers::Nobody => Vec::new(),
    };
    let patterns: Vec<&str> = policy
        .repositories
        .iter()
        .map(RepositoryPattern::as_str)
        .collect();
    (
        policy.users.mode().as_str(),
        serde_json::Value::from(ids).to_string(),
        serde_json::Value::from(patterns).to_string(),
    )
}

impl Store {
    pub async fn insert_code_host(&self, audit: &AuditEntry, host: &NewCodeHost) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let (users, user_ids, repositories) = policy_columns(&host.global_credential_policy);
        sqlx::query(concat!(
            "INSERT INTO code_hosts (",
            code_host_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(host.id.to_string())
        .bind(host.kind.as_str())
        .bind(host.url.as_str())
        .bind(host.git_url_type.as_str())
        .bind(host.ssh_known_hosts.as_deref())
        .bind(host.ssh_key_algorithm.as_str())
        .bind(to_millis(host.created_at))
        .bind(users)
        .bind(user_ids)
        .bind(repositories)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, "a code host with this URL already exists"))?;
        super::audit::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn find_code_host(&self, id: CodeHostId) -> Result<CodeHostConfig> {
        let row = self
            .fetch_one(
                sqlx::query(concat!(
                    "SELECT ",
                    code_host_columns!(),
                    " FROM code_hosts WHERE id = $1"
                ))
                .bind(id.to_string()),
            )
            .await?;
        code_host_from_row(&row)
    }

    pub async fn find_code_host_by_url(&self, url: &CodeHostUrl) -> Result<CodeHostConfig> {
        let row = self
            .fetch_one(
                sqlx::query(concat!(
                    "SELECT ",
                    code_host_columns!(),
                    " FROM code_hosts WHERE url = $1"
                ))
                .bind(url.as_str()),
            )
            .await?;
        code_host_from_row(&row)
    }

    /// Code hosts in registration order, starting after `after`.
    pub async fn list_code_hosts(
        &self,
        after: Option<CodeHostId>,
        limit: i64,
    ) -> Result<Vec<CodeHostConfig>> {
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

    /// Applies `update` and returns the code host as it now is. Only the
    /// fields given are written, in one statement: a form changing several
    /// fields changes all or none of them, and two admins changing
    /// different fields at once (the git URL type, the policy) both keep
    /// their change.
    pub async fn update_code_host(
        &self,
        audit: &AuditEntry,
        id: CodeHostId,
        update: CodeHostUpdate,
    ) -> Result<CodeHostConfig> {
        let mut tx = self.pool.begin().await?;
        let flag = |given: bool| i64::from(given);
        let (known_hosts_given, known_hosts) = match update.ssh_known_hosts {
            Some(value) => (true, value),
            None => (false, None),
        };
        let policy = update.global_credential_policy.as_ref().map(policy_columns);
        let done = sqlx::query(
            "UPDATE code_hosts SET git_url_type = COALESCE($1, git_url_type), \
             ssh_known_hosts = CASE WHEN $2 = 1 THEN $3 ELSE ssh_known_hosts END, \
             ssh_key_algorithm = COALESCE($4, ssh_key_algorithm), \
             global_credential_users = COALESCE($5, global_credential_users), \
             global_credential_user_ids = COALESCE($6, global_credential_user_ids), \
             global_credential_repositories = COALESCE($7, global_credential_repositories) \
             WHERE id = $8",
        )
        .bind(update.git_url_type.map(GitUrlType::as_str))
        .bind(flag(known_hosts_given))
        .bind(known_hosts.as_deref())
        .bind(update.ssh_key_algorithm.map(SshKeyAlgorithm::as_str))
        .bind(policy.as_ref().map(|(users, _, _)| *users))
        .bind(policy.as_ref().map(|(_, ids, _)| ids.as_str()))
        .bind(
            policy
                .as_ref()
                .map(|(_, _, repositories)| repositories.as_str()),
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        super::audit::append(&mut tx, audit).await?;
        tx.commit().await?;
        self.find_code_host(id).await
    }

    /// Removes a code host and, by cascade, every credential for it.
    pub async fn delete_code_host(&self, audit: &AuditEntry, id: CodeHostId) -> Result<()> {
        self.write_audited(
            audit,
            sqlx::query("DELETE FROM code_hosts WHERE id = $1").bind(id.to_string()),
            None,
        )
        .await
    }
}
