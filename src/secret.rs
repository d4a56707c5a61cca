//! Secrets: a type that will not print itself, and the places a secret may
//! come from without a person (environment, file, command). Asking a person
//! is [`crate::prompt`]'s job.
//!
//! There is deliberately no way to pass a password as a command-line value:
//! argv is readable by every user of the machine through `/proc`.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A password, refresh token, client secret or one-time code.
///
/// `Debug` prints a placeholder and there is no `Display`, so a secret cannot
/// reach a log line or an error message by accident; code that needs the
/// value calls [`Secret::expose`] and is easy to audit with grep.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short, stable, non-reversible name for the secret, for diagnostics.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// First 8 hex digits of SHA-256: enough to tell two tokens apart in a log,
/// useless for replaying either.
pub fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Upper bound on what we read from a secret file or command: a password is
/// short, and a runaway command must not make us allocate without limit.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Where one kind of secret (the password, the OTP, the client secret) may
/// come from, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Human name used in messages and prompts: "password", "one-time code".
    pub what: &'static str,
    /// The environment variable that holds the value itself, and its value.
    pub env: Option<(&'static str, Secret)>,
    pub file: Option<PathBuf>,
    pub command: Option<String>,
}

impl Sources {
    /// True when some non-interactive source is configured.
    pub fn configured(&self) -> bool {
        self.env.is_some() || self.file.is_some() || self.command.is_some()
    }

    /// Reads the secret from the first configured source. Returns `Ok(None)`
    /// when none is configured; an unreadable file or failing command is an
    /// error, not a silent fall-through, because it is almost always a typo
    /// the user wants to hear about.
    pub fn read(&self, timeout: Duration, interactive: bool) -> Result<Option<Secret>> {
        if let Some((_, value)) = &self.env {
            return Ok(Some(value.clone()));
        }
        if let Some(path) = &self.file {
            return read_file(self.what, path).map(Some);
        }
        if let Some(command) = &self.command {
            return run_command(self.what, command, timeout, interactive).map(Some);
        }
        Ok(None)
    }
}

/// Reads the first line of a file, without its line ending. Only a regular
/// file of at most [`MAX_SECRET_BYTES`] is read (a FIFO would hang the run).
pub fn read_file(what: &str, path: &Path) -> Result<Secret> {
    let bytes = crate::fs::read_regular_file(path, MAX_SECRET_BYTES).map_err(|why| {
        Error::local(format!(
            "cannot read the {what} file {}: {why}",
            path.display()
        ))
    })?;
    first_line(&bytes).ok_or_else(|| {
        Error::local(format!(
            "the {what} file {} is empty or not UTF-8; put the {what} on its first line",
            path.display()
        ))
    })
}

/// Runs `sh -c command` with no stdin and takes the first line of its stdout.
///
/// The command gets the same deadline as an HTTP request, so a helper that
/// waits for input it will never get (a locked keyring, a GPG agent with no
/// terminal) fails the run instead of hanging a pipeline. Its stderr goes to
/// ours, so its own error messages reach the user.
///
/// `interactive`: a terminal is available and the command may use it (a
/// pinentry, a prompt on /dev/tty). It then stays in our process group, as
/// a process in another group that touches the terminal is stopped by the
/// kernel. Otherwise it gets a group of its own, so that on timeout the whole
/// tree it started (not just the shell) is killed.
pub fn run_command(
    what: &str,
    command: &str,
    timeout: Duration,
    interactive: bool,
) -> Result<Secret> {
    use std::os::unix::process::CommandExt;
    let fail = |detail: String| {
        Error::local(format!(
            "the {what} command failed: {detail}; run it by hand to see why"
        ))
    };
    // No secret variable of ours reaches the command (see `child`).
    let mut cmd = crate::child::command("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if !interactive {
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start /bin/sh: {e}")))?;
    let kill = |child: &mut std::process::Child| {
        if interactive {
            let _ = child.kill();
        } else if let Ok(pgid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) with a negative pid signals that process
            // group, which is the one the child leads (process_group(0)).
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let _ = child.wait();
    };
    let stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(out) = stdout {
            let _ = out.take(MAX_SECRET_BYTES).read_to_end(&mut bytes);
        }
        let _ = tx.send(bytes);
    });
    let deadline = Instant::now() + timeout;
    let no_answer = || fail(format!("no answer within {}s", timeout.as_secs()));
    let status = match wait_until(&mut child, deadline) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill(&mut child);
            return Err(no_answer());
        }
        Err(e) => {
            kill(&mut child);
            return Err(fail(e.to_string()));
        }
    };
    // The shell has exited, but something it started in the background may
    // still hold its stdout open: wait for the output only until the deadline.
    let bytes = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(bytes) => bytes,
        Err(_) => {
            kill(&mut child);
            return Err(fail(
                "a process it started kept its output open past the deadline".to_string(),
            ));
        }
    };
    if !status.success() {
        return Err(fail(format!("it exited with {status}")));
    }
    first_line(&bytes).ok_or_else(|| fail("it printed nothing".to_string()))
}

fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The first line of `bytes` without `\n` or `\r\n`; `None` when empty.
///
/// Only the line ending is removed: spaces are valid password characters.
/// Taking the first line matches `pass show` and similar password stores,
/// which print metadata on the following lines.
fn first_line(bytes: &[u8]) -> Option<Secret> {
    let text = std::str::from_utf8(bytes).ok()?;
    let line = text.split('\n').next().unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    (!line.is_empty()).then(|| Secret::new(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn fingerprint_is_short_and_stable() {
        assert_eq!(fingerprint("abc"), "ba7816bf");
        assert_ne!(fingerprint("abc"), fingerprint("abd"));
    }

    #[test]
    fn first_line_strips_only_the_line_ending() {
        assert_eq!(first_line(b" pw \r\nmeta").unwrap().expose(), " pw ");
        assert_eq!(first_line(b"pw").unwrap().expose(), "pw");
        assert!(first_line(b"\nsecond").is_none());
        assert!(first_line(b"").is_none());
        assert!(first_line(&[0xff, 0xfe]).is_none());
    }

    #[test]
    fn command_output_is_used_and_failures_are_errors() {
        let t = Duration::from_secs(5);
        assert_eq!(
            run_command("password", "printf 's3cret\\nx'", t, false)
                .unwrap()
                .expose(),
            "s3cret"
        );
        let err = run_command("password", "exit 3", t, false).unwrap_err();
        assert!(err.message().contains("exit status: 3"), "{err}");
        let err = run_command("password", "true", t, false).unwrap_err();
        assert!(err.message().contains("printed nothing"), "{err}");
    }

    #[test]
    fn command_that_hangs_is_killed_at_the_deadline() {
        let err =
            run_command("password", "sleep 30", Duration::from_millis(200), false).unwrap_err();
        assert!(err.message().contains("no answer"), "{err}");
        // A background process holding stdout open cannot hang us either.
        let err = run_command(
            "password",
            "echo pw; sleep 30 &",
            Duration::from_millis(300),
            false,
        )
        .unwrap_err();
        assert!(err.message().contains("kept its output open"), "{err}");
    }

    #[test]
    fn sources_prefer_env_then_file_then_command() {
        let dir = std::env::temp_dir().join(format!("dexcred-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let mut s = Sources {
            what: "password",
            env: Some(("DEXCRED_PASSWORD", Secret::new("from-env"))),
            file: Some(file.clone()),
            command: Some("echo from-command".into()),
        };
        let t = Duration::from_secs(5);
        assert_eq!(s.read(t, false).unwrap().unwrap().expose(), "from-env");
        s.env = None;
        assert_eq!(s.read(t, false).unwrap().unwrap().expose(), "from-file");
        s.file = None;
        assert_eq!(s.read(t, false).unwrap().unwrap().expose(), "from-command");
        s.command = None;
        assert!(s.read(t, false).unwrap().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
