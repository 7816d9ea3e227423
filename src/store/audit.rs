//! The audit log: hash-chained entries, appended in the transaction of the
//! change they describe (see migration 0013 for why the head row makes
//! appends from several replicas safe).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Error, Result, Store, from_millis, to_millis};
use crate::domain::{AuditRecord, ChangesetId, CodeHostId, CredentialId, UserId};

/// An event to record. `detail` is a JSON object and never holds a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// `user:<id>`, `operator`, `system` or `anonymous`.
    pub actor: String,
    pub actor_name: Option<String>,
    pub event: &'static str,
    /// `success` or `failure`.
    pub outcome: &'static str,
    pub user_id: Option<String>,
    pub code_host_id: Option<String>,
    pub credential_id: Option<String>,
    pub changeset_id: Option<String>,
    pub detail: serde_json::Value,
}

impl AuditEntry {
    /// A successful `event` by `actor`, now, about nothing yet.
    pub fn new(actor: String, actor_name: Option<String>, event: &'static str) -> Self {
        Self {
            at: Utc::now(),
            actor,
            actor_name,
            event,
            outcome: "success",
            user_id: None,
            code_host_id: None,
            credential_id: None,
            changeset_id: None,
            detail: serde_json::json!({}),
        }
    }

    /// The user the event is about (a credential's owner, an account).
    pub fn user(mut self, id: UserId) -> Self {
        self.user_id = Some(id.to_string());
        self
    }

    pub fn code_host(mut self, id: CodeHostId) -> Self {
        self.code_host_id = Some(id.to_string());
        self
    }

    pub fn credential(mut self, id: CredentialId) -> Self {
        self.credential_id = Some(id.to_string());
        self
    }

    pub fn changeset(mut self, id: ChangesetId) -> Self {
        self.changeset_id = Some(id.to_string());
        self
    }

    /// The rest, as a JSON object; never a secret.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn failed(mut self) -> Self {
        self.outcome = "failure";
        self
    }
}

impl AuditRecord {
    /// The hash this entry should carry, from its fields and the hash of
    /// the entry before it.
    pub fn expected_hash(&self) -> String {
        chain_hash(
            &self.prev_hash,
            self.seq,
            to_millis(self.at),
            [
                Some(self.actor.as_str()),
                self.actor_name.as_deref(),
                Some(self.event.as_str()),
                Some(self.outcome.as_str()),
                self.user_id.as_deref(),
                self.code_host_id.as_deref(),
                self.credential_id.as_deref(),
                self.changeset_id.as_deref(),
                Some(self.detail.as_str()),
            ],
        )
    }
}

/// SHA-256 over an unambiguous encoding of the fields (a JSON array), hex.
fn chain_hash(prev: &str, seq: i64, at: i64, fields: [Option<&str>; 9]) -> String {
    let encoded = serde_json::json!([prev, seq, at, fields]).to_string();
    hex::encode(Sha256::digest(encoded.as_bytes()))
}

/// Where the chain starts (after retention pruned older entries) and
/// ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
    pub pruned_seq: i64,
    pub pruned_hash: String,
}

/// Which entries a listing shows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Entries about this user or by them (`user:<id>` as actor).
    pub user_id: Option<String>,
    pub event: Option<String>,
    pub code_host_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

macro_rules! audit_columns {
    () => {
        "seq, at, actor, actor_name, event, outcome, user_id, code_host_id, credential_id, \
         changeset_id, detail, prev_hash, hash"
    };
}

