//! Asking a person: the [`Prompter`] trait, the real terminal
//! ([`Terminal`]) and a scripted stand-in for tests ([`Scripted`]).
//!
//! Providers and credentials never touch the terminal themselves; they ask
//! the prompter they were given. That keeps `/dev/tty` and rpassword in
//! this one module, and lets tests run whole commands in-process with
//! scripted answers.

use std::cell::{OnceCell, RefCell};
use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::rc::Rc;
use std::time::Duration;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// Someone who may be asked for a secret during a login.
pub trait Prompter {
    /// Whether a person can be asked in this run. Asked only when a secret
    /// is actually needed, so the cache-hit path never probes the terminal.
    fn available(&self) -> bool;

    /// Asks for a secret without echo, waiting at most `timeout`.
    fn secret(&self, label: &str, timeout: Duration) -> Result<Secret>;

    /// Whether a person is there to see a message (a browser or device
    /// login's address and code) and act on it.
    fn present(&self) -> bool {
        self.available()
    }

    /// Shows the person a message (a browser or device login's address and
    /// code). Never on stdout, which is the protocol.
    fn message(&self, text: &str);
}

/// The controlling terminal, when the front end's rule says a person is
/// there to answer. The rule is evaluated at most once.
pub struct Terminal {
    rule: Box<dyn Fn() -> bool>,
    answer: OnceCell<bool>,
    /// For CI, which rules out a person watching stderr.
    env: Environment,
}

impl Terminal {
    /// A terminal that may be asked when `rule` says so (kubectl's
    /// `spec.interactive`, git's terminal rules, …).
    pub fn new(env: &Environment, rule: impl Fn() -> bool + 'static) -> Terminal {
        Terminal {
            rule: Box::new(rule),
            answer: OnceCell::new(),
            env: env.clone(),
        }
    }

    /// The rule for commands run by people and scripts: a terminal on
    /// stdin, and not CI.
    pub fn when_stdin_is_a_terminal(env: &Environment) -> Terminal {
        let vars = env.clone();
        Terminal::new(env, move || std::io::stdin().is_terminal() && !vars.ci())
    }

    /// Never asks (logout, which needs no secret).
    pub fn never(env: &Environment) -> Terminal {
        Terminal::new(env, || false)
    }
}

impl Prompter for Terminal {
    fn available(&self) -> bool {
        *self.answer.get_or_init(|| (self.rule)())
    }

    fn secret(&self, label: &str, timeout: Duration) -> Result<Secret> {
        ask_on_terminal(label, timeout)
    }

    /// Also: stderr, where the URL or code is shown, is a terminal, and
    /// this is not CI.
    fn present(&self) -> bool {
        !self.env.ci() && std::io::stderr().is_terminal() && self.available()
    }

    fn message(&self, text: &str) {
        let _ = writeln!(std::io::stderr(), "{text}");
    }
}

/// Whether this process has a controlling terminal it can open (git runs
/// helpers with stdin connected to git, so stdin says nothing there).
pub fn controlling_terminal() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

/// Answers from a script, for in-process tests: each [`Prompter::secret`]
/// takes the next answer and records the label it was asked with; with no
/// answer left it fails as an unanswered prompt does. Clones share the
/// script, so a test keeps one to inspect what was asked.
#[derive(Clone, Default)]
pub struct Scripted {
    state: Rc<RefCell<ScriptState>>,
}

#[derive(Default)]
struct ScriptState {
    answers: VecDeque<String>,
    asked: Vec<String>,
    messages: Vec<String>,
}

impl Scripted {
    pub fn new<S: Into<String>>(answers: impl IntoIterator<Item = S>) -> Scripted {
        let state = ScriptState {
            answers: answers.into_iter().map(Into::into).collect(),
            ..ScriptState::default()
        };
        Scripted {
            state: Rc::new(RefCell::new(state)),
        }
    }

    /// The labels of the prompts so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.state.borrow().asked.clone()
    }

    /// The messages shown so far, in order.
    pub fn messages(&self) -> Vec<String> {
        self.state.borrow().messages.clone()
    }
}

impl Prompter for Scripted {
    fn available(&self) -> bool {
        true
    }

    fn secret(&self, label: &str, timeout: Duration) -> Result<Secret> {
        let mut state = self.state.borrow_mut();
        state.asked.push(label.to_string());
        state.answers.pop_front().map(Secret::new).ok_or_else(|| {
            Error::auth(format!(
                "no answer at the terminal prompt within {}s; run again, or raise --login-timeout",
                timeout.as_secs()
            ))
        })
    }

    fn message(&self, text: &str) {
        self.state.borrow_mut().messages.push(text.to_string());
    }
}

/// Asks on the controlling terminal without echo, waiting at most
/// `timeout` for the answer. Fails (rather than hangs) when there is no
/// terminal or nobody answers.
///
/// The read itself (rpassword, which switches the terminal to no-echo raw
/// mode) runs on a helper thread; when the deadline passes first, the
/// terminal settings saved here are put back, so the shell is not left
/// without echo, and the run ends with an error — which also ends the
/// thread still blocked in `read`.
fn ask_on_terminal(label: &str, timeout: Duration) -> Result<Secret> {
    let saved = SavedTerminal::save();
    let label = label.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(rpassword::prompt_password(label));
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(value)) => Ok(Secret::new(value)),
        Ok(Err(e)) => Err(Error::auth(format!(
            "cannot prompt for input on the terminal ({e}); provide it through the environment, a file or a command instead"
        ))),
        Err(_) => {
            if let Some(saved) = saved {
                saved.restore();
            }
            Err(Error::auth(format!(
                "no answer at the terminal prompt within {}s; run again, or raise --login-timeout",
                timeout.as_secs()
            )))
        }
    }
}

/// The controlling terminal's settings before a prompt changed them.
struct SavedTerminal {
    tty: std::fs::File,
    termios: libc::termios,
}

impl SavedTerminal {
    fn save() -> Option<SavedTerminal> {
        use std::os::fd::AsRawFd;
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        // SAFETY: tcgetattr only fills the struct; a zeroed termios is a
        // valid value to pass it.
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::tcgetattr(tty.as_raw_fd(), &mut termios) };
        (rc == 0).then_some(SavedTerminal { tty, termios })
    }

    fn restore(mut self) {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        // SAFETY: the settings came from tcgetattr on the same terminal.
        unsafe { libc::tcsetattr(self.tty.as_raw_fd(), libc::TCSANOW, &self.termios) };
        let _ = self.tty.write_all(b"\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_rule_is_asked_once() {
        let calls = Rc::new(std::cell::Cell::new(0));
        let counted = calls.clone();
        let t = Terminal::new(&Environment::default(), move || {
            counted.set(counted.get() + 1);
            true
        });
        assert_eq!(calls.get(), 0, "not asked before it is needed");
        assert!(t.available() && t.available());
        assert_eq!(calls.get(), 1);
        assert!(!Terminal::never(&Environment::default()).available());
    }

    #[test]
    fn a_script_answers_in_order_and_records_the_labels() {
        let s = Scripted::new(["one"]);
        let t = Duration::from_secs(1);
        assert_eq!(s.clone().secret("A: ", t).unwrap().expose(), "one");
        let e = s.secret("B: ", t).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        s.message("hello");
        assert_eq!(s.asked(), ["A: ", "B: "]);
        assert_eq!(s.messages(), ["hello"]);
    }
}
