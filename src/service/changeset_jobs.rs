//! Changesets as durable jobs: publishing records each changeset with its
//! spec and a queued job, and returns at once; workers on every replica
//! claim jobs from the database, run them under a renewed lease, and
//! record how they ended. Jobs never carry a secret: the credential is
//! resolved when the job runs.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::CredentialSource;
use super::publish::{Preparation, Prepared, PublishResult, PublishedChangeset};
use super::{ChangesetReport, Error, Result, Service};
use crate::auth::Caller;
use crate::domain::{
    ChangesetId, ChangesetRecord, ChangesetState, CredentialId, Decision, JobAction, JobState,
    UserId,
};
use crate::publish::{ChangeSpec, ChangesetSpec};
use crate::store::{AuditEntry, ClaimFilter, ClaimedJob, JobOutcome};

/// How the job queue runs.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    /// Workers this process runs (0: none; another process does the work).
    pub workers: usize,
    /// How long a claim lasts unless renewed; a worker renews it every
    /// third of it. A job whose worker died is claimed again after this.
    pub lease: Duration,
    /// How often an idle worker looks for jobs queued by other processes.
    pub poll_interval: Duration,
    /// The wait before the first retry of a failed attempt; doubled for
    /// each further one, up to an hour.
    pub retry_base: Duration,
    /// Claims of one job before it is given up (crashed workers' included).
    pub max_attempts: i64,
    /// How long a worker that is told to stop lets its job run before
    /// handing it back to the queue.
    pub stop_grace: Duration,
    /// How often open pull requests are synced from their code hosts
    /// (`None`: never in the background; webhooks and "Sync now" still
    /// do).
    pub sync_interval: Option<Duration>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            workers: 8,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            retry_base: Duration::from_secs(15),
            max_attempts: 5,
            stop_grace: Duration::from_secs(20),
            sync_interval: Some(Duration::from_secs(10 * 60)),
        }
    }
}

/// The credential a job used.
#[derive(Debug, Clone, Copy)]
pub(super) struct CredentialUse {
    pub credential: CredentialId,
    pub source: CredentialSource,
}

impl CredentialUse {
    pub(super) fn of(credential: &super::ResolvedCredential) -> Self {
        Self {
            credential: credential.credential_id,
            source: credential.source,
        }
    }
}

/// The audit entry for a job's use of a credential: who it acted for,
/// which changeset, user or site credential, code host, repository, and
/// how it went.
fn credential_used(job: &ClaimedJob, used: CredentialUse, outcome: &Result<()>) -> AuditEntry {
    let changeset = &job.changeset;
    let entry = super::audit::by_system(super::audit::event::CREDENTIAL_USED)
        .user(changeset.user_id)
        .code_host(changeset.code_host_id)
        .credential(used.credential)
        .changeset(changeset.id)
        .detail(serde_json::json!({
            "action": changeset.job_action.map(|a| a.as_str()),
            "source": used.source.as_str(),
            "repository": changeset.repository,
            "head_branch": changeset.head_branch,
            "attempt": changeset.job_attempts,
            "error": outcome.as_ref().err().map(ToString::to_string),
        }));
    match outcome {
        Ok(()) => entry,
        Err(_) => entry.failed(),
    }
}

/// The longest wait between two attempts of a job.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(3600);

/// Whether an error may go away by itself (the code host was unreachable
/// or busy, the server overloaded), so the job is tried again; any other
/// needs someone to change something, and the job fails at once.
fn is_transient(error: &Error) -> bool {
    matches!(
        error,
        Error::CodeHostUnavailable(_)
            | Error::Overloaded { .. }
            | Error::Throttled { .. }
            | Error::Internal(_)
    )
}

/// The wait before attempt `attempts + 1`: `base`, doubled per attempt.
fn retry_wait(base: Duration, attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    base.saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_RETRY_WAIT)
}

