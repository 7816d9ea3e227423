//! Sealing and opening secrets with the keyring.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, Payload};
use zeroize::Zeroizing;

use super::Error;
use super::keyring::{FileStamp, KeyId, KeySource, Keyring};

const NONCE_LEN: usize = 12;

/// How often, at most, a keyring file is looked at (one `stat`) before
/// sealing, so `keys rotate` reaches every running process within seconds.
pub const KEYRING_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// A ciphertext as stored: the id of the key that made it, and
/// `nonce || ciphertext || tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: KeyId,
    pub bytes: Vec<u8>,
}

/// Encrypts with the primary key and decrypts with whichever key a
/// ciphertext names. Associated data binds each ciphertext to the row and
/// column it belongs to, so a ciphertext copied elsewhere fails to open.
///
/// When the keyring lives in a file, it is read again when it changes:
/// before sealing, at most every [`KEYRING_CHECK_INTERVAL`], the file's
/// size, time and inode are compared with what was read, so a new primary
/// key from `keys rotate` is used by every process within seconds, without
/// a restart. A ciphertext naming a key this process has not seen also
/// makes it read the file again at once.
pub struct Encryptor {
    source: Option<KeySource>,
    keyring: RwLock<Arc<Keyring>>,
    file_check: Mutex<FileCheck>,
}

/// When the keyring file was last looked at, and what it looked like when
/// it was last read.
struct FileCheck {
    read: Option<FileStamp>,
    checked_at: Instant,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// An encryptor over a keyring loaded from `source`.
    pub fn load(source: KeySource) -> Result<Self, Error> {
        let (keyring, read) = load(&source)?;
        Ok(Self {
            source: Some(source),
            keyring: RwLock::new(Arc::new(keyring)),
            file_check: Mutex::new(FileCheck {
                read,
                checked_at: Instant::now(),
            }),
        })
    }

    /// An encryptor over a fixed keyring (tests, tools).
    pub fn with_keyring(keyring: Keyring) -> Self {
        Self {
            source: None,
            keyring: RwLock::new(Arc::new(keyring)),
            file_check: Mutex::new(FileCheck {
                read: None,
                checked_at: Instant::now(),
            }),
        }
    }

    fn file_check(&self) -> std::sync::MutexGuard<'_, FileCheck> {
        // Poisoning cannot leave a `FileCheck` half-written: both fields are
        // plain values.
        match self.file_check.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Reads the keyring file again if it changed since it was read, looking
    /// at most every [`KEYRING_CHECK_INTERVAL`]. A file that cannot be read
    /// now (being replaced, made readable by others) leaves the keyring in
    /// use as it is; the problem is logged.
    fn reload_if_changed(&self) {
        let Some(KeySource::File(path)) = &self.source else {
            return;
        };
        {
            let mut check = self.file_check();
            if check.checked_at.elapsed() < KEYRING_CHECK_INTERVAL {
                return;
            }
            check.checked_at = Instant::now();
            match FileStamp::read(path) {
                Ok(stamp) if Some(stamp) == check.read => return,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot look at the keyring file; keeping the keys in use");
                    return;
                }
            }
        }
        match self.reload() {
            Ok(()) => tracing::info!(
                primary = %self.primary_key_id(),
                "keyring file changed; reloaded it"
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot reload the keyring file; keeping the keys in use");
            }
        }
    }

    fn current(&self) -> Arc<Keyring> {
        // A poisoned lock only means another thread panicked mid-swap of an
        // `Arc`; the value inside is still a complete keyring.
        match self.keyring.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the keyring from its source, if it has one.
    pub fn reload(&self) -> Result<(), Error> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        let (keyring, read) = load(source)?;
        let fresh = Arc::new(keyring);
        match self.keyring.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        let mut check = self.file_check();
        check.read = read;
        check.checked_at = Instant::now();
        Ok(())
    }

    /// The key new ciphertexts are made with.
    pub fn primary_key_id(&self) -> KeyId {
        self.current().primary_id().clone()
    }

    /// Every key the keyring holds, oldest first.
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.current().key_ids().cloned().collect()
    }

    /// Seals with the primary key, after picking up a rotated keyring file.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Sealed, Error> {
        self.reload_if_changed();
        let keyring = self.current();
        let key = keyring.primary();
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| Error::Random)?;
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad: associated_data,
                },
            )
            .map_err(|_| Error::Encrypt)?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: key.id.clone(),
            bytes,
        })
    }

    pub fn open(
        &self,
        sealed: &Sealed,
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut keyring = self.current();
        if keyring.find(sealed.key_id.as_str()).is_none() && self.source.is_some() {
            self.reload()?;
            keyring = self.current();
        }
        let key = keyring
            .find(sealed.key_id.as_str())
            .ok_or_else(|| Error::UnknownKey(sealed.key_id.to_string()))?;
        if sealed.bytes.len() < NONCE_LEN {
            return Err(Error::Decrypt);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::Decrypt)?;
        key.cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad: associated_data,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::Decrypt)
    }
}

