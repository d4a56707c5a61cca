//! A hostile or broken cache: whatever is found where an entry, its lock or
//! its temp file should be — damage, an old or future format, a huge file,
//! a symlink, a FIFO, loose permissions, another owner — dexcred either
//! treats it as a cache miss and replaces it with a correct private entry,
//! or stops with one line naming the path and the fix (exit 5). It never
//! panics, never hangs, never writes through a symlink, and never hands out
//! a token from a file that others could have written.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;
use dexcred_testkit::idp::FakeIdp;

/// Generous: a hang is the failure being tested for, not slowness.
const DEADLINE: Duration = Duration::from_secs(40);

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A logged-in user; `entry` is the cache file, `lock` and `tmp` its
/// siblings.
struct World {
    idp: FakeIdp,
    env: Env,
    entry: PathBuf,
}

impl World {
    fn new() -> World {
        let idp = FakeIdp::pcd();
        let env = Env::new();
        let mut world = World {
            idp,
            env,
            entry: PathBuf::new(),
        };
        ok(&run_bounded(&mut world.token(), DEADLINE));
        let entries = world.env.cache_entries();
        assert_eq!(entries.len(), 1);
        world.entry = entries[0].clone();
        world
    }

    fn token(&self) -> Command {
        let mut cmd = self.env.dexcred(["token", "--pcd", &self.idp.url()]);
        cmd.args(["--username", ALICE, "--lock-timeout", "5"])
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        cmd
    }

    fn sibling(&self, ext: &str) -> PathBuf {
        self.entry.with_extension(ext)
    }

    fn dir(&self) -> PathBuf {
        self.env.cache_dir()
    }

    /// Replaces the entry file with `bytes` (mode 0600, a new inode).
    fn plant(&self, bytes: &[u8]) {
        remove_any(&self.entry);
        std::fs::write(&self.entry, bytes).expect("plant entry");
        set_mode(&self.entry, 0o600);
    }

    /// The names in the cache directory, sorted.
    fn dir_listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir())
            .expect("list cache dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Asserts a run that replaced an untrustworthy entry: exit 0, a token
    /// the IdP issued, one warning naming the entry and containing `why`,
    /// and now a correct, private entry holding exactly that token.
    fn assert_safe_miss(&self, out: &Output, why: &str) -> String {
        let printed = ok(out).trim().to_string();
        assert!(self.idp.is_valid_token(&printed), "a real token is served");
        let err = stderr(out);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one warning line:\n{err}");
        assert!(lines[0].starts_with("dexcred: warning: "), "{err}");
        assert!(
            lines[0].contains(&self.entry.display().to_string()),
            "the warning names the file: {err}"
        );
        assert!(lines[0].contains(why), "expected {why:?} in: {err}");
        self.assert_good_entry(&printed);
        printed
    }

    /// The entry is a regular 0600 file of ours that parses and holds
    /// `token`, in a 0700 directory with nothing else but the lock.
    fn assert_good_entry(&self, token: &str) {
        let meta = std::fs::symlink_metadata(&self.entry).expect("entry exists");
        assert!(meta.file_type().is_file(), "a regular file");
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(meta.uid(), unsafe_euid());
        assert_eq!(mode(&self.dir()), 0o700);
        let bytes = std::fs::read(&self.entry).expect("read entry");
        let entry = dexcred::cache::parse_entry(&bytes).expect("the new entry parses");
        assert_eq!(
            entry.id_token.as_ref().map(|t| t.value.expose()),
            Some(token)
        );
        let stem = self
            .entry
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // The login lock exists once a login has run.
        let listing: Vec<String> = self
            .dir_listing()
            .into_iter()
            .filter(|n| *n != format!("{stem}.login"))
            .collect();
        assert_eq!(
            listing,
            vec![format!("{stem}.json"), format!("{stem}.lock")],
            "no temp files or strays left behind"
        );
    }
}

fn unsafe_euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Removes a file, symlink, FIFO or directory at `path`, if any.
fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).expect("remove dir"),
        Ok(_) => std::fs::remove_file(path).expect("remove file"),
        Err(_) => {}
    }
}

