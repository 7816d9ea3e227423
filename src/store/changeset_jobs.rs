//! The changeset job queue: each changeset row carries at most one job
//! (publish, close, reopen, sync). Workers on every replica claim jobs
//! under a lease they renew while working; a job whose worker died is
//! claimed again once its lease lapses. The shape follows the reference
//! product's database worker: dequeue, heartbeat, mark complete, mark
//! errored (retried after a back-off, up to a bound) or failed.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::audit::AuditEntry;
use super::changesets::{changeset_columns, changeset_from_row};
use super::{Backend, Error, Result, Store, to_millis};
use sqlx::Row;

use crate::domain::{ChangesetId, ChangesetRecord, CodeHostId, JobAction, UserId};

/// A job a worker holds: the changeset as claimed, and the claim itself.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub changeset: ChangesetRecord,
    /// The lease's token: every later write of the worker must show it.
    pub lease: String,
}

/// Which jobs a worker may take right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimFilter {
    Any,
    /// Everything but publishing (a rollout window is closed or paced).
    NotPublishing,
}

/// How a worker's attempt at a job ended, for [`Store::finish_job`].
#[derive(Debug, Clone)]
pub enum JobOutcome {
    Completed,
    /// Try again after `retry_at`.
    Errored {
        error: String,
        retry_at: DateTime<Utc>,
    },
    /// Give up.
    Failed {
        error: String,
    },
}

/// Why [`Store::enqueue_publish`] refused: someone else owns the branch.
pub const OWNED_BY_ANOTHER_USER: &str = super::changesets::OWNED_BY_ANOTHER_USER;

/// The jobs' rows, as a worker's claim or a page needs them.
const CLAIMABLE: &str = "((job_state IN ('queued', 'errored') AND process_after <= $3) \
     OR (job_state = 'processing' AND lease_expires_at < $3))";

