//! Public configuration and observation types of the fake identity provider.

use std::time::Duration;

use serde::Serialize;

use crate::http::Reply;

/// The default user of [`IdpConfig::pcd`].
pub const ALICE: &str = "alice@example.com";
/// Password of [`ALICE`].
pub const ALICE_PASSWORD: &str = "correct horse";
/// The Dex client that PCD-K uses; its secret comes from `/resmgr/v2/dexclients`.
pub const DEX_CLIENT: &str = "kubernetes";
/// A second Dex client listed by dexclients, for "wrong client" tests.
pub const OTHER_DEX_CLIENT: &str = "other-client";
/// The public Keycloak client of the OCP IAM documents (no secret).
pub const KEYCLOAK_PUBLIC_CLIENT: &str = "ocp";
/// A confidential client for Keycloak client_credentials and the Basic
/// client-credentials server.
pub const SERVICE_CLIENT: &str = "integration-dev";
/// Secret of [`SERVICE_CLIENT`]. It contains `:`, `+`, `/`, `%`, `&` and a
/// space on purpose: clients must form-urlencode id and secret before base64
/// (RFC 6749 §2.3.1), and a naive client fails against it.
pub const SERVICE_CLIENT_SECRET: &str = "s3cr:t+/ %&x";

/// A user account known to every flavour (Keystone, Dex, Keycloak).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name (for PCD an email address).
    pub username: String,
    /// Password.
    pub password: String,
    /// Keystone domain name, `Default` on PCD.
    pub domain: String,
    /// One-time codes; when non-empty Keycloak requires `otp` or `totp`, and
    /// each code is accepted once.
    pub otp_codes: Vec<String>,
    /// Groups reported in the `groups` claim.
    pub groups: Vec<String>,
}

impl User {
    /// A user in domain `Default`, without OTP, in group `developers`.
    pub fn new(username: &str, password: &str) -> User {
        User {
            username: username.to_owned(),
            password: password.to_owned(),
            domain: "Default".to_owned(),
            otp_codes: Vec::new(),
            groups: vec!["developers".to_owned()],
        }
    }

    /// Requires one of `codes` (each usable once) on Keycloak password logins.
    pub fn with_otp(mut self, codes: &[&str]) -> User {
        self.otp_codes = codes.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Places the user in another Keystone domain.
    pub fn with_domain(mut self, domain: &str) -> User {
        self.domain = domain.to_owned();
        self
    }
}

/// An OAuth client. `secret: None` is a public client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// client_id.
    pub id: String,
    /// client_secret; `None` for public clients.
    pub secret: Option<String>,
    /// Scopes the Basic client-credentials server grants this client
    /// (`None`: any). Asking for others is answered 403.
    pub allowed_scopes: Option<Vec<String>>,
}

impl Client {
    /// A public client (no secret).
    pub fn public(id: &str) -> Client {
        Client {
            id: id.to_owned(),
            secret: None,
            allowed_scopes: None,
        }
    }

    /// A confidential client.
    pub fn confidential(id: &str, secret: &str) -> Client {
        Client {
            id: id.to_owned(),
            secret: Some(secret.to_owned()),
            allowed_scopes: None,
        }
    }
}

/// Token lifetimes, per flavour; defaults are the real servers' defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifetimes {
    /// Keystone token (PCD: about 24 h).
    pub keystone_token: Duration,
    /// Dex id_token and access_token (`expiry.idTokens`, 24 h).
    pub dex_id_token: Duration,
    /// Dex `refreshTokens.absoluteLifetime`, counted from the original login
    /// across rotations (`None`: unlimited, Dex's default).
    pub dex_refresh_absolute: Option<Duration>,
    /// Dex `refreshTokens.validIfNotUsedFor` (`None`: unlimited).
    pub dex_refresh_idle: Option<Duration>,
    /// Keycloak access token lifespan (300 s).
    pub keycloak_access: Duration,
    /// Keycloak refresh token lifetime and SSO session idle timeout (1800 s).
    pub keycloak_refresh: Duration,
    /// Basic client-credentials server token lifetime (604800 s).
    pub client_credentials: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        Lifetimes {
            keystone_token: DAY,
            dex_id_token: DAY,
            dex_refresh_absolute: None,
            dex_refresh_idle: None,
            keycloak_access: Duration::from_secs(300),
            keycloak_refresh: Duration::from_secs(1800),
            client_credentials: Duration::from_secs(604_800),
        }
    }
}

