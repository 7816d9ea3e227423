//! The set of AES-256 keys secrets are encrypted with.
//!
//! A keyring is a list of `<key id>:<base64 key>` entries, separated by
//! newlines or commas (`#` starts a comment). The last entry is the primary
//! key, used for new ciphertexts; the others stay so that older ciphertexts
//! can still be read until `keys rotate` has re-encrypted them.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::Error;

/// Names one key; stored beside every ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let valid = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Error::InvalidKeyring(format!(
                "key id {raw:?} must be 1-64 letters, digits, '-', '_' or '.'"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a key id read back from the database.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the keyring comes from.
#[derive(Clone)]
pub enum KeySource {
    /// A file, mode 0600; `keys rotate` appends to it.
    File(PathBuf),
    /// The value of `BATCHCRED_ENCRYPTION_KEY`; it cannot be rotated in place.
    Inline(SecretString),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "File({})", path.display()),
            Self::Inline(_) => f.write_str("Inline([REDACTED])"),
        }
    }
}

pub(super) struct Key {
    pub(super) id: KeyId,
    pub(super) cipher: Aes256Gcm,
    material: Zeroizing<[u8; 32]>,
}

/// An ordered set of keys; the last one is primary.
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    /// A keyring with one freshly generated key.
    pub fn generate() -> Result<Self, Error> {
        Self { keys: Vec::new() }.with_new_primary()
    }

    /// Parses the textual form described in the module docs.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut keys: Vec<Key> = Vec::new();
        let entries = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or_default())
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        for entry in entries {
            let (id, encoded) = entry.split_once(':').ok_or_else(|| {
                Error::InvalidKeyring("each entry must be <key id>:<base64 key>".into())
            })?;
            let id = KeyId::parse(id.trim())?;
            let decoded = Zeroizing::new(
                STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| Error::InvalidKeyring(format!("key {id} is not valid base64")))?,
            );
            let material: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
                Error::InvalidKeyring(format!("key {id} must be 32 bytes (AES-256)"))
            })?;
            if keys.iter().any(|k| k.id == id) {
                return Err(Error::InvalidKeyring(format!("key id {id} appears twice")));
            }
            keys.push(Key::new(id, Zeroizing::new(material))?);
        }
        if keys.is_empty() {
            return Err(Error::InvalidKeyring("the keyring holds no key".into()));
        }
        Ok(Self { keys })
    }

    /// Reads a keyring from its source.
    pub fn load(source: &KeySource) -> Result<Self, Error> {
        match source {
            KeySource::Inline(text) => Self::parse(text.expose_secret()),
            KeySource::File(path) => Ok(Self::load_file(path)?.0),
        }
    }

    /// Reads a keyring file, refusing one that group or others may read,
    /// and says what the file looked like when read (see [`FileStamp`]).
    pub(super) fn load_file(path: &Path) -> Result<(Self, FileStamp), Error> {
        let io_error = |source| Error::KeyringIo {
            path: path.to_owned(),
            source,
        };
        let mut file = fs::File::open(path).map_err(io_error)?;
        // Checked on the open handle, so the file read is the file checked.
        let metadata = file.metadata().map_err(io_error)?;
        if !is_private(&metadata) {
            return Err(Error::KeyringNotPrivate(path.to_owned()));
        }
        let mut text = Zeroizing::new(String::new());
        file.read_to_string(&mut text).map_err(io_error)?;
        Ok((Self::parse(&text)?, FileStamp::of(&metadata)))
    }

    /// Loads the keyring file at `path`, creating it with a fresh key if it
    /// does not exist. Returns whether it was created.
    pub fn load_or_create_file(path: &Path) -> Result<(Self, bool), Error> {
        if path.exists() {
            return Ok((Self::load_file(path)?.0, false));
        }
        let keyring = Self::generate()?;
        keyring.write_file(path)?;
        Ok((keyring, true))
    }

    /// A copy of this keyring with a new random primary key appended.
    pub fn with_new_primary(&self) -> Result<Self, Error> {
        let mut material = Zeroizing::new([0u8; 32]);
        getrandom::fill(material.as_mut()).map_err(|_| Error::Random)?;
        let mut suffix = [0u8; 3];
        getrandom::fill(&mut suffix).map_err(|_| Error::Random)?;
        let id = KeyId::parse(&format!(
            "{}-{:02x}{:02x}{:02x}",
            chrono::Utc::now().format("%Y%m%d"),
            suffix[0],
            suffix[1],
            suffix[2]
        ))?;
        let mut keys: Vec<Key> = self
            .keys
            .iter()
            .map(Key::duplicate)
            .collect::<Result<_, _>>()?;
        keys.push(Key::new(id, material)?);
        Ok(Self { keys })
    }

    /// A copy of this keyring without `id`, which must be a key it holds
    /// and not the primary one.
    pub fn without(&self, id: &KeyId) -> Result<Self, Error> {
        if self.find(id.as_str()).is_none() {
            return Err(Error::InvalidKeyring(format!(
                "key {id} is not in the keyring"
            )));
        }
        if self.primary_id() == id {
            return Err(Error::InvalidKeyring(format!(
                "key {id} is the primary key and cannot be removed"
            )));
        }
        let keys = self
            .keys
            .iter()
            .filter(|key| &key.id != id)
            .map(Key::duplicate)
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// Writes the keyring atomically, so a crash never leaves a truncated
    /// keyring behind: a fresh temporary file beside it (random name,
    /// exclusive create, mode 0600, so nothing planted at a guessable name is
    /// followed or reused), fsync, rename over `path`, fsync the directory.
    /// A symlink at `path` is replaced by the file, never written through.
    pub fn write_file(&self, path: &Path) -> Result<(), Error> {
        let io_error = |source| Error::KeyringIo {
            path: path.to_owned(),
            source,
        };
        match fs::symlink_metadata(path) {
            Ok(existing) if existing.is_dir() => {
                return Err(io_error(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "is a directory, not a keyring file",
                )));
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(error)),
        }
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        // `tempfile` opens with O_CREAT | O_EXCL and mode 0600.
        let mut temporary = tempfile::Builder::new()
            .prefix(".keyring-")
            .suffix(".tmp")
            .tempfile_in(directory)
            .map_err(io_error)?;
        let text = self.to_text();
        temporary
            .as_file_mut()
            .write_all(text.as_bytes())
            .map_err(io_error)?;
        temporary.as_file().sync_all().map_err(io_error)?;
        temporary
            .persist(path)
            .map_err(|persist| io_error(persist.error))?;
        // Make the rename itself durable.
        if let Ok(dir) = fs::File::open(directory) {
            dir.sync_all().map_err(io_error)?;
        }
        Ok(())
    }

    /// The keyring in its file format (secret: it holds the keys).
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut text = String::from(
            "# batchcred encryption keyring: <key id>:<base64 AES-256 key>.\n\
             # The last key is primary. Never delete a key that rows still use.\n",
        );
        for key in &self.keys {
            text.push_str(&format!("{}:{}\n", key.id, STANDARD.encode(*key.material)));
        }
        Zeroizing::new(text)
    }

    pub(super) fn primary(&self) -> &Key {
        // `parse` and `generate` guarantee at least one key.
        &self.keys[self.keys.len() - 1]
    }

    pub(super) fn find(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id.as_str() == id)
    }

    pub fn primary_id(&self) -> &KeyId {
        &self.primary().id
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|k| &k.id)
    }
}