/// Loads a keyring and, for a file, what the file looked like.
fn load(source: &KeySource) -> Result<(Keyring, Option<FileStamp>), Error> {
    match source {
        KeySource::File(path) => {
            let (keyring, stamp) = Keyring::load_file(path)?;
            Ok((keyring, Some(stamp)))
        }
        KeySource::Inline(_) => Ok((Keyring::load(source)?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encryptor() -> Result<Encryptor, Error> {
        Ok(Encryptor::with_keyring(Keyring::generate()?))
    }

    #[test]
    fn round_trips_with_matching_associated_data() -> Result<(), Error> {
        let enc = encryptor()?;
        let sealed = enc.seal(b"ghp_secret", b"credential/1")?;
        assert!(!sealed.bytes.windows(10).any(|w| w == b"ghp_secret"));
        assert_eq!(
            enc.open(&sealed, b"credential/1")?.as_slice(),
            b"ghp_secret"
        );
        Ok(())
    }

    #[test]
    fn ciphertext_moved_to_another_row_fails() -> Result<(), Error> {
        let enc = encryptor()?;
        let sealed = enc.seal(b"ghp_secret", b"credential/1")?;
        assert!(matches!(
            enc.open(&sealed, b"credential/2"),
            Err(Error::Decrypt)
        ));
        Ok(())
    }

    #[test]
    fn tampering_and_truncation_are_detected() -> Result<(), Error> {
        let enc = encryptor()?;
        let mut sealed = enc.seal(b"ghp_secret", b"row")?;
        let last = sealed.bytes.len() - 1;
        sealed.bytes[last] ^= 1;
        assert!(matches!(enc.open(&sealed, b"row"), Err(Error::Decrypt)));
        sealed.bytes.truncate(5);
        assert!(matches!(enc.open(&sealed, b"row"), Err(Error::Decrypt)));
        Ok(())
    }

    #[test]
    fn nonces_differ_between_seals() -> Result<(), Error> {
        let enc = encryptor()?;
        assert_ne!(enc.seal(b"x", b"r")?.bytes, enc.seal(b"x", b"r")?.bytes);
        Ok(())
    }

    #[test]
    fn older_keys_still_open_and_file_keyrings_reload() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("keyring");
        let (first, _) = Keyring::load_or_create_file(&path)?;
        let enc = Encryptor::load(KeySource::File(path.clone()))?;
        let old = enc.seal(b"one", b"row")?;

        // Another process rotates: this encryptor learns the key on demand.
        let rotated = first.with_new_primary()?;
        rotated.write_file(&path)?;
        let other = Encryptor::load(KeySource::File(path))?;
        let new = other.seal(b"two", b"row")?;
        assert_ne!(new.key_id, old.key_id);
        assert_eq!(enc.open(&new, b"row")?.as_slice(), b"two");
        assert_eq!(other.open(&old, b"row")?.as_slice(), b"one");

        let unknown = Sealed {
            key_id: KeyId::from_stored("missing".into()),
            bytes: new.bytes,
        };
        assert!(matches!(
            enc.open(&unknown, b"row"),
            Err(Error::UnknownKey(_))
        ));
        Ok(())
    }

    #[test]
    fn a_rotated_keyring_file_is_sealed_with_within_the_check_interval()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("keyring");
        let (first, _) = Keyring::load_or_create_file(&path)?;
        let enc = Encryptor::load(KeySource::File(path.clone()))?;
        let rotated = first.with_new_primary()?;
        rotated.write_file(&path)?;
        // Within the interval the file is not even looked at.
        assert_eq!(&enc.seal(b"x", b"row")?.key_id, first.primary_id());
        std::thread::sleep(KEYRING_CHECK_INTERVAL + Duration::from_millis(100));
        assert_eq!(&enc.seal(b"x", b"row")?.key_id, rotated.primary_id());
        Ok(())
    }
}