#[test]
fn damaged_old_future_and_huge_entries_are_replaced() {
    let world = World::new();
    let good = std::fs::read(&world.entry).unwrap();
    let good_json: serde_json::Value = serde_json::from_slice(&good).unwrap();
    let with_version = |v: serde_json::Value| {
        let mut e = good_json.clone();
        e["version"] = v;
        serde_json::to_vec(&e).unwrap()
    };
    let mut other_identity = good_json.clone();
    other_identity["key"]["username"] = "mallory@example.com".into();
    let mut huge = good.clone();
    huge.truncate(good.len() - 2);
    huge.extend(std::iter::repeat_n(b' ', 10 * 1024 * 1024));
    huge.extend_from_slice(b"}\n");

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "not valid JSON",
        ),
        ("empty", Vec::new(), "not valid JSON"),
        (
            "invalid JSON",
            b"{\"version\":1,,}".to_vec(),
            "not valid JSON",
        ),
        ("binary", vec![0xff, 0x00, 0xfe, 0x7b], "not valid JSON"),
        ("older version", with_version(0.into()), "format version 0"),
        (
            "future version",
            with_version(99.into()),
            "format version 99",
        ),
        (
            "no version",
            b"{\"key\":{}}".to_vec(),
            "no cache format version",
        ),
        (
            "wrong shape",
            b"{\"version\":1}".to_vec(),
            "not a valid cache entry",
        ),
        ("JSON array", b"[1,2,3]".to_vec(), "no cache format version"),
        (
            "another identity",
            serde_json::to_vec(&other_identity).unwrap(),
            "another identity",
        ),
        ("10 MB", huge, "larger than"),
    ];
    for (name, bytes, why) in cases {
        world.plant(&bytes);
        let logins = world.idp.counts().password_grant;
        let out = run_bounded(&mut world.token(), DEADLINE);
        let printed = world.assert_safe_miss(&out, why);
        assert_eq!(
            world.idp.counts().password_grant,
            logins + 1,
            "{name}: nothing from the damaged file was used; a fresh login replaced it"
        );
        // And the replacement is a working cache entry: the next run hits.
        let again = run_bounded(&mut world.token(), DEADLINE);
        assert_eq!(ok(&again).trim(), printed, "{name}: cache hit afterwards");
        assert!(stderr(&again).is_empty(), "{name}: {}", stderr(&again));
    }
}

#[test]
fn a_symlinked_entry_is_neither_read_nor_written_through() {
    let world = World::new();
    // A complete, fresh, valid-looking entry outside the cache directory,
    // holding a token the attacker wants us to use.
    let outside = world.env.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let target = outside.join("planted.json");
    let mut planted = read_entry(&world.entry);
    planted["id_token"]["value"] = "planted-token".into();
    std::fs::write(&target, planted.to_string()).unwrap();
    set_mode(&target, 0o600);
    let target_before = std::fs::read(&target).unwrap();

    std::fs::remove_file(&world.entry).unwrap();
    std::os::unix::fs::symlink(&target, &world.entry).unwrap();
    let out = run_bounded(&mut world.token(), DEADLINE);
    let printed = world.assert_safe_miss(&out, "symbolic link");
    assert_ne!(printed, "planted-token");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        target_before,
        "the link's target is never written"
    );

    // A planted temp file that links elsewhere: the renewal writes its own
    // file, never through the link.
    let victim = outside.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, world.sibling("tmp")).unwrap();
    age_tokens(&world.entry, -30);
    let out = run_bounded(&mut world.token(), DEADLINE);
    let renewed = ok(&out).trim().to_string();
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    world.assert_good_entry(&renewed);

    // A symlinked lock file: refused with the path and the fix; the link's
    // target is not created.
    let lock = world.sibling("lock");
    std::fs::remove_file(&lock).unwrap();
    let lock_target = outside.join("lock-target");
    std::os::unix::fs::symlink(&lock_target, &lock).unwrap();
    age_tokens(&world.entry, -30);
    let before = std::fs::read(&world.entry).unwrap();
    let out = run_bounded(&mut world.token(), DEADLINE);
    let line = fails_with(&out, 5);
    assert!(line.contains(&lock.display().to_string()), "{line}");
    assert!(line.contains("remove it"), "names the fix: {line}");
    assert!(!lock_target.exists(), "nothing created through the link");
    assert_eq!(std::fs::read(&world.entry).unwrap(), before);
}

#[test]
fn a_fifo_in_place_of_the_entry_or_lock_does_not_hang() {
    let world = World::new();
    remove_any(&world.entry);
    mkfifo(&world.entry);
    let out = run_bounded(&mut world.token(), DEADLINE);
    world.assert_safe_miss(&out, "not a regular file");

    // A FIFO as the lock file: a clear error, no hang.
    let lock = world.sibling("lock");
    remove_any(&lock);
    mkfifo(&lock);
    age_tokens(&world.entry, -30);
    let out = run_bounded(&mut world.token(), DEADLINE);
    let line = fails_with(&out, 5);
    assert!(line.contains(&lock.display().to_string()), "{line}");
    assert!(line.contains("remove it"), "{line}");
}

