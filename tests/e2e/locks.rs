//! Locks and people (issue 13, item 3): the entry lock guards refresh-token
//! rotation only and is never held while a person types or while a
//! multi-request login runs; logins are serialised by a second lock (the
//! login lock), so N processes that need one make one login; and a lock
//! wait that runs out of time serves a still-valid cached token with a
//! warning instead of failing.
//!
//! Every process here is the real dexcred binary against the fake IdP; the
//! prompts run on a real pseudo-terminal.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use dexcred_testkit::http::Reply;
use dexcred_testkit::idp::{FakeIdp, Fault};

/// Any single run; far above what a healthy run needs (not a speed check:
/// it only turns a hang into a failure).
const DEADLINE: Duration = Duration::from_secs(120);

fn token_cmd(env: &Env, idp: &FakeIdp) -> Command {
    env.dexcred(["token", "--pcd", &idp.url(), "--username", ALICE])
}

fn with_password(mut cmd: Command) -> Command {
    cmd.env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    cmd
}

/// Logs in once and returns the entry file.
fn logged_in(env: &Env, idp: &FakeIdp) -> PathBuf {
    ok(&run_bounded(
        &mut with_password(token_cmd(env, idp)),
        DEADLINE,
    ));
    env.only_entry()
}

/// Waits (bounded) until the IdP has seen a request matching `what`.
fn wait_for_request(idp: &FakeIdp, what: impl Fn(&dexcred_testkit::idp::RecordedRequest) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !idp.requests().iter().any(&what) {
        assert!(
            Instant::now() < deadline,
            "the request never reached the IdP"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether another process holds the flock on `path`.
fn is_held(path: &Path) -> bool {
    let file = File::open(path).expect("open lock file");
    match file.try_lock() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(e) => panic!("try_lock {}: {e:?}", path.display()),
    }
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd`, which must print the `cached` token and warn saying each of
/// `says` (why it did not wait for a renewal).
fn serves_with_a_warning(cmd: &mut Command, cached: &str, says: &[&str]) {
    let out = run_bounded(cmd, DEADLINE);
    assert_eq!(ok(&out).trim(), cached);
    let warning = warnings(&out);
    for text in says {
        assert!(warning.contains(text), "{text:?}: {}", stderr(&out));
    }
}

/// The warning lines of a successful run.
fn warnings(out: &Output) -> String {
    stderr(out)
        .lines()
        .filter(|l| l.contains("warning"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_lock_held_by_a_stuck_refresh_serves_the_still_valid_token_with_a_warning() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let entry = logged_in(&env, &idp);
    age_tokens(&entry, 120); // in its margin, alive for two more minutes
    let cached = entry_token(&entry, "id_token").expect("cached token");

    // Process A refreshes and the IdP never answers: A holds the entry lock
    // (each request is bounded by --timeout, here long).
    idp.inject(Fault::new("/dex/token", 1, Reply::hang()));
    let mut a = with_password(token_cmd(&env, &idp));
    a.args(["--timeout", "600"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let a = a.spawn().expect("start A");
    wait_for_request(&idp, |r| {
        r.form_value("grant_type") == Some("refresh_token")
    });
    assert!(
        is_held(&entry.with_extension("lock")),
        "A holds the entry lock"
    );

    // B gives up waiting and serves the token that is still valid.
    let mut b = with_password(token_cmd(&env, &idp));
    b.args(["--lock-timeout", "1"]);
    serves_with_a_warning(
        &mut b,
        &cached,
        &["--lock-timeout", "using the cached token"],
    );

    // Once the token has really expired there is nothing to serve: one
    // clear line naming the lock, exit 5.
    age_tokens(&entry, -30);
    let out = run_bounded(&mut b, DEADLINE);
    let line = fails_with(&out, 5);
    assert!(
        line.contains(".lock") && line.contains("--lock-timeout"),
        "{line}"
    );
    kill(a);
}

#[test]
fn the_pcd_login_runs_under_the_login_lock_not_the_entry_lock() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let entry = logged_in(&env, &idp);
    // No refresh token and no cached Dex client secret: the next renewal is
    // the full three-step PCD login, Keystone first.
    edit_entry(&entry, |e| {
        let e = e.as_object_mut().expect("entry object");
        e.remove("refresh_token");
        e.remove("client_secret");
    });
    age_tokens(&entry, 120);
    let cached = entry_token(&entry, "id_token").expect("cached token");

    idp.clear_requests();
    idp.inject(Fault::new("/keystone", 1, Reply::hang()));
    let mut a = with_password(token_cmd(&env, &idp));
    a.args(["--timeout", "600"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let a = a.spawn().expect("start A");
    wait_for_request(&idp, |r| r.path.starts_with("/keystone"));

    // A is in the middle of its login: it holds the login lock only.
    assert!(
        is_held(&entry.with_extension("login")),
        "A holds the login lock"
    );
    assert!(
        !is_held(&entry.with_extension("lock")),
        "the entry lock is free"
    );

    // B also needs a login; it waits for A's (bounded) and then serves the
    // still-valid token with a warning that names the login lock.
    let mut b = with_password(token_cmd(&env, &idp));
    b.args(["--lock-timeout", "1"]);
    serves_with_a_warning(&mut b, &cached, &[".login", "logging in"]);
    assert_eq!(
        idp.counts().password_grant,
        1,
        "only the first login so far"
    );
    kill(a);

    // A killed login holder frees the login lock at once (flock dies with
    // the process): the next run logs in.
    assert!(!is_held(&entry.with_extension("login")));
    let out = run_bounded(&mut with_password(token_cmd(&env, &idp)), DEADLINE);
    let printed = ok(&out).trim().to_string();
    assert_ne!(printed, cached);
    assert!(idp.is_valid_token(&printed));
}

#[test]
fn parallel_runs_that_need_a_password_login_make_one_login() {
    const N: usize = 8;
    let idp = FakeIdp::pcd();
    // Slow answers, so the processes pile up on the locks.
    idp.set_delay(Duration::from_millis(100));
    let env = Env::new();

    // Cold cache: N processes, one Keystone login, one password grant.
    let children: Vec<Child> = (0..N)
        .map(|_| spawn_with_input(&mut with_password(token_cmd(&env, &idp)), None))
        .collect();
    let tokens = collect_tokens(children);
    let counts = idp.counts();
    assert_eq!(counts.password_grant, 1, "{counts:?}");
    assert_eq!(counts.keystone, 1, "{counts:?}");
    assert_eq!(tokens.len(), 1, "every process printed the one token");

    // A session the IdP has ended: the first process presents the refresh
    // token, is refused, drops it and logs in; the others neither present
    // it again nor log in themselves.
    let entry = env.only_entry();
    idp.revoke_refresh_tokens(ALICE);
    age_tokens(&entry, -30);
    idp.reset_counts();
    let children: Vec<Child> = (0..N)
        .map(|_| spawn_with_input(&mut with_password(token_cmd(&env, &idp)), None))
        .collect();
    let tokens = collect_tokens(children);
    let counts = idp.counts();
    assert_eq!(
        counts.refresh_grant, 1,
        "the refused token was presented once: {counts:?}"
    );
    assert_eq!(counts.password_grant, 1, "{counts:?}");
    assert_eq!(tokens.len(), 1);
    assert!(idp.is_valid_token(tokens.iter().next().expect("token")));
}

/// Waits for every child (each must succeed) and returns the distinct
/// tokens they printed.
fn collect_tokens(children: Vec<Child>) -> std::collections::BTreeSet<String> {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("wait");
            ok(&out).trim().to_string()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// On a terminal
// ---------------------------------------------------------------------------

/// A dexcred run whose stdin and controlling terminal are a fresh pty
/// (`dexcred token` prompts only when stdin is a terminal); stdout and
/// stderr are pipes.
struct OnTerminal {
    child: Child,
    master: File,
    screen: Vec<u8>,
    out: std::thread::JoinHandle<Vec<u8>>,
    /// stderr so far (filled while the process runs).
    err: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    err_reader: std::thread::JoinHandle<()>,
}

impl OnTerminal {
    fn start(cmd: &mut Command) -> OnTerminal {
        let (master, slave) = crate::common::pty::attach_new_pty(cmd);
        let stdin = slave.try_clone().expect("dup pty");
        cmd.stdin(Stdio::from(stdin))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start on a terminal");
        drop(slave);
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                buf
            })
        };
        let out = drain(Box::new(child.stdout.take().expect("stdout")));
        let err = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = err.clone();
        let err_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut buf) {
                sink.lock()
                    .expect("stderr buffer")
                    .extend_from_slice(&buf[..n]);
            }
        });
        OnTerminal {
            child,
            master: File::from(master),
            screen: Vec::new(),
            out,
            err,
            err_reader,
        }
    }

    fn read_screen(&mut self) -> String {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = self.master.read(&mut buf) {
            self.screen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&self.screen).into_owned()
    }

    /// Waits until the screen shows `text` with echo off: the program is
    /// reading a secret.
    fn wait_for_prompt(&mut self, text: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.read_screen().contains(text) || self.echo_on() {
            if let Some(status) = self.child.try_wait().expect("poll") {
                panic!(
                    "exited with {status} before prompting: {:?}",
                    self.read_screen()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no prompt: {:?}",
                self.read_screen()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn echo_on(&self) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: tcgetattr fills the struct; zeroed is a valid termios.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::tcgetattr(self.master.as_raw_fd(), &mut t) };
        rc == 0 && t.c_lflag & libc::ECHO != 0
    }

    fn type_line(&mut self, text: &str) {
        self.master
            .write_all(format!("{text}\n").as_bytes())
            .expect("type on the terminal");
    }

    /// Waits (bounded) for the run to end; returns its output, whether the
    /// terminal echoes again, and everything shown on the terminal.
    fn finish(mut self) -> (Output, bool, String) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            self.read_screen();
            if let Some(status) = self.child.try_wait().expect("poll") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("hung on the terminal; screen: {:?}", self.read_screen());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let echo = self.echo_on();
        let screen = self.read_screen();
        self.err_reader.join().expect("stderr reader");
        let out = Output {
            status,
            stdout: self.out.join().expect("stdout"),
            stderr: self.err.lock().expect("stderr buffer").clone(),
        };
        (out, echo, screen)
    }

    /// Waits until the run's stderr so far contains `text`.
    fn wait_for_stderr(&mut self, text: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let err = String::from_utf8_lossy(&self.err.lock().expect("stderr")).into_owned();
            if err.contains(text) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("poll") {
                panic!("exited with {status} first: {err}");
            }
            assert!(Instant::now() < deadline, "never said {text:?}: {err}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn while_a_person_types_a_password_other_runs_are_not_held_up() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let entry = logged_in(&env, &idp);
    // The session is gone (no refresh token); the token is in its margin.
    edit_entry(&entry, |e| {
        e.as_object_mut().expect("entry").remove("refresh_token");
    });
    age_tokens(&entry, 300);
    let cached = entry_token(&entry, "id_token").expect("cached token");
    idp.reset_counts();

    // A person runs dexcred at a terminal and gets the password prompt.
    let mut person = token_cmd(&env, &idp);
    person.env_remove("GIT_TERMINAL_PROMPT");
    let mut person = OnTerminal::start(&mut person);
    person.wait_for_prompt(&format!("Password for {ALICE}"));
    assert!(is_held(&entry.with_extension("login")));
    assert!(
        !is_held(&entry.with_extension("lock")),
        "nobody waits on a person"
    );

    // A pipeline run that cannot log in, with lock waits far longer than
    // the test deadline: it must not queue behind the person but serve the
    // still-valid token at once, saying why.
    let mut pipeline = token_cmd(&env, &idp);
    pipeline.args(["--lock-timeout", "3600"]);
    serves_with_a_warning(&mut pipeline, &cached, &["no password is available"]);

    // One that could log in waits for the person's login (bounded by its
    // own lock timeout) rather than start a second one.
    let mut other = with_password(token_cmd(&env, &idp));
    other.args(["--lock-timeout", "1"]);
    serves_with_a_warning(&mut other, &cached, &["--login-timeout"]);
    assert_eq!(idp.counts().total, 0, "no request while the person types");

    // The person answers: one login, whose token everyone then shares.
    person.type_line(ALICE_PASSWORD);
    let (out, echo, _) = person.finish();
    let new = ok(&out).trim().to_string();
    assert!(echo, "the terminal echoes again");
    assert_ne!(new, cached);
    assert_eq!(idp.counts().password_grant, 1);
    let out = run_bounded(&mut token_cmd(&env, &idp), DEADLINE);
    assert_eq!(ok(&out).trim(), new);
}

#[test]
fn a_prompt_nobody_answers_ends_at_the_login_timeout_and_restores_the_terminal() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let mut cmd = token_cmd(&env, &idp);
    cmd.args(["--login-timeout", "1"]);
    let mut run = OnTerminal::start(&mut cmd);
    run.wait_for_prompt(&format!("Password for {ALICE}"));
    let (out, echo, _) = run.finish();
    let line = fails_with(&out, 3);
    assert!(
        line.contains("no answer") && line.contains("--login-timeout"),
        "{line}"
    );
    assert!(echo, "the terminal is left echoing");
    assert_eq!(idp.counts().total, 0);
    assert!(env.cache_entries().is_empty());
}

#[test]
fn two_people_at_two_terminals_get_one_prompt_and_one_login() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let mut first = token_cmd(&env, &idp);
    let mut first = OnTerminal::start(&mut first);
    first.wait_for_prompt(&format!("Password for {ALICE}"));

    // A second interactive run for the same identity waits for the first
    // one's login instead of prompting too.
    let mut second = token_cmd(&env, &idp);
    second.arg("-v");
    let mut second = OnTerminal::start(&mut second);
    second.wait_for_stderr("another process is logging in; waiting for it");

    first.type_line(ALICE_PASSWORD);
    let (out, _, _) = first.finish();
    let token = ok(&out).trim().to_string();
    let (out, _, screen) = second.finish();
    assert_eq!(
        ok(&out).trim(),
        token,
        "the second run uses the first one's login"
    );
    assert!(
        !screen.contains("Password for"),
        "a second prompt: {screen:?}"
    );
    assert_eq!(idp.counts().password_grant, 1);
}
