//! The real OpenID Connect server (`tests/oidc/server.mjs`, the
//! `oidc-provider` npm package) and the real browser (`tests/oidc/browser.mjs`:
//! headless Debian Chromium through playwright-core) for the interactive
//! login tests. See tests/oidc/README.md for the clients, users, modes and
//! counters.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// tests/oidc, with its npm packages checked (a missing one fails the test).
pub fn oidc_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is required for the OpenID Connect tests but could not be run: {node:?}"
    );
    for package in ["oidc-provider", "playwright-core"] {
        assert!(
            dir.join("node_modules")
                .join(package)
                .join("package.json")
                .exists(),
            "the {package} npm package is missing: run `npm ci` in {}",
            dir.display()
        );
    }
    dir
}

/// One running `node tests/oidc/server.mjs ARGS`; stops when dropped.
pub struct OidcServer {
    child: Child,
    stdin: Option<ChildStdin>,
    pub issuer: String,
    /// The JSON line the server printed (clients, user, lifetimes, …).
    pub info: Value,
    dir: tempfile::TempDir,
}

impl OidcServer {
    pub fn start() -> OidcServer {
        OidcServer::start_with(&[])
    }

    /// With server.mjs options, e.g. `["--access-ttl", "5", "--fixed-port", "18000"]`.
    pub fn start_with(args: &[&str]) -> OidcServer {
        let oidc = oidc_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        let mut child = Command::new("node")
            .arg(oidc.join("server.mjs"))
            .args(args)
            .current_dir(&oidc)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create server log"))
            .spawn()
            .expect("start node tests/oidc/server.mjs");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("server stdout"))
            .read_line(&mut line)
            .expect("read the server's first line");
        assert!(
            !line.is_empty(),
            "tests/oidc/server.mjs exited before printing its URL:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let info: Value = serde_json::from_str(&line).expect("server line is JSON");
        let issuer = info["issuer"].as_str().expect("issuer").to_string();
        OidcServer {
            child,
            stdin,
            issuer,
            info,
            dir,
        }
    }

    /// (client_id, client_secret or "") of `post`, `basic`, `public`,
    /// `native`, `native_secret` or `fixed`.
    pub fn client(&self, which: &str) -> (String, String) {
        let c = &self.info["clients"][which];
        (
            c["id"].as_str().expect("client id").to_string(),
            c["secret"].as_str().unwrap_or_default().to_string(),
        )
    }

    pub fn username(&self) -> String {
        self.info["username"].as_str().expect("username").into()
    }

    pub fn password(&self) -> String {
        self.info["password"].as_str().expect("password").into()
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// `GET /_test/counts`.
    pub fn counts(&self) -> Value {
        let mut r = http_agent()
            .get(&self.endpoint("/_test/counts"))
            .call()
            .expect("GET /_test/counts");
        let body = r.body_mut().read_to_string().expect("counts body");
        serde_json::from_str(&body).expect("counts JSON")
    }

    /// One counter; nested ones by a path: `count(&["token_errors", "slow_down"])`,
    /// `count(&["requests", "POST /token"])`. Absent counts are 0.
    pub fn count(&self, path: &[&str]) -> i64 {
        let counts = self.counts();
        let mut v = &counts;
        for key in path {
            v = &v[*key];
        }
        v.as_i64().unwrap_or(0)
    }

    /// The server's stderr so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server now (e.g. "the provider went down mid-poll").
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        // Closing stdin makes the server exit; kill is the fallback.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that reports 4xx/5xx as answers and follows no redirect.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// A person at a browser: an executable wrapper around tests/oidc/browser.mjs
/// with its mode and log file baked in, so it can be handed to dexcred as
/// `--browser-command` (one path without spaces; dexcred appends the URL).
pub struct Browser {
    dir: tempfile::TempDir,
}

impl Browser {
    /// `mode`: login, deny, tamper-state, drop-code, ignore, device,
    /// device-deny, device-deny-consent. `extra`: more browser.mjs flags.
    pub fn new(mode: &str, extra: &[&str]) -> Browser {
        use std::os::unix::fs::PermissionsExt;
        let script = oidc_dir().join("browser.mjs");
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("browser.log");
        let mut words = vec![
            "exec".to_string(),
            "node".into(),
            shell_quote(&script.to_string_lossy()),
            "--mode".into(),
            shell_quote(mode),
            "--log".into(),
            shell_quote(&log.to_string_lossy()),
        ];
        words.extend(extra.iter().map(|w| shell_quote(w)));
        let body = format!("#!/bin/sh\n{} \"$@\"\n", words.join(" "));
        let path = dir.path().join("browser");
        std::fs::write(&path, body).expect("write browser wrapper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod browser wrapper");
        Browser { dir }
    }

    /// The command to run with the URL as its last argument.
    pub fn command(&self) -> PathBuf {
        self.dir.path().join("browser")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("browser.log")
    }

    /// All records so far (`{"event":"start",…}` / `{"event":"end",…}`).
    pub fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("browser log line is JSON"))
            .collect()
    }

    /// How many browser windows were opened.
    pub fn starts(&self) -> usize {
        self.events("start").len()
    }

    pub fn events(&self, event: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["event"] == event)
            .collect()
    }

    /// Waits (bounded: browser.mjs ends itself within its --timeout) until
    /// every started window has ended, and returns the end records.
    pub fn wait_ended(&self) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ends = self.events("end");
            if ends.len() >= self.starts() {
                return ends;
            }
            assert!(
                Instant::now() < deadline,
                "browser.mjs did not end: {:?}",
                self.records()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs the browser on `url` and waits for it (for tests that drive the
    /// flow themselves rather than through dexcred).
    pub fn run(&self, url: &str) -> std::process::Output {
        let mut cmd = Command::new(self.command());
        cmd.arg(url).stdin(Stdio::null());
        super::run_bounded(&mut cmd, Duration::from_secs(90))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}
