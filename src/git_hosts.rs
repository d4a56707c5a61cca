//! Which hosts the git credential helper answers for.
//!
//! git asks every configured helper for every URL the helper's config entry
//! matches; an entry without a URL (`credential.helper = dexcred …`) matches
//! all of them: a server the trusted one redirects to, any host that
//! answers 401, even `smtp`/`imap` hosts of `git send-email`. The token is a
//! 24-hour cluster credential, so the helper decides for itself:
//!
//! 1. Only `https`, or `http` to this machine (test servers), ever gets an
//!    answer.
//! 2. With `--git-host HOST[:PORT]` (repeatable, or `DEXCRED_GIT_HOST`
//!    comma-separated), exactly those hosts get one.
//! 3. Without it, the hosts come from git's own configuration: the URLs of
//!    the `credential.<url>.helper` entries whose value names dexcred, read
//!    with `git config` in git's environment (so `git -c`, the repository's
//!    config and includes count, as they do for git), matched the way git
//!    matches them (scheme, host with `*` for one label, port, path prefix,
//!    user).
//! 4. With neither, nothing is answered and one line on stderr says how to
//!    configure a host.
//!
//! Hosts compare as git compares them: case-insensitively, the port is part
//! of the host (`git.example.com` is port 443 for https, and
//! `git.example.com:8443` is another host), and `example.com` does not cover
//! `sub.example.com`.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::protocol::git::Request;
use crate::url::is_loopback;

/// The URL git asks about, from the request's `protocol`, `host`, `path`
/// and `username`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: String,
    /// Lower-case host name or address (IPv6 in brackets), without port.
    pub host: String,
    /// The port, default port filled in.
    pub port: u16,
    path: Option<String>,
    username: Option<String>,
}

impl Target {
    /// `None` when git sent no protocol or host, or a host we cannot read:
    /// such a request is not answered.
    pub fn from_request(request: &Request) -> Option<Target> {
        let scheme = request.get("protocol")?.to_ascii_lowercase();
        let (host, port) = split_host_port(request.get("host")?)?;
        let port = port.or_else(|| default_port(&scheme))?;
        Some(Target {
            scheme,
            host,
            port,
            path: request.get("path").map(str::to_string),
            username: request.get("username").map(str::to_string),
        })
    }

    /// `https://host:port`, for messages.
    pub fn display(&self) -> String {
        match default_port(&self.scheme) {
            Some(p) if p == self.port => format!("{}://{}", self.scheme, self.host),
            _ => format!("{}://{}:{}", self.scheme, self.host, self.port),
        }
    }

    /// Rule 1: https anywhere, http only to this machine.
    pub fn transport(&self) -> Transport {
        match self.scheme.as_str() {
            "https" => Transport::Encrypted,
            "http" if is_loopback(&self.host) => Transport::Encrypted,
            "http" => Transport::Cleartext,
            _ => Transport::NotHttp,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// https, or http to loopback.
    Encrypted,
    /// http to another machine: a token would cross the network readable.
    Cleartext,
    /// smtp, imap, cert, …: never a place for this token.
    NotHttp,
}

/// A host as `--git-host` gives it, or as the host part of a config URL:
/// a name whose labels may be `*` (one label each), and an optional port
/// (`None`: the scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses `HOST[:PORT]` from `--git-host`. A URL is refused with a hint:
    /// the scheme is not part of it (https is implied).
    pub fn parse_flag(flag: &str, value: &str) -> Result<HostPattern> {
        let value = value.trim();
        let bad = |why: &str| Error::usage(format!("{flag} {value:?} is not usable: {why}"));
        if value.contains("://") || value.contains('/') {
            return Err(bad(
                "give the host only, e.g. git.example.com (or git.example.com:8443)",
            ));
        }
        if value.contains('@') {
            return Err(bad("give the host without a user name"));
        }
        let (host, port) = split_host_port(value)
            .ok_or_else(|| bad("expected HOST or HOST:PORT (IPv6 as [ADDRESS]:PORT)"))?;
        Ok(HostPattern { host, port })
    }

    fn matches(&self, target: &Target) -> bool {
        let port = self.port.or_else(|| default_port(&target.scheme));
        port == Some(target.port) && host_matches(&self.host, &target.host)
    }
}

/// Host names compare label by label; a `*` label matches any one label,
/// as in git's `credential.https://*.example.com.helper`.
fn host_matches(pattern: &str, host: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    p.len() == h.len() && p.iter().zip(&h).all(|(p, h)| *p == "*" || p == h)
}

/// The URL part of a `credential.<url>.helper` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlScope {
    scheme: String,
    user: Option<String>,
    host: HostPattern,
    /// Without trailing slash; empty for none.
    path: String,
}

