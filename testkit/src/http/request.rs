//! A parsed HTTP request with the decoding helpers the fakes need.

use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::util::{query_unescape, query_unescape_lenient};

/// One HTTP request, fully read (body included) before the handler runs.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method as sent (`GET`, `POST`, …).
    pub method: String,
    /// Request target up to (not including) `?`, not percent-decoded.
    pub path: String,
    /// Everything after the first `?`, without the `?`; empty when absent.
    pub query: String,
    /// Header fields in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Body after `Content-Length` or chunked decoding.
    pub body: Vec<u8>,
    /// The client's address.
    pub peer: SocketAddr,
}

impl Request {
    /// First value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in arrival order.
    pub fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when the body is declared `application/x-www-form-urlencoded`.
    ///
    /// Go's `ParseForm` (Dex) reads the body only for this content type, so a
    /// JSON body there reads as an empty form.
    pub fn is_form(&self) -> bool {
        self.header("content-type").is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
    }

    /// Decodes the body as `application/x-www-form-urlencoded`, whatever the
    /// declared content type: `+` is a space, `%XX` a byte. Malformed escapes
    /// are kept literally instead of failing.
    pub fn form(&self) -> Vec<(String, String)> {
        parse_urlencoded(&String::from_utf8_lossy(&self.body))
    }

    /// The first value of form field `key`, if present.
    pub fn form_value(&self, key: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The query string decoded like a form.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        parse_urlencoded(&self.query)
    }

    /// HTTP Basic credentials after base64 decoding, split at the first `:`,
    /// but *not* URL-decoded. `None` when there is no well-formed Basic header
    /// (the same cases in which Go's `Request.BasicAuth` reports `ok=false`).
    pub fn basic_auth_raw(&self) -> Option<(String, String)> {
        let value = self.header("authorization")?;
        let encoded = strip_scheme(value, "Basic")?;
        let decoded = STANDARD.decode(encoded.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        Some((user.to_owned(), pass.to_owned()))
    }

    /// HTTP Basic credentials decoded per RFC 6749 §2.3.1: base64, split at
    /// the first `:`, then URL-decode each part (`+` is a space). `None` when
    /// the header is missing, malformed, or a part has a bad `%` escape.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let (user, pass) = self.basic_auth_raw()?;
        Some((query_unescape(&user)?, query_unescape(&pass)?))
    }

    /// The token of an `Authorization: Bearer <token>` header (scheme
    /// compared case-insensitively).
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let token = strip_scheme(value, "Bearer")?.trim();
        (!token.is_empty()).then_some(token)
    }

    /// The body parsed as JSON, or `None` if it is not valid JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Returns what follows `scheme ` in an Authorization value, matching the
/// scheme case-insensitively as RFC 9110 requires.
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// Splits `a=b&c=d` into decoded pairs; a key without `=` gets an empty value.
fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (query_unescape_lenient(k), query_unescape_lenient(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        }
    }

    #[test]
    fn form_decodes_plus_and_percent() {
        let r = request(&[], "a=x+y%21&b=&c&=z&d=%zz");
        assert_eq!(
            r.form(),
            vec![
                ("a".into(), "x y!".into()),
                ("b".into(), String::new()),
                ("c".into(), String::new()),
                (String::new(), "z".into()),
                ("d".into(), "%zz".into()),
            ]
        );
    }

    #[test]
    fn basic_auth_url_decodes_each_part() {
        // base64("my%3Aclient:s%2Bc+ret") — id "my:client", secret "s+c ret".
        let encoded = STANDARD.encode("my%3Aclient:s%2Bc+ret");
        let r = request(&[("AUTHORIZATION", &format!("basic {encoded}"))], "");
        assert_eq!(r.basic_auth(), Some(("my:client".into(), "s+c ret".into())));
        assert_eq!(
            r.basic_auth_raw(),
            Some(("my%3Aclient".into(), "s%2Bc+ret".into()))
        );
    }

    #[test]
    fn basic_auth_rejects_garbage() {
        for value in ["Basic !!!", "Basic", "Bearer abc", "Basic Zm9v"] {
            let r = request(&[("Authorization", value)], "");
            assert_eq!(r.basic_auth(), None, "{value}");
        }
        let bad_escape = STANDARD.encode("id:%zz");
        let r = request(&[("Authorization", &format!("Basic {bad_escape}"))], "");
        assert_eq!(r.basic_auth(), None);
        assert!(r.basic_auth_raw().is_some());
    }

    #[test]
    fn bearer_is_case_insensitive() {
        let r = request(&[("authorization", "bEaReR tok")], "");
        assert_eq!(r.bearer(), Some("tok"));
        let r = request(&[("authorization", "Bearer ")], "");
        assert_eq!(r.bearer(), None);
    }

    #[test]
    fn form_content_type_detection() {
        let r = request(
            &[(
                "Content-Type",
                "Application/X-WWW-Form-Urlencoded; charset=utf-8",
            )],
            "",
        );
        assert!(r.is_form());
        assert!(!request(&[("Content-Type", "application/json")], "").is_form());
    }
}
