-- What the last check of a credential against its code host found.
-- scopes and warnings are JSON arrays; scopes is NULL where the code host
-- does not report them (GitHub fine-grained tokens, GitLab before 15.5).
ALTER TABLE credentials ADD COLUMN code_host_user TEXT;
ALTER TABLE credentials ADD COLUMN scopes TEXT;
ALTER TABLE credentials ADD COLUMN token_expires_at BIGINT;
ALTER TABLE credentials ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]';
ALTER TABLE credentials ADD COLUMN last_checked_at BIGINT;
ALTER TABLE credentials ADD COLUMN last_check_error TEXT;
CREATE INDEX credentials_last_checked_at ON credentials (last_checked_at);
