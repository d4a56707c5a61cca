//! Identity providers: how tokens are obtained, renewed and given back.
//!
//! A provider turns credentials into a [`Grant`] and knows its server's
//! quirks; it knows nothing about the cache, locks or what is printed. The
//! session module (`crate::session`) decides *when* to call it.
//!
//! - [`pcd`]: Platform9 PCD — Keystone password auth, the Dex client secret
//!   from resmgr, then Dex's token endpoint.
//! - [`oauth`]: any OAuth 2.0 / OpenID Connect token endpoint (Keycloak,
//!   client-credentials services), by URL or by discovery.
//! - [`exchange`]: RFC 8693 token exchange (Dex's flavour).
//! - [`login`]: the logins that need a person (browser with PKCE, device
//!   code), which the OAuth provider runs; they live here because they are
//!   grants of this layer (they call [`token_request`] and return a
//!   [`Grant`]).

pub mod exchange;
pub mod login;
pub mod oauth;
pub mod pcd;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;

use crate::cache::{Entry, StoredToken, TokenField, clamp_time};
use crate::error::{Error, Result};
use crate::http::{BasicAuth, BasicEncoding, Http, Response};
use crate::jwt;
use crate::log::Log;
use crate::prompt::Prompter;
use crate::secret::{Secret, Sources};

/// When a token carries no expiry at all (neither `exp` nor `expires_in`),
/// assume this lifetime. Short, so an unknown token is renewed early rather
/// than served after it died.
pub const DEFAULT_LIFETIME_SECS: i64 = 300;

/// Tokens longer than this are refused: no real token is, and a value this
/// large would break kubectl's and git's line-based handling.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Tokens from one successful token-endpoint response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id_token: Option<StoredToken>,
    pub access_token: Option<StoredToken>,
    pub refresh_token: Option<Secret>,
    pub refresh_expires_at: Option<i64>,
}

impl Grant {
    /// The token of the given kind in this response, if the server sent one.
    pub fn token(&self, field: TokenField) -> Option<&StoredToken> {
        match field {
            TokenField::IdToken => self.id_token.as_ref(),
            TokenField::AccessToken => self.access_token.as_ref(),
        }
    }
}

/// Why a renewal with the refresh token did not work, which decides what
/// happens next.
#[derive(Debug)]
pub enum RefreshError {
    /// The server answered and refused (expired, rotated, revoked, upstream
    /// failure): the session is over, log in again.
    Rejected(String),
    /// The server could not be reached or gave an unusable answer: the
    /// refresh token may still be good, so keep it and try again later.
    Unavailable(Error),
}

/// What a logout achieved at the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logout {
    /// The server confirmed the session is over.
    Ended(String),
    /// The provider has no way to end a session remotely.
    NotSupported(String),
    /// The server was asked but did not confirm.
    Failed(String),
}

/// Everything a provider may need from the user, asked for at most once per
/// run and only when actually needed: a cache hit or a successful refresh
/// never reads a password file, runs a password command or prompts.
pub struct Credentials {
    pub password: Sources,
    pub otp: Sources,
    /// Who may be asked, and whether anyone is there: decided by the front
    /// end (kubectl's `spec.interactive`, git's terminal rules, …) and
    /// consulted only when a secret is actually needed, so the cache-hit
    /// path never probes the terminal.
    prompter: Rc<dyn Prompter>,
    /// Bounds password and OTP commands.
    pub timeout: Duration,
    /// Bounds a prompt: how long a person may take to answer
    /// (`--login-timeout`).
    pub prompt_timeout: Duration,
    /// Shown in prompts: "alice@example.com at https://pcd.example".
    pub account: String,
    password_value: RefCell<Option<Secret>>,
}

impl Credentials {
    pub fn new(
        password: Sources,
        otp: Sources,
        prompter: Rc<dyn Prompter>,
        timeout: Duration,
        prompt_timeout: Duration,
        account: String,
    ) -> Credentials {
        Credentials {
            password,
            otp,
            prompter,
            timeout,
            prompt_timeout,
            account,
            password_value: RefCell::new(None),
        }
    }

    /// Whether getting the password means asking a person: no configured
    /// source, and a terminal to ask on.
    pub fn password_needs_prompt(&self) -> bool {
        !self.password.configured()
            && self.password_value.borrow().is_none()
            && self.is_interactive()
    }

    /// Asks the person, bounded by `--login-timeout`.
    pub fn prompt(&self, label: &str) -> Result<Secret> {
        self.prompter.secret(label, self.prompt_timeout)
    }

