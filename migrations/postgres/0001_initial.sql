-- Timestamps are milliseconds since the Unix epoch and flags are 0/1, both
-- BIGINT, so that the
-- same SQL and the same Rust types serve SQLite and PostgreSQL.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    site_admin    BIGINT NOT NULL CHECK (site_admin IN (0, 1)),
    created_at    BIGINT NOT NULL,
    CONSTRAINT users_username_unique UNIQUE (username)
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE access_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL,
    note         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    CONSTRAINT access_tokens_hash_unique UNIQUE (token_hash)
);
CREATE INDEX access_tokens_user_id ON access_tokens (user_id);

CREATE TABLE code_hosts (
    id                TEXT PRIMARY KEY NOT NULL,
    kind              TEXT NOT NULL,
    url               TEXT NOT NULL,
    git_url_type      TEXT NOT NULL,
    ssh_known_hosts   TEXT,
    ssh_key_algorithm TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    CONSTRAINT code_hosts_url_unique UNIQUE (url)
);

-- One table for user and site credentials: user_id NULL means "site".
CREATE TABLE credentials (
    id                TEXT PRIMARY KEY NOT NULL,
    code_host_id      TEXT NOT NULL REFERENCES code_hosts (id) ON DELETE CASCADE,
    user_id           TEXT REFERENCES users (id) ON DELETE CASCADE,
    username          TEXT,
    -- Encrypted JSON {token, ssh_private_key}; associated data names this row.
    secret_key_id     TEXT NOT NULL,
    secret            BYTEA NOT NULL,
    ssh_public_key    TEXT,
    ssh_key_pending   BIGINT NOT NULL CHECK (ssh_key_pending IN (0, 1)),
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX credentials_user_unique ON credentials (code_host_id, user_id)
    WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX credentials_site_unique ON credentials (code_host_id)
    WHERE user_id IS NULL;
CREATE INDEX credentials_user_id ON credentials (user_id);
CREATE INDEX credentials_secret_key_id ON credentials (secret_key_id);

-- Claimed by the first user ever created, who becomes site admin.
CREATE TABLE site_initialized (
    singleton INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1)
);
