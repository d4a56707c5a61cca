//! `dexcred logout [--all]`: end the session at the server where the
//! provider allows it, then delete the cached tokens — locally always, even
//! when the server cannot be reached.

use crate::cli::LogoutArgs;
use crate::config::Config;
use crate::error::{Error, Result, escape_for_terminal};
use crate::prompt::Terminal;
use crate::provider::Logout;
use crate::session::{self, LogoutReport};

use super::Runtime;

pub fn run(args: &LogoutArgs, rt: &Runtime) -> Result<()> {
    if args.all {
        return all(args, rt);
    }
    let config = Config::from_args(&args.provider, &args.common, &rt.env)?;
    let report = session::logout(&config, &config.credentials(never(rt)))?;
    rt.write_stdout(&describe(&config, &report))
}

/// Every entry is logged out with only what it stores itself (see
/// [`Config::for_key`]); flags meant for one provider are ignored, and the
/// user is told so.
fn all(args: &LogoutArgs, rt: &Runtime) -> Result<()> {
    let store = crate::cache::Store::at(args.common.cache_dir.as_deref(), &rt.env)?;
    let ignored = Config::ignored_by_for_key(&args.provider, &rt.env);
    if !ignored.is_empty() {
        crate::log::Log::new(args.common.verbose).warn(&format!(
            "ignoring {} with --all: each entry is logged out with only its own stored settings \
             (log out of one provider without --all to use them)",
            ignored.join(", ")
        ));
    }
    let mut out = String::new();
    let mut count = 0;
    for (path, parsed) in store.list()? {
        match parsed {
            Ok(entry) => {
                let config = Config::for_key(entry.key, &args.provider, &args.common, &rt.env)?;
                let report = session::logout(&config, &config.credentials(never(rt)))?;
                out.push_str(&describe(&config, &report));
            }
            Err(reason) => {
                store.remove_file(
                    &path,
                    std::time::Duration::from_secs(args.provider.lock_timeout),
                )?;
                out.push_str(&format!("Deleted an unreadable cache entry ({reason}).\n"));
            }
        }
        count += 1;
    }
    if count == 0 {
        out.push_str(&format!("No cached tokens in {}.\n", store.dir().display()));
    }
    rt.write_stdout(&out)
}

/// Logout never prompts: it needs no password.
fn never(rt: &Runtime) -> std::rc::Rc<dyn crate::prompt::Prompter> {
    rt.prompter(Terminal::never)
}

fn describe(config: &Config, report: &LogoutReport) -> String {
    let mut out = String::new();
    match &report.server {
        Some(Logout::Ended(what)) => {
            out.push_str(&format!("Logged out: {}.\n", escape_for_terminal(what)))
        }
        Some(Logout::NotSupported(why)) => out.push_str(&format!(
            "Not logged out at the server: {}.\n",
            escape_for_terminal(why)
        )),
        Some(Logout::Failed(why)) => {
            config.log.warn(
                &Error::provider(format!(
                    "could not end the session at the server ({why}); it ends when it expires"
                ))
                .one_line(),
            );
        }
        None => {}
    }
    if report.deleted {
        out.push_str(&format!(
            "Deleted the cached tokens for {}.\n",
            escape_for_terminal(&config.account)
        ));
    } else {
        out.push_str(&format!(
            "No cached tokens for {}.\n",
            escape_for_terminal(&config.account)
        ));
    }
    out
}
