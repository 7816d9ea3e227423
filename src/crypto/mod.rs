//! Everything that makes keys, nonces or ciphertexts lives here: the
//! AES-256-GCM keyring for secrets at rest, SSH keypair generation, and the
//! random tokens used for sessions and API access.

mod encryptor;
mod keyring;
mod random;
mod ssh;

pub use encryptor::{Encryptor, KEYRING_CHECK_INTERVAL, Sealed};
pub use keyring::{KeyId, KeySource, Keyring};
pub use random::{RandomToken, random_hex, sha256_hex};
pub use ssh::{SshKeypair, generate_ssh_keypair};

/// Failures of encryption and key handling. None of them carry plaintext.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("encryption key {0:?} is not in the keyring; was the keyring replaced?")]
    UnknownKey(String),
    #[error("a ciphertext failed authentication (wrong key, wrong row, or tampered data)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("invalid keyring: {0}")]
    InvalidKeyring(String),
    #[error(
        "keyring file {} is readable by group or others: run chmod 600 {}",
        .0.display(),
        .0.display()
    )]
    KeyringNotPrivate(std::path::PathBuf),
    #[error("keyring file {path}: {source}")]
    KeyringIo {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("SSH key generation failed: {0}")]
    SshKey(String),
}
