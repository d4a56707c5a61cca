//! Which URLs dexcred will send credentials to: https, or http only to this
//! machine (loopback test servers). One policy, used by the flags that name
//! servers (`config`), the HTTP client (`http`), the git helper's host rules
//! (`git_hosts`) and GitHub Actions' token URL (`subject`).

use crate::error::{Error, Result};

/// A base URL that dexcred appends paths to (`--pcd`, `--issuer`): checked
/// like [`validate_url`] and returned without a trailing slash, so
/// `https://x/` and `https://x` share a cache entry.
pub fn validate_base_url(flag: &str, value: &str) -> Result<String> {
    Ok(validate_url(flag, value)?.trim_end_matches('/').to_string())
}

/// Accepts `https://` URLs, and `http://` only for loopback hosts (local
/// test servers): a password must never cross a network in clear text.
/// Returns the URL exactly as given (trimmed of blanks): an endpoint URL is
/// used as is, because servers differ on trailing slashes (Django's
/// `…/o/token/` answers 404 without it, others the other way round).
pub fn validate_url(flag: &str, value: &str) -> Result<String> {
    check_url(flag, value, false)
}

/// [`validate_url`] for URLs that carry a query (GitHub Actions' ID token
/// request URL), returned as given.
pub fn validate_url_with_query(flag: &str, value: &str) -> Result<String> {
    check_url(flag, value, true)
}

fn check_url(flag: &str, value: &str, allow_query: bool) -> Result<String> {
    let value = value.trim();
    let bad = |why: &str| Error::usage(format!("{flag} {value:?} is not usable: {why}"));
    let uri: ureq::http::Uri = value
        .parse()
        .map_err(|_| bad("not a URL (expected https://host/...)"))?;
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad(
            "credentials in a URL end up in process lists; remove them",
        ));
    }
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if is_loopback(host) => {}
        Some("http") => {
            return Err(bad(
                "plain http would send passwords and tokens unencrypted; use https",
            ));
        }
        _ => return Err(bad("the scheme must be https")),
    }
    if allow_query && !value.contains('#') {
        return Ok(value.to_string());
    }
    if uri.query().is_some() || value.contains('#') {
        return Err(bad("remove the query string or fragment"));
    }
    Ok(value.to_string())
}

pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_or_loopback() {
        assert!(validate_url("--pcd", "https://pcd.example/x/").is_ok());
        assert!(validate_url("--pcd", "http://127.0.0.1:8080").is_ok());
        assert!(validate_url("--pcd", "http://localhost:8080").is_ok());
        assert!(validate_url("--pcd", "http://[::1]:8080").is_ok());
        for bad in [
            "http://pcd.example",
            "ftp://x",
            "pcd.example",
            "https://u:p@pcd.example",
            "https://x/?a=b",
            "",
        ] {
            assert!(validate_url("--pcd", bad).is_err(), "{bad}");
        }
    }
}
