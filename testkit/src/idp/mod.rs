//! `FakeIdp`: one loopback server playing every identity provider of the
//! reference documents — PCD (Keystone + resmgr dexclients + Dex), Keycloak
//! (OCP IAM) and the Basic client-credentials server.
//!
//! Paths are the real ones, so a client only needs the base URL:
//!
//! | endpoint | path |
//! |---|---|
//! | Keystone | `POST /keystone/v3/auth/tokens` |
//! | dexclients | `GET /resmgr/v2/dexclients` |
//! | Dex | `POST /dex/token`, `GET /dex/.well-known/openid-configuration` |
//! | Keycloak | `/auth/realms/{realm}/protocol/openid-connect/{token,logout,revoke}`, `/auth/realms/{realm}/.well-known/openid-configuration` (also without `/auth`) |
//! | Basic client credentials | `POST /api/id/v1/auth/token` |
//! | GitHub Actions ID token stand-in | `GET /_github/idtoken` (Bearer request token) |
//! | SSO issuer (browser and device logins) | `/sso/{authorize,token,device/code,revoke}`, `/sso/.well-known/openid-configuration` |
//! | testkit counters | `GET /_testkit/counts` (JSON [`Counts`]) |

mod basic_cc;
mod config;
mod dex;
mod exchange;
mod jwt;
mod keycloak;
mod keystone;
mod sso;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::ServerConfig;

pub use config::{
    ALICE, ALICE_PASSWORD, Client, Counts, DEX_CLIENT, Fault, IdpConfig, KEYCLOAK_PUBLIC_CLIENT,
    Lifetimes, OTHER_DEX_CLIENT, RecordedRequest, SERVICE_CLIENT, SERVICE_CLIENT_SECRET, User,
};
pub use exchange::{GITHUB_DEFAULT_AUDIENCE, GITHUB_SUBJECT};
pub use jwt::{decode_payload, unsigned_jwt};
pub use sso::{BrowserMode, DeviceAnswer};

use crate::http::{Handler, Reply, Request, Server};
use crate::util::{lock, random_token};
use state::{RequestKind, State};

/// A running fake identity provider. Cloning is cheap and shares the server;
/// it stops when the last clone is dropped.
#[derive(Clone)]
pub struct FakeIdp {
    core: Arc<Core>,
    server: Arc<Server>,
}

impl std::fmt::Debug for FakeIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeIdp")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

/// The state shared with the request handler. The handler holds only this,
/// never the `Server`, so dropping the last `FakeIdp` really stops it.
struct Core {
    state: Mutex<State>,
}

impl FakeIdp {
    /// Starts a plain-HTTP IdP.
    pub fn start(config: IdpConfig) -> FakeIdp {
        FakeIdp::start_with(config, None)
    }

    /// Starts an HTTPS IdP with `tls` (see [`crate::tls::TestCa`]).
    pub fn start_tls(config: IdpConfig, tls: Arc<ServerConfig>) -> FakeIdp {
        FakeIdp::start_with(config, Some(tls))
    }

    /// `FakeIdp::start(IdpConfig::pcd())`: alice, the `kubernetes` Dex
    /// client, Keycloak `ocp`, the service client.
    pub fn pcd() -> FakeIdp {
        FakeIdp::start(IdpConfig::pcd())
    }

