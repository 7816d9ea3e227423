//! SSH keypairs generated for credentials on code hosts reached over SSH.

use secrecy::SecretString;
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use super::Error;
use crate::domain::SshKeyAlgorithm;

/// A generated keypair: the private key in OpenSSH PEM form (secret), and
/// the public key as an `authorized_keys` line with a comment.
pub struct SshKeypair {
    pub private_key: SecretString,
    pub public_key: String,
}

/// Generates a keypair whose public key carries `comment` (the instance's
/// name, so a code host admin can tell where a key came from).
///
/// RSA-4096 generation takes seconds: callers on the async runtime must run
/// this inside `spawn_blocking`.
pub fn generate_ssh_keypair(
    algorithm: SshKeyAlgorithm,
    comment: &str,
) -> Result<SshKeypair, Error> {
    let algorithm = match algorithm {
        SshKeyAlgorithm::Ed25519 => Algorithm::Ed25519,
        SshKeyAlgorithm::Rsa4096 => Algorithm::Rsa { hash: None },
    };
    let mut key =
        PrivateKey::random(&mut OsRng, algorithm).map_err(|e| Error::SshKey(e.to_string()))?;
    key.set_comment(comment);
    let private_key = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| Error::SshKey(e.to_string()))?;
    let public_key = key
        .public_key()
        .to_openssh()
        .map_err(|e| Error::SshKey(e.to_string()))?;
    Ok(SshKeypair {
        private_key: SecretString::from(private_key.as_str()),
        public_key,
    })
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn ed25519_keypair_is_in_openssh_formats_with_comment() -> Result<(), Error> {
        let pair = generate_ssh_keypair(SshKeyAlgorithm::Ed25519, "batchcred@example.com")?;
        assert!(pair.public_key.starts_with("ssh-ed25519 AAAA"));
        assert!(pair.public_key.ends_with(" batchcred@example.com"));
        assert!(
            pair.private_key
                .expose_secret()
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        );
        // The private key parses back and matches the public half.
        let parsed = PrivateKey::from_openssh(pair.private_key.expose_secret())
            .map_err(|e| Error::SshKey(e.to_string()))?;
        assert_eq!(
            parsed.public_key().to_openssh().ok().as_deref(),
            Some(pair.public_key.as_str())
        );
        Ok(())
    }
}