impl Service {
    /// Records each changeset with its spec and queues it for publishing,
    /// after the same checks as publishing at once (the caller may publish
    /// as `user`, the spec is sound, the branch is not another user's, a
    /// credential exists that `user` may use there). Returns at once, in
    /// the order given: each changeset's id and [`PublishResult::Queued`],
    /// [`PublishResult::Unchanged`] when that spec is already published,
    /// or why it was refused. Commit changes read a repository on this
    /// machine, where another replica's worker could not: they are only
    /// published at once (`batchcred publish --local`).
    pub async fn enqueue_changesets(
        &self,
        caller: &Caller,
        user: UserId,
        specs: Vec<ChangesetSpec>,
    ) -> Result<Vec<ChangesetReport>> {
        caller.require_publishing_as(user)?;
        self.check_request_size(caller, specs.len())?;
        let mut reports = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            let outcome = self.enqueue_changeset(caller, user, &spec).await;
            if outcome.is_ok() {
                // Idle workers start on it while the rest is queued.
                self.job_signal.notify_waiters();
            }
            reports.push(ChangesetReport {
                index,
                repository: spec.repository,
                head_branch: spec.head_branch,
                outcome,
            });
        }
        Ok(reports)
    }

    async fn enqueue_changeset(
        &self,
        caller: &Caller,
        user: UserId,
        spec: &ChangesetSpec,
    ) -> Result<PublishedChangeset> {
        if matches!(spec.change, ChangeSpec::Commit { .. }) {
            return Err(Error::InvalidInput(
                "a commit change reads a repository on this machine's disk: publish it with \
                 `batchcred publish --local`, or send a diff"
                    .into(),
            ));
        }
        let Prepared {
            host, fingerprint, ..
        } = match self.prepare_publish(caller, user, spec).await? {
            Preparation::Unchanged(done) => return Ok(done),
            Preparation::Ready(prepared) => *prepared,
        };
        let spec_json = serde_json::to_string(spec)
            .map_err(|e| Error::Internal(format!("cannot store the spec: {e}")))?;
        let record =
            super::publish::new_changeset_record(user, &host, spec, fingerprint, Utc::now());
        let stored = self
            .store
            .enqueue_publish(&record, &spec_json)
            .await
            .map_err(|error| match error {
                crate::store::Error::Conflict(_) => Error::Conflict(format!(
                    "{}:{} is another user's changeset; a site admin can hand it over to you",
                    spec.repository, spec.head_branch
                )),
                other => other.into(),
            })?;
        crate::telemetry::metrics::changeset_job("publish", "queued");
        Ok(PublishedChangeset {
            id: stored.id,
            result: PublishResult::Queued,
            commit: stored.pushed_commit,
            pull_request_number: stored.pr_number,
            pull_request_url: stored.pr_url,
            credential_source: stored.credential_source,
        })
    }

    /// The changesets with these ids that the caller may see (their own;
    /// every one for site admins), for following queued work.
    pub async fn changesets_by_ids(
        &self,
        caller: &Caller,
        ids: &[ChangesetId],
    ) -> Result<Vec<ChangesetRecord>> {
        caller.require_signed_in()?;
        let found = self.store.changesets_by_ids(ids).await?;
        Ok(found
            .into_iter()
            .filter(|c| caller.require_acting_for(c.user_id).is_ok())
            .collect())
    }

    /// Queues a failed (or waiting to be retried) changeset job again at
    /// once, attempts reset. Only its owner may.
    pub async fn retry_changeset(
        &self,
        caller: &Caller,
        id: ChangesetId,
    ) -> Result<ChangesetRecord> {
        let changeset = self.visible_changeset(caller, id).await?;
        caller.require_publishing_as(changeset.user_id)?;
        if !self.store.retry_job(id, Utc::now()).await? {
            return Err(Error::Conflict(format!(
                "{}:{} has no failed job to retry (its job is {})",
                changeset.repository,
                changeset.head_branch,
                changeset.job_state.as_str()
            )));
        }
        self.job_signal.notify_waiters();
        Ok(self.store.find_changeset_by_id(id).await?)
    }

    /// A changeset the caller may see: its owner, or a site admin.
    /// Anyone else is told it does not exist.
    pub(super) async fn visible_changeset(
        &self,
        caller: &Caller,
        id: ChangesetId,
    ) -> Result<ChangesetRecord> {
        caller.require_signed_in()?;
        let changeset = match self.store.find_changeset_by_id(id).await {
            Err(crate::store::Error::NotFound) => None,
            other => Some(other?),
        };
        changeset
            .filter(|c| caller.require_acting_for(c.user_id).is_ok())
            .ok_or_else(|| Error::NotFound("no such changeset".into()))
    }

    /// How many changeset jobs are in each state (queue depth), for the
    /// metrics.
    pub async fn job_counts(&self) -> Result<Vec<(JobState, i64)>> {
        let counts = self.store.count_jobs_by_state().await?;
        Ok(counts
            .into_iter()
            .filter_map(|(state, count)| Some((state.parse().ok()?, count)))
            .collect())
    }

    pub fn queue_settings(&self) -> QueueSettings {
        self.settings.publish.queue
    }

    /// What the rollout windows let publishing do now.
    pub fn rollout_decision(&self) -> Decision {
        self.settings.publish.rollout_windows.rate_at(Utc::now())
    }

    /// Claims the next due job this process's workers may run, if any.
    /// Publish jobs wait while no rollout window is open, and inside a
    /// rate-limited window take the pace's shared slot, so all replicas
    /// together publish at the window's rate.
    pub async fn claim_job(&self) -> Result<Option<ClaimedJob>> {
        let now = Utc::now();
        let lease = self.settings.publish.queue.lease;
        let decision = self.settings.publish.rollout_windows.rate_at(now);
        let filter = match decision {
            Decision::Unlimited => ClaimFilter::Any,
            Decision::Closed { .. } => ClaimFilter::NotPublishing,
            Decision::Every(_) if self.store.rollout_slot_open(now).await? => ClaimFilter::Any,
            Decision::Every(_) => ClaimFilter::NotPublishing,
        };
        let Some(job) = self.store.claim_job(filter, now, lease).await? else {
            return Ok(None);
        };
        let most = self.settings.publish.queue.max_attempts;
        if job.changeset.job_attempts > most {
            // Its workers kept stopping before it ended (each crash's claim
            // counts): give up rather than crash more of them.
            let error = format!(
                "gave up: claimed {} times without ending (did its workers crash?)",
                job.changeset.job_attempts - 1
            );
            if job.changeset.job_action == Some(JobAction::Publish) {
                self.mark_publish_failed(job.changeset.id, &Error::Internal(error.clone()))
                    .await;
            }
            self.store
                .finish_job(&job, &JobOutcome::Failed { error }, None, now)
                .await?;
            return Ok(None);
        }
        if let (Decision::Every(interval), Some(JobAction::Publish)) =
            (decision, job.changeset.job_action)
            && !self.store.take_rollout_slot(now, interval).await?
        {
            // Another replica took the slot first: not this one's turn.
            self.store.release_job(&job, now).await?;
            return Ok(None);
        }
        Ok(Some(job))
    }

    /// Waits until a job may have been queued by this process, or `wait`
    /// passed (other processes' jobs are found by polling).
    pub async fn wait_for_jobs(&self, wait: Duration) {
        let _ = tokio::time::timeout(wait, self.job_signal.notified()).await;
    }

    /// Runs a claimed job to its end, renewing its lease meanwhile, and
    /// records the outcome. Gives the job up (nothing recorded: the next
    /// claim redoes it, safely) if the lease is lost; hands it back to the
    /// queue if `stop` turns true and the job does not end within the
    /// stop grace. Dropping the job's work kills the git processes it
    /// started.
    pub async fn run_job(&self, job: ClaimedJob, mut stop: watch::Receiver<bool>) {
        let queue = self.settings.publish.queue;
        let span = tracing::info_span!(
            "job",
            changeset = %job.changeset.id,
            action = job.changeset.job_action.map_or("none", |a| a.as_str()),
            attempt = job.changeset.job_attempts,
        );
        let work = tracing::Instrument::instrument(self.execute_job(&job), span);
        let stopping = async {
            let _ = stop.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(queue.stop_grace).await;
        };
        let action = job.changeset.job_action.map_or("none", |a| a.as_str());
        tokio::select! {
            (outcome, used) = work => {
                let audit = used.map(|used| credential_used(&job, used, &outcome));
                let outcome = self.job_outcome(&job, outcome).await;
                crate::telemetry::metrics::changeset_job(action, match outcome {
                    JobOutcome::Completed => "completed",
                    JobOutcome::Errored { .. } => "errored",
                    JobOutcome::Failed { .. } => "failed",
                });
                match self.store.finish_job(&job, &outcome, audit.as_ref(), Utc::now()).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(changeset = %job.changeset.id, "the job's lease was lost before it ended; its outcome is not recorded"),
                    Err(error) => tracing::error!(changeset = %job.changeset.id, %error, "could not record the job's outcome; it is claimed again after its lease"),
                }
            }
            () = self.hold_lease(&job) => {
                crate::telemetry::metrics::changeset_job(action, "lease_lost");
                tracing::warn!(changeset = %job.changeset.id, "lost the job's lease (another worker took it); stopped working on it");
            }
            () = stopping => {
                crate::telemetry::metrics::changeset_job(action, "released");
                tracing::info!(changeset = %job.changeset.id, "stopping: handing the job back to the queue");
                if let Err(error) = self.store.release_job(&job, Utc::now()).await {
                    tracing::warn!(%error, "could not hand the job back; it is claimed again after its lease");
                }
            }
        }
    }

    /// Renews the job's lease every third of it; returns when it is lost
    /// (or cannot be renewed before it lapses).
    async fn hold_lease(&self, job: &ClaimedJob) {
        let lease = self.settings.publish.queue.lease;
        let mut lapses_at = tokio::time::Instant::now() + lease;
        loop {
            tokio::time::sleep(lease / 3).await;
            let until = Utc::now() + lease;
            match self
                .store
                .renew_lease(job.changeset.id, &job.lease, until)
                .await
            {
                Ok(true) => lapses_at = tokio::time::Instant::now() + lease,
                Ok(false) => return,
                Err(error) => {
                    tracing::warn!(%error, "could not renew a job's lease");
                    if tokio::time::Instant::now() + lease / 3 >= lapses_at {
                        return;
                    }
                }
            }
        }
    }

    /// What a finished attempt means for the queue: done, retried after a
    /// back-off (transient errors, while attempts remain), or failed.
    async fn job_outcome(&self, job: &ClaimedJob, outcome: Result<()>) -> JobOutcome {
        let queue = self.settings.publish.queue;
        let error = match outcome {
            Ok(()) => return JobOutcome::Completed,
            Err(error) => error,
        };
        let attempts = job.changeset.job_attempts;
        if is_transient(&error) && attempts < queue.max_attempts {
            let wait = error
                .retry_after()
                .unwrap_or_default()
                .max(retry_wait(queue.retry_base, attempts));
            JobOutcome::Errored {
                error: format!("attempt {attempts} of {}: {error}", queue.max_attempts),
                retry_at: Utc::now()
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1)),
            }
        } else {
            if job.changeset.job_action == Some(JobAction::Publish) {
                self.mark_publish_failed(job.changeset.id, &error).await;
            }
            let error = if is_transient(&error) {
                format!("gave up after {attempts} attempts: {error}")
            } else {
                error.to_string()
            };
            JobOutcome::Failed { error }
        }
    }

    /// Records a publish that failed for good as failed (and so claimable
    /// by others, if it never pushed anything).
    async fn mark_publish_failed(&self, id: ChangesetId, error: &Error) {
        let recorded = async {
            let mut record = self.store.find_changeset_by_id(id).await?;
            record.state = ChangesetState::Failed;
            record.error = Some(error.to_string());
            record.updated_at = Utc::now();
            self.store.update_changeset(&record).await
        };
        if let Err(store_error) = recorded.await {
            tracing::error!(error = %store_error, "could not record a failed changeset");
        }
    }

    /// Runs the job; also says which credential it used, if it got as far
    /// as resolving one (for the audit log).
    async fn execute_job(&self, job: &ClaimedJob) -> (Result<()>, Option<CredentialUse>) {
        let mut used = None;
        let outcome = match job.changeset.job_action {
            Some(JobAction::Publish) => self.execute_publish(job, &mut used).await,
            Some(action) => self.execute_pull_request_job(job, action, &mut used).await,
            None => Err(Error::Internal("a queued changeset has no job".into())),
        };
        (outcome, used)
    }

    /// Publishes the spec recorded with the job, as its owner: their
    /// credential (resolved now, with the global credential's policy as it
    /// is now), else the global one.
    async fn execute_publish(
        &self,
        job: &ClaimedJob,
        used: &mut Option<CredentialUse>,
    ) -> Result<()> {
        let mut record = job.changeset.clone();
        let spec_json = self.store.changeset_spec(record.id).await?;
        let spec: ChangesetSpec = serde_json::from_str(&spec_json).map_err(|e| {
            Error::Internal(format!("stored spec of {} is invalid: {e}", record.id))
        })?;
        let host = self.store.find_code_host(record.code_host_id).await?;
        let credential = self
            .resolve_credential(
                &Caller::Operator,
                record.user_id,
                &host.url,
                &spec.repository,
            )
            .await?;
        *used = Some(CredentialUse::of(&credential));
        let outcome = self
            .publish_steps(record.user_id, &spec, &host, &credential, &mut record)
            .await;
        crate::telemetry::metrics::changeset_publish(match &outcome {
            Ok(published) => published.result.as_str(),
            Err(_) => "failed",
        });
        outcome.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        let base = Duration::from_secs(15);
        assert_eq!(retry_wait(base, 1), Duration::from_secs(15));
        assert_eq!(retry_wait(base, 2), Duration::from_secs(30));
        assert_eq!(retry_wait(base, 4), Duration::from_secs(120));
        assert_eq!(retry_wait(base, 40), MAX_RETRY_WAIT);
        assert_eq!(retry_wait(base, 0), base);
    }

    #[test]
    fn only_errors_that_may_pass_by_themselves_are_retried() {
        assert!(is_transient(&Error::CodeHostUnavailable("down".into())));
        assert!(is_transient(&Error::Internal("db".into())));
        assert!(!is_transient(&Error::PublishFailed("branch moved".into())));
        assert!(!is_transient(&Error::NotFound("no credential".into())));
        assert!(!is_transient(&Error::InvalidInput("bad diff".into())));
    }
}
