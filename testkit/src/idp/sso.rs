//! A single-sign-on issuer under `/sso` for browser and device logins:
//! OpenID discovery, the authorization endpoint (authorization code + PKCE
//! S256 only), the token endpoint (authorization_code, refresh_token with
//! rotation, RFC 8628 device_code), the device authorization endpoint and
//! RFC 7009 revocation. Status codes and error bodies follow RFC 6749 §5.2
//! and RFC 8628 §3.5, as Dex, Keycloak and oidc-provider send them.
//!
//! The "person" is scripted: the authorization endpoint logs alice in at
//! once and redirects according to [`BrowserMode`] (so any HTTP client that
//! follows redirects, e.g. curl, can play the browser), and device polls
//! are answered from a queue of [`DeviceAnswer`]s (approve when empty).
//! The real-server, real-browser counterpart is `tests/oidc`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::config::ALICE;
use super::jwt;
use super::state::State;
use crate::http::{Reply, Request};
use crate::util::{random_token, url_encode};

/// What the authorization endpoint does with a valid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BrowserMode {
    /// Log alice in and redirect with `code` and `state`.
    #[default]
    Approve,
    /// The user refuses consent: `error=access_denied`.
    Deny,
    /// Redirect with a `state` that is not the one sent.
    TamperState,
    /// Redirect with the right `state` but no `code`.
    NoCode,
    /// Approve, but put another `nonce` in the id_token.
    WrongNonce,
}

/// One scripted answer to a device-code poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAnswer {
    Pending,
    SlowDown,
    Denied,
    Expired,
    /// Tokens (also the answer once the script is used up).
    Approve,
    /// Close the connection without answering (the server went away).
    Close,
}

#[derive(Debug, Clone)]
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    scope: String,
}

#[derive(Debug, Clone)]
struct RefreshGrant {
    client_id: String,
    scope: String,
}

/// The issuer's state inside the IdP's mutex.
#[derive(Debug)]
pub(crate) struct SsoState {
    pub browser: BrowserMode,
    pub script: VecDeque<DeviceAnswer>,
    pub interval: u64,
    pub expires_in: u64,
    pub omit_id_token_on_refresh: bool,
    pub poll_times: Vec<Instant>,
    codes: HashMap<String, PendingCode>,
    devices: HashMap<String, (String, String)>,
    refresh: HashMap<String, RefreshGrant>,
}

impl Default for SsoState {
    fn default() -> SsoState {
        SsoState {
            browser: BrowserMode::Approve,
            script: VecDeque::new(),
            interval: 5,
            expires_in: 600,
            omit_id_token_on_refresh: false,
            poll_times: Vec::new(),
            codes: HashMap::new(),
            devices: HashMap::new(),
            refresh: HashMap::new(),
        }
    }
}

fn issuer(state: &State) -> String {
    format!("{}/sso", state.base_url)
}

fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn field<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// Routes `/sso/…`.
pub(crate) fn route(state: &mut State, req: &Request, rest: &str) -> Reply {
    match (req.method.as_str(), rest) {
        ("GET", ".well-known/openid-configuration") => discovery(state),
        ("GET", "authorize") => authorize(state, req),
        ("POST", "token") => token(state, req),
        ("POST", "device/code") => device_authorization(state, req),
        ("POST", "revoke") => revoke(state, req),
        _ => Reply::text(404, "text/plain; charset=utf-8", "404 page not found\n"),
    }
}

fn discovery(state: &State) -> Reply {
    let iss = issuer(state);
    Reply::json(
        200,
        &json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/authorize"),
            "token_endpoint": format!("{iss}/token"),
            "device_authorization_endpoint": format!("{iss}/device/code"),
            "revocation_endpoint": format!("{iss}/revoke"),
            "jwks_uri": format!("{iss}/keys"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "offline_access", "email", "profile"]
        }),
    )
}

/// Loopback redirect URIs on any port (RFC 8252 §7.3).
fn loopback_redirect(uri: &str) -> bool {
    ["http://127.0.0.1:", "http://[::1]:", "http://localhost:"]
        .iter()
        .any(|p| uri.starts_with(p))
}

