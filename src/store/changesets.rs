//! Changesets and how far publishing each one got.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::AuditEntry;
use super::{Error, Result, Store, from_millis, parse_column, to_millis};
use crate::domain::{ChangesetId, ChangesetRecord, CodeHostId, UserId};

macro_rules! changeset_columns {
    () => {
        "id, user_id, code_host_id, repository, base_branch, head_branch, spec_hash, state, \
         credential_id, credential_source, pushed_commit, pr_number, pr_url, error, attempts, \
         created_at, updated_at, previous_user_id, handed_over_by, handed_over_at, pushing_commit, \
         title, job_action, job_state, job_attempts, job_version, process_after, \
         delete_branch_on_close, external_state, review_state, checks_state, synced_at, imported, \
         change_id"
    };
}
pub(super) use changeset_columns;

pub(super) fn changeset_from_row(row: &AnyRow) -> Result<ChangesetRecord> {
    let text = |column: &str| -> Result<String> { Ok(row.try_get::<String, _>(column)?) };
    Ok(ChangesetRecord {
        id: parse_column("changesets.id", &text("id")?)?,
        user_id: parse_column("changesets.user_id", &text("user_id")?)?,
        code_host_id: parse_column("changesets.code_host_id", &text("code_host_id")?)?,
        repository: text("repository")?,
        base_branch: text("base_branch")?,
        head_branch: text("head_branch")?,
        spec_hash: text("spec_hash")?,
        state: parse_column("changesets.state", &text("state")?)?,
        credential_id: row
            .try_get::<Option<String>, _>("credential_id")?
            .map(|id| parse_column("changesets.credential_id", &id))
            .transpose()?,
        credential_source: row.try_get("credential_source")?,
        pushed_commit: row.try_get("pushed_commit")?,
        pushing_commit: row.try_get("pushing_commit")?,
        pr_number: row.try_get("pr_number")?,
        pr_url: row.try_get("pr_url")?,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
        previous_user_id: optional_id(row, "previous_user_id")?,
        handed_over_by: optional_id(row, "handed_over_by")?,
        handed_over_at: optional_time(row, "handed_over_at")?,
        title: text("title")?,
        job_action: row
            .try_get::<Option<String>, _>("job_action")?
            .map(|action| parse_column("changesets.job_action", &action))
            .transpose()?,
        job_state: parse_column("changesets.job_state", &text("job_state")?)?,
        job_attempts: row.try_get("job_attempts")?,
        job_version: row.try_get("job_version")?,
        process_after: from_millis(row.try_get("process_after")?)?,
        delete_branch_on_close: row.try_get::<i64, _>("delete_branch_on_close")? != 0,
        external_state: row.try_get("external_state")?,
        review_state: row.try_get("review_state")?,
        checks_state: row.try_get("checks_state")?,
        synced_at: optional_time(row, "synced_at")?,
        imported: row.try_get::<i64, _>("imported")? != 0,
        change_id: row.try_get("change_id")?,
    })
}

fn optional_time(row: &AnyRow, column: &'static str) -> Result<Option<DateTime<Utc>>> {
    row.try_get::<Option<i64>, _>(column)?
        .map(from_millis)
        .transpose()
}

fn optional_id(row: &AnyRow, column: &'static str) -> Result<Option<UserId>> {
    row.try_get::<Option<String>, _>(column)?
        .map(|id| parse_column(column, &id))
        .transpose()
}

/// Why [`Store::begin_changeset`] refused: the branch is someone else's.
pub const OWNED_BY_ANOTHER_USER: &str =
    "this branch is another user's changeset; a site admin can hand it over";

