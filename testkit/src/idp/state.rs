//! The IdP's mutable state: accounts, issued tokens, refresh chains,
//! sessions and counters. Everything sits behind one mutex in `FakeIdp`, so
//! each request is handled atomically — two refreshes racing on one token
//! see exactly one winner, as with the real servers' storage.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use super::config::{Client, Counts, Fault, IdpConfig, Lifetimes, RecordedRequest, User};
use crate::http::{Reply, Request};
use crate::util::{random_token, uuid_v4};

/// Most requests kept for [`super::FakeIdp::requests`]; older ones are
/// dropped so a long-running `fake-idp` does not grow without bound.
const MAX_RECORDED: usize = 10_000;

/// A user plus the ids each flavour derives for it.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub user: User,
    /// Keystone user id (32 hex digits).
    pub keystone_id: String,
    /// Keycloak user id (UUID), also its `sub`.
    pub keycloak_id: String,
}

/// A Keystone token.
#[derive(Debug, Clone)]
pub(crate) struct KeystoneToken {
    pub expires_at: SystemTime,
}

/// An access or id token handed out; looked up by its exact text.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    pub username: Option<String>,
    pub expires_at: SystemTime,
    /// The Keycloak session it belongs to, if any.
    pub session: Option<String>,
    pub revoked: bool,
}

/// A Dex refresh token chain (Dex's `storage.RefreshToken`): the presented
/// token names the chain id and must carry the chain's current secret.
#[derive(Debug, Clone)]
pub(crate) struct DexRefresh {
    pub token: String,
    pub client_id: String,
    pub username: String,
    pub scopes: Vec<String>,
    pub created_at: SystemTime,
    pub last_used: SystemTime,
}

/// A Keycloak refresh token.
#[derive(Debug, Clone)]
pub(crate) struct KcRefresh {
    pub session: String,
    pub client_id: String,
    pub expires_at: SystemTime,
    /// Already exchanged once (matters only with revoke-refresh-token on).
    pub used: bool,
}

/// A Keycloak user session (one per password login).
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub username: String,
    pub realm: String,
    pub scope: String,
    pub last_refresh: SystemTime,
    pub ended: bool,
    /// Client session detached after refresh-token reuse was detected.
    pub detached: bool,
}

/// Settings that tests flip at runtime.
#[derive(Debug, Clone)]
pub(crate) struct Knobs {
    pub realms: Vec<String>,
    pub max_sessions: usize,
    pub dex_rotate: bool,
    pub kc_revoke_refresh: bool,
    pub dex_keystone_connector: bool,
    pub fail_upstream_refresh: bool,
    pub delay: Duration,
}

#[derive(Debug)]
pub(crate) struct State {
    /// `http(s)://127.0.0.1:PORT`, set right after the server binds.
    pub base_url: String,
    pub accounts: Vec<Account>,
    pub clients: BTreeMap<String, Client>,
    pub lifetimes: Lifetimes,
    pub knobs: Knobs,
    /// Added to the wall clock: lets tests expire tokens without sleeping.
    pub clock_offset: Duration,
    pub keystone_tokens: HashMap<String, KeystoneToken>,
    pub tokens: HashMap<String, IssuedToken>,
    /// Dex refresh chains by chain id.
    pub dex_refresh: HashMap<String, DexRefresh>,
    /// Keycloak refresh tokens by their text.
    pub kc_refresh: HashMap<String, KcRefresh>,
    /// Keycloak sessions by id (`session_state`).
    pub sessions: HashMap<String, Session>,
    pub counts: Counts,
    pub faults: Vec<Fault>,
    pub requests: Vec<RecordedRequest>,
    /// The CI issuer and the Dex connectors that trust it (token exchange).
    pub ci: super::exchange::Ci,
    /// The browser/device-login issuer under `/sso`.
    pub sso: super::sso::SsoState,
}

