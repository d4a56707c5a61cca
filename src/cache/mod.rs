//! The token cache: one small JSON file per identity in a private directory.
//!
//! Layout of the cache directory (0700, owned by the user):
//!
//! ```text
//! <id>.json   the entry (0600), replaced atomically by rename
//! <id>.lock   the entry's flock target (0600), never deleted
//! <id>.tmp    a write in progress; only ever touched under the lock
//! ```
//!
//! `<id>` is derived from the user id and the [`Key`], so it is stable across
//! runs and two users never share a file even in a shared `--cache-dir`.
//!
//! Reading (the cache-hit path) takes no lock: writers replace the file with
//! `rename`, so a reader sees either the old entry or the new one, never a
//! mix. Anything unexpected about a file (a symlink, wrong owner, loose
//! permissions, bad JSON, another format version, a different key) makes it a
//! cache miss; the renewal that follows replaces it.

pub mod entry;
pub mod lock;

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use entry::{Endpoints, Entry, Key, StoredToken, TokenField};
pub use lock::EntryLock;

use crate::error::{Error, Result};

/// An entry is a few KiB; anything much larger is damage or an attack, and is
/// not read into memory.
const MAX_ENTRY_BYTES: u64 = 1024 * 1024;

pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The outcome of reading an entry.
#[derive(Debug)]
pub enum Loaded {
    Hit(Box<Entry>),
    Missing,
    /// The file exists but cannot be trusted or understood; the reason names
    /// the problem for a warning. Treated as a miss.
    Discarded(String),
}

impl Loaded {
    pub fn entry(self) -> Option<Entry> {
        match self {
            Loaded::Hit(e) => Some(*e),
            _ => None,
        }
    }
}

