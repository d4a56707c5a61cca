//! Logins that need a person: a browser (authorization code + PKCE with a
//! loopback redirect) or a code typed on another device (RFC 8628).
//!
//! - [`browser`]: the authorization-code flow — PKCE, `state`, `nonce`, the
//!   authorization URL, waiting for the redirect, the page the tab shows.
//! - [`loopback`]: the tiny HTTP listener on 127.0.0.1 that receives the
//!   redirect (one request at a time, bounded reads, deadlines).
//! - [`pkce`]: RFC 7636 verifier and S256 challenge.
//! - [`device`]: the device authorization grant and its polling rules.
//! - [`opener`]: starting the browser (`--browser-command`, `$BROWSER`,
//!   `xdg-open`/`open`) without a shell and without our secrets.
//!
//! These flows know nothing about the cache or locks: the OAuth provider
//! calls them from `Provider::login`, and the session module decides when a
//! login happens and refuses it up front when nobody is there
//! ([`person_present`]).

pub mod browser;
pub mod device;
pub mod loopback;
pub mod opener;
pub mod pkce;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::provider::Credentials;

/// How a person-driven login runs; from `--listen-address`,
/// `--browser-command` and `--login-timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Validated `HOST:PORT` loopback addresses, tried in order; empty means
    /// 127.0.0.1 on a port the kernel picks.
    pub listen: Vec<String>,
    /// The browser command as argv (parsed from `--browser-command`, no
    /// shell); `None` means the platform opener.
    pub browser_command: Option<Vec<String>>,
    /// How long the person has to finish.
    pub timeout: Duration,
    /// Where `$BROWSER` is read, only when a browser is started.
    pub env: Environment,
}

/// `bytes` random bytes from the operating system as base64url without
/// padding: for PKCE verifiers, `state` and `nonce`.
pub fn random_token(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf)
        .map_err(|e| Error::local(format!("cannot get random bytes from the system: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// Whether a person can take part in a login in this run: the prompter
/// says someone is there to see the URL or code (for the terminal: the
/// front end may interact — kubectl's `spec.interactive`, git's
/// `GIT_TERMINAL_PROMPT` and terminal, a terminal on stdin for `token` and
/// `login` —, stderr is a terminal, and this is not CI). Otherwise nobody
/// would ever see the URL or code, so the run must fail at once instead of
/// waiting minutes.
pub fn person_present(credentials: &Credentials) -> bool {
    credentials.person_present()
}

/// The error for a login that needs a person in a run without one.
/// `command` is the `dexcred login …` line that would do it.
pub fn nobody_there(account: &str, command: &str) -> Error {
    Error::auth(format!(
        "login required for {account}, and it needs a browser or a device code that nobody can see \
         in this non-interactive run; run `{command}` in a terminal, then try again"
    ))
}

/// Parses `--browser-command` into argv the way a shell would split words
/// (quotes and backslashes), without running a shell: the URL is passed as
/// one argument and can never be interpreted.
pub fn parse_command(flag: &str, text: &str) -> Result<Vec<String>> {
    match shlex::split(text) {
        Some(argv) if !argv.is_empty() => Ok(argv),
        Some(_) => Err(Error::usage(format!("{flag} is empty"))),
        None => Err(Error::usage(format!(
            "{flag} {text:?} has an unclosed quote or a trailing backslash"
        ))),
    }
}

/// Checks one `--listen-address`: `HOST:PORT` with a loopback host
/// (`127.0.0.1`, `[::1]`, `localhost`). The redirect carries the
/// authorization code; it must never be reachable from another machine.
pub fn parse_listen_address(text: &str) -> Result<String> {
    let text = text.trim();
    let bad = |why: &str| Error::usage(format!("--listen-address {text:?}: {why}"));
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT, e.g. 127.0.0.1:8000"))?;
    port.parse::<u16>()
        .map_err(|_| bad("the port must be a number from 0 to 65535"))?;
    if host.is_empty() {
        return Err(bad("expected HOST:PORT, e.g. 127.0.0.1:8000"));
    }
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let loopback = match bare {
        Some(v6) => v6
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    };
    if !loopback {
        return Err(bad(
            "only loopback addresses (127.0.0.1, [::1], localhost) may receive the login redirect",
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_url_safe_and_distinct() {
        let a = random_token(32).unwrap();
        let b = random_token(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn browser_commands_split_like_a_shell_without_one() {
        assert_eq!(
            parse_command("--browser-command", "firefox --new-window").unwrap(),
            ["firefox", "--new-window"]
        );
        assert_eq!(
            parse_command("--browser-command", r#""/opt/my browser/run" -x 'a b'"#).unwrap(),
            ["/opt/my browser/run", "-x", "a b"]
        );
        // Shell syntax is just text: no pipes, no substitutions.
        assert_eq!(
            parse_command("--browser-command", "echo $(id); rm").unwrap(),
            ["echo", "$(id);", "rm"]
        );
        assert!(parse_command("--browser-command", "  ").is_err());
        assert!(parse_command("--browser-command", "open 'x").is_err());
    }

    #[test]
    fn listen_addresses_must_be_loopback() {
        for ok in [
            "127.0.0.1:8000",
            "127.0.0.2:0",
            "[::1]:18000",
            "localhost:8000",
        ] {
            assert_eq!(parse_listen_address(ok).unwrap(), ok);
        }
        for bad in [
            "0.0.0.0:8000",
            "192.168.1.2:8000",
            "[::]:8000",
            "example.com:80",
            "127.0.0.1",
            "127.0.0.1:http",
            "127.0.0.1:70000",
            ":8000",
        ] {
            let e = parse_listen_address(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }
}