impl State {
    pub fn new(config: IdpConfig) -> State {
        let mut state = State {
            base_url: String::new(),
            accounts: Vec::new(),
            clients: BTreeMap::new(),
            lifetimes: config.lifetimes,
            knobs: Knobs {
                realms: config.realms,
                max_sessions: config.max_sessions,
                dex_rotate: config.dex_rotate_refresh_tokens,
                kc_revoke_refresh: config.keycloak_revoke_refresh_token,
                dex_keystone_connector: config.dex_keystone_connector,
                fail_upstream_refresh: config.fail_upstream_refresh,
                delay: config.delay,
            },
            clock_offset: Duration::ZERO,
            keystone_tokens: HashMap::new(),
            tokens: HashMap::new(),
            dex_refresh: HashMap::new(),
            kc_refresh: HashMap::new(),
            sessions: HashMap::new(),
            counts: Counts::default(),
            faults: Vec::new(),
            requests: Vec::new(),
            ci: super::exchange::Ci::new(),
            sso: super::sso::SsoState::default(),
        };
        for user in config.users {
            state.add_user(user);
        }
        for client in config.clients {
            state.clients.insert(client.id.clone(), client);
        }
        state
    }

    /// The IdP's notion of now (wall clock plus the test's offset).
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + self.clock_offset
    }

    /// Adds or replaces a user (matched by username).
    pub fn add_user(&mut self, user: User) {
        self.accounts.retain(|a| a.user.username != user.username);
        self.accounts.push(Account {
            user,
            keystone_id: uuid_v4().replace('-', ""),
            keycloak_id: uuid_v4(),
        });
    }

    /// Exact username match (Keystone, Dex).
    pub fn account(&self, username: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.user.username == username)
    }

    /// Case-insensitive username match (Keycloak lowercases usernames).
    pub fn account_ci(&self, username: &str) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|a| a.user.username.eq_ignore_ascii_case(username))
    }

    /// Consumes `code` from the user's one-time codes; false if unknown.
    pub fn consume_otp(&mut self, username: &str, code: &str) -> bool {
        let Some(account) = self
            .accounts
            .iter_mut()
            .find(|a| a.user.username == username)
        else {
            return false;
        };
        let codes = &mut account.user.otp_codes;
        match codes.iter().position(|c| c == code) {
            Some(i) => {
                codes.remove(i);
                true
            }
            None => false,
        }
    }

    /// Remembers an access or id token so it can be validated later.
    pub fn remember_token(
        &mut self,
        token: &str,
        username: Option<&str>,
        lifetime: Duration,
        session: Option<&str>,
    ) {
        let record = IssuedToken {
            username: username.map(str::to_owned),
            expires_at: self.now() + lifetime,
            session: session.map(str::to_owned),
            revoked: false,
        };
        self.tokens.insert(token.to_owned(), record);
    }

    /// An access/id token issued here, unexpired, unrevoked, and (for
    /// Keycloak) whose session is still alive.
    pub fn is_valid_token(&self, token: &str) -> bool {
        let Some(rec) = self.tokens.get(token) else {
            return false;
        };
        !rec.revoked
            && self.now() < rec.expires_at
            && rec
                .session
                .as_deref()
                .is_none_or(|s| self.session_active(s))
    }

    /// A Keycloak session that has not ended, been detached or idled out.
    pub fn session_active(&self, id: &str) -> bool {
        self.sessions
            .get(id)
            .is_some_and(|s| !s.ended && !s.detached && !self.session_idle(s))
    }

    /// Whether the SSO-session idle timeout has passed.
    pub fn session_idle(&self, s: &Session) -> bool {
        self.now() >= s.last_refresh + self.lifetimes.keycloak_refresh
    }

    /// Live Keycloak sessions of `username`.
    pub fn active_sessions(&self, username: &str) -> usize {
        self.sessions
            .iter()
            .filter(|(id, s)| s.username.eq_ignore_ascii_case(username) && self.session_active(id))
            .count()
    }

    /// Starts a Keycloak session and returns its id.
    pub fn start_session(&mut self, username: &str, realm: &str, scope: &str) -> String {
        let id = uuid_v4();
        let session = Session {
            username: username.to_owned(),
            realm: realm.to_owned(),
            scope: scope.to_owned(),
            last_refresh: self.now(),
            ended: false,
            detached: false,
        };
        self.sessions.insert(id.clone(), session);
        id
    }

    /// Ends every Keycloak session of `username`; returns how many.
    pub fn end_sessions_of(&mut self, username: &str) -> usize {
        let mut n = 0;
        for s in self.sessions.values_mut() {
            if s.username.eq_ignore_ascii_case(username) && !s.ended {
                s.ended = true;
                n += 1;
            }
        }
        n
    }

    /// A fresh Keystone token, valid for the configured lifetime.
    pub fn new_keystone_token(&mut self) -> (String, SystemTime) {
        // Fernet tokens start with "gAAAAA" and are ~180 base64url chars.
        let token = format!("gAAAAAB{}", random_token(128));
        let expires_at = self.now() + self.lifetimes.keystone_token;
        self.keystone_tokens
            .insert(token.clone(), KeystoneToken { expires_at });
        (token, expires_at)
    }

    pub fn keystone_token_valid(&self, token: &str) -> bool {
        self.keystone_tokens
            .get(token)
            .is_some_and(|t| self.now() < t.expires_at)
    }

    /// Counts the request and records it for `requests()`.
    pub fn record(&mut self, req: &Request, kind: RequestKind) {
        self.counts.total += 1;
        let c = &mut self.counts;
        match kind {
            RequestKind::Keystone => c.keystone += 1,
            RequestKind::DexClients => c.dexclients += 1,
            RequestKind::PasswordGrant => c.password_grant += 1,
            RequestKind::RefreshGrant => c.refresh_grant += 1,
            RequestKind::ClientCredentials => c.client_credentials += 1,
            RequestKind::Logout => c.logout += 1,
            RequestKind::Revoke => c.revoke += 1,
            RequestKind::Discovery => c.discovery += 1,
            RequestKind::TokenExchange => c.token_exchange += 1,
            RequestKind::GithubIdToken => c.github_id_token += 1,
            RequestKind::Other => {}
        }
        if self.requests.len() >= MAX_RECORDED {
            self.requests.remove(0);
        }
        self.requests.push(RecordedRequest {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            headers: req.headers.clone(),
            form: if req.is_form() {
                req.form()
            } else {
                Vec::new()
            },
        });
    }

    /// Takes one use of the first fault matching `path`, if any.
    pub fn take_fault(&mut self, path: &str) -> Option<Reply> {
        let i = self
            .faults
            .iter()
            .position(|f| f.times > 0 && path.starts_with(&f.path_prefix))?;
        let fault = &mut self.faults[i];
        fault.times -= 1;
        let reply = fault.reply.clone();
        if fault.times == 0 {
            self.faults.remove(i);
        }
        Some(reply)
    }
}

