-- SSH commit signing (GitHub, GitLab): the public half of the key a
-- credential signs commits with, and where it came from ('generated' for a
-- keypair made for signing alone, 'ssh_key' for the credential's SSH push
-- key). Both NULL while signing is off. The private half is inside the
-- sealed secret, never in a column of its own.
ALTER TABLE credentials ADD COLUMN signing_public_key TEXT;
ALTER TABLE credentials ADD COLUMN signing_key_source TEXT;