impl UrlScope {
    /// Parses `scheme://[user@]host[:port][/path]`. Anything else (git also
    /// accepts entries it never matches) gives `None`.
    pub fn parse(url: &str) -> Option<UrlScope> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme.is_empty() {
            return None;
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hostport)) => {
                let user = user.split(':').next().unwrap_or(user);
                (Some(percent_decode(user)), hostport)
            }
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)?;
        Some(UrlScope {
            scheme: scheme.to_ascii_lowercase(),
            user,
            host: HostPattern { host, port },
            path: path.trim_end_matches('/').to_string(),
        })
    }

    /// git's urlmatch: same scheme, matching host and port, the config path
    /// a prefix of the request path (on a `/` boundary), and the user, if
    /// the config names one, equal to the request's.
    fn matches(&self, target: &Target) -> bool {
        if self.scheme != target.scheme || !self.host.matches(target) {
            return false;
        }
        if let Some(user) = &self.user
            && target.username.as_deref() != Some(user.as_str())
        {
            return false;
        }
        if self.path.is_empty() {
            return true;
        }
        let path = format!(
            "/{}",
            target.path.as_deref().unwrap_or("").trim_start_matches('/')
        );
        path == self.path || path.starts_with(&format!("{}/", self.path))
    }
}

/// Where the helper's hosts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `--git-host` / `DEXCRED_GIT_HOST`.
    Hosts(Vec<HostPattern>),
    /// The URLs of git's `credential.<url>.helper` entries naming dexcred.
    GitConfig(Vec<UrlScope>),
}

impl Scope {
    /// Parses `--git-host` values; each may itself hold a comma- or
    /// space-separated list (how `DEXCRED_GIT_HOST` gives several).
    /// `None` when none was given.
    pub fn from_flags(values: &[String]) -> Result<Option<Scope>> {
        let hosts = values
            .iter()
            .flat_map(|v| v.split([',', ' ', '\t', '\n']))
            .filter(|v| !v.trim().is_empty())
            .map(|v| HostPattern::parse_flag("--git-host", v))
            .collect::<Result<Vec<_>>>()?;
        Ok((!hosts.is_empty()).then_some(Scope::Hosts(hosts)))
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Scope::Hosts(h) => h.is_empty(),
            Scope::GitConfig(u) => u.is_empty(),
        }
    }

    pub fn covers(&self, target: &Target) -> bool {
        match self {
            Scope::Hosts(hosts) => hosts.iter().any(|h| h.matches(target)),
            Scope::GitConfig(urls) => urls.iter().any(|u| u.matches(target)),
        }
    }
}

/// Longest `git config` may take: it reads a few files, so this is only a
/// guard against a config include that never ends (a FIFO).
const GIT_CONFIG_DEADLINE: Duration = Duration::from_secs(10);
const MAX_GIT_CONFIG_BYTES: u64 = 1024 * 1024;

/// The URL scopes of every `credential.<url>.helper` entry whose value
/// names dexcred, as git sees its configuration right now. `git config`
/// runs with our environment minus dexcred's secrets ([`crate::child`]), in
/// our directory: when git runs the helper, that is git's own view (its
/// `-c` options travel in GIT_CONFIG_PARAMETERS).
pub fn from_git_config() -> std::result::Result<Vec<UrlScope>, String> {
    let mut child = crate::child::command("git")
        .args([
            "config",
            "--null",
            "--get-regexp",
            r"^credential\..+\.helper$",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run `git config`: {e}"))?;
    let stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(out) = stdout {
            let _ = out.take(MAX_GIT_CONFIG_BYTES).read_to_end(&mut bytes);
        }
        let _ = tx.send(bytes);
    });
    let deadline = Instant::now() + GIT_CONFIG_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("`git config` did not finish".to_string());
            }
        }
    };
    let bytes = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    // Exit 1: no such entry, which is an empty answer, not a failure.
    match status.code() {
        Some(0) => Ok(parse_helper_entries(&bytes)),
        Some(1) => Ok(Vec::new()),
        _ => Err(format!("`git config` failed ({status})")),
    }
}

/// Parses `git config --null --get-regexp` output: `key\nvalue\0` records.
fn parse_helper_entries(bytes: &[u8]) -> Vec<UrlScope> {
    String::from_utf8_lossy(bytes)
        .split('\0')
        .filter_map(|record| {
            let (key, value) = record.split_once('\n')?;
            let url = key.strip_prefix("credential.")?.strip_suffix(".helper")?;
            names_dexcred(value).then(|| UrlScope::parse(url))?
        })
        .collect()
}

