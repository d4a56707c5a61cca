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

use std::io::{IsTerminal, Write};

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Kubectl(args) => kubectl::run(&args),
        Command::Git(args) => git::run(&args),
        Command::Token(args) => token::run(&args),
        Command::Login(args) => login::run(&args),
        Command::Logout(args) => logout::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Kubeconfig(args) => kubeconfig::run(&args),
        Command::Gitconfig(args) => gitconfig::run(&args),
        Command::Completions(args) => completions::run(args.shell),
        Command::Man => completions::man(),
    }
}

/// Writes the whole output at once and flushes, so a reader never sees a
/// partial document. A closed pipe is reported like any other failure.
pub fn write_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::local(format!("cannot write to stdout: {e}")))
}

/// Whether a CI system says this run is unattended (`CI=true`, as GitHub
/// Actions, GitLab CI and most others set it).
pub fn ci_environment() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
        .unwrap_or(false)
}

/// The default interactivity rule for commands run by people and scripts:
/// a terminal on stdin, and not CI.
pub fn stdin_is_interactive() -> bool {
    std::io::stdin().is_terminal() && !ci_environment()
}
