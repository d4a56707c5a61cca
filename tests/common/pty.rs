//! Running commands at a (pseudo-)terminal, the way a person runs them:
//! util-linux `script` gives the command a pty for stdin, stdout and stderr.
//! Browser and device logins only start when stderr is a terminal, so these
//! tests need one.

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
