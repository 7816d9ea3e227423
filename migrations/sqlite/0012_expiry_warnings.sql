-- Expiry warnings: where they are mailed, since when a check has been
-- failing, and which were sent.

-- Where a user's expiry warnings are mailed; NULL sends them no email.
ALTER TABLE users ADD COLUMN email TEXT;

-- When the current run of failed checks began (NULL while checks pass), so
-- a credential that keeps failing is warned about once, not after every
-- re-check. Credentials failing now count from their last check.
ALTER TABLE credentials ADD COLUMN check_failed_since BIGINT;
UPDATE credentials SET check_failed_since = last_checked_at
    WHERE last_check_error IS NOT NULL;

-- One row per warning and channel. A sender claims the row first (the
-- primary key lets exactly one replica win), then sends, then sets sent_at;
-- a failed send deletes its claim so a later round retries, and a claim
-- left unsent by a replica that died is taken over once it is stale.
-- reason is 'expiring' or 'check_failed'; occasion is the token's expiry or
-- check_failed_since (epoch ms), so a renewed token or a new failure after
-- a passing check is warned about again. channel is 'webhook' or 'email'.
CREATE TABLE warnings_sent (
    credential_id TEXT NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    reason        TEXT NOT NULL CHECK (reason IN ('expiring', 'check_failed')),
    occasion      BIGINT NOT NULL,
    channel       TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
    claim         TEXT NOT NULL,
    claimed_at    BIGINT NOT NULL,
    sent_at       BIGINT,
    PRIMARY KEY (credential_id, reason, occasion, channel)
);