/// The cache directory and the operations on its entries.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// The effective user id, asked once: it names the files and is the
    /// owner every file must have.
    euid: u32,
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir, euid: euid() }
    }

    /// The store in `--cache-dir` when given, else in `$XDG_CACHE_HOME/dexcred`
    /// or `~/.cache/dexcred` (on macOS `~/Library/Caches/dexcred`).
    pub fn at(dir: Option<&Path>) -> Result<Store> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => crate::nss::cache_dir()
                .map(|d| d.join("dexcred"))
                .ok_or_else(|| {
                    Error::usage(
                        "cannot find your cache directory (HOME is not set); pass --cache-dir DIR",
                    )
                })?,
        };
        Ok(Store::new(dir))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file stem for `key`: a hash, so user names and URLs never need
    /// escaping and file names reveal nothing.
    pub fn id(key: &Key) -> String {
        Store::id_for(euid(), key)
    }

    fn id_for(euid: u32, key: &Key) -> String {
        let mut hasher = Sha256::new();
        hasher.update(euid.to_le_bytes());
        // Serializing a struct of strings cannot fail.
        hasher.update(serde_json::to_vec(key).unwrap_or_default());
        hex(&hasher.finalize()[..16])
    }

    pub fn entry_path(&self, key: &Key) -> PathBuf {
        self.dir
            .join(format!("{}.json", Store::id_for(self.euid, key)))
    }

    fn sibling(&self, key: &Key, ext: &str) -> PathBuf {
        self.dir
            .join(format!("{}.{ext}", Store::id_for(self.euid, key)))
    }

    /// Reads the entry for `key` without locking. This is the cache-hit path:
    /// one `stat` of the directory, one `open`, one `read`.
    pub fn load(&self, key: &Key) -> Result<Loaded> {
        match self.check_dir()? {
            DirState::Missing => return Ok(Loaded::Missing),
            DirState::Ok => {}
        }
        let path = self.entry_path(key);
        Ok(match read_entry_file(&path, self.euid) {
            Ok(Some(entry)) if entry.key == *key => Loaded::Hit(Box::new(entry)),
            Ok(Some(_)) => {
                Loaded::Discarded(format!("{} belongs to another identity", path.display()))
            }
            Ok(None) => Loaded::Missing,
            Err(reason) => Loaded::Discarded(reason),
        })
    }

    /// Takes the entry's lock, creating the directory if needed.
    pub fn lock(&self, key: &Key, timeout: Duration) -> Result<EntryLock> {
        self.ensure_dir()?;
        EntryLock::acquire(&self.sibling(key, "lock"), timeout)
    }

    /// Atomically and durably replaces the entry: write a 0600 temp file,
    /// fsync it, rename it over the entry, fsync the directory. Taking the
    /// lock as an argument makes "writes happen under the lock" a type rule.
    pub fn save(&self, _lock: &EntryLock, entry: &Entry) -> Result<()> {
        let path = self.entry_path(&entry.key);
        let tmp = self.sibling(&entry.key, "tmp");
        let fail = |e: std::io::Error| {
            Error::local(format!(
                "cannot write the cache entry {}: {e}",
                path.display()
            ))
        };
        let json = serde_json::to_vec_pretty(entry)
            .map_err(|e| Error::local(format!("cannot encode the cache entry: {e}")))?;
        // A leftover temp file can only be from a writer that died: we hold
        // the lock, so nobody else is writing it now.
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e)),
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(fail)?;
        file.write_all(&json).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        drop(file);
        fs::rename(&tmp, &path).map_err(|e| {
            // Something rename cannot replace (a directory) is in the way.
            let _ = fs::remove_file(&tmp);
            Error::local(format!(
                "cannot replace the cache entry {}: {e}; remove it",
                path.display()
            ))
        })?;
        sync_dir(&self.dir).map_err(fail)
    }

    /// Deletes the entry (the lock file stays; see [`lock`]).
    pub fn remove(&self, _lock: &EntryLock, key: &Key) -> Result<bool> {
        let path = self.entry_path(key);
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.dir).map_err(|e| {
                    Error::local(format!("cannot sync {}: {e}", self.dir.display()))
                })?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::local(format!(
                "cannot delete {}: {e}",
                path.display()
            ))),
        }
    }

    /// Deletes an entry file found by [`Store::list`] (one that may not even
    /// parse, so its key is unknown), under the lock named after its file.
    pub fn remove_file(&self, path: &Path, timeout: Duration) -> Result<()> {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| path.parent() == Some(self.dir.as_path()) && !s.is_empty())
            .ok_or_else(|| Error::local(format!("{} is not a cache entry", path.display())))?;
        let _lock = EntryLock::acquire(&self.dir.join(format!("{stem}.lock")), timeout)?;
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::local(format!(
                "cannot delete {}: {e}",
                path.display()
            ))),
        }
    }

    /// Every entry file in the directory, parsed, for `status` and
    /// `logout --all`. Files that cannot be read come back as errors with
    /// their reason rather than failing the whole listing.
    pub fn list(&self) -> Result<Vec<(PathBuf, std::result::Result<Entry, String>)>> {
        if let DirState::Missing = self.check_dir()? {
            return Ok(Vec::new());
        }
        let read_dir = fs::read_dir(&self.dir)
            .map_err(|e| Error::local(format!("cannot list {}: {e}", self.dir.display())))?;
        let mut out = Vec::new();
        for item in read_dir.flatten() {
            let path = item.path();
            if path.extension().is_some_and(|x| x == "json") {
                let parsed = match read_entry_file(&path, self.euid) {
                    Ok(Some(e)) => Ok(e),
                    Ok(None) => continue, // deleted while we listed
                    Err(reason) => Err(reason),
                };
                out.push((path, parsed));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn check_dir(&self) -> Result<DirState> {
        let meta = match fs::metadata(&self.dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DirState::Missing),
            Err(e) => {
                return Err(Error::local(format!(
                    "cannot use the cache directory {}: {e}",
                    self.dir.display()
                )));
            }
        };
        let dir = self.dir.display();
        if !meta.is_dir() {
            return Err(Error::local(format!(
                "the cache path {dir} is not a directory; remove it or pass another --cache-dir"
            )));
        }
        if meta.uid() != self.euid {
            return Err(Error::local(format!(
                "the cache directory {dir} belongs to another user (uid {}); pass a --cache-dir of your own",
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(Error::local(format!(
                "the cache directory {dir} is writable by other users; run `chmod 700 {dir}` \
                 (and delete its contents if you did not expect this)"
            )));
        }
        Ok(DirState::Ok)
    }

    fn ensure_dir(&self) -> Result<()> {
        if let DirState::Missing = self.check_dir()? {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| {
                    Error::local(format!(
                        "cannot create the cache directory {}: {e}",
                        self.dir.display()
                    ))
                })?;
            self.check_dir()?;
        }
        Ok(())
    }
}

/// Lower-case hex, without a `format!` per byte (this is on the hit path).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

enum DirState {
    Missing,
    Ok,
}

/// Reads and validates one entry file. `Ok(None)`: no such file.
/// `Err(reason)`: the file exists but must not be used.
fn read_entry_file(path: &Path, euid: u32) -> std::result::Result<Option<Entry>, String> {
    let shown = path.display();
    let file = match OpenOptions::new()
        .read(true)
        // O_NOFOLLOW: never read a token through a link someone planted;
        // O_NONBLOCK: never hang opening a FIFO planted in its place.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(format!("{shown} is a symbolic link"));
        }
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
    };
    let size = check_entry_file(&file, euid).map_err(|why| format!("{shown} {why}"))?;
    if size > MAX_ENTRY_BYTES {
        return Err(format!("{shown} is larger than {MAX_ENTRY_BYTES} bytes"));
    }
    let bytes = read_small_file(file, size).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_ENTRY_BYTES {
        return Err(format!("{shown} is larger than {MAX_ENTRY_BYTES} bytes"));
    }
    parse_entry(&bytes)
        .map(Some)
        .map_err(|why| format!("{shown} {why}"))
}

/// Checks the open file's type, owner and mode; returns its size.
fn check_entry_file(file: &File, euid: u32) -> std::result::Result<u64, String> {
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be inspected: {e}"))?;
    if !meta.file_type().is_file() {
        return Err("is not a regular file".to_string());
    }
    if meta.uid() != euid {
        return Err("belongs to another user".to_string());
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "was accessible to other users (mode {:o}); its tokens may have leaked",
            meta.mode() & 0o777
        ));
    }
    Ok(meta.len())
}

