//! Each git job's private work directory, and removing the ones that a
//! batchcred killed mid-push left behind.
//!
//! A live work directory is held open with an exclusive advisory lock
//! (`flock`) on the directory itself. The kernel drops the lock when the
//! process ends, however it ends, so a directory whose lock can be taken
//! belongs to nobody, and a sweep at start-up removes exactly those. Work
//! directories of other batchcred processes sharing the temporary folder
//! (a server and a CLI run, say) stay locked, and are kept.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{FlockOperation, Mode, OFlags, flock, fstat, lstat};

/// How every work directory's name starts, so a sweep recognises them.
pub const WORK_DIR_PREFIX: &str = "batchcred-work-";

/// A private (0700) work directory, locked for as long as it lives and
/// removed when dropped.
pub(super) struct WorkDir {
    directory: tempfile::TempDir,
    /// Holds the lock; closing it (after removal) releases it.
    _lock: OwnedFd,
}

impl WorkDir {
    /// Creates and locks a new work directory under `root`.
    pub fn create(root: &Path) -> io::Result<Self> {
        // A sweep may take the lock of a directory in the instant between
        // its creation and its locking here, and remove it: then another
        // directory is made. Three losses in a row would take three sweeps
        // at the very same instants.
        for _ in 0..3 {
            let directory = tempfile::Builder::new()
                .prefix(WORK_DIR_PREFIX)
                // Private: it holds the credential pipe and the agent socket.
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir_in(root)?;
            let handle = open_directory(directory.path())?;
            match flock(&handle, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) if is_same_directory(&handle, directory.path()) => {
                    return Ok(Self {
                        directory,
                        _lock: handle,
                    });
                }
                // Taken by a sweep, or already removed by one.
                Ok(()) | Err(rustix::io::Errno::WOULDBLOCK) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Err(io::Error::other(
            "work directories kept being removed by a concurrent sweep",
        ))
    }

    pub fn path(&self) -> &Path {
        self.directory.path()
    }

    /// Removes the directory, then releases its lock.
    pub fn close(self) -> io::Result<()> {
        self.directory.close()
    }
}

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Work directories no live process held, removed.
    pub removed: usize,
    /// Work directories in use by a live process, kept.
    pub in_use: usize,
}

/// Removes the work directories under `root` that no live process holds:
/// those a batchcred killed mid-push left behind. Anything else under
/// `root` is left alone, and so are symbolic links. A directory that
/// cannot be examined or removed is logged and skipped.
pub fn sweep_work_dirs(root: &Path) -> io::Result<Swept> {
    let mut swept = Swept::default();
    for entry in std::fs::read_dir(root)? {
        let Ok(entry) = entry else { continue };
        let is_work_dir = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(WORK_DIR_PREFIX))
            && entry.file_type().is_ok_and(|kind| kind.is_dir());
        if !is_work_dir {
            continue;
        }
        let path = entry.path();
        match sweep_one(&path) {
            Ok(true) => swept.removed += 1,
            Ok(false) => swept.in_use += 1,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "could not remove a leftover work directory");
            }
        }
    }
    Ok(swept)
}

/// Removes `path` if its lock is free; `Ok(false)` when a live process
/// holds it.
fn sweep_one(path: &Path) -> io::Result<bool> {
    let handle = open_directory(path)?;
    match flock(&handle, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
        Err(error) => return Err(error.into()),
    }
    // Between listing and locking, its owner may have removed it and
    // released the lock; only remove what was locked.
    if !is_same_directory(&handle, path) {
        return Ok(true);
    }
    match std::fs::remove_dir_all(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        // The lock is released when `handle` closes, after removal.
        _ => Ok(true),
    }
}

/// Opens a directory for locking, never through a symbolic link.
fn open_directory(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Whether `path` still names the directory `handle` has open.
fn is_same_directory(handle: &OwnedFd, path: &Path) -> bool {
    match (fstat(handle), lstat(path)) {
        (Ok(open), Ok(named)) => open.st_dev == named.st_dev && open.st_ino == named.st_ino,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_unlocked_work_dirs_and_keeps_locked_ones() {
        let root = tempfile::tempdir().unwrap();
        let live = WorkDir::create(root.path()).unwrap();
        std::fs::write(live.path().join("credential.fifo"), "").unwrap();
        // Left by a killed process: a work directory with contents and no
        // lock held.
        let dead = root.path().join(format!("{WORK_DIR_PREFIX}dead01"));
        std::fs::create_dir_all(dead.join("work/.git")).unwrap();
        std::fs::write(dead.join("work/.git/HEAD"), "ref: refs/heads/main\n").unwrap();
        // Not ours: other names, and a link that looks like a work dir.
        let other = root.path().join("someone-else");
        std::fs::create_dir(&other).unwrap();
        let target = tempfile::tempdir().unwrap();
        std::fs::write(target.path().join("precious"), "keep").unwrap();
        let link = root.path().join(format!("{WORK_DIR_PREFIX}link01"));
        std::os::unix::fs::symlink(target.path(), &link).unwrap();

        let swept = sweep_work_dirs(root.path()).unwrap();
        assert_eq!(
            swept,
            Swept {
                removed: 1,
                in_use: 1
            }
        );
        assert!(!dead.exists());
        assert!(live.path().join("credential.fifo").exists());
        assert!(other.exists());
        assert!(target.path().join("precious").exists());
        assert!(std::fs::symlink_metadata(&link).is_ok());

        // Once its owner is done, the directory is gone and a sweep finds
        // nothing more.
        let path = live.path().to_owned();
        live.close().unwrap();
        assert!(!path.exists());
        assert_eq!(sweep_work_dirs(root.path()).unwrap(), Swept::default());
    }

    #[test]
    fn the_lock_is_held_by_the_open_directory_not_the_process() {
        // flock locks belong to the open file description: a second open
        // in the same process conflicts like another process would, which
        // is what lets the test above stand in for two processes.
        let root = tempfile::tempdir().unwrap();
        let live = WorkDir::create(root.path()).unwrap();
        let second = open_directory(live.path()).unwrap();
        assert_eq!(
            flock(&second, FlockOperation::NonBlockingLockExclusive),
            Err(rustix::io::Errno::WOULDBLOCK)
        );
        drop(live);
        assert!(!root.path().read_dir().unwrap().any(|_| true));
    }
}
