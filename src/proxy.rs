//! Which proxy a request goes through: `HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY` and `NO_PROXY` (and their lower-case forms), read the way
//! kubectl and git read them.
//!
//! ureq can read these variables itself, but its `NO_PROXY` matching knows
//! no ports, IP ranges or "this domain and its subdomains", and it uses one
//! proxy for every scheme. dexcred decides per request instead, here, from
//! values that `config` reads from the environment (the one place that
//! reads it), and hands ureq the proxy to use or none.
//!
//! Plain http is never proxied: dexcred allows it only to this machine, and
//! a proxy would carry the password in clear across the network.

use std::net::IpAddr;

/// The proxy variables of one run, as found in the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// `(variable, value)` pairs that are set and not blank.
    vars: Vec<(&'static str, String)>,
}

/// The variables that are read, in the order they are consulted.
pub const VARIABLES: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The proxy a request goes through, and where that came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub url: String,
    pub variable: &'static str,
}

impl Chosen {
    /// The proxy URL for messages: without `user:password@`, which proxy
    /// URLs may carry.
    pub fn shown(&self) -> String {
        match self.url.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}", without_userinfo(rest)),
            None => without_userinfo(&self.url).to_string(),
        }
    }
}

fn without_userinfo(authority_and_path: &str) -> &str {
    let authority_end = authority_and_path
        .find('/')
        .unwrap_or(authority_and_path.len());
    match authority_and_path[..authority_end].rfind('@') {
        Some(at) => &authority_and_path[at + 1..],
        None => authority_and_path,
    }
}

impl ProxyEnv {
    /// Builds the settings from a lookup (the run's `Environment`, in `config`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> ProxyEnv {
        let vars = VARIABLES
            .iter()
            .filter_map(|name| {
                let value = lookup(name)?;
                let value = value.trim();
                (!value.is_empty()).then(|| (*name, value.to_string()))
            })
            .collect();
        ProxyEnv { vars }
    }

    fn first(&self, names: &[&str]) -> Option<(&'static str, &str)> {
        names.iter().find_map(|wanted| {
            self.vars
                .iter()
                .find(|(name, _)| name == wanted)
                .map(|(name, value)| (*name, value.as_str()))
        })
    }

    /// The proxy for a request to `scheme://host:port`, or `None` to
    /// connect directly.
    pub fn proxy_for(&self, scheme: &str, host: &str, port: u16) -> Option<Chosen> {
        let names: &[&str] = match scheme {
            "https" => &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
            // Plain http goes only to this machine (see the module docs).
            _ => return None,
        };
        let (variable, url) = self.first(names)?;
        if let Some((_, list)) = self.first(&["NO_PROXY", "no_proxy"])
            && no_proxy_matches(list, host, port)
        {
            return None;
        }
        Some(Chosen {
            url: url.to_string(),
            variable,
        })
    }
}

/// Whether `NO_PROXY`-style `list` exempts `host:port`. Entries are
/// separated by commas or blanks:
/// - `*` exempts every host;
/// - `example.com`, `.example.com` and `*.example.com` exempt that domain
///   and every subdomain (as git/curl do; case does not matter);
/// - `10.0.0.1`, `::1`, `[::1]` exempt that address, `10.0.0.0/8` a range;
/// - any of these with `:PORT` exempts only that port.
pub fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = normalise_host(host);
    let host_ip = host.parse::<IpAddr>().ok();
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .any(|entry| entry_matches(entry, &host, host_ip, port))
}

fn normalise_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

fn entry_matches(entry: &str, host: &str, host_ip: Option<IpAddr>, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    let (pattern, entry_port) = split_port(entry);
    if entry_port.is_some_and(|p| p != port) {
        return false;
    }
    let pattern = normalise_host(pattern);
    if let Some((net, bits)) = pattern.split_once('/') {
        return match (net.parse::<IpAddr>(), bits.parse::<u8>(), host_ip) {
            (Ok(net), Ok(bits), Some(ip)) => in_range(ip, net, bits),
            _ => false,
        };
    }
    if let Ok(ip) = pattern.parse::<IpAddr>() {
        return host_ip == Some(ip);
    }
    let domain = pattern.trim_start_matches('*').trim_start_matches('.');
    !domain.is_empty()
        && host_ip.is_none()
        && (host == domain || host.ends_with(&format!(".{domain}")))
}

