//! Files and directories that the user names (or that dexcred creates for
//! the user), handled so that no run can hang on them, read without bound,
//! or leave a directory owned by the wrong user.
//!
//! Two rules live here, each in one function so that every caller applies
//! it the same way:
//! - [`read_regular_file`]: a file a flag names (`--password-file`,
//!   `--client-secret-file`, `--certificate-authority`,
//!   `--cluster-certificate-authority`) is opened without blocking, must be
//!   a regular file, and is read only up to a bound.
//! - [`create_owned_dir`]: a directory dexcred creates (the cache, the
//!   kubeconfig's directory) is created only inside a directory that belongs
//!   to the user running dexcred (or to root), never inside another user's.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Reads the whole of `path`, refusing anything but a regular file and
/// anything larger than `max_bytes`.
///
/// Why each step:
/// - `O_NONBLOCK` on open: opening a FIFO that has no writer blocks forever
///   in `open(2)` (and `--timeout` cannot interrupt it); with `O_NONBLOCK`
///   the open returns at once and `fstat` then tells us what we opened.
/// - `fstat` on the open file, not `stat` on the path: the check applies to
///   the file we read, not to whatever the path pointed at a moment before.
///   Symbolic links are followed on purpose: mounted Kubernetes secrets and
///   `/etc/ssl` bundles are links, and the user chose the path.
/// - the bound: a device (`/dev/zero`) or a huge file must not make us
///   allocate without limit; reading `max_bytes + 1` tells "too large" from
///   "exactly at the limit" without trusting `st_size`.
///
/// The error is the reason only ("is a FIFO, not a regular file"); the
/// caller puts the flag and path in front and chooses the error kind.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(format!(
            "it is {what}; dexcred reads only regular files here (a pipe or device could block \
             or never end)"
        ));
    }
    if meta.len() > max_bytes {
        return Err(too_large(max_bytes));
    }
    let mut bytes = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(max_bytes));
    }
    Ok(bytes)
}

fn too_large(max_bytes: u64) -> String {
    format!(
        "it is larger than {} KiB, the limit for this file",
        max_bytes / 1024
    )
}

/// Creates `dir` (and missing parents) with mode 0700, but only when the
/// nearest existing ancestor belongs to the effective user or to root.
///
/// The case this stops: `sudo -E dexcred …` runs as root with the user's
/// HOME, and a plain `mkdir -p ~/.cache/dexcred` would leave a root-owned
/// `~/.cache` in the user's home, breaking every program that caches there.
/// Creating inside a root-owned directory (`/tmp`, `/var/cache/…`) is fine:
/// permissions decide, as for any program. Returns the reason on refusal.
pub fn create_owned_dir(dir: &Path) -> Result<(), String> {
    let euid = crate::cache::euid();
    let mut ancestor = dir.parent();
    while let Some(candidate) = ancestor {
        match std::fs::metadata(candidate) {
            Ok(meta) => {
                let owner = meta.uid();
                if owner != euid && owner != 0 {
                    return Err(format!(
                        "refusing to create it inside {}, which belongs to uid {owner}, not to \
                         you (uid {euid}): the new directory would be yours there (as after \
                         `sudo -E`)",
                        candidate.display()
                    ));
                }
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ancestor = candidate.parent();
            }
            Err(e) => return Err(format!("cannot inspect {}: {e}", candidate.display())),
        }
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_up_to_the_bound() {
        let dir = tempfile_dir("read");
        let path = dir.join("f");
        std::fs::write(&path, b"abcd").unwrap();
        assert_eq!(read_regular_file(&path, 4).unwrap(), b"abcd");
        assert!(read_regular_file(&path, 3).unwrap_err().contains("larger"));
        assert!(
            read_regular_file(&dir, 10)
                .unwrap_err()
                .contains("directory")
        );
        assert!(
            read_regular_file(Path::new("/dev/zero"), 10)
                .unwrap_err()
                .contains("device")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_without_writer_is_refused_not_waited_on() {
        let dir = tempfile_dir("fifo");
        let fifo = dir.join("p");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read_regular_file(&fifo, 10).unwrap_err().contains("FIFO"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("dexcred-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}
