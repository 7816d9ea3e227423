//! Signing the commits batchcred creates with an SSH key, the way git does
//! it since 2.34 (`gpg.format=ssh`): GitHub and GitLab show such commits
//! as verified once the public key is uploaded as a signing key.
//!
//! The private key is loaded through stdin into a private, short-lived
//! `ssh-agent` (as for SSH pushes, see [`super::ssh`]); git is told the
//! public key literally (`user.signingKey=key::…`), so `ssh-keygen -Y sign`
//! asks the agent to sign. The private key is never in a file, an argument
//! or an environment variable.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::PushError;
use super::command::GitCommand;
use super::ssh::KeyAgent;

/// The key the commits of one push are signed with.
pub struct CommitSigning {
    /// OpenSSH-format private key.
    pub private_key: SecretString,
    /// `ssh-ed25519 AAAA… comment`.
    pub public_key: String,
}

impl std::fmt::Debug for CommitSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitSigning")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

/// The `key::…` value of `user.signingKey`: the key type and blob, without
/// the comment (git reads a literal key from the value itself).
pub(super) fn literal_signing_key(public_key: &str) -> Option<String> {
    let mut fields = public_key.split_whitespace();
    let (kind, blob) = (fields.next()?, fields.next()?);
    (kind.starts_with("ssh-") || kind.starts_with("ecdsa-")).then(|| format!("key::{kind} {blob}"))
}

/// A running agent holding the signing key, for the commits of one push.
pub(super) struct Signer {
    agent: KeyAgent,
    signing_key: String,
    /// Where git writes its temporary files while signing (the public key
    /// and the data to sign; never the private key): inside the push's
    /// private directory rather than the shared temporary folder.
    temporary: PathBuf,
}

impl Signer {
    /// Starts the agent in a private directory under `home` (the push's
    /// work directory) and loads the key.
    pub async fn start(home: &Path, signing: &CommitSigning) -> Result<Self, PushError> {
        let signing_key = literal_signing_key(&signing.public_key).ok_or_else(|| {
            PushError::Signing("the signing public key is not an SSH public key".to_owned())
        })?;
        let directory = home.join("signing");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&directory)
            .map_err(|error| {
                PushError::Signing(format!("could not create the signing directory: {error}"))
            })?;
        let agent = KeyAgent::start(&directory, &signing.private_key)
            .await
            .map_err(|error| PushError::Signing(error.message().to_owned()))?;
        Ok(Self {
            agent,
            signing_key,
            temporary: directory,
        })
    }

    /// Makes a commit-writing git command sign with this key.
    pub fn configure(&self, command: GitCommand) -> GitCommand {
        command
            .config("gpg.format", "ssh")
            .config("gpg.ssh.program", "ssh-keygen")
            .config("user.signingKey", &self.signing_key)
            .config("commit.gpgSign", "true")
            .env("SSH_AUTH_SOCK", &self.agent.socket().to_string_lossy())
            .env("TMPDIR", &self.temporary.to_string_lossy())
    }

    /// Kills the agent and waits for it.
    pub async fn stop(self) {
        self.agent.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_key_is_the_literal_public_key_without_its_comment() {
        assert_eq!(
            literal_signing_key("ssh-ed25519 AAAAC3Nz batchcred@example").as_deref(),
            Some("key::ssh-ed25519 AAAAC3Nz")
        );
        assert_eq!(
            literal_signing_key("ssh-rsa AAAAB3").as_deref(),
            Some("key::ssh-rsa AAAAB3")
        );
        assert_eq!(literal_signing_key("ssh-ed25519"), None);
        assert_eq!(
            literal_signing_key("-----BEGIN OPENSSH PRIVATE KEY-----"),
            None
        );
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let signing = CommitSigning {
            private_key: SecretString::from("PRIVATE-KEY-MATERIAL"),
            public_key: "ssh-ed25519 AAAA".to_owned(),
        };
        assert!(!format!("{signing:?}").contains("PRIVATE-KEY-MATERIAL"));
    }
}
