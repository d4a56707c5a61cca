//! `dexcred kubectl`: the exec credential plugin.

use std::io::IsTerminal;

use crate::cli::KubectlArgs;
use crate::config::Config;
use crate::error::Result;
use crate::prompt::Terminal;
use crate::protocol::kubectl::{parse_exec_info, render};
use crate::session;

use super::Runtime;

pub fn run(args: &KubectlArgs, rt: &Runtime) -> Result<()> {
    let exec_info = rt.env.var("KUBERNETES_EXEC_INFO");
    let info = parse_exec_info(exec_info.as_deref())?;
    let config = Config::from_args(&args.provider, &args.common, &rt.env)?;
    // kubectl's `spec.interactive` is the truth when present: with
    // interactiveMode Never it is false even at a terminal.
    let prompter = rt.prompter(|env| match info.interactive {
        Some(known) => Terminal::new(env, move || known),
        None => Terminal::new(env, || std::io::stdin().is_terminal()),
    });
    let credentials = config.credentials(prompter);
    let issued = session::get_token(&config, &credentials)?;
    let out = render(
        info.api_version,
        issued.token.value.expose(),
        issued.expires_at,
    )?;
    rt.write_stdout(&out)
}
