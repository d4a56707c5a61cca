//! The two file operations that keep secrets safe on disk, written once for
//! the cache and the kubeconfig writer: a bounded read that never follows a
//! planted link or hangs on a FIFO, and an atomic, durable replace.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

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

/// Reads an open regular file, refusing anything else and anything larger
/// than `max` bytes, so damage or an attack is never read into memory. The
/// metadata comes back for the caller's own checks (owner, mode).
///
/// One `fstat`, then (this is the cache-hit path) two `read`s: the buffer
/// is sized from `fstat` plus one byte, so the first read takes the whole
/// file and the second sees its end, instead of a buffer grown in steps.
pub fn read_regular(file: File, max: u64) -> io::Result<(Metadata, Vec<u8>)> {
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other("is not a regular file"));
    }
    let expected = usize::try_from(meta.len().min(max) + 1).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(expected);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::other(format!("is larger than {max} bytes")));
    }
    Ok((meta, bytes))
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
}