/// `GET /sso/authorize`: problems with the client or redirect URI get an
/// error page (never a redirect, RFC 6749 §4.1.2.1); everything else
/// redirects back.
fn authorize(state: &mut State, req: &Request) -> Reply {
    let q = req.query_pairs();
    let client_id = field(&q, "client_id");
    let redirect_uri = field(&q, "redirect_uri");
    if !state.clients.contains_key(client_id) {
        return Reply::text(400, "text/html", "<h1>Unknown client</h1>");
    }
    if !loopback_redirect(redirect_uri) {
        return Reply::text(400, "text/html", "<h1>Invalid redirect_uri</h1>");
    }
    let st = field(&q, "state").to_owned();
    let back = |params: &[(&str, &str)]| {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", url_encode(v)))
            .collect();
        Reply::new(302).with_header("Location", &format!("{redirect_uri}/?{}", query.join("&")))
    };
    let problem = if field(&q, "response_type") != "code" {
        Some(("unsupported_response_type", "only code is supported"))
    } else if field(&q, "code_challenge_method") != "S256" || field(&q, "code_challenge").is_empty()
    {
        Some(("invalid_request", "PKCE with S256 is required"))
    } else {
        None
    };
    if let Some((error, description)) = problem {
        return back(&[
            ("error", error),
            ("error_description", description),
            ("state", &st),
        ]);
    }
    let mode = state.sso.browser;
    match mode {
        BrowserMode::Deny => back(&[
            ("error", "access_denied"),
            ("error_description", "End-User aborted interaction"),
            ("state", &st),
        ]),
        BrowserMode::TamperState => back(&[("code", "forged-code"), ("state", "tampered")]),
        BrowserMode::NoCode => back(&[("state", &st)]),
        BrowserMode::Approve | BrowserMode::WrongNonce => {
            let code = random_token(24);
            let nonce = match (mode, field(&q, "nonce")) {
                (_, "") => None,
                (BrowserMode::WrongNonce, _) => Some("not-your-nonce".to_owned()),
                (_, n) => Some(n.to_owned()),
            };
            state.sso.codes.insert(
                code.clone(),
                PendingCode {
                    client_id: client_id.to_owned(),
                    redirect_uri: redirect_uri.to_owned(),
                    challenge: field(&q, "code_challenge").to_owned(),
                    nonce,
                    scope: field(&q, "scope").to_owned(),
                },
            );
            back(&[("code", &code), ("state", &st)])
        }
    }
}

/// Client authentication: Basic or form fields; public clients send only
/// `client_id`.
fn client(state: &State, req: &Request, form: &[(String, String)]) -> Result<String, Reply> {
    let (id, secret) = match req.basic_auth() {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            field(form, "client_id").to_owned(),
            form.iter()
                .find(|(k, _)| k == "client_secret")
                .map(|(_, v)| v.clone()),
        ),
    };
    let ok = state.clients.get(&id).is_some_and(|c| match &c.secret {
        None => true,
        Some(expected) => secret.as_deref() == Some(expected.as_str()),
    });
    if ok {
        Ok(id)
    } else {
        Err(oauth_error(
            401,
            "invalid_client",
            "Invalid client credentials.",
        ))
    }
}

fn token(state: &mut State, req: &Request) -> Reply {
    let form = req.form();
    let client_id = match client(state, req, &form) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    match field(&form, "grant_type") {
        "authorization_code" => code_grant(state, &form, &client_id),
        "refresh_token" => refresh_grant(state, &form, &client_id),
        "urn:ietf:params:oauth:grant-type:device_code" => device_poll(state, &form, &client_id),
        _ => oauth_error(400, "unsupported_grant_type", "unsupported grant_type"),
    }
}

fn code_grant(state: &mut State, form: &[(String, String)], client_id: &str) -> Reply {
    // Codes are single-use: taken out whatever happens next.
    let Some(pending) = state.sso.codes.remove(field(form, "code")) else {
        return oauth_error(400, "invalid_grant", "grant request is invalid");
    };
    if pending.client_id != client_id || pending.redirect_uri != field(form, "redirect_uri") {
        return oauth_error(400, "invalid_grant", "grant request is invalid");
    }
    let verifier = field(form, "code_verifier");
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    if verifier.len() < 43 || URL_SAFE_NO_PAD.encode(digest.as_ref()) != pending.challenge {
        return oauth_error(400, "invalid_grant", "PKCE verification failed");
    }
    tokens(
        state,
        client_id,
        &pending.scope,
        pending.nonce.as_deref(),
        true,
    )
}

