//! The per-entry locks: the entry lock makes renewals single-flight, the
//! login lock makes logins single-flight without making renewals wait on a
//! person.
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
///
/// The entry lock guards refresh-token rotation and every write of the
/// entry ([`super::Store::save`] takes it as an argument). Nothing done under
/// it waits on a person: each step is a network request bounded by
/// `--timeout`, or a file write.
#[derive(Debug)]
pub struct EntryLock {
    _file: File,
    path: PathBuf,
}

impl EntryLock {
    /// Opens (creating 0600 if needed) and locks `path`, waiting at most
    /// `timeout` for another process to finish its renewal.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<EntryLock> {
        EntryLock::wait(path, timeout)?.held()
    }

    /// Like [`EntryLock::acquire`], but a wait that runs out of time is an
    /// outcome rather than an error, so the caller may fall back to a
    /// still-valid cached token.
    pub fn wait(path: &Path, timeout: Duration) -> Result<Acquired<EntryLock>> {
        Ok(match acquire(path, timeout)? {
            Some(file) => Acquired::Held(EntryLock {
                _file: file,
                path: path.to_path_buf(),
            }),
            None => Acquired::TimedOut(Error::local(format!(
                "another dexcred process has held {} for more than {}s; if none is running, \
                 check the identity provider, or raise --lock-timeout",
                path.display(),
                timeout.as_secs()
            ))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Proof that the caller is the one process logging in to an entry's
/// identity; released on drop.
///
/// A login may wait on a person (a password prompt, a one-time code, a
/// browser), so it must not happen under the [`EntryLock`], which every
/// renewal needs. The login lock (`<id>.login`) serialises logins only: N
/// processes that all need one make ONE prompt and ONE login; the others
/// wait here (bounded) and then find the new tokens in the entry. No
/// deadlock is possible: a process may wait for the entry lock while
/// holding the login lock, but a holder of the entry lock only ever *tries*
/// the login lock ([`super::Store::try_login_lock`]), never waits for it.
#[derive(Debug)]
pub struct LoginLock {
    _file: File,
    path: PathBuf,
}

impl LoginLock {
    /// Opens (creating 0600 if needed) and locks `path`, waiting at most
    /// `timeout` for another process's login to finish.
    pub fn wait(path: &Path, timeout: Duration) -> Result<Acquired<LoginLock>> {
        Ok(match acquire(path, timeout)? {
            Some(file) => Acquired::Held(LoginLock {
                _file: file,
                path: path.to_path_buf(),
            }),
            None => Acquired::TimedOut(Error::local(format!(
                "another dexcred process has been logging in (holding {}) for more than {}s; \
                 finish or cancel that login, or raise --lock-timeout and --login-timeout",
                path.display(),
                timeout.as_secs()
            ))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The outcome of a bounded wait for a lock.
#[derive(Debug)]
pub enum Acquired<T> {
    Held(T),
    /// Another process held the lock past the deadline. The error names the
    /// lock and the flag that raises the bound.
    TimedOut(Error),
}

impl<T> Acquired<T> {
    /// The lock, or the timeout as an error.
    pub fn held(self) -> Result<T> {
        match self {
            Acquired::Held(lock) => Ok(lock),
            Acquired::TimedOut(error) => Err(error),
        }
    }
}

/// Opens and flocks `path`, waiting at most `timeout`; `None` when the wait
/// ran out of time.
fn acquire(path: &Path, timeout: Duration) -> Result<Option<File>> {
    let file = open_lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) if timeout.is_zero() => Ok(None),
        Err(TryLockError::WouldBlock) => Ok(wait_for_lock(&file, path, timeout)?.then_some(file)),
        Err(TryLockError::Error(e)) => {
            Err(Error::local(format!("cannot lock {}: {e}", path.display())))
        }
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
    if !meta.file_type().is_file() || meta.uid() != crate::fs::euid() {
        return Err(Error::local(format!(
            "the lock file {} is not a regular file owned by you; remove it",
            path.display()
        )));
    }
    Ok(file)
}

/// Blocks in `flock` on a helper thread so the wait is bounded without
/// polling: the kernel wakes us the moment the holder exits. If the deadline
/// passes first the whole process is about to exit with an error (or serve
/// a cached token and exit), which also ends the blocked thread. Returns
/// whether the lock was obtained.
fn wait_for_lock(file: &File, path: &Path, timeout: Duration) -> Result<bool> {
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
        Ok(Ok(())) => Ok(true),
        Ok(Err(e)) => Err(Error::local(format!("cannot lock {}: {e}", path.display()))),
        Err(_) => Ok(false),
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
        // The login lock is a different file: holding the entry lock does
        // not keep a login from starting, and a second login waits.
        let short = Duration::from_millis(100);
        let login = LoginLock::wait(&dir.join("e.login"), short).unwrap();
        assert!(matches!(login, Acquired::Held(_)));
        match LoginLock::wait(&dir.join("e.login"), short).unwrap() {
            Acquired::TimedOut(err) => assert!(err.message().contains("--login-timeout"), "{err}"),
            Acquired::Held(_) => panic!("two logins held the login lock"),
        }
        drop(login);
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
