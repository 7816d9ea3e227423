-- Failed sign-ins per account name (lower-cased; names of no account are
-- counted too, so the back-off does not reveal which accounts exist). In
-- the database so the per-account back-off holds across replicas; rows
-- are purged an hour after their last failure.
CREATE TABLE sign_in_failures (
    account         TEXT PRIMARY KEY NOT NULL,
    failures        BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL
);
CREATE INDEX sign_in_failures_last_failure_at ON sign_in_failures (last_failure_at);
