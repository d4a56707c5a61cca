//! The per-entry lock that makes renewals single-flight.
//!
//! Dex rotates refresh tokens with no grace period: if two processes present
//! the same refresh token, the second one fails and, worse, its caller falls
//! back to a password login that deletes the first one's new session. So
//! every renewal of an entry happens under an exclusive `flock` on the
//! entry's lock file, and the renewer re-reads the entry after taking it.
//!
//! `flock` (through std's `File::lock`) is released by the kernel when the
//! process dies, however it dies, so a crashed or killed dexcred can never
//! leave a stale lock behind. Lock files are never deleted: deleting one
//! while another process waits on it would let two processes hold "the" lock
//! on two different files.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::{Error, Result};

/// Proof that the caller holds an entry's lock; released on drop.
#[derive(Debug)]
pub struct EntryLock {
    _file: File,
    path: PathBuf,
}

impl EntryLock {
    /// Opens (creating 0600 if needed) and locks `path`, waiting at most
    /// `timeout` for another process to finish its renewal.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<EntryLock> {
        let file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => wait_for_lock(&file, path, timeout)?,
            Err(TryLockError::Error(e)) => {
                return Err(Error::local(format!("cannot lock {}: {e}", path.display())));
            }
        }
        Ok(EntryLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            Error::local(format!(
                "cannot open the lock file {}: {e}; remove it if it is not a regular file",
                path.display()
            ))
        })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::local(format!("cannot inspect {}: {e}", path.display())))?;
    if !meta.file_type().is_file() || meta.uid() != super::euid() {
        return Err(Error::local(format!(
            "the lock file {} is not a regular file owned by you; remove it",
            path.display()
        )));
    }
    Ok(file)
}

/// Blocks in `flock` on a helper thread so the wait is bounded without
/// polling: the kernel wakes us the moment the holder exits. If the deadline
/// passes first the whole process is about to exit with an error, which also
/// ends the blocked thread.
fn wait_for_lock(file: &File, path: &Path, timeout: Duration) -> Result<()> {
    let clone = file
        .try_clone()
        .map_err(|e| Error::local(format!("cannot lock {}: {e}", path.display())))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // The lock belongs to the open file description, which `file` and
        // `clone` share, so it stays held after `clone` is dropped here.
        let _ = tx.send(clone.lock());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::local(format!("cannot lock {}: {e}", path.display()))),
        Err(_) => Err(Error::local(format!(
            "another dexcred process has held {} for more than {}s; if none is running, check the \
             identity provider, or raise --lock-timeout",
            path.display(),
            timeout.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_times_out_and_is_free_after_release() {
        let dir = std::env::temp_dir().join(format!("dexcred-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("e.lock");
        let held = EntryLock::acquire(&path, Duration::from_secs(1)).unwrap();
        // flock conflicts between separate open file descriptions, even in
        // one process, so a second acquire must wait and then give up.
        let err = EntryLock::acquire(&path, Duration::from_millis(100)).unwrap_err();
        assert!(err.message().contains("--lock-timeout"), "{err}");
        drop(held);
        EntryLock::acquire(&path, Duration::from_millis(100)).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refuses_a_symlink() {
        let dir = std::env::temp_dir().join(format!("dexcred-lock-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("e.lock");
        std::os::unix::fs::symlink(dir.join("elsewhere"), &path).unwrap();
        let err = EntryLock::acquire(&path, Duration::from_millis(100)).unwrap_err();
        assert!(err.message().contains(&path.display().to_string()), "{err}");
        assert!(!dir.join("elsewhere").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