    /// Shows the person a line (a browser or device login's instructions).
    pub fn show(&self, text: &str) {
        self.prompter.message(text);
    }

    /// Whether a person is there to see a browser or device login's URL
    /// or code and act on it.
    pub fn person_present(&self) -> bool {
        self.prompter.present()
    }

    /// Whether dexcred may ask a person in this run.
    pub fn is_interactive(&self) -> bool {
        self.prompter.available()
    }

    /// Why a password login cannot happen in this run, if it cannot: no
    /// password source and no terminal to ask on.
    pub fn password_unavailable(&self) -> Option<Error> {
        let available = self.password.configured()
            || self.password_value.borrow().is_some()
            || self.is_interactive();
        (!available).then(|| {
            Error::auth(format!(
                "login required for {} and no password is available in this non-interactive run; \
                 set DEXCRED_PASSWORD, --password-file or --password-command, or run `dexcred login` in a terminal",
                self.account
            ))
        })
    }

    /// The password: from the configured source, else a no-echo prompt when
    /// interactive, else an error that says how to provide one.
    pub fn password(&self) -> Result<Secret> {
        if let Some(p) = self.password_value.borrow().as_ref() {
            return Ok(p.clone());
        }
        if let Some(error) = self.password_unavailable() {
            return Err(error);
        }
        let value = match self.password.read(self.timeout, self.is_interactive())? {
            Some(p) => p,
            None => self.prompt(&format!("Password for {}: ", self.account))?,
        };
        if value.expose().is_empty() {
            return Err(Error::auth("the password is empty"));
        }
        *self.password_value.borrow_mut() = Some(value.clone());
        Ok(value)
    }

    /// The one-time code from its configured source, if any.
    pub fn configured_otp(&self) -> Result<Option<Secret>> {
        self.otp.read(self.timeout, self.is_interactive())
    }
}

/// Everything providers share at run time.
pub struct Context<'a> {
    pub http: &'a Http,
    pub log: Log,
    pub credentials: &'a Credentials,
    pub now: i64,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client: `client_id` only.
    None,
    /// `client_id` and `client_secret` as form fields (client_secret_post).
    Post(Secret),
    /// HTTP Basic (client_secret_basic), encoded one of two ways.
    Basic(Secret, BasicEncoding),
}

impl ClientAuth {
    /// Adds the client's form fields to `form` and returns the HTTP Basic
    /// credentials to send, if any.
    pub fn apply<'a>(
        &'a self,
        client_id: &'a str,
        form: &mut Vec<(&'a str, &'a str)>,
    ) -> Option<BasicAuth<'a>> {
        match self {
            ClientAuth::None => {
                form.push(("client_id", client_id));
                None
            }
            ClientAuth::Post(secret) => {
                form.push(("client_id", client_id));
                form.push(("client_secret", secret.expose()));
                None
            }
            ClientAuth::Basic(secret, encoding) => Some(BasicAuth {
                id: client_id,
                secret: secret.expose(),
                encoding: *encoding,
            }),
        }
    }
}

/// A failed call to a token endpoint, before the caller decides what the
/// failure means.
#[derive(Debug)]
pub enum TokenError {
    /// Transport failure or unusable response (see [`Error::kind`]).
    Unavailable(Error),
    /// An HTTP error status with the server's reason.
    Refused(Response),
}

impl TokenError {
    /// The OAuth `error` code when the server sent one.
    pub fn oauth_code(&self) -> Option<String> {
        match self {
            TokenError::Refused(r) => r.oauth_error(),
            TokenError::Unavailable(_) => None,
        }
    }

    /// As a user-facing error: a refusal from the server is `Auth` when it is
    /// a 4xx and `Provider` otherwise.
    pub fn into_error(self, doing: &str) -> Error {
        match self {
            TokenError::Unavailable(e) => e.context(doing),
            TokenError::Refused(r) => r.refusal(doing),
        }
    }

    /// For refreshes: gateway errors mean the server was not really reached,
    /// everything else with a status means the refresh token is done
    /// (PCD's Dex answers 500 when the upstream Keystone session behind the
    /// refresh token has expired).
    pub fn into_refresh_error(self) -> RefreshError {
        match self {
            TokenError::Unavailable(e) => RefreshError::Unavailable(e),
            TokenError::Refused(r) if matches!(r.status, 502..=504) => RefreshError::Unavailable(
                Error::provider(format!("{} failed: {}", r.what, r.reason())),
            ),
            TokenError::Refused(r) => RefreshError::Rejected(r.reason()),
        }
    }
}