    fn start_with(config: IdpConfig, tls: Option<Arc<ServerConfig>>) -> FakeIdp {
        let core = Arc::new(Core {
            state: Mutex::new(State::new(config)),
        });
        let handler: Handler = {
            let core = Arc::clone(&core);
            Arc::new(move |req: &Request| handle(&core, req))
        };
        let server = Server::start(handler, tls);
        lock(&core.state).base_url = server.url();
        FakeIdp {
            core,
            server: Arc::new(server),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.core.state)
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `{url}/dex/token`.
    pub fn dex_token_url(&self) -> String {
        format!("{}/dex/token", self.url())
    }

    /// `{url}/auth/realms/{realm}/protocol/openid-connect/token`.
    pub fn keycloak_token_url(&self, realm: &str) -> String {
        format!(
            "{}/auth/realms/{realm}/protocol/openid-connect/token",
            self.url()
        )
    }

    /// `{url}/api/id/v1/auth/token`.
    pub fn client_credentials_url(&self) -> String {
        format!("{}/api/id/v1/auth/token", self.url())
    }

    /// Adds (or replaces, by username) a user.
    pub fn add_user(&self, user: User) {
        self.state().add_user(user);
    }

    /// Adds (or replaces) a client; `None` makes it public.
    pub fn add_client(&self, id: &str, secret: Option<&str>) {
        let client = match secret {
            Some(secret) => Client::confidential(id, secret),
            None => Client::public(id),
        };
        self.state().clients.insert(id.to_owned(), client);
    }

    /// The current secret of client `id`.
    pub fn client_secret(&self, id: &str) -> Option<String> {
        self.state().clients.get(id)?.secret.clone()
    }

    /// Gives client `id` a new random secret (the old one stops working at
    /// once, dexclients lists the new one) and returns it.
    pub fn rotate_client_secret(&self, id: &str) -> Option<String> {
        let mut state = self.state();
        let client = state.clients.get_mut(id)?;
        let secret = random_token(24);
        client.secret = Some(secret.clone());
        Some(secret)
    }

    /// Limits the scopes the Basic client-credentials server grants `id`
    /// (`None`: any). Others are answered 403.
    pub fn set_client_scopes(&self, id: &str, scopes: Option<&[&str]>) {
        if let Some(client) = self.state().clients.get_mut(id) {
            client.allowed_scopes = scopes.map(|s| s.iter().map(|x| (*x).to_owned()).collect());
        }
    }

    /// Lifetime of tokens issued from now on: Dex id/access tokens,
    /// Keycloak access tokens and Basic client-credentials tokens.
    pub fn set_token_lifetime(&self, d: Duration) {
        let mut state = self.state();
        state.lifetimes.dex_id_token = d;
        state.lifetimes.keycloak_access = d;
        state.lifetimes.client_credentials = d;
    }

    /// Refresh-token lifetime: Dex's absolute lifetime (counted from the
    /// original login, across rotations) and Keycloak's refresh/idle timeout.
    pub fn set_refresh_lifetime(&self, d: Duration) {
        let mut state = self.state();
        state.lifetimes.dex_refresh_absolute = Some(d);
        state.lifetimes.keycloak_refresh = d;
    }

    /// Replaces all lifetimes.
    pub fn set_lifetimes(&self, lifetimes: Lifetimes) {
        self.state().lifetimes = lifetimes;
    }

    /// The lifetimes in force.
    pub fn lifetimes(&self) -> Lifetimes {
        self.state().lifetimes.clone()
    }

    /// Makes every Dex refresh fail with 500 `{"error":"invalid_request"}`,
    /// as PCD does once the Keystone token saved at login has expired.
    pub fn set_fail_upstream_refresh(&self, fail: bool) {
        self.state().knobs.fail_upstream_refresh = fail;
    }

    /// Dex refresh-token rotation (default on). Off: a refresh returns the
    /// same refresh token.
    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        self.state().knobs.dex_rotate = rotate;
    }

    /// Keycloak's "Revoke Refresh Token" realm setting (default off). On:
    /// each refresh token works once; reuse fails and kills the session.
    pub fn set_keycloak_revoke_refresh_token(&self, on: bool) {
        self.state().knobs.kc_revoke_refresh = on;
    }

    /// Keycloak per-user session limit (default 5).
    pub fn set_max_sessions(&self, n: usize) {
        self.state().knobs.max_sessions = n;
    }

    /// Delays every IdP response by `d` (zero: off).
    pub fn set_delay(&self, d: Duration) {
        self.state().knobs.delay = d;
    }