fn record_from_row(row: &AnyRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        at: from_millis(row.try_get("at")?)?,
        actor: row.try_get("actor")?,
        actor_name: row.try_get("actor_name")?,
        event: row.try_get("event")?,
        outcome: row.try_get("outcome")?,
        user_id: row.try_get("user_id")?,
        code_host_id: row.try_get("code_host_id")?,
        credential_id: row.try_get("credential_id")?,
        changeset_id: row.try_get("changeset_id")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Appends `entry` on `conn`, inside the caller's transaction: it commits
/// or rolls back with the change it describes.
pub(super) async fn append(conn: &mut sqlx::AnyConnection, entry: &AuditEntry) -> Result<i64> {
    // Updating the head first takes its row lock until the transaction
    // ends, so concurrent appends queue up here.
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *conn)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev: String = head.try_get("hash")?;
    let detail = entry.detail.to_string();
    let record = AuditRecord {
        seq,
        at: entry.at,
        actor: entry.actor.clone(),
        actor_name: entry.actor_name.clone(),
        event: entry.event.to_owned(),
        outcome: entry.outcome.to_owned(),
        user_id: entry.user_id.clone(),
        code_host_id: entry.code_host_id.clone(),
        credential_id: entry.credential_id.clone(),
        changeset_id: entry.changeset_id.clone(),
        detail,
        prev_hash: prev,
        hash: String::new(),
    };
    let hash = record.expected_hash();
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    sqlx::query(concat!(
        "INSERT INTO audit_log (",
        audit_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(seq)
    .bind(to_millis(record.at))
    .bind(&record.actor)
    .bind(record.actor_name.as_deref())
    .bind(&record.event)
    .bind(&record.outcome)
    .bind(record.user_id.as_deref())
    .bind(record.code_host_id.as_deref())
    .bind(record.credential_id.as_deref())
    .bind(record.changeset_id.as_deref())
    .bind(&record.detail)
    .bind(&record.prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(seq)
}

impl Store {
    /// Runs one write and appends `audit` with it, in one transaction. A
    /// write that changed no row records nothing and is
    /// [`Error::NotFound`]; with `conflict`, a unique violation is that
    /// [`Error::Conflict`].
    pub(super) async fn write_audited(
        &self,
        audit: &AuditEntry,
        query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
        conflict: Option<&'static str>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = query.execute(&mut *tx).await.map_err(|e| match conflict {
            Some(message) => super::conflict_on_unique(e, message),
            None => Error::Database(e),
        })?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an event that is not part of another write (a failed
    /// sign-in, a key rotation), in a transaction of its own.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        append(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A page of entries matching `filter`, newest first, before entry
    /// `before` (exclusive).
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE ($1 IS NULL OR user_id = $1 OR actor = 'user:' || $1) \
             AND ($2 IS NULL OR event = $2) AND ($3 IS NULL OR code_host_id = $3) \
             AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR at < $5) \
             AND ($6 IS NULL OR seq < $6) ORDER BY seq DESC LIMIT $7"
        ))
        .bind(filter.user_id.as_deref())
        .bind(filter.event.as_deref())
        .bind(filter.code_host_id.as_deref())
        .bind(filter.since.map(to_millis))
        .bind(filter.until.map(to_millis))
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// How many entries match `filter`.
    pub async fn count_audit(&self, filter: &AuditFilter) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_log WHERE ($1 IS NULL OR user_id = $1 \
             OR actor = 'user:' || $1) AND ($2 IS NULL OR event = $2) \
             AND ($3 IS NULL OR code_host_id = $3) AND ($4 IS NULL OR at >= $4) \
             AND ($5 IS NULL OR at < $5)",
        )
        .bind(filter.user_id.as_deref())
        .bind(filter.event.as_deref())
        .bind(filter.code_host_id.as_deref())
        .bind(filter.since.map(to_millis))
        .bind(filter.until.map(to_millis))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Up to `limit` entries after entry `after`, oldest first (to walk the
    /// chain).
    pub async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    pub async fn audit_head(&self) -> Result<AuditHead> {
        let row =
            sqlx::query("SELECT seq, hash, pruned_seq, pruned_hash FROM audit_head WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| Error::Corrupt("the audit log's head row is missing".into()))?;
        Ok(AuditHead {
            seq: row.try_get("seq")?,
            hash: row.try_get("hash")?,
            pruned_seq: row.try_get("pruned_seq")?,
            pruned_hash: row.try_get("pruned_hash")?,
        })
    }

    /// Removes entries older than `before` (retention), recording where
    /// the chain now starts, in one transaction. Returns how many went.
    pub async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        // Locks the head like an append, so no entry is written meanwhile.
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let last =
            sqlx::query("SELECT seq, hash FROM audit_log WHERE at < $1 ORDER BY seq DESC LIMIT 1")
                .bind(to_millis(before))
                .fetch_optional(&mut *tx)
                .await?;
        let Some(last) = last else {
            tx.rollback().await?;
            return Ok(0);
        };
        let seq: i64 = last.try_get("seq")?;
        let hash: String = last.try_get("hash")?;
        let removed = sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE audit_head SET pruned_seq = $1, pruned_hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            seq: 7,
            at: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default(),
            actor: "user:abc".into(),
            actor_name: Some("alice".into()),
            event: "credential.created".into(),
            outcome: "success".into(),
            user_id: Some("abc".into()),
            code_host_id: None,
            credential_id: Some("c1".into()),
            changeset_id: None,
            detail: "{}".into(),
            prev_hash: "p".into(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_hash_covers_every_field_and_the_link() {
        let base = record().expected_hash();
        assert_eq!(base.len(), 64);
        let mut edited = record();
        edited.actor_name = Some("mallory".into());
        assert_ne!(edited.expected_hash(), base);
        let mut relinked = record();
        relinked.prev_hash = "q".into();
        assert_ne!(relinked.expected_hash(), base);
        // Moving text between fields changes the hash too.
        let mut shifted = record();
        shifted.actor_name = None;
        shifted.event = "alicecredential.created".into();
        assert_ne!(shifted.expected_hash(), base);
    }
}