/// POSTs a token request and parses a successful answer.
pub fn token_request(
    ctx: &Context<'_>,
    endpoint: &str,
    client_id: &str,
    auth: &ClientAuth,
    fields: &[(&str, &str)],
) -> std::result::Result<Grant, TokenError> {
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    let basic = auth.apply(client_id, &mut form);
    let response = ctx
        .http
        .post_form(endpoint, &form, basic)
        .map_err(TokenError::Unavailable)?;
    if !response.is_success() {
        return Err(TokenError::Refused(response));
    }
    parse_token_response(&response, now_secs()).map_err(TokenError::Unavailable)
}

#[derive(Deserialize)]
struct RawTokenResponse {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<i64>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    refresh_expires_in: Option<i64>,
}

/// `expires_in` is a JSON number by RFC 6749, but some servers send a
/// string or a float; accept those rather than fail a working login.
pub fn lenient_seconds<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<i64>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match value {
        Some(serde_json::Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// Parses a 2xx token response received at `received_at`.
pub fn parse_token_response(response: &Response, received_at: i64) -> Result<Grant> {
    let raw: RawTokenResponse = serde_json::from_str(&response.body).map_err(|_| {
        Error::provider(format!(
            "{} answered {} with a body that is not a JSON token response",
            response.what, response.status
        ))
    })?;
    let expires_in = raw.expires_in.filter(|s| *s > 0);
    let token = |value: Option<String>, name: &str| -> Result<Option<StoredToken>> {
        match value {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => {
                check_token_text(&v, name, &response.what)?;
                Ok(Some(stored_token(v, expires_in, received_at)))
            }
        }
    };
    let id_token = token(raw.id_token, "id_token")?;
    let access_token = token(raw.access_token, "access_token")?;
    if id_token.is_none() && access_token.is_none() {
        return Err(Error::provider(format!(
            "{} answered {} without an access_token or id_token",
            response.what, response.status
        )));
    }
    let refresh_token = match raw.refresh_token.filter(|t| !t.is_empty()) {
        Some(t) => {
            check_token_text(&t, "refresh_token", &response.what)?;
            Some(Secret::new(t))
        }
        None => None,
    };
    Ok(Grant {
        id_token,
        access_token,
        refresh_token,
        refresh_expires_at: raw
            .refresh_expires_in
            .filter(|s| *s > 0)
            .map(|s| clamp_time(received_at.saturating_add(s))),
    })
}

/// A token is handed to kubectl in JSON, to git in a line protocol and to
/// shells in headers: only visible ASCII is safe in all three (RFC 6750's
/// b64token is a subset), and a newline would let a server inject protocol
/// lines.
fn check_token_text(value: &str, name: &str, what: &str) -> Result<()> {
    if value.len() > MAX_TOKEN_BYTES || !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::provider(format!(
            "{what} returned a malformed {name} (too long or not printable ASCII)"
        )));
    }
    Ok(())
}

/// Works out a token's expiry: the earlier of its `exp` claim (when it is
/// a JWT) and `expires_in` counted from when the response arrived, else a
/// short default.
///
/// `exp` is on the server's clock, `expires_in` counts on ours. When the two
/// clocks differ, the earlier expiry is the safe one: with this computer's
/// clock behind the server's, `exp` alone would keep a token in use after
/// the API server (on the server's time) already rejects it. Every time is
/// clamped to what can be stored and shown (see [`clamp_time`]): an
/// `expires_in` of 2^63 must not wrap around to a date in the past.
fn stored_token(value: String, expires_in: Option<i64>, received_at: i64) -> StoredToken {
    let claims = jwt::decode(&value).unwrap_or_default();
    let from_expires_in = expires_in.map(|s| received_at.saturating_add(s));
    let expires_at = clamp_time(match (claims.exp, from_expires_in) {
        (Some(exp), Some(rel)) => exp.min(rel),
        (Some(exp), None) => exp,
        (None, Some(rel)) => rel,
        (None, None) => received_at + DEFAULT_LIFETIME_SECS,
    });
    let issued_at = claims
        .iat
        .map(clamp_time)
        .filter(|iat| *iat <= expires_at && claims.exp.is_some())
        .unwrap_or(received_at);
    StoredToken {
        value: Secret::new(value),
        expires_at,
        issued_at,
    }
}