    /// Moves the IdP's clock forward: tokens expire without the test
    /// sleeping. New tokens get `iat`/`exp` on the shifted clock.
    pub fn advance_clock(&self, d: Duration) {
        self.state().clock_offset += d;
    }

    /// Kills every refresh token of `username`: Dex chains are deleted (→
    /// "invalid or already claimed"), Keycloak sessions end (→ "Session not
    /// active", and their access tokens become invalid).
    pub fn revoke_refresh_tokens(&self, username: &str) {
        let mut state = self.state();
        state.dex_refresh.retain(|_, r| r.username != username);
        state.end_sessions_of(username);
    }

    /// Revokes one token: an access/id token becomes invalid, a Dex or
    /// Keycloak refresh token stops working (a Keycloak one ends its
    /// session).
    pub fn revoke_token(&self, token: &str) {
        let mut state = self.state();
        if let Some(t) = state.tokens.get_mut(token) {
            t.revoked = true;
        }
        if let Some(r) = state.kc_refresh.remove(token)
            && let Some(s) = state.sessions.get_mut(&r.session)
        {
            s.ended = true;
        }
        let (id, _) = dex::decode_refresh(token);
        state.dex_refresh.remove(&id);
    }

    /// Whether `token` is an id/access token issued here that is neither
    /// expired nor revoked and whose session (Keycloak) is alive. Used by the
    /// Kubernetes stub and the git server.
    pub fn is_valid_token(&self, token: &str) -> bool {
        self.state().is_valid_token(token)
    }

    /// Makes a token issued by another (real) identity provider valid here
    /// for `lifetime`, for user `username`: lets the Kubernetes stub and the
    /// git server stand in for servers that trust that provider.
    pub fn trust_token(&self, token: &str, username: &str, lifetime: Duration) {
        self.state()
            .remember_token(token, Some(username), lifetime, None);
    }

    /// The user an access/id token was issued to (`None` for unknown tokens
    /// and client-credentials tokens).
    pub fn token_user(&self, token: &str) -> Option<String> {
        self.state().tokens.get(token)?.username.clone()
    }