impl Store {
    /// Records a changeset to publish and queues its job, with the spec
    /// the job will publish, in one transaction. A changeset already
    /// recorded for the branch keeps what earlier attempts learned (pull
    /// request, commits pushed); one being worked on right now stays with
    /// its worker, and the newer request runs once it is done (see
    /// [`Store::finish_job`]). A branch owned by another user is refused
    /// with [`Error::Conflict`] unless
    /// [`ChangesetRecord::claimable_by`] says it is up for the taking.
    pub async fn enqueue_publish(
        &self,
        changeset: &ChangesetRecord,
        spec_json: &str,
    ) -> Result<ChangesetRecord> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(concat!(
            "INSERT INTO changesets (id, user_id, code_host_id, repository, base_branch, \
             head_branch, spec_hash, state, attempts, created_at, updated_at, title, \
             job_action, job_state, job_attempts, job_version, process_after) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 1, $8, $8, $9, 'publish', 'queued', \
             0, 1, $8) \
             ON CONFLICT (code_host_id, repository, head_branch) DO UPDATE SET \
             user_id = excluded.user_id, base_branch = excluded.base_branch, \
             spec_hash = excluded.spec_hash, title = excluded.title, error = NULL, \
             state = CASE WHEN changesets.state = 'failed' THEN 'pending' \
             ELSE changesets.state END, \
             attempts = changesets.attempts + 1, updated_at = excluded.updated_at, \
             job_action = 'publish', job_attempts = 0, \
             job_version = changesets.job_version + 1, \
             job_state = CASE WHEN changesets.job_state = 'processing' THEN 'processing' \
             ELSE 'queued' END, \
             process_after = excluded.process_after \
             WHERE changesets.user_id = excluded.user_id OR (changesets.state = 'failed' \
             AND changesets.pushed_commit IS NULL AND changesets.pushing_commit IS NULL \
             AND changesets.pr_number IS NULL) \
             RETURNING ",
            changeset_columns!()
        ))
        .bind(changeset.id.to_string())
        .bind(changeset.user_id.to_string())
        .bind(changeset.code_host_id.to_string())
        .bind(&changeset.repository)
        .bind(&changeset.base_branch)
        .bind(&changeset.head_branch)
        .bind(&changeset.spec_hash)
        .bind(to_millis(changeset.updated_at))
        .bind(&changeset.title)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(Error::Conflict(OWNED_BY_ANOTHER_USER));
        };
        let stored = changeset_from_row(&row)?;
        sqlx::query(
            "INSERT INTO changeset_specs (changeset_id, spec) VALUES ($1, $2) \
             ON CONFLICT (changeset_id) DO UPDATE SET spec = excluded.spec",
        )
        .bind(stored.id.to_string())
        .bind(spec_json)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// The spec a changeset's publish job publishes.
    pub async fn changeset_spec(&self, id: ChangesetId) -> Result<String> {
        sqlx::query_scalar("SELECT spec FROM changeset_specs WHERE changeset_id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(Error::NotFound)
    }

    /// Queues a close, reopen or sync job for a changeset, unless a
    /// publish, close or reopen job of it has not ended (a waiting sync is
    /// replaced; a running one finishes first, and the new job runs
    /// after). Without `over_failed`, a failed publish, close or reopen is
    /// left as it is too, so that a background sync does not hide its
    /// error. Returns the row, or [`Error::NotFound`] when there is no
    /// such changeset or it is busy.
    pub async fn enqueue_job(
        &self,
        id: ChangesetId,
        action: JobAction,
        delete_branch_on_close: bool,
        over_failed: bool,
        now: DateTime<Utc>,
    ) -> Result<ChangesetRecord> {
        let row = self
            .fetch_one(
                sqlx::query(concat!(
                    "UPDATE changesets SET job_action = $1, delete_branch_on_close = $2, \
             job_attempts = 0, job_version = job_version + 1, process_after = $3, \
             updated_at = $3, \
             job_state = CASE WHEN job_state = 'processing' THEN 'processing' ELSE 'queued' END \
             WHERE id = $4 AND NOT (job_state IN ('queued', 'processing', 'errored') \
             AND job_action <> 'sync') \
             AND ($5 = 1 OR NOT (job_state = 'failed' AND job_action <> 'sync')) RETURNING ",
                    changeset_columns!()
                ))
                .bind(action.as_str())
                .bind(i64::from(delete_branch_on_close))
                .bind(to_millis(now))
                .bind(id.to_string())
                .bind(i64::from(over_failed)),
            )
            .await?;
        changeset_from_row(&row)
    }

    /// Queues a sync job for every published changeset not synced since
    /// `stale_before` and without a job waiting or running: one statement,
    /// so replicas doing it at once queue each changeset once. Returns how
    /// many were queued.
    pub async fn enqueue_stale_syncs(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
        most: i64,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE changesets SET job_action = 'sync', job_attempts = 0, \
             job_version = job_version + 1, job_state = 'queued', process_after = $1 \
             WHERE id IN (SELECT id FROM changesets WHERE pr_number IS NOT NULL \
             AND (job_state = 'completed' OR (job_state = 'failed' AND job_action = 'sync')) \
             AND (external_state IS NULL OR external_state IN ('open', 'draft')) \
             AND (synced_at IS NULL OR synced_at < $2) ORDER BY synced_at LIMIT $3) \
             AND (job_state = 'completed' OR (job_state = 'failed' AND job_action = 'sync'))",
        )
        .bind(to_millis(now))
        .bind(to_millis(stale_before))
        .bind(most)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Claims the job that has waited longest among those due at `now`
    /// (or whose worker's lease lapsed), for `lease` from now. On
    /// PostgreSQL concurrent claims skip each other's rows
    /// (`FOR UPDATE SKIP LOCKED`); SQLite runs one write at a time.
    pub async fn claim_job(
        &self,
        filter: ClaimFilter,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>> {
        let token = uuid::Uuid::new_v4().to_string();
        let only = match filter {
            ClaimFilter::Any => "",
            ClaimFilter::NotPublishing => " AND job_action <> 'publish'",
        };
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE changesets SET job_state = 'processing', lease_token = $1, \
             lease_expires_at = $2, job_attempts = job_attempts + 1 \
             WHERE id = (SELECT id FROM changesets WHERE {CLAIMABLE}{only} \
             ORDER BY process_after, id LIMIT 1{lock}) RETURNING {}",
            changeset_columns!()
        );
        // Assembled from constants only.
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&token)
            .bind(to_millis(now + lease))
            .bind(to_millis(now))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(ClaimedJob {
                changeset: changeset_from_row(&row)?,
                lease: token,
            })
        })
        .transpose()
    }

    /// Whether the shared rollout pace lets a changeset be published at
    /// `now`.
    pub async fn rollout_slot_open(&self, now: DateTime<Utc>) -> Result<bool> {
        let next: Option<i64> =
            sqlx::query_scalar("SELECT next_at FROM rollout_pace WHERE id = 'publish'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(next.is_none_or(|next| next <= to_millis(now)))
    }

    /// Takes the rollout pace's slot at `now` and moves it `interval` on:
    /// a compare-and-swap, so of replicas taking it at once one wins.
    /// Returns whether this caller did.
    pub async fn take_rollout_slot(&self, now: DateTime<Utc>, interval: Duration) -> Result<bool> {
        sqlx::query(
            "INSERT INTO rollout_pace (id, next_at) VALUES ('publish', 0) \
             ON CONFLICT (id) DO NOTHING",
        )
        .execute(&self.pool)
        .await?;
        let next = now + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::days(1));
        let done = sqlx::query(
            "UPDATE rollout_pace SET next_at = $1 WHERE id = 'publish' AND next_at <= $2",
        )
        .bind(to_millis(next))
        .bind(to_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Extends a held lease; `false` when the lease was lost (it lapsed
    /// and another worker took the job), and the worker must stop.
    pub async fn renew_lease(
        &self,
        id: ChangesetId,
        lease: &str,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE changesets SET lease_expires_at = $1 \
             WHERE id = $2 AND lease_token = $3 AND job_state = 'processing'",
        )
        .bind(to_millis(until))
        .bind(id.to_string())
        .bind(lease)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a worker's attempt at a job, if it still holds the lease
    /// (`false` otherwise: the write is dropped). When another request for
    /// the changeset came in while the job ran (its version moved on), the
    /// job is queued again instead, so the newer request is not lost.
    /// `audit` (the use of a credential) is recorded in the same
    /// transaction.
    pub async fn finish_job(
        &self,
        job: &ClaimedJob,
        outcome: &JobOutcome,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let (state, error, after) = match outcome {
            JobOutcome::Completed => ("completed", None, now),
            JobOutcome::Errored { error, retry_at } => ("errored", Some(error), *retry_at),
            JobOutcome::Failed { error } => ("failed", Some(error), now),
        };
        let done = sqlx::query(
            "UPDATE changesets SET \
             job_state = CASE WHEN job_version = $1 THEN $2 ELSE 'queued' END, \
             job_attempts = CASE WHEN job_version = $1 THEN job_attempts ELSE 0 END, \
             process_after = CASE WHEN job_version = $1 THEN $3 ELSE $4 END, \
             error = CASE WHEN job_version = $1 THEN $5 ELSE error END, \
             lease_token = NULL, lease_expires_at = NULL, updated_at = $4 \
             WHERE id = $6 AND lease_token = $7",
        )
        .bind(job.changeset.job_version)
        .bind(state)
        .bind(to_millis(after))
        .bind(to_millis(now))
        .bind(error.map(String::as_str))
        .bind(job.changeset.id.to_string())
        .bind(&job.lease)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(audit) = audit {
            super::audit::append(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Hands a held job back to the queue untouched, due at `after` (a
    /// worker shutting down, or a rollout window not letting it publish
    /// yet). The claim does not count as an attempt.
    pub async fn release_job(&self, job: &ClaimedJob, after: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE changesets SET job_state = 'queued', process_after = $1, \
             job_attempts = CASE WHEN job_attempts > 0 THEN job_attempts - 1 ELSE 0 END, \
             lease_token = NULL, lease_expires_at = NULL WHERE id = $2 AND lease_token = $3",
        )
        .bind(to_millis(after))
        .bind(job.changeset.id.to_string())
        .bind(&job.lease)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Queues a failed (or errored) job again at once, with its attempts
    /// reset. `Ok(false)` when the job is not failed or errored.
    pub async fn retry_job(&self, id: ChangesetId, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE changesets SET job_state = 'queued', job_attempts = 0, process_after = $1, \
             job_version = job_version + 1, updated_at = $1 \
             WHERE id = $2 AND job_state IN ('failed', 'errored')",
        )
        .bind(to_millis(now))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records what the code host says of a changeset's pull request.
    pub async fn record_pull_request_status(
        &self,
        id: ChangesetId,
        status: &PullRequestSnapshot<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE changesets SET external_state = $1, review_state = $2, checks_state = $3, \
             synced_at = $4, title = COALESCE($5, title), updated_at = $4 WHERE id = $6",
        )
        .bind(status.state)
        .bind(status.review)
        .bind(status.checks)
        .bind(to_millis(now))
        .bind(status.title)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// How many changesets' jobs are in each state, for the metrics.
    pub async fn count_jobs_by_state(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT job_state, COUNT(*) FROM changesets GROUP BY job_state")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The changesets with these ids (those that exist), for following
    /// jobs' progress.
    pub async fn changesets_by_ids(&self, ids: &[ChangesetId]) -> Result<Vec<ChangesetRecord>> {
        let mut found = Vec::with_capacity(ids.len());
        // Bounded batches keep the parameter count within both backends'
        // limits.
        for batch in ids.chunks(500) {
            let placeholders = (1..=batch.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT {} FROM changesets WHERE id IN ({placeholders})",
                changeset_columns!()
            );
            // Placeholders only: the ids are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in batch {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(&self.pool).await? {
                found.push(changeset_from_row(&row)?);
            }
        }
        Ok(found)
    }

    /// The changeset tracking pull request `number` of a repository (its
    /// name compared as code hosts do, ignoring case).
    pub async fn find_changeset_by_pull_request(
        &self,
        code_host: CodeHostId,
        repository: &str,
        number: i64,
    ) -> Result<Option<ChangesetRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            changeset_columns!(),
            " FROM changesets WHERE code_host_id = $1 AND LOWER(repository) = LOWER($2) \
             AND pr_number = $3"
        ))
        .bind(code_host.to_string())
        .bind(repository)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(changeset_from_row).transpose()
    }

    /// One changeset by id.
    pub async fn find_changeset_by_id(&self, id: ChangesetId) -> Result<ChangesetRecord> {
        let row = self
            .fetch_one(
                sqlx::query(concat!(
                    "SELECT ",
                    changeset_columns!(),
                    " FROM changesets WHERE id = $1"
                ))
                .bind(id.to_string()),
            )
            .await?;
        changeset_from_row(&row)
    }
}

/// What a sync read from the code host, as stored.
#[derive(Debug, Clone, Copy)]
pub struct PullRequestSnapshot<'a> {
    pub state: &'a str,
    pub review: Option<&'a str>,
    pub checks: Option<&'a str>,
    pub title: Option<&'a str>,
}

/// Which changesets a listing shows.
#[derive(Debug, Clone, Default)]
pub struct ChangesetFilter {
    /// One user's (`None`: everyone's).
    pub user: Option<UserId>,
    pub code_host: Option<CodeHostId>,
    /// One status, as [`status_sql!`] computes it.
    pub status: Option<String>,
}

/// A changeset's status as people see it, computed from its row: what its
/// job is doing (queued, processing, retrying, failed), else what the code
/// host last said of its pull request (open, draft, merged, closed,
/// deleted), else pending (recorded, not yet published).
macro_rules! status_sql {
    () => {
        "(CASE \
         WHEN job_action IN ('publish', 'close', 'reopen') AND job_state = 'processing' \
         THEN 'processing' \
         WHEN job_action IN ('publish', 'close', 'reopen') AND job_state = 'queued' THEN 'queued' \
         WHEN job_action IN ('publish', 'close', 'reopen') AND job_state = 'errored' \
         THEN 'retrying' \
         WHEN job_action IN ('publish', 'close', 'reopen') AND job_state = 'failed' THEN 'failed' \
         WHEN pr_number IS NULL AND state = 'failed' THEN 'failed' \
         WHEN pr_number IS NULL THEN 'pending' \
         WHEN external_state IS NOT NULL THEN external_state \
         ELSE 'open' END)"
    };
}

impl Store {
    /// A page of changesets, newest first, after the changeset `after`.
    pub async fn list_changesets(
        &self,
        filter: &ChangesetFilter,
        after: Option<ChangesetId>,
        limit: i64,
    ) -> Result<Vec<(ChangesetRecord, String)>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            changeset_columns!(),
            ", ",
            status_sql!(),
            " AS status FROM changesets WHERE ($1 IS NULL OR user_id = $1) \
             AND ($2 IS NULL OR code_host_id = $2) AND ($3 IS NULL OR ",
            status_sql!(),
            " = $3) AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
        ))
        .bind(filter.user.map(|id| id.to_string()))
        .bind(filter.code_host.map(|id| id.to_string()))
        .bind(filter.status.as_deref())
        .bind(after.map(|id| id.to_string()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((changeset_from_row(row)?, row.try_get("status")?)))
            .collect()
    }

    /// How many changesets a filter matches.
    pub async fn count_changesets(&self, filter: &ChangesetFilter) -> Result<i64> {
        let count = sqlx::query_scalar(concat!(
            "SELECT COUNT(*) FROM changesets WHERE ($1 IS NULL OR user_id = $1) \
             AND ($2 IS NULL OR code_host_id = $2) AND ($3 IS NULL OR ",
            status_sql!(),
            " = $3)"
        ))
        .bind(filter.user.map(|id| id.to_string()))
        .bind(filter.code_host.map(|id| id.to_string()))
        .bind(filter.status.as_deref())
        .fetch_one(&self.pool)
        .await?;
        Ok(count)
    }

    /// A changeset's status as [`Store::list_changesets`] computes it.
    pub async fn changeset_status(&self, id: ChangesetId) -> Result<String> {
        sqlx::query_scalar(concat!(
            "SELECT ",
            status_sql!(),
            " FROM changesets WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound)
    }
}