/// What a keyring file looked like when it was read: a rewrite (always a
/// rename of a new file) changes at least its inode, so comparing stamps
/// tells whether it must be read again without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    pub(super) fn of(metadata: &fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode,
        }
    }

    /// Looks at the file at `path` (following symlinks, as reading does).
    pub(super) fn read(path: &Path) -> Result<Self, Error> {
        fs::metadata(path)
            .map(|metadata| Self::of(&metadata))
            .map_err(|source| Error::KeyringIo {
                path: path.to_owned(),
                source,
            })
    }
}

/// Whether only the owner may read or write the file (mode `0600`/`0400`).
#[cfg(unix)]
fn is_private(metadata: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o077 == 0
}

#[cfg(not(unix))]
fn is_private(_: &fs::Metadata) -> bool {
    true
}

impl Key {
    fn new(id: KeyId, material: Zeroizing<[u8; 32]>) -> Result<Self, Error> {
        let cipher = Aes256Gcm::new_from_slice(material.as_ref())
            .map_err(|_| Error::InvalidKeyring("bad key length".into()))?;
        Ok(Self {
            id,
            cipher,
            material,
        })
    }

    fn duplicate(&self) -> Result<Self, Error> {
        Self::new(self.id.clone(), self.material.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const KEY_B: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    #[test]
    fn last_entry_is_primary_and_separators_are_flexible() -> Result<(), Error> {
        let ring = Keyring::parse(&format!("# comment\nold:{KEY_A}, new:{KEY_B}\n"))?;
        assert_eq!(ring.primary_id().as_str(), "new");
        assert!(ring.find("old").is_some());
        Ok(())
    }

    #[test]
    fn malformed_keyrings_are_refused_without_echoing_keys() {
        for bad in [
            "",
            "# only a comment",
            "nokey",
            "a:notbase64!!",
            "a:AAAA",
            &format!("a:{KEY_A}\na:{KEY_B}"),
            &format!("bad id:{KEY_A}"),
        ] {
            let err = Keyring::parse(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!err.is_empty(), "{bad:?} accepted");
            assert!(!err.contains(KEY_A) && !err.contains(KEY_B), "{err}");
        }
    }

    #[test]
    fn files_are_private_and_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("keyring");
        let (created, was_created) = Keyring::load_or_create_file(&path)?;
        assert!(was_created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        }
        let rotated = created.with_new_primary()?;
        rotated.write_file(&path)?;
        let (loaded, was_created) = Keyring::load_or_create_file(&path)?;
        assert!(!was_created);
        assert_eq!(loaded.key_ids().count(), 2);
        assert_eq!(loaded.primary_id(), rotated.primary_id());
        assert_ne!(loaded.primary_id(), created.primary_id());
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn files_readable_by_others_are_refused_with_the_fix() -> Result<(), Box<dyn std::error::Error>>
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("keyring");
        Keyring::load_or_create_file(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        let error = Keyring::load(&KeySource::File(path.clone()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let shown = path.display();
        assert_eq!(
            error,
            format!("keyring file {shown} is readable by group or others: run chmod 600 {shown}")
        );
        assert!(Keyring::load_or_create_file(&path).is_err());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        assert!(Keyring::load(&KeySource::File(path)).is_ok());
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn writes_never_follow_planted_files_or_links() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("keyring");
        let victim = dir.path().join("victim");
        fs::write(&victim, "untouched")?;
        // The old fixed temporary name, and the keyring path itself, point
        // elsewhere: neither target may be written.
        std::os::unix::fs::symlink(&victim, dir.path().join("keyring.tmp"))?;
        std::os::unix::fs::symlink(&victim, &path)?;
        Keyring::generate()?.write_file(&path)?;
        assert_eq!(fs::read_to_string(&victim)?, "untouched");
        let written = fs::symlink_metadata(&path)?;
        assert!(written.file_type().is_file(), "the link was replaced");
        assert_eq!(written.permissions().mode() & 0o777, 0o600);
        assert!(Keyring::load(&KeySource::File(path))?.key_ids().count() == 1);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names.len(), 3, "{names:?}");
        Ok(())
    }

    #[test]
    fn only_non_primary_known_keys_can_be_removed() -> Result<(), Error> {
        let ring = Keyring::parse(&format!("old:{KEY_A}\nnew:{KEY_B}\n"))?;
        let new = KeyId::parse("new")?;
        assert!(ring.without(&new).is_err());
        assert!(ring.without(&KeyId::parse("other")?).is_err());
        let kept = ring.without(&KeyId::parse("old")?)?;
        assert_eq!(kept.key_ids().collect::<Vec<_>>(), vec![&new]);
        Ok(())
    }

    #[test]
    fn debug_output_names_keys_but_not_material() -> Result<(), Error> {
        let ring = Keyring::parse(&format!("k1:{KEY_B}"))?;
        let debug = format!(
            "{ring:?} {:?}",
            KeySource::Inline(SecretString::from(KEY_B))
        );
        assert!(debug.contains("k1") && !debug.contains(KEY_B), "{debug}");
        Ok(())
    }
}
