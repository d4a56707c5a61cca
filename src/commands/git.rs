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
//!
//! `get` and `erase` act only for hosts this helper is for (see
//! [`crate::git_hosts`]): https (or http to loopback) to a `--git-host`, or
//! to a URL of a `credential.<url>.helper` entry that runs dexcred.

use crate::cli::{GitArgs, GitAuthArg};
use crate::config::{Config, check_text};
use crate::environment::Environment;
use crate::error::{Error, Result, escape_for_terminal};
use crate::git_hosts::{self, Scope, Target, Transport};
use crate::prompt::{self, Terminal};
use crate::protocol::git::{Answer, CAPABILITIES, Request, read_request, render_get};
use crate::session;

use super::Runtime;

pub fn run(args: &GitArgs, rt: &Runtime) -> Result<()> {
    match args.action.as_str() {
        "get" => get(args, rt),
        "erase" => erase(args, rt),
        "store" => read_request(std::io::stdin().lock()).map(|_| ()),
        "capability" => rt.write_stdout(CAPABILITIES),
        _ => Ok(()),
    }
}

/// Everything checked before the request is read and before any network
/// traffic: flags that would only fail after a login (a `--git-username`
/// with a newline) fail here, with exit 2.
fn prepare(args: &GitArgs, rt: &Runtime) -> Result<(Config, Option<Scope>)> {
    check_text("--git-username", &args.git_username)?;
    let scope = Scope::from_flags(&args.git_hosts)?;
    let config = Config::from_args(&args.provider, &args.common, &rt.env)?;
    Ok((config, scope))
}

fn get(args: &GitArgs, rt: &Runtime) -> Result<()> {
    let (config, scope) = prepare(args, rt)?;
    let request = read_request(std::io::stdin().lock())?;
    if !answers_for(scope, &request, &config, Warnings::Show) {
        return Ok(());
    }
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
    let credentials = config.credentials(rt.prompter(|env| {
        let vars = env.clone();
        Terminal::new(env, move || {
            git_may_prompt(&vars, prompt::controlling_terminal)
        })
    }));
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
    rt.write_stdout(&render_get(&answer)?)
}

fn erase(args: &GitArgs, rt: &Runtime) -> Result<()> {
    let (config, scope) = prepare(args, rt)?;
    let request = read_request(std::io::stdin().lock())?;
    let Some(presented) = request.presented_secret() else {
        return Ok(());
    };
    if !answers_for(scope, &request, &config, Warnings::Hide) {
        return Ok(());
    }
    session::reject(&config, presented).map(|_| ())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Warnings {
    Show,
    /// `erase` follows a `get` that already said why it did not answer.
    Hide,
}

/// Whether this request is for a host the helper serves (see
/// [`crate::git_hosts`]). Not answering is silent on stdout and exit 0, as
/// git expects from a helper with nothing to say; a line on stderr says why
/// only when the user can act on it (no host configured at all, or a
/// configured host reached over plain http).
fn answers_for(
    scope: Option<Scope>,
    request: &Request,
    config: &Config,
    warnings: Warnings,
) -> bool {
    let log = config.log;
    let warn = |text: &str| {
        if warnings == Warnings::Show {
            log.warn(text);
        }
    };
    let Some(target) = Target::from_request(request) else {
        log.debug(|| "git sent no usable protocol and host: not answering".to_string());
        return false;
    };
    let shown = escape_for_terminal(&target.display());
    if target.transport() == Transport::NotHttp {
        log.debug(|| format!("not answering for {shown}: only https carries this token"));
        return false;
    }
    let scope = match scope {
        Some(scope) => scope,
        None => match git_hosts::from_git_config() {
            Ok(urls) => Scope::GitConfig(urls),
            Err(why) => {
                warn(&format!(
                    "cannot tell which hosts this git credential helper is for ({why}); \
                     pass --git-host HOST; not answering for {shown}"
                ));
                return false;
            }
        },
    };
    if scope.is_empty() {
        warn(&format!(
            "this git credential helper is configured for no host, so it answers for none \
             (not for {shown}): configure it per URL \
             (git config credential.https://HOST.helper 'dexcred …') or pass --git-host HOST"
        ));
        return false;
    }
    if !scope.covers(&target) {
        log.debug(|| format!("not answering for {shown}: not one of this helper's hosts"));
        return false;
    }
    if target.transport() == Transport::Cleartext {
        warn(&format!(
            "not sending a token to {shown} in clear text; use an https:// remote URL"
        ));
        return false;
    }
    true
}

/// git runs helpers with stdin connected to git, never to the terminal. We
/// may prompt on /dev/tty when one exists, unless git or the environment
/// says this run is unattended.
fn git_may_prompt(env: &Environment, terminal: impl Fn() -> bool) -> bool {
    if env
        .var_os("GIT_TERMINAL_PROMPT")
        .is_some_and(|v| git_false(&v.to_string_lossy()))
    {
        return false;
    }
    !env.ci() && terminal()
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
    use super::{Environment, git_false, git_may_prompt};

    #[test]
    fn git_or_ci_saying_unattended_means_no_prompt_even_at_a_terminal() {
        for vars in [
            vec![("GIT_TERMINAL_PROMPT", "0")],
            vec![("GIT_TERMINAL_PROMPT", "")],
            vec![("CI", "true")],
        ] {
            let env = Environment::from_vars(vars.clone());
            assert!(!git_may_prompt(&env, || true), "{vars:?}");
        }
        let env = Environment::from_vars([("GIT_TERMINAL_PROMPT", "1")]);
        assert!(git_may_prompt(&env, || true));
        assert!(!git_may_prompt(&env, || false));
    }

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