/// Reads a file of (about) `size` bytes, as `fstat` gave it, with one
/// `read` for the content and one that sees the end: a buffer sized from the
/// start, never grown in steps. A file that grew since (it cannot, as
/// writers rename a new file into place, but still) is read to its end, up
/// to one byte over [`MAX_ENTRY_BYTES`] so the caller can refuse it.
fn read_small_file(mut file: File, size: u64) -> std::io::Result<Vec<u8>> {
    // One byte more than expected, so the read that sees the end fits.
    let capacity = usize::try_from(size.min(MAX_ENTRY_BYTES) + 1).unwrap_or(usize::MAX);
    let mut bytes = vec![0u8; capacity];
    let mut filled = 0;
    loop {
        if filled == bytes.len() {
            if filled as u64 > MAX_ENTRY_BYTES {
                break;
            }
            bytes.resize(filled * 2, 0);
        }
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// Parses entry bytes, checking the format version before the shape so that
/// a future format is reported as such rather than as corruption.
pub fn parse_entry(bytes: &[u8]) -> std::result::Result<Entry, String> {
    // Fast path (every cache hit): one pass straight into the struct.
    if let Ok(entry) = serde_json::from_slice::<Entry>(bytes)
        && entry.version == entry::FORMAT_VERSION
    {
        return Ok(entry);
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| "is not valid JSON".to_string())?;
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(entry::FORMAT_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "has cache format version {v}, not {}",
                entry::FORMAT_VERSION
            ));
        }
        None => return Err("has no cache format version".to_string()),
    }
    serde_json::from_value(value).map_err(|e| format!("is not a valid cache entry ({e})"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::os::unix::fs::PermissionsExt;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> TempDir {
            let p =
                std::env::temp_dir().join(format!("dexcred-cache-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn key(user: &str) -> Key {
        Key {
            provider: "pcd".into(),
            url: "https://pcd.example".into(),
            grant: "password".into(),
            username: Some(user.into()),
            user_domain: Some("Default".into()),
            project: None,
            client_id: "kubernetes".into(),
            connector_id: Some("default".into()),
            scope: None,
            extra_params: vec![],
        }
    }

    fn entry(user: &str) -> Entry {
        let mut e = Entry::new(key(user), 100);
        e.id_token = Some(StoredToken {
            value: Secret::new("tok"),
            expires_at: 200,
            issued_at: 100,
        });
        e.refresh_token = Some(Secret::new("rt"));
        e
    }

    #[test]
    fn save_then_load_round_trips_with_private_modes() {
        let tmp = TempDir::new("roundtrip");
        let store = Store::new(tmp.0.join("nested/dexcred"));
        assert!(matches!(store.load(&key("a")).unwrap(), Loaded::Missing));
        let lock = store.lock(&key("a"), Duration::from_secs(1)).unwrap();
        store.save(&lock, &entry("a")).unwrap();
        let loaded = store.load(&key("a")).unwrap().entry().unwrap();
        assert_eq!(loaded, entry("a"));
        let dir_mode = fs::metadata(store.dir()).unwrap().mode() & 0o777;
        let file_mode = fs::metadata(store.entry_path(&key("a"))).unwrap().mode() & 0o777;
        assert_eq!((dir_mode, file_mode), (0o700, 0o600));
        assert!(matches!(store.load(&key("b")).unwrap(), Loaded::Missing));
    }

    #[test]
    fn hex_is_lower_case_and_zero_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn distinct_keys_have_distinct_files() {
        assert_ne!(Store::id(&key("a")), Store::id(&key("b")));
        assert_eq!(Store::id(&key("a")), Store::id(&key("a")));
    }

    #[test]
    fn untrustworthy_files_are_discarded_with_a_reason() {
        let tmp = TempDir::new("hostile");
        let store = Store::new(tmp.0.clone());
        let lock = store.lock(&key("a"), Duration::from_secs(1)).unwrap();
        store.save(&lock, &entry("a")).unwrap();
        let path = store.entry_path(&key("a"));

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            matches!(store.load(&key("a")).unwrap(), Loaded::Discarded(r) if r.contains("other users"))
        );

        fs::remove_file(&path).unwrap();
        fs::write(tmp.0.join("target"), "{}").unwrap();
        std::os::unix::fs::symlink(tmp.0.join("target"), &path).unwrap();
        assert!(
            matches!(store.load(&key("a")).unwrap(), Loaded::Discarded(r) if r.contains("symbolic link"))
        );
        // Saving replaces the link itself and leaves its target alone.
        store.save(&lock, &entry("a")).unwrap();
        assert_eq!(fs::read_to_string(tmp.0.join("target")).unwrap(), "{}");
        assert!(store.load(&key("a")).unwrap().entry().is_some());
    }

    #[test]
    fn insecure_directory_is_an_error_naming_the_fix() {
        let tmp = TempDir::new("loose");
        fs::create_dir_all(&tmp.0).unwrap();
        fs::set_permissions(&tmp.0, fs::Permissions::from_mode(0o777)).unwrap();
        let err = Store::new(tmp.0.clone()).load(&key("a")).unwrap_err();
        assert!(err.message().contains("chmod 700"), "{err}");
    }

    #[test]
    fn parse_entry_reports_versions_and_garbage() {
        assert!(parse_entry(b"{").unwrap_err().contains("not valid JSON"));
        assert!(
            parse_entry(b"{}")
                .unwrap_err()
                .contains("no cache format version")
        );
        assert!(
            parse_entry(br#"{"version":9}"#)
                .unwrap_err()
                .contains("version 9")
        );
        assert!(
            parse_entry(br#"{"version":1}"#)
                .unwrap_err()
                .contains("not a valid cache entry")
        );
    }
}
