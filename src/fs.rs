//! Files on disk, handled so that secrets stay safe and no run hangs, reads
//! without bound, or leaves a directory owned by the wrong user. Every rule
//! is written once here and used by the cache, the kubeconfig writer and
//! every flag that names a file:
//!
//! - [`read_regular`]: the one bounded read — only a regular file, never
//!   more than a bound, never blocking on a FIFO. [`open_nofollow`] opens
//!   dexcred's own files (a planted link is refused);
//!   [`read_regular_file`] opens a file the user named (links followed).
//! - [`replace`]: atomic, durable replace (temporary file, fsync, rename,
//!   directory fsync).
//! - [`create_owned_dir`]: a directory dexcred creates (the cache, the
//!   kubeconfig's directory) is created only inside a directory that belongs
//!   to the user running dexcred (or to root), never inside another user's.

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The effective user id: who owns what dexcred creates, and whose files
/// dexcred trusts.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Opens `path` for reading without following a final symbolic link
/// (`ELOOP` then) and without blocking on a FIFO. `Ok(None)`: no such file.
pub fn open_nofollow(path: &Path) -> io::Result<Option<File>> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads an open regular file, refusing anything
/// else and anything larger than `max` bytes, so damage or an attack is
/// never read into memory. The metadata comes back for the caller's own
/// checks (owner, mode). The error text reads after a path: "is a FIFO
/// (named pipe), not a regular file".
///
/// Why each step:
/// - `fstat` on the open file, not `stat` on the path: the check applies to
///   the file we read, not to whatever the path pointed at a moment before.
/// - the bound: a device (`/dev/zero`) or a huge file must not make us
///   allocate without limit; the size is checked before reading, and reading
///   `max + 1` tells "too large" from "exactly at the limit" without trusting
///   `st_size`.
/// - one `fstat`, then (this is the cache-hit path) two `read`s: the buffer
///   is sized from `fstat` plus one byte, so the first read takes the whole
///   file and the second sees its end, instead of a buffer grown in steps.
pub fn read_regular(file: File, max: u64) -> io::Result<(Metadata, Vec<u8>)> {
    let meta = file.metadata()?;
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
            "something else"
        };
        return Err(io::Error::other(format!("is {what}, not a regular file")));
    }
    if meta.len() > max {
        return Err(too_large(max));
    }
    let expected = usize::try_from(meta.len().min(max) + 1).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(expected);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large(max));
    }
    Ok((meta, bytes))
}

fn too_large(max: u64) -> io::Error {
    io::Error::other(if max.is_multiple_of(1024) {
        format!("is larger than {} KiB, the limit for this file", max / 1024)
    } else {
        format!("is larger than {max} bytes, the limit for this file")
    })
}

/// Reads the whole of a file the user named (`--password-file`,
/// `--client-secret-file`, `--certificate-authority`,
/// `--cluster-certificate-authority`) with [`read_regular`].
///
/// Symbolic links are followed on purpose: mounted Kubernetes secrets and
/// `/etc/ssl` bundles are links, and the user chose the path. `O_NONBLOCK`
/// on open: opening a FIFO that has no writer blocks forever in `open(2)`
/// (and `--timeout` cannot interrupt it); with `O_NONBLOCK` the open returns
/// at once and `fstat` then tells us what we opened.
///
/// The error is the reason only ("it is a FIFO (named pipe), not a regular
/// file; …"); the caller puts the flag and path in front and chooses the
/// error kind.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| e.to_string())?;
    match read_regular(file, max_bytes) {
        Ok((_, bytes)) => Ok(bytes),
        Err(e) if e.kind() == io::ErrorKind::Other && e.raw_os_error().is_none() => {
            let why = if e.to_string().contains("not a regular file") {
                "; dexcred reads only regular files here (a pipe or device could block or never end)"
            } else {
                ""
            };
            Err(format!("it {e}{why}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Why [`replace`] failed.
#[derive(Debug)]
pub enum ReplaceError {
    /// Writing or syncing the temporary file or the directory.
    Write(io::Error),
    /// Something `rename` cannot replace (a directory) is in the way.
    Rename(io::Error),
}

impl std::fmt::Display for ReplaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplaceError::Write(e) => write!(f, "{e}"),
            ReplaceError::Rename(e) => write!(f, "{e}; remove it"),
        }
    }
}

/// Replaces `target` with `bytes` atomically and durably: writes `tmp`
/// (created with `O_EXCL|O_NOFOLLOW` and exactly `mode`), fsyncs it, renames
/// it over `target` and fsyncs the directory. Readers see the old file or
/// the new one, never a mix, even after a crash.
///
/// The caller holds a lock that makes it the only writer of `tmp`, so a
/// leftover `tmp` can only be from a writer that died, and is removed.
pub fn replace(target: &Path, tmp: &Path, bytes: &[u8], mode: u32) -> Result<(), ReplaceError> {
    match fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(ReplaceError::Write(e)),
    }
    if let Err(e) = write_synced(tmp, bytes, mode) {
        let _ = fs::remove_file(tmp);
        return Err(ReplaceError::Write(e));
    }
    if let Err(e) = fs::rename(tmp, target) {
        let _ = fs::remove_file(tmp);
        return Err(ReplaceError::Rename(e));
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    sync_dir(dir).map_err(ReplaceError::Write)
}

fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // The umask may have narrowed `mode`; a replaced file keeps its mode.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes a rename or removal in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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
    let euid = euid();
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
    use std::os::unix::fs::MetadataExt;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dexcred-fs-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn replace_writes_the_mode_and_removes_a_leftover_tmp() {
        let dir = scratch("replace");
        let (target, tmp) = (dir.join("f"), dir.join("f.tmp"));
        fs::write(&tmp, "leftover").unwrap();
        replace(&target, &tmp, b"one", 0o640).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"one");
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o640);
        assert!(!tmp.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_in_the_way_is_a_rename_error_and_leaves_no_tmp() {
        let dir = scratch("in-the-way");
        let (target, tmp) = (dir.join("f"), dir.join("f.tmp"));
        fs::create_dir(&target).unwrap();
        let e = replace(&target, &tmp, b"x", 0o600).unwrap_err();
        assert!(matches!(e, ReplaceError::Rename(_)), "{e}");
        assert!(e.to_string().ends_with("remove it"));
        assert!(!tmp.exists() && target.is_dir());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_are_bounded_and_refuse_links_and_non_files() {
        let dir = scratch("read");
        let file = dir.join("f");
        fs::write(&file, "12345").unwrap();
        let open = || open_nofollow(&file).unwrap().unwrap();
        assert_eq!(read_regular(open(), 5).unwrap().1, b"12345");
        assert!(read_regular(open(), 4).is_err());
        std::os::unix::fs::symlink(&file, dir.join("link")).unwrap();
        let e = open_nofollow(&dir.join("link")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        assert!(open_nofollow(&dir.join("missing")).unwrap().is_none());
        let d = open_nofollow(&dir).unwrap().unwrap();
        assert!(read_regular(d, 10).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn regular_files_are_read_up_to_the_bound() {
        let dir = files_dir("read");
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
        let dir = files_dir("fifo");
        let fifo = dir.join("p");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read_regular_file(&fifo, 10).unwrap_err().contains("FIFO"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn files_dir(name: &str) -> std::path::PathBuf {
        let p =
            std::env::temp_dir().join(format!("dexcred-fs-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}