fn refresh_grant(state: &mut State, form: &[(String, String)], client_id: &str) -> Reply {
    let presented = field(form, "refresh_token");
    match state.sso.refresh.get(presented) {
        Some(grant) if grant.client_id == client_id => {}
        _ => return oauth_error(400, "invalid_grant", "grant request is invalid"),
    }
    let Some(grant) = state.sso.refresh.remove(presented) else {
        return oauth_error(400, "invalid_grant", "grant request is invalid");
    };
    let with_id_token = !state.sso.omit_id_token_on_refresh;
    tokens(state, client_id, &grant.scope, None, with_id_token)
}

fn device_authorization(state: &mut State, req: &Request) -> Reply {
    let form = req.form();
    let client_id = match client(state, req, &form) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let device_code = random_token(32);
    let user_code = "WDJB-MJHT";
    state.sso.devices.insert(
        device_code.clone(),
        (client_id, field(&form, "scope").to_owned()),
    );
    let iss = issuer(state);
    Reply::json(
        200,
        &json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": format!("{iss}/device"),
            "verification_uri_complete": format!("{iss}/device?user_code={user_code}"),
            "expires_in": state.sso.expires_in,
            "interval": state.sso.interval,
        }),
    )
}

fn device_poll(state: &mut State, form: &[(String, String)], client_id: &str) -> Reply {
    let code = field(form, "device_code");
    let scope = match state.sso.devices.get(code) {
        Some((owner, scope)) if owner == client_id => scope.clone(),
        _ => return oauth_error(400, "invalid_grant", "grant request is invalid"),
    };
    state.sso.poll_times.push(Instant::now());
    let answer = state
        .sso
        .script
        .pop_front()
        .unwrap_or(DeviceAnswer::Approve);
    let pending = |error: &str, description: &str| oauth_error(400, error, description);
    match answer {
        DeviceAnswer::Pending => pending(
            "authorization_pending",
            "authorization request is still pending",
        ),
        DeviceAnswer::SlowDown => pending("slow_down", "you are polling too fast"),
        DeviceAnswer::Denied => {
            state.sso.devices.remove(code);
            pending("access_denied", "End-User aborted interaction")
        }
        DeviceAnswer::Expired => {
            state.sso.devices.remove(code);
            pending("expired_token", "device code is expired")
        }
        DeviceAnswer::Close => Reply::close(),
        DeviceAnswer::Approve => {
            state.sso.devices.remove(code);
            tokens(state, client_id, &scope, None, true)
        }
    }
}

fn revoke(state: &mut State, req: &Request) -> Reply {
    let form = req.form();
    if let Err(reply) = client(state, req, &form) {
        return reply;
    }
    let token = field(&form, "token");
    state.sso.refresh.remove(token);
    if let Some(t) = state.tokens.get_mut(token) {
        t.revoked = true;
    }
    Reply::new(200)
}

/// A token response for alice: a JWT access token (accepted by the
/// Kubernetes stub and the git server), an id_token with the nonce when
/// asked, and a rotating refresh token with `offline_access`.
fn tokens(
    state: &mut State,
    client_id: &str,
    scope: &str,
    nonce: Option<&str>,
    with_id_token: bool,
) -> Reply {
    let Some(account) = state.account(ALICE).cloned() else {
        return oauth_error(400, "invalid_grant", "unknown user");
    };
    let lifetime: Duration = state.lifetimes.dex_id_token;
    let iss = issuer(state);
    let claims = |extra: &[(&str, Value)]| {
        let mut c = jwt::base_claims(
            &iss,
            &account.keycloak_id,
            client_id.into(),
            state.now(),
            lifetime,
        );
        c.extend(jwt::user_claims(&account));
        for (k, v) in extra {
            c.insert((*k).to_owned(), v.clone());
        }
        jwt::sign(c)
    };
    let access_token = claims(&[("scope", scope.into())]);
    let id_token = with_id_token.then(|| match nonce {
        Some(n) => claims(&[("nonce", n.into())]),
        None => claims(&[]),
    });
    let user = account.user.username.clone();
    state.remember_token(&access_token, Some(&user), lifetime, None);
    if let Some(t) = &id_token {
        state.remember_token(t, Some(&user), lifetime, None);
    }
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "scope": scope,
    });
    if let Some(t) = id_token {
        body["id_token"] = t.into();
    }
    if scope.split(' ').any(|s| s == "offline_access") {
        let refresh = random_token(32);
        state.sso.refresh.insert(
            refresh.clone(),
            RefreshGrant {
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
            },
        );
        body["refresh_token"] = refresh.into();
    }
    Reply::json(200, &body)
}
