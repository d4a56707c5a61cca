//! Shared helpers for the end-to-end tests: run the real dexcred binary in
//! an isolated HOME, find the real kubectl and git binaries (a missing one
//! is a test failure, never a skip), and check the "one line on stderr,
//! nothing on stdout" rule for failures.
//!
//! Every module of the e2e binary uses what it needs with `use crate::common::*;`.
#![allow(dead_code, unused_imports)]

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use dexcred_testkit::idp::{ALICE, ALICE_PASSWORD};

/// The real OpenID Connect server and browser for interactive logins.
pub mod oidc;
pub mod pty;

/// The dexcred binary built for this test run.
pub fn dexcred_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dexcred"))
}

/// An isolated user environment: a temporary HOME with its own cache
/// directory, and a `bin/` holding `dexcred`, `git-credential-dexcred` and
/// `kubectl-dexcred` links, first on PATH.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("dexcred-test-")
            .tempdir()
            .expect("create temp dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("create bin dir");
        for name in ["dexcred", "git-credential-dexcred", "kubectl-dexcred"] {
            std::os::unix::fs::symlink(dexcred_bin(), bin.join(name)).expect("link dexcred");
        }
        std::fs::create_dir_all(dir.path().join("home")).expect("create home");
        Env { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// The default cache directory under this HOME (XDG_CACHE_HOME is set
    /// to `$HOME/.cache`).
    pub fn cache_dir(&self) -> PathBuf {
        self.home().join(".cache").join("dexcred")
    }

    /// PATH with our bin dir first, then the system's.
    pub fn path_var(&self) -> String {
        format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            self.bin_dir().display()
        )
    }

    /// Applies the isolated environment to any command: a clean env with
    /// HOME, PATH and XDG_CACHE_HOME, no DEXCRED_*, no CI, no proxies.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("HOME", self.home())
            .env("XDG_CACHE_HOME", self.home().join(".cache"))
            .env("PATH", self.path_var())
            .env("LANG", "C.UTF-8")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null());
    }

    /// `dexcred <args>` in the isolated environment.
    pub fn dexcred<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(dexcred_bin());
        self.apply(&mut cmd);
        cmd.args(args);
        cmd
    }

    /// The one cache entry file (failing the test if there is not exactly one).
    pub fn only_entry(&self) -> PathBuf {
        let entries = self.cache_entries();
        assert_eq!(
            entries.len(),
            1,
            "exactly one cache entry expected: {entries:?}"
        );
        entries[0].clone()
    }

    /// The cache entry files currently on disk.
    pub fn cache_entries(&self) -> Vec<PathBuf> {
        let Ok(dir) = std::fs::read_dir(self.cache_dir()) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
    }
}

/// Runs a command to completion and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run command")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr without the once-per-run warning that a plain-http URL gets:
/// every loopback test server is plain http, and the tests of other
/// behaviour must not depend on it (tests/servers_network.rs checks the
/// warning itself, with [`raw_stderr`]).
pub fn stderr(out: &Output) -> String {
    without_plain_http_warning(&raw_stderr(out))
}

/// stderr exactly as printed.
pub fn raw_stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Drops the plain-http warning line from a run's stderr.
pub fn without_plain_http_warning(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|l| !(l.starts_with("dexcred: warning: ") && l.contains(" is plain http: ")))
        .collect()
}

/// Asserts success and returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "expected success, got {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Asserts the documented failure shape: the given exit code, nothing on
/// stdout, exactly one line on stderr starting with `dexcred: `. Returns
/// that line.
pub fn fails_with(out: &Output, code: i32) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code\nstdout: {}\nstderr: {err}",
        stdout(out)
    );
    assert!(
        out.stdout.is_empty(),
        "stdout must be empty on failure: {}",
        stdout(out)
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains("warning:")).collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one error line expected on stderr:\n{err}"
    );
    assert!(lines[0].starts_with("dexcred: "), "{err}");
    lines[0].to_string()
}

/// The gcloud SDK directory holding the versioned kubectl binaries.
pub fn kubectl_dir() -> PathBuf {
    let link = std::fs::canonicalize("/usr/bin/kubectl")
        .expect("kubectl must be installed: /usr/bin/kubectl is missing");
    link.parent().expect("kubectl dir").to_path_buf()
}

