-- Changesets published through batchcred, one per branch on a repository,
-- so that publishing again (or resuming an interrupted run) updates the
-- same pull request instead of opening another.
CREATE TABLE changesets (
    id                TEXT PRIMARY KEY NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_host_id      TEXT NOT NULL REFERENCES code_hosts (id) ON DELETE CASCADE,
    repository        TEXT NOT NULL,
    base_branch       TEXT NOT NULL,
    head_branch       TEXT NOT NULL,
    -- SHA-256 of the spec (title, body, change…): an identical spec that
    -- was already published is not published again.
    spec_hash         TEXT NOT NULL,
    -- pending, pushed, published or failed.
    state             TEXT NOT NULL,
    credential_id     TEXT,
    credential_source TEXT,
    pushed_commit     TEXT,
    pr_number         BIGINT,
    pr_url            TEXT,
    error             TEXT,
    attempts          BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    CONSTRAINT changesets_branch_unique UNIQUE (code_host_id, repository, head_branch)
);
CREATE INDEX changesets_user_id ON changesets (user_id);