    /// Mints a valid Dex id_token for `username` directly (no HTTP), for
    /// tests of the kube stub or git server that need just a token.
    pub fn mint_id_token(&self, username: &str) -> Option<String> {
        let mut state = self.state();
        let account = state.account(username)?.clone();
        let scopes: Vec<String> = ["openid", "groups", "email", "profile"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let lifetime = state.lifetimes.dex_id_token;
        Some(dex::mint(
            &mut state, &account, DEX_CLIENT, &scopes, lifetime,
        ))
    }

    /// Adds a Dex connector that verifies subject tokens from the test CI
    /// issuer requiring `aud == audience` (`token_exchange: false`: a
    /// connector that exists but does not support the grant).
    pub fn add_exchange_connector(&self, id: &str, audience: &str, token_exchange: bool) {
        self.state().ci.connectors.insert(
            id.to_owned(),
            exchange::Connector {
                audience: audience.to_owned(),
                token_exchange,
            },
        );
    }

    /// The test CI issuer's `iss` (`{url}/_ci`).
    pub fn ci_issuer(&self) -> String {
        exchange::ci_issuer(&self.state())
    }

    /// A subject token from the CI issuer (ES256-signed), for `sub` and
    /// `aud`, valid for `lifetime` on the IdP's clock; `Duration::ZERO`
    /// gives one that has just expired.
    pub fn mint_ci_token(&self, sub: &str, aud: &str, lifetime: Duration) -> String {
        exchange::mint_ci_token(&self.state(), sub, aud, lifetime)
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_URL` for the GitHub Actions stand-in.
    pub fn github_actions_url(&self) -> String {
        format!("{}{}?api-version=2.0", self.url(), exchange::GITHUB_PATH)
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN` the stand-in accepts.
    pub fn github_request_token(&self) -> String {
        self.state().ci.github_request_token.clone()
    }

    /// Live Keycloak sessions of `username`.
    pub fn active_sessions(&self, username: &str) -> usize {
        self.state().active_sessions(username)
    }

    /// Live Dex refresh tokens (chains) of `username`, across clients.
    pub fn dex_refresh_tokens(&self, username: &str) -> usize {
        let state = self.state();
        state
            .dex_refresh
            .values()
            .filter(|r| r.username == username)
            .count()
    }

    /// `{url}/sso`: the issuer for browser and device logins.
    pub fn sso_issuer(&self) -> String {
        format!("{}/sso", self.url())
    }

    /// What the SSO authorization endpoint does with the next requests.
    pub fn set_browser_mode(&self, mode: BrowserMode) {
        self.state().sso.browser = mode;
    }

    /// Answers for the next device-code polls, in order (then: approve).
    pub fn script_device(&self, answers: &[DeviceAnswer]) {
        self.state().sso.script = answers.iter().copied().collect();
    }

    /// `interval` and `expires_in` of device authorizations (default 5 and
    /// 600 seconds).
    pub fn set_device_timing(&self, interval_secs: u64, expires_in_secs: u64) {
        let mut state = self.state();
        state.sso.interval = interval_secs;
        state.sso.expires_in = expires_in_secs;
    }

    /// Leave the id_token out of SSO refresh responses (as Keycloak may).
    pub fn set_omit_id_token_on_refresh(&self, omit: bool) {
        self.state().sso.omit_id_token_on_refresh = omit;
    }

    /// When each device-code poll arrived.
    pub fn device_poll_times(&self) -> Vec<std::time::Instant> {
        self.state().sso.poll_times.clone()
    }

    /// Request counters.
    pub fn counts(&self) -> Counts {
        self.state().counts.clone()
    }

    /// Zeroes the counters.
    pub fn reset_counts(&self) {
        self.state().counts = Counts::default();
    }

    /// Queues a fault (see [`Fault`]). Faults are consulted in the order
    /// they were injected.
    pub fn inject(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// Drops all pending faults.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Every request seen so far (the last 10 000).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }
}

/// The request handler: record, consult faults, route, apply delay.
fn handle(core: &Core, req: &Request) -> Reply {
    let mut state = lock(&core.state);
    let kind = RequestKind::of(req);
    state.record(req, kind);
    let fault = state.take_fault(&req.path);
    let reply = match fault {
        Some(fault) => {
            state.counts.faults += 1;
            fault.resolve_passthrough(|| route_counted(&mut state, req, kind))
        }
        None => route_counted(&mut state, req, kind),
    };
    let delay = state.knobs.delay;
    drop(state);
    if delay.is_zero() {
        reply
    } else {
        Reply::delay(delay, reply)
    }
}

/// Routes and counts rejected refreshes.
fn route_counted(state: &mut State, req: &Request, kind: RequestKind) -> Reply {
    let reply = route(state, req);
    if kind == RequestKind::RefreshGrant && reply.status().is_none_or(|s| s >= 400) {
        state.counts.refresh_rejected += 1;
    }
    reply
}

fn route(state: &mut State, req: &Request) -> Reply {
    let path = req.path.as_str();
    match path {
        "/keystone/v3/auth/tokens" => keystone::auth_tokens(state, req),
        "/resmgr/v2/dexclients" => keystone::dexclients(state, req),
        "/dex/token" => dex::token(state, req),
        "/dex/.well-known/openid-configuration" => dex::discovery(state),
        exchange::GITHUB_PATH => exchange::github_id_token(state, req),
        "/api/id/v1/auth/token" => basic_cc::token(state, req),
        p if p.starts_with("/sso/") => sso::route(state, req, &p["/sso/".len()..]),
        p if p.starts_with("/api/id/") => basic_cc::not_found(),
        "/_testkit/counts" => Reply::json(200, &serde_json::json!(state.counts)),
        _ => match keycloak::parse_path(path) {
            Some(kc) => keycloak::route(state, req, &kc),
            None => Reply::text(404, "text/plain; charset=utf-8", "404 page not found\n"),
        },
    }
}