/// What a request is, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Keystone,
    DexClients,
    PasswordGrant,
    RefreshGrant,
    ClientCredentials,
    Logout,
    Revoke,
    Discovery,
    TokenExchange,
    GithubIdToken,
    Other,
}

impl RequestKind {
    /// Classifies by path and, for token endpoints, by `grant_type`.
    pub fn of(req: &Request) -> RequestKind {
        let path = req.path.as_str();
        if path == "/keystone/v3/auth/tokens" {
            return RequestKind::Keystone;
        }
        if path == "/resmgr/v2/dexclients" {
            return RequestKind::DexClients;
        }
        if path.ends_with("/.well-known/openid-configuration") {
            return RequestKind::Discovery;
        }
        if path.ends_with("/protocol/openid-connect/logout") {
            return RequestKind::Logout;
        }
        if path.ends_with("/protocol/openid-connect/revoke") {
            return RequestKind::Revoke;
        }
        if path == super::exchange::GITHUB_PATH {
            return RequestKind::GithubIdToken;
        }
        if path == "/sso/revoke" {
            return RequestKind::Revoke;
        }
        let token_endpoint = path == "/dex/token"
            || path == "/sso/token"
            || path == "/api/id/v1/auth/token"
            || path.ends_with("/protocol/openid-connect/token");
        if !token_endpoint {
            return RequestKind::Other;
        }
        match req.form_value("grant_type").as_deref() {
            Some("password") => RequestKind::PasswordGrant,
            Some("refresh_token") => RequestKind::RefreshGrant,
            Some("client_credentials") => RequestKind::ClientCredentials,
            Some(super::exchange::GRANT_TYPE) => RequestKind::TokenExchange,
            _ => RequestKind::Other,
        }
    }
}