/// A versioned kubectl (`"1.33"`), or `"dispatcher"` for /usr/bin/kubectl.
/// Panics (fails the test) when missing: CI must have kubectl.
pub fn kubectl(version: &str) -> PathBuf {
    let path = if version == "dispatcher" {
        PathBuf::from("/usr/bin/kubectl")
    } else {
        kubectl_dir().join(format!("kubectl.{version}"))
    };
    assert!(
        path.exists(),
        "kubectl {version} is missing at {}",
        path.display()
    );
    path
}

/// git 2.47 (speaks `authtype`, Bearer).
pub fn git_new() -> PathBuf {
    let p = PathBuf::from("/usr/local/bin/git");
    assert!(p.exists(), "git 2.47 is missing at /usr/local/bin/git");
    p
}

/// git 2.39 (Basic only).
pub fn git_old() -> PathBuf {
    let p = PathBuf::from("/usr/bin/git");
    assert!(p.exists(), "git 2.39 is missing at /usr/bin/git");
    p
}

/// Reads a cache entry file as JSON.
pub fn read_entry(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("read cache entry");
    serde_json::from_str(&text).expect("cache entry is JSON")
}

/// A token's value (`"id_token"`, `"access_token"`) in a cache entry file.
pub fn entry_token(path: &Path, field: &str) -> Option<String> {
    read_entry(path)
        .get(field)
        .and_then(|t| t.get("value"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// Rewrites a cache entry in place (keeping its 0600 mode) — used to make a
/// token look expired without waiting for it.
pub fn edit_entry(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut value = read_entry(path);
    edit(&mut value);
    let tmp = path.with_extension("edit");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .expect("create edited entry");
    std::io::Write::write_all(&mut f, value.to_string().as_bytes()).expect("write entry");
    std::fs::rename(&tmp, path).expect("replace entry");
}

/// Marks every token in the entry as already past its refresh margin but
/// (optionally) still alive, without touching the refresh token.
pub fn age_tokens(path: &Path, still_alive_for_secs: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    edit_entry(path, |e| {
        for field in ["id_token", "access_token"] {
            if let Some(t) = e.get_mut(field).filter(|t| t.is_object()) {
                t["issued_at"] = serde_json::json!(now - 3600);
                t["expires_at"] = serde_json::json!(now + still_alive_for_secs);
            }
        }
    });
}

/// Starts `cmd` with piped stdout/stderr, feeding `input` on stdin (and
/// closing it), or with stdin from /dev/null when there is no input.
pub fn spawn_with_input(cmd: &mut Command, input: Option<&str>) -> std::process::Child {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start command");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut stdin, input.as_bytes()).expect("write stdin");
    }
    child
}

/// Runs `cmd` to completion, killing it and failing the test if it is still
/// running after `deadline`: the check that no run hangs. Not a speed
/// assertion — a healthy run takes a fraction of any deadline used here.
/// Both pipes are drained while waiting, so a chatty child cannot block on a
/// full pipe and look hung.
pub fn run_bounded(cmd: &mut Command, deadline: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start command");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for command") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            panic!("{cmd:?} was still running after {deadline:?} and was killed\nstderr: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Runs one row of a table-driven test. A failure inside (any panic) is
/// raised again naming the row, so the report says which case broke; the
/// original message and location are printed first by the panic hook.
pub fn case<T>(name: &str, check: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
        Ok(value) => value,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("case {name:?} failed: {message}");
        }
    }
}

/// Seconds since the Unix epoch, by the system clock (token lifetimes and
/// expiry claims are in these).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Provider flags for alice at the fake PCD.
pub fn pcd_args(idp: &dexcred_testkit::idp::FakeIdp) -> Vec<String> {
    vec!["--pcd".into(), idp.url(), "--username".into(), ALICE.into()]
}

/// Provider flags for alice with Keycloak's password grant and the public
/// client of the `ocp` realm.
pub fn keycloak_args(idp: &dexcred_testkit::idp::FakeIdp) -> Vec<String> {
    vec![
        "--token-url".into(),
        idp.keycloak_token_url("ocp"),
        "--client-id".into(),
        dexcred_testkit::idp::KEYCLOAK_PUBLIC_CLIENT.into(),
        "--username".into(),
        ALICE.into(),
    ]
}

/// Creates a FIFO (mode 0600) at `path`.
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// Every process's command line, as `ps -eo args` shows them, with its pid.
pub fn all_command_lines() -> Vec<(u32, String)> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            lines.push((pid, String::from_utf8_lossy(&raw).replace('\0', " ")));
        }
    }
    lines
}
