//! The HTTP client: one ureq agent per run, TLS verified against the system
//! store plus `--certificate-authority`, bounded in time and in response size.
//!
//! Only the renewal path builds an [`Http`]; a cache hit never touches the
//! network or even loads the system certificate store.

use std::cell::Cell;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ureq::Agent;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::error::{Error, Result, one_line};
use crate::log::Log;
use crate::proxy::{Chosen, ProxyEnv};
use crate::redact;
use crate::url::is_loopback;

/// Largest response body we read. Token responses are a few KiB; a server
/// that sends more is broken or hostile, and must not exhaust memory.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// Form fields whose values are secrets. If a server echoes one back in an
/// error body, it is blanked before the body can reach a message.
const SECRET_FIELDS: &[&str] = &[
    "password",
    "client_secret",
    "refresh_token",
    "otp",
    "subject_token",
    "totp",
    "token",
    // Browser and device logins: the authorization code, the PKCE verifier
    // and the device code each buy tokens on their own.
    "code",
    "code_verifier",
    "device_code",
];

/// See `Http::new`: below the shortest common server keep-alive timeout.
const MAX_IDLE_AGE: Duration = Duration::from_secs(4);

/// How server-supplied text is shortened before it reaches the user.
const MAX_REASON_CHARS: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Extra PEM CA certificates, trusted in addition to the system store.
    pub certificate_authority: Option<PathBuf>,
    /// Accept any certificate. Warned about on every use.
    pub insecure_skip_verify: bool,
}

/// A finished exchange: the status and (bounded) body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    /// What was requested, for messages (`POST https://…/dex/token`).
    pub what: String,
}

/// HTTP Basic client authentication for one request.
#[derive(Debug, Clone, Copy)]
pub struct BasicAuth<'a> {
    pub id: &'a str,
    pub secret: &'a str,
    pub encoding: BasicEncoding,
}

/// The two ways HTTP Basic client credentials are encoded in the wild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicEncoding {
    /// RFC 6749 §2.3.1: id and secret form-urlencoded, then base64 (Dex,
    /// Keycloak decode this way).
    Form,
    /// base64 of the raw `id:secret` (RFC 7617; many other services).
    Raw,
}

impl BasicAuth<'_> {
    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        format!("Basic {}", self.credentials(self.encoding))
    }

    /// The base64 part in the given encoding.
    fn credentials(&self, encoding: BasicEncoding) -> String {
        let raw = match encoding {
            BasicEncoding::Form => format!("{}:{}", form_encode(self.id), form_encode(self.secret)),
            BasicEncoding::Raw => format!("{}:{}", self.id, self.secret),
        };
        STANDARD.encode(raw)
    }

    /// Whether the two encodings send different bytes for these values
    /// (`+ / = % & : space` and non-ASCII characters), so that a server that
    /// decodes the other way sees a wrong secret.
    pub fn encodings_differ(id: &str, secret: &str) -> bool {
        form_encode(id) != id || form_encode(secret) != secret
    }

    /// What a server may echo of this header: the credentials in both
    /// encodings, with and without base64 padding.
    fn echoable(&self) -> Vec<String> {
        [BasicEncoding::Form, BasicEncoding::Raw]
            .into_iter()
            .flat_map(|e| {
                let b64 = self.credentials(e);
                let unpadded = b64.trim_end_matches('=').to_string();
                [b64, unpadded]
            })
            .collect()
    }
}

fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub struct Http {
    agent: Agent,
    timeout: Duration,
    log: Log,
    proxy: ProxyEnv,
    /// Whether the plain-http warning was printed in this run.
    warned_plain_http: Cell<bool>,
}