impl Store {
    /// The changeset for a branch of a repository, if one was recorded.
    pub async fn find_changeset(
        &self,
        code_host_id: CodeHostId,
        repository: &str,
        head_branch: &str,
    ) -> Result<Option<ChangesetRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            changeset_columns!(),
            " FROM changesets WHERE code_host_id = $1 AND repository = $2 AND head_branch = $3"
        ))
        .bind(code_host_id.to_string())
        .bind(repository)
        .bind(head_branch)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(changeset_from_row).transpose()
    }

    /// Records an attempt to publish: inserts the changeset, or marks the
    /// existing one for the same branch as pending again with the new
    /// spec. Keeps what an earlier attempt learned (the pull request, the
    /// commit last pushed), so a retry updates it. A branch recorded for
    /// another user is refused with [`Error::Conflict`] and left as it
    /// was, unless [`ChangesetRecord::claimable_by`] says it is up for the
    /// taking (the same rule, in SQL). Returns the stored row.
    pub async fn begin_changeset(&self, changeset: &ChangesetRecord) -> Result<ChangesetRecord> {
        let written = sqlx::query(
            "INSERT INTO changesets (id, user_id, code_host_id, repository, base_branch, \
             head_branch, spec_hash, state, credential_id, credential_source, pushed_commit, \
             pr_number, pr_url, error, attempts, created_at, updated_at, title) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18) \
             ON CONFLICT (code_host_id, repository, head_branch) DO UPDATE SET \
             user_id = excluded.user_id, base_branch = excluded.base_branch, \
             spec_hash = excluded.spec_hash, state = excluded.state, error = NULL, \
             title = excluded.title, \
             attempts = changesets.attempts + 1, updated_at = excluded.updated_at \
             WHERE changesets.user_id = excluded.user_id OR (changesets.state = 'failed' \
             AND changesets.pushed_commit IS NULL AND changesets.pushing_commit IS NULL \
             AND changesets.pr_number IS NULL)",
        )
        .bind(changeset.id.to_string())
        .bind(changeset.user_id.to_string())
        .bind(changeset.code_host_id.to_string())
        .bind(&changeset.repository)
        .bind(&changeset.base_branch)
        .bind(&changeset.head_branch)
        .bind(&changeset.spec_hash)
        .bind(changeset.state.as_str())
        .bind(changeset.credential_id.map(|id| id.to_string()))
        .bind(changeset.credential_source.as_deref())
        .bind(changeset.pushed_commit.as_deref())
        .bind(changeset.pr_number)
        .bind(changeset.pr_url.as_deref())
        .bind(changeset.error.as_deref())
        .bind(changeset.attempts)
        .bind(to_millis(changeset.created_at))
        .bind(to_millis(changeset.updated_at))
        .bind(&changeset.title)
        .execute(&self.pool)
        .await?;
        if written.rows_affected() == 0 {
            return Err(Error::Conflict(OWNED_BY_ANOTHER_USER));
        }
        self.find_changeset(
            changeset.code_host_id,
            &changeset.repository,
            &changeset.head_branch,
        )
        .await?
        .ok_or(Error::NotFound)
    }

    /// Records the commit about to be pushed for a changeset, before the
    /// push, so that an attempt interrupted after pushing it is recognised
    /// as batchcred's own work and not as someone else's.
    pub async fn record_pushing_commit(&self, id: ChangesetId, commit: &str) -> Result<()> {
        let done = sqlx::query("UPDATE changesets SET pushing_commit = $1 WHERE id = $2")
            .bind(commit)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// The changeset's Gerrit Change-Id: the one already recorded, else
    /// `candidate`, recorded now. Written before anything is pushed, and
    /// never replaced, so that concurrent or repeated publishes all upload
    /// to one change.
    pub async fn ensure_change_id(&self, id: ChangesetId, candidate: &str) -> Result<String> {
        sqlx::query("UPDATE changesets SET change_id = $1 WHERE id = $2 AND change_id IS NULL")
            .bind(candidate)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        let row = self
            .fetch_one(
                sqlx::query("SELECT change_id FROM changesets WHERE id = $1").bind(id.to_string()),
            )
            .await?;
        row.try_get::<Option<String>, _>("change_id")?
            .ok_or(Error::NotFound)
    }

    /// Gives a changeset to `to`, recording the previous owner, who did it
    /// (`None`: the operator) and when, in the same write. Returns the
    /// stored row.
    pub async fn hand_over_changeset(
        &self,
        audit: &AuditEntry,
        id: ChangesetId,
        to: UserId,
        by: Option<UserId>,
        at: DateTime<Utc>,
    ) -> Result<ChangesetRecord> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE changesets SET previous_user_id = user_id, user_id = $1, \
             handed_over_by = $2, handed_over_at = $3, updated_at = $3 WHERE id = $4",
        )
        .bind(to.to_string())
        .bind(by.map(|id| id.to_string()))
        .bind(to_millis(at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            changeset_columns!(),
            " FROM changesets WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        let handed = changeset_from_row(&row)?;
        super::audit::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(handed)
    }

    /// Saves the progress of a publish.
    pub async fn update_changeset(&self, changeset: &ChangesetRecord) -> Result<()> {
        let done = sqlx::query(
            "UPDATE changesets SET state = $1, credential_id = $2, credential_source = $3, \
             pushed_commit = $4, pr_number = $5, pr_url = $6, error = $7, updated_at = $8, \
             external_state = $9 WHERE id = $10",
        )
        .bind(changeset.state.as_str())
        .bind(changeset.credential_id.map(|id| id.to_string()))
        .bind(changeset.credential_source.as_deref())
        .bind(changeset.pushed_commit.as_deref())
        .bind(changeset.pr_number)
        .bind(changeset.pr_url.as_deref())
        .bind(changeset.error.as_deref())
        .bind(to_millis(changeset.updated_at))
        .bind(changeset.external_state.as_deref())
        .bind(changeset.id.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// Records a pull request opened outside batchcred, to track it. A
    /// branch already recorded is refused with [`Error::Conflict`].
    pub async fn import_changeset(&self, changeset: &ChangesetRecord) -> Result<ChangesetRecord> {
        sqlx::query(
            "INSERT INTO changesets (id, user_id, code_host_id, repository, base_branch, \
             head_branch, spec_hash, state, credential_id, credential_source, pr_number, pr_url, \
             attempts, created_at, updated_at, title, external_state, review_state, \
             checks_state, synced_at, imported) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, \
             $16, $17, $18, $14, 1)",
        )
        .bind(changeset.id.to_string())
        .bind(changeset.user_id.to_string())
        .bind(changeset.code_host_id.to_string())
        .bind(&changeset.repository)
        .bind(&changeset.base_branch)
        .bind(&changeset.head_branch)
        .bind(&changeset.spec_hash)
        .bind(changeset.state.as_str())
        .bind(changeset.credential_id.map(|id| id.to_string()))
        .bind(changeset.credential_source.as_deref())
        .bind(changeset.pr_number)
        .bind(changeset.pr_url.as_deref())
        .bind(changeset.attempts)
        .bind(to_millis(changeset.created_at))
        .bind(&changeset.title)
        .bind(changeset.external_state.as_deref())
        .bind(changeset.review_state.as_deref())
        .bind(changeset.checks_state.as_deref())
        .execute(&self.pool)
        .await
        .map_err(|e| super::conflict_on_unique(e, "this branch is already tracked"))?;
        self.find_changeset(
            changeset.code_host_id,
            &changeset.repository,
            &changeset.head_branch,
        )
        .await?
        .ok_or(Error::NotFound)
    }

    /// A user's changesets, newest first.
    pub async fn list_changesets_of(&self, user_id: UserId) -> Result<Vec<ChangesetRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            changeset_columns!(),
            " FROM changesets WHERE user_id = $1 ORDER BY updated_at DESC, id"
        ))
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(changeset_from_row).collect()
    }
}