/// Everything a [`super::FakeIdp`] starts with. Most of it can be changed
/// later through the `FakeIdp` setters.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// Accounts.
    pub users: Vec<User>,
    /// OAuth clients (shared by Dex, Keycloak and the Basic server; every
    /// confidential one is listed by `/resmgr/v2/dexclients`).
    pub clients: Vec<Client>,
    /// Token lifetimes.
    pub lifetimes: Lifetimes,
    /// Keycloak realms served (others answer 404 "Realm does not exist").
    pub realms: Vec<String>,
    /// Keycloak per-user session limit (the OCP docs mention five).
    pub max_sessions: usize,
    /// Dex refresh-token rotation (on by default, no reuse grace).
    pub dex_rotate_refresh_tokens: bool,
    /// Keycloak "Revoke Refresh Token" realm setting (off by default).
    pub keycloak_revoke_refresh_token: bool,
    /// Dex's password connector is Keystone (PCD): a bad password is 400
    /// invalid_request "Could not login user". Otherwise 401 access_denied.
    pub dex_keystone_connector: bool,
    /// Every Dex refresh fails upstream with 500 (PCD after the saved
    /// Keystone token expired).
    pub fail_upstream_refresh: bool,
    /// Added before every IdP response.
    pub delay: Duration,
}

impl Default for IdpConfig {
    fn default() -> Self {
        IdpConfig::pcd()
    }
}

impl IdpConfig {
    /// Ready-to-use PCD setup: user [`ALICE`], Dex clients [`DEX_CLIENT`] and
    /// [`OTHER_DEX_CLIENT`] (random secrets), Keycloak public client
    /// [`KEYCLOAK_PUBLIC_CLIENT`], confidential [`SERVICE_CLIENT`], realms
    /// `master` and `ocp`.
    pub fn pcd() -> IdpConfig {
        IdpConfig {
            users: vec![User::new(ALICE, ALICE_PASSWORD)],
            clients: vec![
                Client::confidential(DEX_CLIENT, &crate::util::random_token(24)),
                Client::confidential(OTHER_DEX_CLIENT, &crate::util::random_token(24)),
                Client::public(KEYCLOAK_PUBLIC_CLIENT),
                Client::confidential(SERVICE_CLIENT, SERVICE_CLIENT_SECRET),
            ],
            ..IdpConfig::empty()
        }
    }

    /// No users, no clients, default lifetimes and knobs.
    pub fn empty() -> IdpConfig {
        IdpConfig {
            users: Vec::new(),
            clients: Vec::new(),
            lifetimes: Lifetimes::default(),
            realms: vec!["master".to_owned(), "ocp".to_owned()],
            max_sessions: 5,
            dex_rotate_refresh_tokens: true,
            keycloak_revoke_refresh_token: false,
            dex_keystone_connector: true,
            fail_upstream_refresh: false,
            delay: Duration::ZERO,
        }
    }
}

/// Requests seen, by kind. Faulted requests are counted too (the client did
/// send them); `faults` says how many got an injected reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Every request, including unknown paths.
    pub total: u64,
    /// `POST /keystone/v3/auth/tokens`.
    pub keystone: u64,
    /// `GET /resmgr/v2/dexclients`.
    pub dexclients: u64,
    /// Password grants (Dex and Keycloak).
    pub password_grant: u64,
    /// refresh_token grants (all flavours).
    pub refresh_grant: u64,
    /// refresh_token grants answered with an error by the IdP logic.
    pub refresh_rejected: u64,
    /// client_credentials grants (Keycloak and the Basic server).
    pub client_credentials: u64,
    /// Keycloak logouts.
    pub logout: u64,
    /// Keycloak revocations.
    pub revoke: u64,
    /// Discovery documents served.
    pub discovery: u64,
    /// Times Dex answered "…already been claimed by another client."
    pub claimed_errors: u64,
    /// Requests answered by an injected [`Fault`].
    pub faults: u64,
    /// Token-exchange grants at Dex (RFC 8693).
    pub token_exchange: u64,
    /// Requests to the GitHub Actions ID token stand-in.
    pub github_id_token: u64,
}

/// Replaces the answers to the next `times` requests whose path starts with
/// `path_prefix` by `reply`. Use [`Reply::passthrough`] inside `reply` for
/// "the normal answer" (e.g. delayed or dripped). The normal answer is
/// computed when the request arrives, so a delayed refresh has already
/// rotated the token when the client gives up waiting — as on a real server.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Path prefix to match, e.g. `/dex/token`.
    pub path_prefix: String,
    /// How many requests to intercept.
    pub times: usize,
    /// What to answer instead.
    pub reply: Reply,
}

impl Fault {
    /// A fault for the next `times` requests under `path_prefix`.
    pub fn new(path_prefix: &str, times: usize, reply: Reply) -> Fault {
        Fault {
            path_prefix: path_prefix.to_owned(),
            times,
            reply,
        }
    }
}

/// One request as the IdP saw it, for assertions about what a client sent.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Headers as sent.
    pub headers: Vec<(String, String)>,
    /// Decoded form fields (empty for non-form bodies).
    pub form: Vec<(String, String)>,
}

impl RecordedRequest {
    /// Names of the form fields, in order.
    pub fn form_keys(&self) -> Vec<&str> {
        self.form.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// First value of form field `key`.
    pub fn form_value(&self, key: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request carried `Authorization: Basic …`.
    pub fn used_basic_auth(&self) -> bool {
        self.header("authorization")
            .and_then(|v| v.get(..6))
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic "))
    }
}