impl Http {
    pub fn new(tls: &TlsOptions, proxy: &ProxyEnv, timeout: Duration, log: Log) -> Result<Http> {
        // Before ureq's resolver runs (possibly in a thread of its own).
        crate::nss::builtin_services_only();
        let tls_config = tls_config(tls, log)?;
        let config = Agent::config_builder()
            .http_status_as_error(false)
            // Proxies are chosen per request from `proxy` (see crate::proxy),
            // never by ureq from the environment.
            .proxy(None)
            // A token endpoint that redirects is misconfigured, and following
            // a redirect with a password in the body is how it leaks.
            .max_redirects(0)
            // Reuse a kept-alive connection only while the server surely
            // still keeps it: Node's default keep-alive is 5 s, and a POST
            // on a connection the server is closing fails without a retry
            // (seen with device-code polls every 5+ seconds).
            .max_idle_age(MAX_IDLE_AGE)
            .timeout_global(Some(timeout))
            .user_agent(concat!("dexcred/", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            .tls_config(tls_config)
            .build();
        Ok(Http {
            agent: config.into(),
            timeout,
            log,
            proxy: proxy.clone(),
            warned_plain_http: Cell::new(false),
        })
    }

    /// Checks the transport and picks the proxy for `url`.
    fn route(&self, url: &str) -> Result<Option<Chosen>> {
        check_transport(url)?;
        let Ok(uri) = url.parse::<ureq::http::Uri>() else {
            return Ok(None); // ureq reports a malformed URL itself
        };
        let scheme = uri.scheme_str().unwrap_or("https");
        if scheme == "http" && !self.warned_plain_http.replace(true) {
            self.log.warn(&format!(
                "{url} is plain http: tokens and passwords to it are unencrypted, which is safe \
                 only if no other user of this machine can listen on its port; use https"
            ));
        }
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        let chosen = self
            .proxy
            .proxy_for(scheme, uri.host().unwrap_or_default(), port);
        if let Some(p) = &chosen {
            self.log
                .debug(|| format!("{url}: through the proxy {} ({})", p.shown(), p.variable));
        }
        Ok(chosen)
    }

    /// The ureq proxy for a chosen proxy URL.
    fn ureq_proxy(chosen: &Option<Chosen>) -> Result<Option<ureq::Proxy>> {
        match chosen {
            None => Ok(None),
            Some(c) => ureq::Proxy::new(&c.url).map(Some).map_err(|_| {
                Error::usage(format!(
                    "{} {:?} is not a usable proxy URL (expected http://HOST:PORT)",
                    c.variable,
                    c.shown()
                ))
            }),
        }
    }

    /// POSTs an `application/x-www-form-urlencoded` body, optionally with
    /// HTTP Basic client authentication (RFC 6749 §2.3.1: each part is
    /// form-urlencoded before base64, which Dex and Keycloak both expect).
    pub fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<BasicAuth<'_>>,
    ) -> Result<Response> {
        let proxy = self.route(url)?;
        let what = format!("POST {url}");
        self.log.debug(|| {
            format!(
                "{what} (form fields: {})",
                form.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
            )
        });
        let mut request = self
            .agent
            .post(url)
            .config()
            .proxy(Self::ureq_proxy(&proxy)?)
            .build();
        if let Some(b) = &basic {
            request = request.header("Authorization", b.header());
        }
        let result = request.send_form(form.iter().copied());
        let echoable: Vec<String> = basic.iter().flat_map(BasicAuth::echoable).collect();
        let mut secrets: Vec<&str> = form
            .iter()
            .filter(|(k, _)| SECRET_FIELDS.contains(k))
            .map(|(_, v)| *v)
            .collect();
        secrets.extend(basic.map(|b| b.secret));
        secrets.extend(echoable.iter().map(String::as_str));
        self.finish(what, &proxy, result)
            .map(|r| r.redacted(&secrets))
    }

    /// POSTs JSON; `secrets` are values inside `body` that must not come
    /// back to the user even if the server echoes them.
    pub fn post_json(&self, url: &str, body: &str, secrets: &[&str]) -> Result<Response> {
        let proxy = self.route(url)?;
        let what = format!("POST {url}");
        self.log.debug(|| what.to_string());
        let request = self
            .agent
            .post(url)
            .config()
            .proxy(Self::ureq_proxy(&proxy)?)
            .build()
            .header("Content-Type", "application/json");
        let result = request.send(body);
        self.finish(what, &proxy, result)
            .map(|r| r.redacted(secrets))
    }

    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response> {
        let proxy = self.route(url)?;
        let what = format!("GET {url}");
        self.log.debug(|| what.to_string());
        let mut request = self
            .agent
            .get(url)
            .config()
            .proxy(Self::ureq_proxy(&proxy)?)
            .build();
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let result = request.call();
        // Header values sent here are credentials (Keystone's token).
        let secrets: Vec<&str> = headers.iter().map(|(_, v)| *v).collect();
        self.finish(what, &proxy, result)
            .map(|r| r.redacted(&secrets))
    }

    fn finish(
        &self,
        what: String,
        proxy: &Option<Chosen>,
        result: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Response> {
        let mut response = result.map_err(|e| self.transport_error(&what, proxy, e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| self.transport_error(&what, proxy, e))?;
        self.log.debug(|| format!("{what} -> {status}"));
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            headers,
            what,
        })
    }

    /// Maps a transport failure to one actionable line. These are all
    /// "could not reach" errors: the caller may fall back to a still-valid
    /// cached token.
    fn transport_error(&self, what: &str, proxy: &Option<Chosen>, e: ureq::Error) -> Error {
        if let Some(p) = proxy {
            let detail = match &e {
                ureq::Error::Io(io) => Some(io_detail(io)),
                ureq::Error::ConnectionFailed => Some("connection failed".to_string()),
                ureq::Error::HostNotFound => Some("host name not found".to_string()),
                ureq::Error::ConnectProxyFailed(why) => Some(format!("the proxy refused: {why}")),
                _ => None,
            };
            if let Some(detail) = detail {
                return Error::provider(format!(
                    "{what} failed through the proxy {} (from {}): {detail}; check {} or \
                     exempt the host in NO_PROXY",
                    p.shown(),
                    p.variable,
                    p.variable
                ));
            }
        }
        let detail = match &e {
            ureq::Error::Timeout(_) => format!(
                "no complete answer within {}s (raise --timeout if the server is just slow)",
                self.timeout.as_secs()
            ),
            ureq::Error::HostNotFound => "host name not found".to_string(),
            ureq::Error::ConnectionFailed => "connection failed".to_string(),
            ureq::Error::Io(io) => io_detail(io),
            ureq::Error::Rustls(tls) => tls_detail(&tls.to_string()),
            ureq::Error::Tls(tls) => tls_detail(tls),
            ureq::Error::BodyExceedsLimit(_) => {
                format!("the response is larger than {MAX_BODY_BYTES} bytes")
            }
            ureq::Error::BadUri(uri) => format!("invalid URL {uri}"),
            other => other.to_string(),
        };
        Error::provider(format!("{what} failed: {detail}"))
    }
}

/// Every request carries a password, a secret or a token, so plain http is
/// allowed only to this machine. URLs from the command line are checked when
/// parsed; this also covers URLs a server supplied (OpenID discovery).
fn check_transport(url: &str) -> Result<()> {
    let Ok(uri) = url.parse::<ureq::http::Uri>() else {
        return Ok(()); // ureq reports a malformed URL itself
    };
    if uri.scheme_str() == Some("http") && !uri.host().is_some_and(is_loopback) {
        return Err(Error::provider(format!(
            "refusing to send credentials to {url} over plain http; the identity provider \
             must use https"
        )));
    }
    Ok(())
}

fn io_detail(io: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match io.kind() {
        ErrorKind::ConnectionRefused => {
            "connection refused (is the URL right and the server up?)".into()
        }
        ErrorKind::TimedOut => "timed out".into(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
            "the server closed the connection without a complete answer".into()
        }
        _ => {
            let text = io.to_string();
            if text.contains("certificate") || text.contains("Certificate") {
                tls_detail(&text)
            } else {
                text
            }
        }
    }
}

fn tls_detail(text: &str) -> String {
    format!("TLS error: {text}; if the server uses a private CA, pass --certificate-authority FILE")
}

fn tls_config(options: &TlsOptions, log: Log) -> Result<TlsConfig> {
    if options.insecure_skip_verify {
        log.warn(
            "--insecure-skip-tls-verify is set: the identity provider's certificate is not checked, \
             so anyone on the network path can read your password and tokens",
        );
        return Ok(TlsConfig::builder().disable_verification(true).build());
    }
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        roots.push(Certificate::from_der(cert.as_ref()).to_owned());
    }
    if let Some(path) = &options.certificate_authority {
        let extra = read_ca_file(path)?;
        log.debug(|| {
            format!(
                "trusting {} certificate(s) from {} in addition to {} system root(s)",
                extra.len(),
                path.display(),
                roots.len()
            )
        });
        roots.extend(extra);
    }
    if roots.is_empty() {
        return Err(Error::local(
            "no trusted CA certificates: the system store is empty or unreadable; \
             install ca-certificates or pass --certificate-authority FILE",
        ));
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&roots))
        .build())
}

