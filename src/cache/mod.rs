//! The token cache: one small JSON file per identity in a private directory.
//!
//! Layout of the cache directory (0700, owned by the user):
//!
//! ```text
//! <id>.json   the entry (0600), replaced atomically by rename
//! <id>.lock   the entry's flock target (0600), never deleted
//! <id>.login  the flock target that serialises logins (0600), never deleted
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

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use entry::{
    Endpoints, Entry, ExchangeKey, Grant, Key, MAX_TIME, ProviderKind, StoredToken, TokenField,
    clamp_time,
};
pub use lock::{Acquired, EntryLock, LoginLock};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::fs::euid;

/// An entry is a few KiB; anything much larger is damage or an attack, and is
/// not read into memory.
const MAX_ENTRY_BYTES: u64 = 1024 * 1024;

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
    /// or `~/.cache/dexcred`.
    pub fn at(dir: Option<&Path>, env: &Environment) -> Result<Store> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => env.cache_home().map(|d| d.join("dexcred")).ok_or_else(|| {
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

    /// [`Store::id`] for another uid (a fixture written by another user).
    pub fn id_for(euid: u32, key: &Key) -> String {
        let mut hasher = Sha256::new();
        hasher.update(euid.to_le_bytes());
        // Serializing strings and unit enums cannot fail.
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
        self.wait_lock(key, timeout)?.held()
    }

    /// Takes the entry's lock; a wait past `timeout` is an outcome, so the
    /// caller can fall back to a still-valid token.
    pub fn wait_lock(&self, key: &Key, timeout: Duration) -> Result<Acquired<EntryLock>> {
        self.ensure_dir()?;
        EntryLock::wait(&self.sibling(key, "lock"), timeout)
    }

    /// Takes the entry's login lock (see [`LoginLock`]), creating the
    /// directory if needed.
    pub fn login_lock(&self, key: &Key, timeout: Duration) -> Result<Acquired<LoginLock>> {
        self.ensure_dir()?;
        LoginLock::wait(&self.sibling(key, "login"), timeout)
    }

    /// The login lock if no other process holds it, without waiting. This
    /// is how a holder of the entry lock takes it (entry lock first, then a
    /// login lock that is never waited for): no two processes can ever
    /// wait for each other.
    pub fn try_login_lock(&self, key: &Key) -> Result<Option<LoginLock>> {
        Ok(match self.login_lock(key, Duration::ZERO)? {
            Acquired::Held(lock) => Some(lock),
            Acquired::TimedOut(_) => None,
        })
    }

    /// Atomically and durably replaces the entry ([`crate::fs::replace`]:
    /// 0600 temp file, fsync, rename, directory fsync). Taking the
    /// lock as an argument makes "writes happen under the lock" a type rule.
    pub fn save(&self, _lock: &EntryLock, entry: &Entry) -> Result<()> {
        let path = self.entry_path(&entry.key);
        let json = serde_json::to_vec_pretty(entry)
            .map_err(|e| Error::local(format!("cannot encode the cache entry: {e}")))?;
        crate::fs::replace(&path, &self.sibling(&entry.key, "tmp"), &json, 0o600).map_err(|e| {
            Error::local(format!(
                "cannot write the cache entry {}: {e}",
                path.display()
            ))
        })
    }

    /// Deletes the entry (the lock file stays; see [`lock`]).
    pub fn remove(&self, _lock: &EntryLock, key: &Key) -> Result<bool> {
        let path = self.entry_path(key);
        match fs::remove_file(&path) {
            Ok(()) => {
                crate::fs::sync_dir(&self.dir).map_err(|e| {
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
            crate::fs::create_owned_dir(&self.dir).map_err(|why| {
                Error::local(format!(
                    "cannot create the cache directory {}: {why}; pass --cache-dir DIR \
                     (a directory of your own), or run without `sudo -E`",
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
    // No link followed (a planted link is refused), no hang on a FIFO.
    let file = match crate::fs::open_nofollow(path) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(format!("{shown} is a symbolic link"));
        }
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
    };
    let (meta, bytes) =
        crate::fs::read_regular(file, MAX_ENTRY_BYTES).map_err(|e| format!("{shown} {e}"))?;
    if meta.uid() != euid {
        return Err(format!("{shown} belongs to another user"));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{shown} was accessible to other users (mode {:o}); its tokens may have leaked",
            meta.mode() & 0o777
        ));
    }
    parse_entry(&bytes)
        .map(Some)
        .map_err(|why| format!("{shown} {why}"))
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
            provider: crate::cache::ProviderKind::Pcd,
            url: "https://pcd.example".into(),
            grant: crate::cache::Grant::Password,
            username: Some(user.into()),
            user_domain: Some("Default".into()),
            project: None,
            client_id: "kubernetes".into(),
            connector_id: Some("default".into()),
            scope: None,
            extra_params: vec![],
            exchange: None,
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

    /// A cache file written by dexcred 101d135, when the key was plain
    /// strings: the typed key must hash to the same file name and load it.
    #[test]
    fn a_cache_file_from_before_typed_keys_keeps_its_name_and_loads() {
        let name = "efd233309cf708816c4b64311197c144";
        let bytes = include_bytes!(
            "../../tests/fixtures/cache-101d135/efd233309cf708816c4b64311197c144.json"
        );
        let entry = parse_entry(bytes).unwrap();
        assert_eq!(entry.key.provider, ProviderKind::Pcd);
        assert_eq!(entry.key.grant, Grant::Password);
        // Written as uid 0.
        assert_eq!(Store::id_for(0, &entry.key), name);
        // Saved again, the key is the same JSON it was read from.
        let original: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(serde_json::to_value(&entry.key).unwrap(), original["key"]);
    }

    #[test]
    fn key_vocabulary_serialises_as_it_always_has() {
        let names = [
            (serde_json::to_value(ProviderKind::Pcd), "pcd"),
            (serde_json::to_value(ProviderKind::Issuer), "issuer"),
            (serde_json::to_value(ProviderKind::TokenUrl), "token_url"),
            (serde_json::to_value(Grant::Password), "password"),
            (
                serde_json::to_value(Grant::ClientCredentials),
                "client_credentials",
            ),
        ];
        for (value, name) in names {
            assert_eq!(value.unwrap(), serde_json::json!(name));
        }
        for grant in [
            Grant::Password,
            Grant::ClientCredentials,
            Grant::TokenExchange,
            Grant::AuthorizationCode,
            Grant::DeviceCode,
        ] {
            assert_eq!(
                serde_json::to_value(grant).unwrap(),
                serde_json::json!(grant.as_str())
            );
        }
        for kind in [
            ProviderKind::Pcd,
            ProviderKind::Issuer,
            ProviderKind::TokenUrl,
        ] {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
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