/// Whether a helper value runs dexcred: `dexcred …` (git runs
/// `git-credential-dexcred`), an absolute path to it, or a `!` shell
/// command mentioning it.
fn names_dexcred(value: &str) -> bool {
    value.contains("dexcred")
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → lower-case host, port.
fn split_host_port(value: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{addr}]"), port)
    } else {
        match value.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (value.to_string(), None),
        }
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._*[]:%".contains(c));
    if !valid {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

/// `%XX` escapes in a config URL's user name (git writes `@` as `%40`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::git::read_request;

    fn target(protocol: &str, host: &str) -> Target {
        let req = read_request(format!("protocol={protocol}\nhost={host}\n").as_bytes()).unwrap();
        Target::from_request(&req).unwrap()
    }

    fn hosts(list: &[&str]) -> Scope {
        Scope::from_flags(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn git_host_matches_like_git_host_and_port() {
        let s = hosts(&["Git.Example.com", "other.example:8443"]);
        assert!(s.covers(&target("https", "git.example.com")));
        assert!(s.covers(&target("https", "git.example.com:443")));
        assert!(!s.covers(&target("https", "git.example.com:8443")));
        assert!(!s.covers(&target("https", "sub.git.example.com")));
        assert!(!s.covers(&target("https", "example.com")));
        assert!(!s.covers(&target("https", "git.example.com.evil.test")));
        assert!(s.covers(&target("https", "other.example:8443")));
        assert!(!s.covers(&target("https", "other.example")));
    }

    #[test]
    fn env_lists_are_comma_or_space_separated_and_urls_are_refused() {
        assert_eq!(
            hosts(&["a.example, b.example c.example"]),
            hosts(&["a.example", "b.example", "c.example"])
        );
        for bad in [
            "https://git.example.com",
            "git.example.com/org",
            "u@h",
            "h:port",
            "h:0",
            "a b\u{1b}",
        ] {
            assert!(Scope::from_flags(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert_eq!(Scope::from_flags(&[]).unwrap(), None);
    }

    #[test]
    fn config_urls_match_as_git_matches_them() {
        let scope = |url: &str| Scope::GitConfig(vec![UrlScope::parse(url).unwrap()]);
        let s = scope("https://git.example.com");
        assert!(s.covers(&target("https", "git.example.com")));
        assert!(!s.covers(&target("http", "git.example.com")));
        assert!(!s.covers(&target("https", "evil.example.com")));
        assert!(!s.covers(&target("https", "git.example.com:444")));
        let w = scope("https://*.example.com/");
        assert!(w.covers(&target("https", "git.example.com")));
        assert!(!w.covers(&target("https", "example.com")));
        assert!(!w.covers(&target("https", "a.b.example.com")));
        let p = scope("http://127.0.0.1:8080/org");
        let mut req =
            read_request(&b"protocol=http\nhost=127.0.0.1:8080\npath=org/repo.git\n"[..]).unwrap();
        assert!(p.covers(&Target::from_request(&req).unwrap()));
        req =
            read_request(&b"protocol=http\nhost=127.0.0.1:8080\npath=orgx/repo.git\n"[..]).unwrap();
        assert!(!p.covers(&Target::from_request(&req).unwrap()));
        assert!(!p.covers(&target("http", "127.0.0.1:8080")));
        let u = scope("https://alice@git.example.com");
        assert!(!u.covers(&target("https", "git.example.com")));
    }

    #[test]
    fn helper_entries_naming_dexcred_are_kept() {
        let out = b"credential.https://a.example.helper\ndexcred --pcd x\0\
                    credential.https://b.example.helper\ncache\0\
                    credential.https://c.example:8443.helper\n!/opt/bin/git-credential-dexcred x\0";
        let urls = parse_helper_entries(out);
        assert_eq!(urls.len(), 2);
        assert!(Scope::GitConfig(urls.clone()).covers(&target("https", "a.example")));
        assert!(!Scope::GitConfig(urls.clone()).covers(&target("https", "b.example")));
        assert!(Scope::GitConfig(urls).covers(&target("https", "c.example:8443")));
    }

    #[test]
    fn transports() {
        assert_eq!(target("https", "h").transport(), Transport::Encrypted);
        assert_eq!(
            target("http", "127.0.0.1:1").transport(),
            Transport::Encrypted
        );
        assert_eq!(target("http", "[::1]:1").transport(), Transport::Encrypted);
        assert_eq!(target("http", "h").transport(), Transport::Cleartext);
        assert!(
            read_request(&b"protocol=smtp\nhost=h:25\n"[..])
                .map(|r| Target::from_request(&r).unwrap().transport())
                .unwrap()
                == Transport::NotHttp
        );
    }
}
