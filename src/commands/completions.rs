//! Shell completions and the man page, generated from the clap definitions
//! so they can never drift from the real flags.

use clap::CommandFactory;

use crate::cli::{Cli, Shell};
use crate::error::{Error, Result};

pub fn run(shell: Shell) -> Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut command, "dexcred", &mut out);
    super::write_stdout(&String::from_utf8_lossy(&out))
}

pub fn man() -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Error::local(format!("cannot render the man page: {e}")))?;
    super::write_stdout(&String::from_utf8_lossy(&out))
}
