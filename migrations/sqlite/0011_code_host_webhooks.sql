-- The secret a code host signs its webhooks with (GitHub, Bitbucket
-- Server: HMAC-SHA256 of the body) or sends as a token (GitLab), one per
-- code host, sealed like credentials (AES-256-GCM, bound to the code
-- host's id). Webhooks only make batchcred sync a changeset sooner.
CREATE TABLE code_host_webhooks (
    code_host_id  TEXT PRIMARY KEY NOT NULL REFERENCES code_hosts (id) ON DELETE CASCADE,
    secret_key_id TEXT NOT NULL,
    secret        BLOB NOT NULL,
    created_at    BIGINT NOT NULL
);
