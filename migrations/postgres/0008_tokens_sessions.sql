-- API tokens: a non-secret prefix to recognise them by, and an optional
-- expiry. Revoking a token deletes its row.
ALTER TABLE access_tokens ADD COLUMN token_prefix TEXT;
ALTER TABLE access_tokens ADD COLUMN expires_at BIGINT;

-- Sessions: when the session was last used, for the idle timeout. Written
-- at most once a minute per session. Sessions open at the upgrade count as
-- used now, so the upgrade signs nobody out.
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET last_seen_at = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT;