/// Applies a grant to an entry. Tokens missing from a refresh response keep
/// their previous value (OpenID Connect allows a refresh without a new
/// id_token, and RFC 6749 §6 lets the server keep the refresh token).
pub fn apply_grant(entry: &mut Entry, grant: Grant, now: i64, is_login: bool) {
    if is_login {
        entry.id_token = grant.id_token;
        entry.access_token = grant.access_token;
        entry.refresh_token = grant.refresh_token;
        entry.refresh_expires_at = grant.refresh_expires_at;
        entry.logged_in_at = now;
    } else {
        if grant.id_token.is_some() {
            entry.id_token = grant.id_token;
        }
        if grant.access_token.is_some() {
            entry.access_token = grant.access_token;
        }
        if grant.refresh_token.is_some() {
            entry.refresh_token = grant.refresh_token;
            entry.refresh_expires_at = grant.refresh_expires_at;
        } else if grant.refresh_expires_at.is_some() {
            entry.refresh_expires_at = grant.refresh_expires_at;
        }
    }
    entry.renewed_at = now;
    entry.rejected = false;
}

/// Seconds since the Unix epoch by the system clock.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The provider interface the session module drives.
pub trait Provider {
    /// Gets tokens without a refresh token: a password login or a
    /// client-credentials grant. May record provider state in `entry`
    /// (PCD's client secret, discovered endpoints).
    fn login(&self, ctx: &Context<'_>, entry: &mut Entry) -> Result<Grant>;

    /// Renews with the entry's refresh token.
    fn refresh(
        &self,
        ctx: &Context<'_>,
        entry: &mut Entry,
        refresh_token: &Secret,
    ) -> std::result::Result<Grant, RefreshError>;

    /// Ends the session at the server, where the provider has a way to.
    fn logout(&self, ctx: &Context<'_>, entry: &Entry) -> Logout;

    /// Whether `login` needs the user's password (so a missing password
    /// source is worth reporting before any request is made).
    fn login_needs_password(&self) -> bool;

    /// Whether `login` will wait on a person in this run: a password
    /// prompt, or a browser or device-code login. Such a login is refused
    /// up front in a run nobody watches, and other processes that need a
    /// login wait for it up to `--login-timeout` longer, so N processes
    /// make one prompt (one browser window, one device code).
    fn login_needs_person(&self, credentials: &Credentials) -> bool {
        self.login_needs_password() && credentials.password_needs_prompt()
    }

    /// Whether renewals should use the refresh token at all.
    fn uses_refresh_tokens(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resp(body: serde_json::Value) -> Response {
        Response {
            status: 200,
            body: body.to_string(),
            headers: vec![],
            what: "POST https://idp/token".into(),
        }
    }

    #[test]
    fn expiry_from_exp_claim_or_expires_in_or_default() {
        let jwt = jwt::encode_for_test(&json!({"exp": 2000, "iat": 1000}));
        let g = parse_token_response(
            &resp(json!({"id_token": jwt, "access_token": "opaque", "expires_in": 60})),
            1500,
        )
        .unwrap();
        // The earlier of exp and expires_in: expires_in may describe only
        // the access token, but renewing early is the safe mistake.
        let id = g.id_token.unwrap();
        assert_eq!((id.issued_at, id.expires_at), (1000, 1560));
        let at = g.access_token.unwrap();
        assert_eq!((at.issued_at, at.expires_at), (1500, 1560));
        let jwt = jwt::encode_for_test(&json!({"exp": 2000, "iat": 1000}));
        let g = parse_token_response(&resp(json!({"id_token": jwt})), 1500).unwrap();
        let id = g.id_token.unwrap();
        assert_eq!((id.issued_at, id.expires_at), (1000, 2000));

        let g = parse_token_response(&resp(json!({"access_token": "opaque"})), 1500).unwrap();
        assert_eq!(
            g.access_token.unwrap().expires_at,
            1500 + DEFAULT_LIFETIME_SECS
        );
    }

    #[test]
    fn expires_in_as_string_and_refresh_expiry() {
        let g = parse_token_response(
            &resp(json!({"access_token": "a", "expires_in": "300", "refresh_token": "r", "refresh_expires_in": 1800})),
            100,
        )
        .unwrap();
        assert_eq!(g.access_token.unwrap().expires_at, 400);
        assert_eq!(g.refresh_expires_at, Some(1900));
        assert_eq!(g.refresh_token.unwrap().expose(), "r");
    }

    #[test]
    fn clocks_that_differ_use_the_earlier_expiry() {
        // This computer's clock is 1000 s behind the server's: the token
        // (exp = server time of issue + 3600) dies at our 4600 - 1000.
        let jwt = jwt::encode_for_test(&json!({"exp": 5600, "iat": 2000}));
        let g = parse_token_response(&resp(json!({"id_token": jwt, "expires_in": 3600})), 1000)
            .unwrap();
        assert_eq!(g.id_token.unwrap().expires_at, 4600);
        // Ahead by 1000 s: exp is the earlier one and wins.
        let jwt = jwt::encode_for_test(&json!({"exp": 3600, "iat": 0}));
        let g = parse_token_response(&resp(json!({"id_token": jwt, "expires_in": 3600})), 1000)
            .unwrap();
        assert_eq!(g.id_token.unwrap().expires_at, 3600);
        // Ahead by more than the lifetime: the token is dead on arrival by
        // our clock (the session refuses to hand it out), not revived.
        let jwt = jwt::encode_for_test(&json!({"exp": 1000, "iat": 900}));
        let g =
            parse_token_response(&resp(json!({"id_token": jwt, "expires_in": 100})), 5000).unwrap();
        assert!(!g.id_token.unwrap().is_alive(5000));
    }

    #[test]
    fn extreme_expiries_are_clamped_not_wrapped() {
        let max = crate::cache::MAX_TIME;
        // An exp after year 9999 is stored as the last second of 9999.
        let jwt = jwt::encode_for_test(&json!({"exp": 400_000_000_000_i64, "iat": 1000}));
        let g = parse_token_response(&resp(json!({"id_token": jwt})), 1500).unwrap();
        let t = g.id_token.unwrap();
        assert_eq!((t.expires_at, t.issued_at), (max, 1000));
        assert!(t.is_fresh(1500));
        // expires_in of 2^63 and more: far future, never negative.
        for huge in [
            json!(9_223_372_036_854_775_807_i64),
            json!(18_446_744_073_709_551_615_u64),
            json!(1e300),
        ] {
            let g = parse_token_response(
                &resp(json!({"access_token": "a", "expires_in": huge, "refresh_expires_in": huge})),
                1500,
            )
            .unwrap();
            assert_eq!(g.access_token.unwrap().expires_at, max, "{huge}");
            assert_eq!(g.refresh_expires_at, Some(max), "{huge}");
        }
        // iat and exp far in the past or negative: expired, no overflow.
        let jwt = jwt::encode_for_test(&json!({"exp": i64::MIN, "iat": i64::MIN}));
        let t = parse_token_response(&resp(json!({"id_token": jwt})), 1500)
            .unwrap()
            .id_token
            .unwrap();
        assert!(!t.is_alive(1500));
        assert_eq!(t.renew_at(), 0);
    }

    #[test]
    fn malformed_responses_are_provider_errors() {
        for body in [
            json!({}),
            json!({"token_type": "bearer"}),
            json!({"access_token": "has space"}),
            json!({"access_token": "line\nbreak"}),
            json!({"access_token": "a", "refresh_token": "r\u{0}"}),
        ] {
            let e = parse_token_response(&resp(body.clone()), 1).unwrap_err();
            assert_eq!(e.kind(), crate::error::Kind::Provider, "{body}");
        }
        let mut r = resp(json!({}));
        r.body = "<html>oops</html>".into();
        assert!(parse_token_response(&r, 1).is_err());
    }

    #[test]
    fn refresh_keeps_missing_tokens_login_replaces_all() {
        let key = crate::cache::Key {
            provider: crate::cache::ProviderKind::Issuer,
            url: "u".into(),
            grant: crate::cache::Grant::Password,
            username: None,
            user_domain: None,
            project: None,
            client_id: "c".into(),
            connector_id: None,
            scope: None,
            extra_params: vec![],
            exchange: None,
        };
        let tok = |v: &str| StoredToken {
            value: Secret::new(v),
            expires_at: 10,
            issued_at: 0,
        };
        let mut e = Entry::new(key, 0);
        e.id_token = Some(tok("id1"));
        e.refresh_token = Some(Secret::new("r1"));
        let g = Grant {
            id_token: None,
            access_token: Some(tok("at2")),
            refresh_token: None,
            refresh_expires_at: None,
        };
        apply_grant(&mut e, g.clone(), 5, false);
        assert_eq!(e.id_token.as_ref().unwrap().value.expose(), "id1");
        assert_eq!(e.refresh_token.as_ref().unwrap().expose(), "r1");
        apply_grant(&mut e, g, 6, true);
        assert!(e.id_token.is_none() && e.refresh_token.is_none());
        assert_eq!(e.logged_in_at, 6);
    }
}