/// Largest CA file read (`--certificate-authority`,
/// `--cluster-certificate-authority`): a full system bundle is about 220 KiB,
/// so 4 MiB leaves room for any real bundle while a huge or endless file is
/// refused instead of read whole.
pub const MAX_CA_BYTES: u64 = 4 * 1024 * 1024;

fn read_ca_file(path: &std::path::Path) -> Result<Vec<Certificate<'static>>> {
    let bytes = crate::fs::read_regular_file(path, MAX_CA_BYTES).map_err(|why| {
        Error::usage(format!(
            "cannot read --certificate-authority {}: {why}",
            path.display()
        ))
    })?;
    let certs: Vec<_> = ureq::tls::parse_pem(&bytes)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c.to_owned()),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(Error::usage(format!(
            "--certificate-authority {} contains no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

impl Response {
    /// Replaces every occurrence of the given secrets in the body. Only
    /// error bodies are shown to users, but a token response legitimately
    /// contains a new refresh token, so only non-2xx bodies are touched.
    fn redacted(mut self, secrets: &[&str]) -> Response {
        if !self.is_success() {
            self.body = redact::redact(&self.body, secrets);
        }
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error for an unsuccessful answer while `doing` something. A 4xx
    /// means the server understood and said no (`Auth`, exit 3); anything
    /// else means it could not give an answer (`Provider`, exit 4).
    pub fn refusal(&self, doing: &str) -> Error {
        if let Some(e) = self.wrong_url(doing) {
            return e;
        }
        if (400..500).contains(&self.status) {
            Error::auth(format!(
                "{doing}: {} refused it: {}",
                self.what,
                self.reason()
            ))
        } else {
            Error::provider(format!("{doing}: {} failed: {}", self.what, self.reason()))
        }
    }

    /// A 404 or 405 means nothing that takes this request lives at the URL:
    /// a wrong URL (exit 4), not a refused login (which would send the user
    /// to check a password that is fine).
    pub fn wrong_url(&self, doing: &str) -> Option<Error> {
        matches!(self.status, 404 | 405).then(|| {
            Error::provider(format!(
                "{doing}: {} answered {}: there is no such endpoint at this URL; check the URL",
                self.what,
                self.reason()
            ))
        })
    }

    /// The OAuth error code (`error`) when the body is a JSON object with a
    /// string `error`.
    pub fn oauth_error(&self) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        value.get("error")?.as_str().map(str::to_string)
    }

    /// The server's own explanation of a failure, in one short line. Knows
    /// the error shapes of every provider dexcred talks to:
    /// OAuth (`error`, `error_description`), the Basic client-credentials
    /// service (`errorDescription`), Keystone (`{"error":{"message":…}}`),
    /// PCD's resmgr (`{"message":…}`), and non-JSON bodies such as HTML
    /// error pages from a proxy (their `<title>` or text).
    pub fn reason(&self) -> String {
        let text = match serde_json::from_str::<serde_json::Value>(&self.body) {
            Ok(json) => json_reason(&json),
            Err(_) => html_or_text_reason(&self.body),
        };
        let text = one_line(&text);
        let status = format!("HTTP {}", self.status);
        if text.is_empty() {
            status
        } else {
            format!("{status}: {}", truncate(&text, MAX_REASON_CHARS))
        }
    }
}

fn json_reason(json: &serde_json::Value) -> String {
    let s = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    let description = s(json.get("error_description"))
        .or_else(|| s(json.get("errorDescription")))
        .or_else(|| s(json.get("message")));
    match json.get("error") {
        Some(serde_json::Value::String(code)) => match description {
            Some(d) if !d.is_empty() => format!("{code}: {d}"),
            _ => code.clone(),
        },
        Some(serde_json::Value::Object(inner)) => s(inner.get("message"))
            .or_else(|| s(inner.get("title")))
            .unwrap_or_default(),
        _ => description.unwrap_or_default(),
    }
}

fn html_or_text_reason(body: &str) -> String {
    let lower = body.to_ascii_lowercase();
    if let (Some(start), Some(end)) = (lower.find("<title>"), lower.find("</title>"))
        && start + 7 <= end
    {
        return body[start + 7..end].to_string();
    }
    // Strip tags crudely: enough to turn an error page into its words.
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars().take(4096) {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(max).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            body: body.to_string(),
            headers: vec![("X-Subject-Token".into(), "abc".into())],
            what: "POST x".into(),
        }
    }

    #[test]
    fn reasons_for_every_known_error_shape() {
        let cases = [
            (
                r#"{"error":"invalid_request","error_description":"Could not login user"}"#,
                "HTTP 400: invalid_request: Could not login user",
            ),
            (
                r#"{"error":"unsupported_grant_type"}"#,
                "HTTP 400: unsupported_grant_type",
            ),
            (
                r#"{"error":"Forbidden","errorDescription":"permission denied"}"#,
                "HTTP 400: Forbidden: permission denied",
            ),
            (
                r#"{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}"#,
                "HTTP 400: The request you have made requires authentication.",
            ),
            (
                r#"{"message":"bad token","code":401}"#,
                "HTTP 400: bad token",
            ),
            (
                "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
                "HTTP 400: 502 Bad Gateway",
            ),
            (
                "<p>Down\nfor\tmaintenance</p>",
                "HTTP 400: Down for maintenance",
            ),
            ("", "HTTP 400"),
        ];
        for (body, want) in cases {
            assert_eq!(response(400, body).reason(), want, "{body}");
        }
    }

    #[test]
    fn long_reasons_are_cut() {
        let r = response(500, &"x".repeat(1000)).reason();
        assert!(r.chars().count() < MAX_REASON_CHARS + 20);
    }

    #[test]
    fn basic_auth_in_both_encodings() {
        let decoded = |encoding| {
            let b = BasicAuth {
                id: "my client",
                secret: "p:w",
                encoding,
            };
            let bytes = STANDARD
                .decode(b.header().trim_start_matches("Basic "))
                .unwrap();
            String::from_utf8(bytes).unwrap()
        };
        // RFC 6749 §2.3.1: "a b:c" → "a+b%3Ac"
        assert_eq!(decoded(BasicEncoding::Form), "my+client:p%3Aw");
        assert_eq!(decoded(BasicEncoding::Raw), "my client:p:w");
        assert!(BasicAuth::encodings_differ("id", "a+b"));
        assert!(!BasicAuth::encodings_differ("id", "abc-123_x.y*"));
    }

    #[test]
    fn wrong_urls_are_not_refused_logins() {
        for status in [404, 405] {
            let e = response(status, "Not Found").refusal("logging in");
            assert_eq!(e.exit_code(), 4, "{e}");
            assert!(e.message().contains("POST x"), "{e}");
        }
        assert_eq!(response(401, "").refusal("logging in").exit_code(), 3);
    }

    #[test]
    fn echoed_secrets_are_blanked_in_error_bodies_only() {
        let r = response(
            400,
            r#"{"error":"invalid_grant","error_description":"bad password hunter2"}"#,
        )
        .redacted(&["hunter2"]);
        assert!(!r.reason().contains("hunter2"), "{}", r.reason());
        let ok = response(200, r#"{"refresh_token":"hunter2"}"#).redacted(&["hunter2"]);
        assert!(ok.body.contains("hunter2"));
    }

    #[test]
    fn escaped_and_encoded_echoes_are_blanked_too() {
        let secret = "p&ss<w>rd \"q\\ é";
        let go = r#"{"error":"invalid_grant","error_description":"bad: p\u0026ss\u003cw\u003erd \"q\\ é"}"#;
        let python = r#"{"error":{"message":"bad: p&ss<w>rd \"q\\ \u00e9","code":401}}"#;
        let serde = serde_json::json!({"error": "x", "error_description": secret}).to_string();
        let form = "password=p%26ss%3Cw%3Erd+%22q%5C+%C3%A9";
        let html = "<p>bad p&amp;ss&lt;w&gt;rd &quot;q\\ é</p>";
        for body in [go, python, &serde, form, html] {
            let r = response(401, body).redacted(&[secret]);
            let reason = r.reason();
            assert!(!reason.contains(secret), "{body} -> {reason}");
            assert!(reason.contains("[redacted]"), "{body} -> {reason}");
        }
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "https://idp.example/token",
            "http://127.0.0.1:5556/dex/token",
            "http://localhost/token",
            "http://[::1]:8080/token",
        ] {
            assert!(check_transport(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example/token",
            "http://0.0.0.0:9/token",
            "http://10.0.0.1/",
        ] {
            let e = check_transport(bad).unwrap_err();
            assert!(e.message().contains("plain http"), "{e}");
        }
    }

    #[test]
    fn headers_are_case_insensitive() {
        assert_eq!(response(201, "").header("x-subject-token"), Some("abc"));
    }
}
