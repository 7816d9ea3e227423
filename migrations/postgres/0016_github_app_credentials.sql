-- GitHub App credentials: a credential's authentication strategy is a
-- personal access token (every credential before this) or a GitHub App.
-- An App credential keeps the App's public facts and the installations it
-- uses (JSON: app id, slug, name, client id, html URL, installations with
-- the account each covers and its permissions) in `github_app`; the App's
-- private key (and the client and webhook secrets of an App created
-- through the manifest flow) live in the sealed `secret`, bound to the row
-- and re-sealed by `keys reencrypt` like every other secret. Installation
-- tokens are never stored.
ALTER TABLE credentials ADD COLUMN auth_strategy TEXT NOT NULL DEFAULT 'personal_access_token';
ALTER TABLE credentials ADD COLUMN github_app TEXT;
-- An owner may hold a token and an App for the same code host (the App is
-- chosen where an installation covers the repository's namespace).
DROP INDEX credentials_user_unique;
DROP INDEX credentials_site_unique;
CREATE UNIQUE INDEX credentials_user_unique ON credentials (code_host_id, user_id, auth_strategy)
    WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX credentials_site_unique ON credentials (code_host_id, auth_strategy)
    WHERE user_id IS NULL;
