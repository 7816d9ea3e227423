-- Publishing, closing, reopening and syncing changesets are jobs on a queue
-- kept in the changesets table itself (one job at a time per changeset), so
-- every replica sharing the database shares the work.

-- What the queue must do next for the changeset: publish, close, reopen or
-- sync. Kept after the job ends, to show what was last done.
ALTER TABLE changesets ADD COLUMN job_action TEXT;
-- queued, processing, completed, errored (to be retried after
-- process_after) or failed (given up; `error` says why).
ALTER TABLE changesets ADD COLUMN job_state TEXT NOT NULL DEFAULT 'completed';
-- Claims of the current job so far, crashed workers' claims included.
ALTER TABLE changesets ADD COLUMN job_attempts BIGINT NOT NULL DEFAULT 0;
-- Bumped by every request for a job; a worker that finishes an older
-- version than the current one leaves the job queued for the newer request.
ALTER TABLE changesets ADD COLUMN job_version BIGINT NOT NULL DEFAULT 0;
-- Not claimed before this time (milliseconds): retry back-off and rollout
-- windows.
ALTER TABLE changesets ADD COLUMN process_after BIGINT NOT NULL DEFAULT 0;
-- The claim of the worker running the job, and when it lapses unless the
-- worker renews it. A lapsed claim is taken by another worker.
ALTER TABLE changesets ADD COLUMN lease_token TEXT;
ALTER TABLE changesets ADD COLUMN lease_expires_at BIGINT;
-- Close job option: also delete the head branch batchcred pushed (1) or not (0).
ALTER TABLE changesets ADD COLUMN delete_branch_on_close BIGINT NOT NULL DEFAULT 0;
-- The pull request's title, for listing.
ALTER TABLE changesets ADD COLUMN title TEXT NOT NULL DEFAULT '';
-- What the code host last said about the pull request: open, draft, merged,
-- closed or deleted; its review state (approved, changes_requested,
-- pending) and CI checks (passed, failed, pending), where it reports them.
ALTER TABLE changesets ADD COLUMN external_state TEXT;
ALTER TABLE changesets ADD COLUMN review_state TEXT;
ALTER TABLE changesets ADD COLUMN checks_state TEXT;
ALTER TABLE changesets ADD COLUMN synced_at BIGINT;
-- Set for a pull request imported by number instead of published.
ALTER TABLE changesets ADD COLUMN imported BIGINT NOT NULL DEFAULT 0;
CREATE INDEX changesets_queue ON changesets (job_state, process_after);

-- The spec a publish job publishes (a diff can be megabytes, so it is kept
-- apart from the rows that pages list). Never holds a secret.
CREATE TABLE changeset_specs (
    changeset_id TEXT PRIMARY KEY NOT NULL REFERENCES changesets (id) ON DELETE CASCADE,
    spec         TEXT NOT NULL
);

-- The next moment a rate-limited rollout window lets a changeset be
-- published, shared by every replica: each publish takes the slot with a
-- compare-and-swap and moves it one interval on.
CREATE TABLE rollout_pace (
    id      TEXT PRIMARY KEY NOT NULL,
    next_at BIGINT NOT NULL
);