/// Splits `host:port`, `[v6]:port`; a bare IPv6 address has no port.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> ProxyEnv {
        ProxyEnv::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn https_uses_https_proxy_then_all_proxy_and_http_is_never_proxied() {
        let e = env(&[
            ("https_proxy", "http://p:3128"),
            ("ALL_PROXY", "http://a:1"),
        ]);
        let chosen = e.proxy_for("https", "idp.example", 443).unwrap();
        assert_eq!(
            (chosen.url.as_str(), chosen.variable),
            ("http://p:3128", "https_proxy")
        );
        let e = env(&[("HTTPS_PROXY", "http://P:1"), ("https_proxy", "http://p:2")]);
        assert_eq!(
            e.proxy_for("https", "h", 443).unwrap().variable,
            "HTTPS_PROXY"
        );
        let e = env(&[("ALL_PROXY", "http://a:1")]);
        assert_eq!(
            e.proxy_for("https", "h", 443).unwrap().variable,
            "ALL_PROXY"
        );
        let e = env(&[("HTTP_PROXY", "http://p:1"), ("ALL_PROXY", "http://a:1")]);
        assert_eq!(e.proxy_for("http", "127.0.0.1", 80), None);
        assert_eq!(
            env(&[("HTTPS_PROXY", "  ")]).proxy_for("https", "h", 443),
            None
        );
        assert_eq!(env(&[]).proxy_for("https", "h", 443), None);
    }

    #[test]
    fn proxy_credentials_are_never_shown() {
        let shown = |url: &str| {
            Chosen {
                url: url.to_string(),
                variable: "HTTPS_PROXY",
            }
            .shown()
        };
        assert_eq!(shown("http://u:s3cret@proxy:3128"), "http://proxy:3128");
        assert_eq!(shown("u:p@w@proxy:3128/x"), "proxy:3128/x");
        assert_eq!(shown("http://proxy:3128"), "http://proxy:3128");
    }

    #[test]
    fn no_proxy_exempts_and_lower_case_is_read_too() {
        let e = env(&[("HTTPS_PROXY", "http://p:1"), ("no_proxy", "corp.example")]);
        assert_eq!(e.proxy_for("https", "idp.corp.example", 443), None);
        assert!(e.proxy_for("https", "idp.example", 443).is_some());
    }

    #[test]
    fn no_proxy_domains() {
        for (list, host) in [
            ("example.com", "example.com"),
            ("example.com", "idp.EXAMPLE.com"),
            (".example.com", "example.com"),
            (".example.com", "a.b.example.com"),
            ("*.example.com", "idp.example.com"),
            ("EXAMPLE.COM.", "idp.example.com"),
            ("other, example.com", "idp.example.com"),
            ("other example.com", "idp.example.com"),
            ("*", "anything"),
        ] {
            assert!(
                no_proxy_matches(list, host, 443),
                "{list} should match {host}"
            );
        }
        for (list, host) in [
            ("example.com", "badexample.com"),
            ("example.com", "example.com.evil"),
            (".example.com", "xexample.com"),
            ("", "example.com"),
            (",", "example.com"),
            ("*.", "example.com"),
            ("com", "127.0.0.1"),
        ] {
            assert!(
                !no_proxy_matches(list, host, 443),
                "{list} must not match {host}"
            );
        }
    }

    #[test]
    fn no_proxy_ports_and_addresses() {
        assert!(no_proxy_matches("idp.example:8443", "idp.example", 8443));
        assert!(!no_proxy_matches("idp.example:8443", "idp.example", 443));
        assert!(no_proxy_matches("127.0.0.1", "127.0.0.1", 1));
        assert!(no_proxy_matches("127.0.0.1:5556", "127.0.0.1", 5556));
        assert!(!no_proxy_matches("127.0.0.1:5556", "127.0.0.1", 5557));
        assert!(!no_proxy_matches("127.0.0.2", "127.0.0.1", 1));
        assert!(no_proxy_matches("10.0.0.0/8", "10.1.2.3", 1));
        assert!(!no_proxy_matches("10.0.0.0/8", "11.1.2.3", 1));
        assert!(no_proxy_matches("127.0.0.0/8", "127.9.9.9", 1));
        assert!(no_proxy_matches("::1", "[::1]", 1));
        assert!(no_proxy_matches("[::1]:8443", "[::1]", 8443));
        assert!(!no_proxy_matches("[::1]:8443", "::1", 443));
        assert!(no_proxy_matches("fd00::/8", "[fd12::1]", 1));
        assert!(no_proxy_matches("0.0.0.0/0", "192.0.2.1", 1));
        assert!(!no_proxy_matches("localhost", "127.0.0.1", 1));
        assert!(no_proxy_matches("localhost", "LOCALHOST", 1));
    }
}
