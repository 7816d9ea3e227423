-- Gerrit: the Change-Id batchcred gave a changeset's change, generated when
-- it is first published and written before the push, so that publishing
-- again (even after a crash between the push and recording it) uploads a
-- new patch set of the same change rather than a second change. NULL for
-- every other kind of code host.
ALTER TABLE changesets ADD COLUMN change_id TEXT;