#[test]
fn a_directory_in_place_of_the_entry_is_a_clear_error() {
    let world = World::new();
    remove_any(&world.entry);
    std::fs::create_dir(&world.entry).unwrap();
    let out = run_bounded(&mut world.token(), DEADLINE);
    let line = fails_with(&out, 5);
    assert!(line.contains(&world.entry.display().to_string()), "{line}");
    assert!(line.contains("remove it"), "names the fix: {line}");
    assert!(world.entry.is_dir(), "left alone");
    assert!(!world.sibling("tmp").exists(), "no temp file left behind");
}

#[test]
fn entries_others_can_read_or_write_are_never_used() {
    let world = World::new();
    for loose in [0o644, 0o640, 0o604, 0o622, 0o666, 0o660, 0o606, 0o620] {
        // A fresh entry (a cache hit if it were trusted)…
        let out = run_bounded(&mut world.token(), DEADLINE);
        let cached = ok(&out).trim().to_string();
        // …that someone else could read or replace.
        set_mode(&world.entry, loose);
        let logins = world.idp.counts().password_grant;
        let out = run_bounded(&mut world.token(), DEADLINE);
        let printed = world.assert_safe_miss(&out, "accessible to other users");
        assert_ne!(printed, cached, "mode {loose:o}: its token is not served");
        assert_eq!(
            world.idp.counts().password_grant,
            logins + 1,
            "mode {loose:o}: its refresh token is not used either"
        );
    }

    // An entry owned by someone else (we run as root in CI; any uid other
    // than ours must do).
    let out = run_bounded(&mut world.token(), DEADLINE);
    let cached = ok(&out).trim().to_string();
    std::os::unix::fs::chown(&world.entry, Some(65534), Some(65534)).unwrap();
    let out = run_bounded(&mut world.token(), DEADLINE);
    let printed = world.assert_safe_miss(&out, "belongs to another user");
    assert_ne!(printed, cached);
}

#[test]
fn a_cache_directory_others_can_write_is_refused_with_the_fix() {
    let world = World::new();
    let dir = world.dir();
    let listing = world.dir_listing();
    let entry_before = std::fs::read(&world.entry).unwrap();
    for loose in [0o777, 0o770, 0o720, 0o702, 0o1777] {
        set_mode(&dir, loose);
        // The entry is fresh: even a plain cache hit must not trust it.
        let out = run_bounded(&mut world.token(), DEADLINE);
        let line = fails_with(&out, 5);
        assert!(line.contains(&dir.display().to_string()), "{line}");
        assert!(line.contains("chmod 700"), "names the fix: {line}");
        assert_eq!(world.dir_listing(), listing, "nothing written");
        assert_eq!(std::fs::read(&world.entry).unwrap(), entry_before);
        // status refuses the same way (it would list others' files).
        let out = run_bounded(&mut world.env.dexcred(["status"]), DEADLINE);
        let line = fails_with(&out, 5);
        assert!(line.contains("chmod 700"), "{line}");
    }
    set_mode(&dir, 0o700);
    assert!(
        !ok(&run_bounded(&mut world.token(), DEADLINE))
            .trim()
            .is_empty()
    );
}

#[test]
fn a_cache_directory_owned_by_another_user_is_refused() {
    let world = World::new();
    let dir = world.dir();
    let entry_before = std::fs::read(&world.entry).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let out = run_bounded(&mut world.token(), DEADLINE);
    let line = fails_with(&out, 5);
    assert!(line.contains(&dir.display().to_string()), "{line}");
    assert!(line.contains("another user"), "{line}");
    assert!(line.contains("--cache-dir"), "names the fix: {line}");
    assert_eq!(std::fs::read(&world.entry).unwrap(), entry_before);

    // --cache-dir pointing at a file rather than a directory.
    let file = world.env.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = run_bounded(world.token().arg("--cache-dir").arg(&file), DEADLINE);
    let line = fails_with(&out, 5);
    assert!(line.contains("not a directory"), "{line}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn a_new_cache_directory_and_entry_are_private() {
    // Created under a permissive umask: modes are set explicitly, not left
    // to the umask.
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let dir = env.path().join("deep/new/cache");
    let mut cmd = Command::new("/bin/sh");
    env.apply(&mut cmd);
    cmd.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(dexcred_bin())
        .args(["token", "--pcd", &idp.url(), "--username", ALICE])
        .arg("--cache-dir")
        .arg(&dir)
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    let printed = ok(&run_bounded(&mut cmd, DEADLINE)).trim().to_string();
    assert_eq!(mode(&dir), 0o700);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    // The entry, its lock and its login lock.
    assert_eq!(files.len(), 3, "{files:?}");
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    let entry = files
        .iter()
        .find(|f| f.extension().unwrap() == "json")
        .unwrap();
    let parsed = dexcred::cache::parse_entry(&std::fs::read(entry).unwrap()).unwrap();
    assert_eq!(parsed.id_token.unwrap().value.expose(), printed);
}
