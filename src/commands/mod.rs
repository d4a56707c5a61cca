//! One module per subcommand: each reads its input, calls the session use
//! case, and writes its output. Errors go back up to `main`.

pub mod completions;
pub mod git;
pub mod gitconfig;
pub mod kubeconfig;
pub mod kubectl;
pub mod login;
pub mod logout;
pub mod status;
pub mod token;

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use crate::cli::{Cli, Command};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::prompt::{Prompter, Terminal};

/// What a run takes from outside its arguments: the environment, a person
/// who may be asked for a secret, and stdout. `lib.rs` makes the real one
/// ([`Runtime::process`]); in-process tests make one with a fixed
/// environment, scripted answers and captured output ([`Runtime::scripted`]).
pub struct Runtime {
    pub env: Environment,
    /// Replaces every command's terminal when set.
    prompter: Option<Rc<dyn Prompter>>,
    /// Receives stdout when set.
    captured: Option<RefCell<String>>,
}

impl Runtime {
    /// This process: its environment, its terminal, its stdout.
    pub fn process() -> Runtime {
        Runtime {
            env: Environment::process(),
            prompter: None,
            captured: None,
        }
    }

    /// A run for in-process tests: `env` only, `prompter` instead of the
    /// terminal, and stdout kept for [`Runtime::stdout`].
    pub fn scripted(env: Environment, prompter: Rc<dyn Prompter>) -> Runtime {
        Runtime {
            env,
            prompter: Some(prompter),
            captured: Some(RefCell::new(String::new())),
        }
    }

    /// What the run wrote to stdout (for a [`Runtime::scripted`] run).
    pub fn stdout(&self) -> String {
        self.captured
            .as_ref()
            .map(|c| c.borrow().clone())
            .unwrap_or_default()
    }

    /// Who this command asks: the terminal under the command's own rule,
    /// unless the run was given a prompter.
    fn prompter(&self, terminal: impl FnOnce(&Environment) -> Terminal) -> Rc<dyn Prompter> {
        match &self.prompter {
            Some(p) => p.clone(),
            None => Rc::new(terminal(&self.env)),
        }
    }

    /// Writes the whole output at once and flushes, so a reader never sees
    /// a partial document. A closed pipe is reported like any other failure.
    pub fn write_stdout(&self, text: &str) -> Result<()> {
        if let Some(captured) = &self.captured {
            captured.borrow_mut().push_str(text);
            return Ok(());
        }
        // Straight to fd 1: no stdout buffer to allocate, and (for a token)
        // one `write`. SAFETY: fd 1 stays open for the life of the process;
        // ManuallyDrop keeps this File from closing it.
        let mut out = std::mem::ManuallyDrop::new(unsafe {
            <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(1)
        });
        out.write_all(text.as_bytes())
            .map_err(|e| Error::local(format!("cannot write to stdout: {e}")))
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli, rt: &Runtime) -> Result<()> {
    match cli.command {
        Command::Kubectl(args) => kubectl::run(&args, rt),
        Command::Git(args) => git::run(&args, rt),
        Command::Token(args) => token::run(&args, rt),
        Command::Login(args) => login::run(&args, rt),
        Command::Logout(args) => logout::run(&args, rt),
        Command::Status(args) => status::run(&args, rt),
        Command::Kubeconfig(args) => kubeconfig::run(&args, rt),
        Command::Gitconfig(args) => gitconfig::run(&args, rt),
        Command::Completions(args) => completions::run(args.shell, rt),
        Command::Man => completions::man(rt),
    }
}
