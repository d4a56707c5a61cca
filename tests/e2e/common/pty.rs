//! Running commands at a (pseudo-)terminal, the way a person runs them:
//! util-linux `script` gives the command a pty for stdin, stdout and stderr.
//! Browser and device logins only start when stderr is a terminal, so these
//! tests need one.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::{Env, run_bounded};

/// Longest any terminal run may take before the test calls it hung.
pub const TERMINAL_DEADLINE: Duration = Duration::from_secs(120);

pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `words` as one shell command line.
pub fn shell_line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `script -qec LINE /dev/null` in the isolated environment plus `env`
/// (GIT_TERMINAL_PROMPT is not set unless `env` sets it).
pub fn script_command(home: &Env, line: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("script");
    home.apply(&mut cmd);
    cmd.env_remove("GIT_TERMINAL_PROMPT")
        .envs(env.iter().copied())
        .args(["-qec", line, "/dev/null"]);
    cmd
}

/// Runs `words` at a terminal; its stdout goes to `stdout_to` (so the
/// returned output's stdout is what the terminal showed of stderr), or to
/// the terminal too when `None`. The exit status is the command's.
pub fn in_terminal<S: AsRef<str>>(
    home: &Env,
    words: &[S],
    env: &[(&str, &str)],
    stdout_to: Option<&Path>,
) -> Output {
    let mut line = shell_line(words);
    if let Some(path) = stdout_to {
        line.push_str(&format!(" > {}", shell_quote(&path.to_string_lossy())));
    }
    run_bounded(&mut script_command(home, &line, env), TERMINAL_DEADLINE)
}

/// Like [`in_terminal`] but running a whole shell line, not waiting:
/// stdin is a pipe into the terminal (write `\x03` for Ctrl-C).
pub fn spawn_in_terminal(home: &Env, line: &str, env: &[(&str, &str)]) -> Child {
    script_command(home, line, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start script")
}

/// What the terminal showed, with the pty's `\r\n` made `\n`.
pub fn transcript(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

/// Makes `cmd` start in a session of its own whose controlling terminal is a
/// new pseudo-terminal, the way a login shell runs a program (for tests that
/// type at the screen themselves rather than through `script`). Returns the
/// master, non-blocking so the screen can be polled, and the slave, to be
/// dropped once the child has started. Both are close-on-exec, so other
/// tests' children cannot hold the terminal open.
pub fn attach_new_pty(cmd: &mut Command) -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors, which we own from here.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both are open descriptors nobody else owns.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // SAFETY: plain fcntl on descriptors we own.
    unsafe {
        for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let slave_fd = slave.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(slave_fd, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    (master, slave)
}

/// A command line: `first`, then `rest`.
pub fn argv(first: &[&str], rest: &[String]) -> Vec<String> {
    first
        .iter()
        .map(|s| s.to_string())
        .chain(rest.iter().cloned())
        .collect()
}

/// Asserts that a terminal run succeeded, showing the screen if not.
pub fn assert_terminal_ok(out: &Output) {
    assert!(
        out.status.success(),
        "expected success, got {:?}\nterminal:\n{}",
        out.status.code(),
        transcript(out)
    );
}
