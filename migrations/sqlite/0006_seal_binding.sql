-- Which associated data a credential's secret is sealed with. 1 names only
-- the row id; 2 also names its owner, code host id, kind and URL, so a row
-- moved to another owner or code host no longer decrypts. Servers re-seal
-- version 1 rows to version 2 in the background after they start.
ALTER TABLE credentials ADD COLUMN seal_version BIGINT NOT NULL DEFAULT 1;
CREATE INDEX credentials_seal_version ON credentials (seal_version);
