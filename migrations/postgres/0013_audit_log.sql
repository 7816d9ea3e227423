-- The audit log: one entry per security-relevant event, written in the
-- same transaction as the change it describes. Entries are hash-chained:
-- each stores the hash of the one before, so a deleted or edited entry
-- breaks the chain at that point (`batchcred audit verify`).
CREATE TABLE audit_log (
    seq            BIGINT PRIMARY KEY NOT NULL,
    at             BIGINT NOT NULL,
    -- `user:<id>`, `operator` (the CLI), `system` (background work) or
    -- `anonymous`.
    actor          TEXT NOT NULL,
    -- The actor's username when the event happened.
    actor_name     TEXT,
    -- `credential.created`, `sign_in.failed`, … (see the README).
    event          TEXT NOT NULL,
    -- `success` or `failure`.
    outcome        TEXT NOT NULL,
    -- What the event is about (no foreign keys: entries outlive them).
    user_id        TEXT,
    code_host_id   TEXT,
    credential_id  TEXT,
    changeset_id   TEXT,
    -- A JSON object with the rest; never a secret.
    detail         TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX audit_log_user ON audit_log (user_id, seq);
CREATE INDEX audit_log_event ON audit_log (event, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- The end of the chain. Appending updates this row first, which locks it
-- until the transaction ends: appends from every replica are serialised,
-- so the chain never forks and no entry is lost. `pruned_seq` and
-- `pruned_hash` are where the chain starts after retention removed older
-- entries.
CREATE TABLE audit_head (
    id          BIGINT PRIMARY KEY NOT NULL,
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    pruned_seq  BIGINT NOT NULL,
    pruned_hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, pruned_seq, pruned_hash)
VALUES (1, 0, 'batchcred audit log', 0, 'batchcred audit log');
