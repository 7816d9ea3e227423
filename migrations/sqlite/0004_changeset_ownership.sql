-- A changeset belongs to the user who first published it; only a site
-- admin (or the operator) hands it to someone else, and the hand-over is
-- recorded here, in the same write that changes the owner. No foreign keys:
-- the record outlives the accounts it names.
ALTER TABLE changesets ADD COLUMN previous_user_id TEXT;
-- The site admin who handed it over; NULL with handed_over_at set means the
-- local operator (`batchcred changesets hand-over`).
ALTER TABLE changesets ADD COLUMN handed_over_by TEXT;
ALTER TABLE changesets ADD COLUMN handed_over_at BIGINT;
