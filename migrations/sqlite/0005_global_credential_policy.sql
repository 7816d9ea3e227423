-- Who may publish with a code host's global credential, and where.
-- global_credential_users: everyone (the default), nobody or selected;
-- global_credential_user_ids: JSON array of user ids, for "selected";
-- global_credential_repositories: JSON array of glob patterns, empty for
-- any repository.
ALTER TABLE code_hosts ADD COLUMN global_credential_users TEXT NOT NULL DEFAULT 'everyone'
    CHECK (global_credential_users IN ('everyone', 'nobody', 'selected'));
ALTER TABLE code_hosts ADD COLUMN global_credential_user_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE code_hosts ADD COLUMN global_credential_repositories TEXT NOT NULL DEFAULT '[]';
