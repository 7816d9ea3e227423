//! High-entropy tokens for sessions and API access, and the hash they are
//! stored under.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::Error;

/// A freshly generated bearer secret: 32 random bytes, base64url, with a
/// prefix saying what it is for (so leaked ones can be recognised by
/// secret scanners). Only its SHA-256 hash is ever stored.
pub struct RandomToken(SecretString);

impl RandomToken {
    pub fn generate(prefix: &str) -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| Error::Random)?;
        let encoded = URL_SAFE_NO_PAD.encode(bytes);
        Ok(Self(SecretString::from(format!("{prefix}{encoded}"))))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The value stored in the database in place of the token.
    pub fn hash(&self) -> String {
        sha256_hex(self.expose())
    }
}

/// `bytes` random bytes as lowercase hex: identifiers that must not
/// collide, such as Gerrit Change-Ids (not secrets).
pub fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|_| Error::Random)?;
    Ok(hex::encode(buffer))
}

/// Hex SHA-256, used to store bearer tokens. Tokens carry 256 bits of
/// entropy, so an unsalted fast hash is enough: it cannot be brute-forced,
/// and lookups by hash reveal nothing about other tokens.
pub fn sha256_hex(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_hashed() -> Result<(), Error> {
        let a = RandomToken::generate("bcp_")?;
        let b = RandomToken::generate("bcp_")?;
        assert!(a.expose().starts_with("bcp_"));
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash().len(), 64);
        assert_eq!(a.hash(), sha256_hex(a.expose()));
        assert_ne!(a.hash(), a.expose());
        Ok(())
    }
}
