//! `dexcred git <action>` / `git-credential-dexcred [flags] <action>`: the
//! git credential helper.
//!
//! - `get`: answer with the token (Bearer for git ≥ 2.46 when it advertises
//!   `capability[]=authtype`, else Basic with `--git-username`).
//! - `erase`: git says the server refused a credential; if it is the cached
//!   token, mark it so the next `get` renews (the refresh token is kept).
//! - `store`: nothing to do; dexcred owns its cache.
//! - `capability`: which optional protocol features we speak.
//! - anything else: ignored with exit 0, as git requires for future actions.

use std::fs::OpenOptions;

use crate::cli::{GitArgs, GitAuthArg};
use crate::config::{Config, is_loopback};
use crate::error::{Error, Result};
use crate::protocol::git::{Answer, CAPABILITIES, Request, read_request, render_get};
use crate::session;

pub fn run(args: &GitArgs) -> Result<()> {
    match args.action.as_str() {
        "get" => get(args),
        "erase" => erase(args),
        "store" => read_request(std::io::stdin().lock()).map(|_| ()),
        "capability" => super::write_stdout(CAPABILITIES),
        _ => Ok(()),
    }
}

fn get(args: &GitArgs) -> Result<()> {
    let request = read_request(std::io::stdin().lock())?;
    refuse_cleartext(&request)?;
    let bearer = match args.git_auth {
        GitAuthArg::Auto => request.has_capability("authtype"),
        GitAuthArg::Bearer if request.has_capability("authtype") => true,
        GitAuthArg::Bearer => {
            return Err(Error::usage(
                "--git-auth bearer needs git 2.46 or newer (this git did not offer \
                 capability[]=authtype); use --git-auth auto or basic",
            ));
        }
        GitAuthArg::Basic => false,
    };
    let config = Config::from_args(&args.provider, &args.common)?;
    let credentials = config.credentials(git_may_prompt);
    let issued = session::get_token(&config, &credentials)?;
    let token = issued.token.value.expose();
    let answer = if bearer {
        Answer::Bearer {
            token,
            expiry: issued.expires_at,
        }
    } else {
        Answer::Basic {
            username: &args.git_username,
            token,
            expiry: issued.expires_at,
        }
    };
    super::write_stdout(&render_get(&answer)?)
}

fn erase(args: &GitArgs) -> Result<()> {
    let request = read_request(std::io::stdin().lock())?;
    let Some(presented) = request.presented_secret() else {
        return Ok(());
    };
    let config = Config::from_args(&args.provider, &args.common)?;
    session::reject(&config, presented).map(|_| ())
}

/// A bearer token sent over plain http can be read by anyone on the path;
/// only loopback (local test servers) is exempt.
fn refuse_cleartext(request: &Request) -> Result<()> {
    if request.get("protocol") != Some("http") {
        return Ok(());
    }
    let host = request.get("host").unwrap_or("");
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(name, _)| name);
    if is_loopback(name) {
        return Ok(());
    }
    Err(Error::usage(format!(
        "refusing to send a token to http://{host} in clear text; use an https:// remote URL"
    )))
}

/// git runs helpers with stdin connected to git, never to the terminal. We
/// may prompt on /dev/tty when one exists, unless git or the environment
/// says this run is unattended.
fn git_may_prompt() -> bool {
    if std::env::var_os("GIT_TERMINAL_PROMPT").is_some_and(|v| git_false(&v.to_string_lossy())) {
        return false;
    }
    if super::ci_environment() {
        return false;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

/// Whether git reads `value` as boolean false, as it does for
/// GIT_TERMINAL_PROMPT: `false`, `no`, `off` (any case), an integer 0, or
/// the empty string.
fn git_false(value: &str) -> bool {
    let v = value.trim();
    v.is_empty()
        || ["false", "no", "off"]
            .iter()
            .any(|f| v.eq_ignore_ascii_case(f))
        || v.parse::<i64>() == Ok(0)
}

#[cfg(test)]
mod tests {
    use super::git_false;

    #[test]
    fn git_boolean_false_spellings() {
        for v in ["0", "false", "FALSE", "no", "Off", "", "00", " 0"] {
            assert!(git_false(v), "{v:?}");
        }
        for v in ["1", "true", "yes", "on", "2", "maybe"] {
            assert!(!git_false(v), "{v:?}");
        }
    }
}
