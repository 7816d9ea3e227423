//! Code host webhook secrets, sealed, one per code host.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::audit::AuditEntry;
use super::{Error, Result, Store, to_millis};
use crate::crypto::{KeyId, Sealed};
use crate::domain::CodeHostId;

fn sealed_from_row(row: &sqlx::any::AnyRow) -> Result<Sealed> {
    Ok(Sealed {
        key_id: KeyId::from_stored(row.try_get("secret_key_id")?),
        bytes: row.try_get("secret")?,
    })
}

impl Store {
    /// Sets (or replaces) a code host's webhook secret.
    pub async fn set_webhook_secret(
        &self,
        audit: &AuditEntry,
        code_host: CodeHostId,
        secret: &Sealed,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.write_audited(
            audit,
            sqlx::query(
                "INSERT INTO code_host_webhooks (code_host_id, secret_key_id, secret, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (code_host_id) DO UPDATE SET \
             secret_key_id = excluded.secret_key_id, secret = excluded.secret, \
             created_at = excluded.created_at",
            )
            .bind(code_host.to_string())
            .bind(secret.key_id.as_str())
            .bind(secret.bytes.as_slice())
            .bind(to_millis(at)),
            None,
        )
        .await
    }

    /// Removes a code host's webhook secret; `false` when it had none.
    pub async fn delete_webhook_secret(
        &self,
        audit: &AuditEntry,
        code_host: CodeHostId,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM code_host_webhooks WHERE code_host_id = $1")
            .bind(code_host.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        super::audit::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A code host's sealed webhook secret, if it has one.
    pub async fn webhook_secret(&self, code_host: CodeHostId) -> Result<Option<Sealed>> {
        let row = sqlx::query(
            "SELECT secret_key_id, secret FROM code_host_webhooks WHERE code_host_id = $1",
        )
        .bind(code_host.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(sealed_from_row).transpose()
    }

    /// The code hosts that have a webhook secret.
    pub async fn code_hosts_with_webhooks(&self) -> Result<Vec<CodeHostId>> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT code_host_id FROM code_host_webhooks")
            .fetch_all(&self.pool)
            .await?;
        ids.iter()
            .map(|id| {
                id.parse()
                    .map_err(|_| Error::Corrupt(format!("code_host_webhooks holds {id:?}")))
            })
            .collect()
    }

    /// The webhook secrets not sealed with `key`, for re-encryption.
    pub async fn webhook_secrets_not_under(
        &self,
        key: &KeyId,
    ) -> Result<Vec<(CodeHostId, Sealed)>> {
        let rows = sqlx::query(
            "SELECT code_host_id, secret_key_id, secret FROM code_host_webhooks \
             WHERE secret_key_id <> $1",
        )
        .bind(key.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("code_host_id")?;
                let id = id
                    .parse()
                    .map_err(|_| Error::Corrupt(format!("code_host_webhooks holds {id:?}")))?;
                Ok((id, sealed_from_row(row)?))
            })
            .collect()
    }

    /// Replaces a webhook secret's seal if it is still `old` (a
    /// compare-and-swap, like credentials); returns whether it was.
    pub async fn replace_webhook_secret(
        &self,
        code_host: CodeHostId,
        old: &Sealed,
        new: &Sealed,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE code_host_webhooks SET secret_key_id = $1, secret = $2 \
             WHERE code_host_id = $3 AND secret_key_id = $4 AND secret = $5",
        )
        .bind(new.key_id.as_str())
        .bind(new.bytes.as_slice())
        .bind(code_host.to_string())
        .bind(old.key_id.as_str())
        .bind(old.bytes.as_slice())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
