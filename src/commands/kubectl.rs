//! `dexcred kubectl`: the exec credential plugin.

use std::io::IsTerminal;

use crate::cli::KubectlArgs;
use crate::config::Config;
use crate::error::Result;
use crate::protocol::kubectl::{parse_exec_info, render};
use crate::session;

pub fn run(args: &KubectlArgs) -> Result<()> {
    let exec_info = std::env::var("KUBERNETES_EXEC_INFO").ok();
    let info = parse_exec_info(exec_info.as_deref())?;
    let config = Config::from_args(&args.provider, &args.common)?;
    // kubectl's `spec.interactive` is the truth when present: with
    // interactiveMode Never it is false even at a terminal.
    let interactive: fn() -> bool = match info.interactive {
        Some(true) => || true,
        Some(false) => || false,
        None => || std::io::stdin().is_terminal(),
    };
    let credentials = config.credentials(interactive);
    let issued = session::get_token(&config, &credentials)?;
    let out = render(
        info.api_version,
        issued.token.value.expose(),
        issued.expires_at,
    )?;
    super::write_stdout(&out)
}
