-- The commit batchcred is about to push for a changeset, written before the
-- push starts. Should the process stop between the push and recording it as
-- pushed, the next attempt finds the branch at this commit and knows that
-- batchcred, not someone else, put it there.
ALTER TABLE changesets ADD COLUMN pushing_commit TEXT;
