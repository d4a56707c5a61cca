//! What one cache entry holds, and when a token in it may still be handed out.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Format version written into every entry. An entry with another version is
/// treated as a cache miss and rewritten, never guessed at.
pub const FORMAT_VERSION: u32 = 1;

/// The identity a cache entry belongs to. Two invocations share an entry
/// exactly when their keys are equal, so everything that changes which tokens
/// the provider issues is in here, and nothing that does not (passwords,
/// client secrets, OTPs, which token field is printed, the front end).
///
/// Sharing matters: Dex deletes a user's previous refresh token on every new
/// password login, so two entries for one user and client would keep killing
/// each other's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub provider: ProviderKind,
    /// The PCD deployment URL, the issuer, or the token endpoint.
    pub url: String,
    pub grant: Grant,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Provider-specific form fields, sorted so their order on the command
    /// line does not matter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_params: Vec<(String, String)>,
    /// Token exchange only: whose identity is traded and for what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<ExchangeKey>,
}

/// What makes two token exchanges give different tokens, besides the
/// provider, client, connector and scopes already in [`Key`]. Never the
/// subject token itself: it is short-lived, rotated by the CI system, and a
/// secret that must not reach the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeKey {
    /// Who the subject token speaks for: `iss` and `sub` of a JWT subject
    /// token (so two pipelines sharing a cache directory never share an
    /// entry), else where it comes from (a file path, the variable, the
    /// GitHub Actions request URL).
    pub subject: String,
    pub subject_token_type: String,
    pub requested_token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// The latest time dexcred stores or shows: 9999-12-31T23:59:59Z.
/// kubectl's `expirationTimestamp` is RFC 3339, whose year has four digits,
/// so a later expiry could never be handed to kubectl; a server that says
/// "later than that" means "never", and this is as never as it gets.
pub const MAX_TIME: i64 = 253_402_300_799;

/// Brings a server-given time into the range dexcred can store and show
/// (the Unix epoch to [`MAX_TIME`]), so no arithmetic on it can overflow.
pub fn clamp_time(unix: i64) -> i64 {
    unix.clamp(0, MAX_TIME)
}

/// Which kind of identity provider `Key::url` names. Serialised as the
/// strings cache files have always held (`pcd`, `issuer`, `token_url`):
/// the file name is a hash of the serialised key, so renaming one would
/// orphan every cached session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Pcd,
    Issuer,
    TokenUrl,
}

impl ProviderKind {
    /// The serialised name, for `dexcred status`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Pcd => "pcd",
            ProviderKind::Issuer => "issuer",
            ProviderKind::TokenUrl => "token_url",
        }
    }
}

/// The OAuth grant that logs in. Serialised as the grant's `grant_type`
/// name (`password`, `client_credentials`), as cache files have always
/// held it; a new grant is one more variant (its snake_case name is its
/// serialised form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    Password,
    ClientCredentials,
    /// RFC 8693 (`--grant token_exchange`).
    TokenExchange,
    /// A browser login: authorization code + PKCE (`--grant authorization_code`).
    AuthorizationCode,
    /// RFC 8628 (`--grant device_code`).
    DeviceCode,
}

impl Grant {
    /// The serialised name, which is also the `--grant` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Password => "password",
            Grant::ClientCredentials => "client_credentials",
            Grant::TokenExchange => "token_exchange",
            Grant::AuthorizationCode => "authorization_code",
            Grant::DeviceCode => "device_code",
        }
    }

    /// Logins a person must complete in a browser or on another device.
    pub fn needs_person(self) -> bool {
        matches!(self, Grant::AuthorizationCode | Grant::DeviceCode)
    }
}

/// A bearer token and the times that decide when it must be renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    pub value: Secret,
    /// Unix seconds: the token's `exp` claim, or `expires_in` counted from
    /// when the response arrived.
    pub expires_at: i64,
    /// Unix seconds: `iat`, or when the response arrived.
    pub issued_at: i64,
}

impl StoredToken {
    /// When dexcred stops handing the token out and renews it instead. This
    /// is also the expiry it advertises to kubectl and git, so they come
    /// back before the token dies.
    pub fn renew_at(&self) -> i64 {
        // Saturating: an entry written by an older dexcred may hold times
        // whose difference overflows.
        self.expires_at
            .saturating_sub(margin(self.expires_at.saturating_sub(self.issued_at)))
    }

    /// Fresh: outside its refresh margin, so it can be handed out as is.
    pub fn is_fresh(&self, now: i64) -> bool {
        now < self.renew_at()
    }

    /// Not yet expired, though possibly inside its margin: still accepted by
    /// servers, so it may be served (with a warning) when renewal is
    /// impossible right now.
    pub fn is_alive(&self, now: i64) -> bool {
        now < self.expires_at
    }
}

/// The refresh margin for a token that lives `lifetime` seconds: 10% of the
/// lifetime, at least 10 s and at most 5 min, and never more than half the
/// lifetime (so a 10-second token is still served for 5 seconds).
pub fn margin(lifetime: i64) -> i64 {
    let lifetime = lifetime.max(0);
    (lifetime / 10).clamp(10, 300).min(lifetime / 2)
}

/// Endpoints learnt from OpenID discovery, kept with the entry so renewals
/// and logout need no discovery request (and cache hits never make one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Endpoints {
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session: Option<String>,
    /// Where the browser is sent for `--grant authorization_code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// RFC 8628 `device_authorization_endpoint` for `--grant device_code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization: Option<String>,
}

/// One cache file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u32,
    pub key: Key,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<StoredToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<StoredToken>,
    /// The session. Losing it forces a password login, so it is written to
    /// disk before anything else happens after a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<i64>,
    /// PCD's Dex client secret from `/resmgr/v2/dexclients`, so a re-login
    /// does not repeat the Keystone and dexclients calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// Unix seconds of the last password (or client-credentials) login.
    pub logged_in_at: i64,
    /// Unix seconds of the last time tokens were obtained in any way.
    pub renewed_at: i64,
    /// Set when a server rejected the current token (git's `erase`): the
    /// next request renews even though the token looks fresh.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rejected: bool,
}

/// Which token of a response is handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenField {
    IdToken,
    AccessToken,
}

impl TokenField {
    pub fn name(self) -> &'static str {
        match self {
            TokenField::IdToken => "id_token",
            TokenField::AccessToken => "access_token",
        }
    }
}

impl Entry {
    pub fn new(key: Key, now: i64) -> Entry {
        Entry {
            version: FORMAT_VERSION,
            key,
            id_token: None,
            access_token: None,
            refresh_token: None,
            refresh_expires_at: None,
            client_secret: None,
            endpoints: None,
            logged_in_at: now,
            renewed_at: now,
            rejected: false,
        }
    }

    pub fn token(&self, field: TokenField) -> Option<&StoredToken> {
        match field {
            TokenField::IdToken => self.id_token.as_ref(),
            TokenField::AccessToken => self.access_token.as_ref(),
        }
    }

    /// The token to hand out without any renewal, if there is one.
    pub fn fresh_token(&self, field: TokenField, now: i64) -> Option<&StoredToken> {
        if self.rejected {
            return None;
        }
        self.token(field).filter(|t| t.is_fresh(now))
    }

    /// Whether the refresh token is worth presenting (unknown expiry counts
    /// as usable: the server will say if it is not).
    pub fn has_usable_refresh_token(&self, now: i64) -> bool {
        self.refresh_token.is_some() && self.refresh_expires_at.is_none_or(|at| now < at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(issued_at: i64, expires_at: i64) -> StoredToken {
        StoredToken {
            value: Secret::new("t"),
            expires_at,
            issued_at,
        }
    }

    #[test]
    fn margin_follows_the_documented_rule() {
        assert_eq!(margin(86_400), 300); // 10% is 8640 s, capped at 5 min
        assert_eq!(margin(1_800), 180); // 10%
        assert_eq!(margin(300), 30);
        assert_eq!(margin(60), 10); // at least 10 s
        assert_eq!(margin(10), 5); // never more than half
        assert_eq!(margin(1), 0);
        assert_eq!(margin(-5), 0);
    }

    #[test]
    fn fresh_alive_and_renew_at() {
        let t = token(1000, 1300); // 300 s lifetime, 30 s margin
        assert_eq!(t.renew_at(), 1270);
        assert!(t.is_fresh(1269));
        assert!(!t.is_fresh(1270));
        assert!(t.is_alive(1299));
        assert!(!t.is_alive(1300));
    }

    #[test]
    fn rejected_entry_has_no_fresh_token() {
        let key = Key {
            provider: ProviderKind::Pcd,
            url: "https://x".into(),
            grant: Grant::Password,
            username: None,
            user_domain: None,
            project: None,
            client_id: "kubernetes".into(),
            connector_id: None,
            scope: None,
            extra_params: vec![],
            exchange: None,
        };
        let mut e = Entry::new(key, 1000);
        e.id_token = Some(token(1000, 2000));
        assert!(e.fresh_token(TokenField::IdToken, 1500).is_some());
        assert!(e.fresh_token(TokenField::AccessToken, 1500).is_none());
        e.rejected = true;
        assert!(e.fresh_token(TokenField::IdToken, 1500).is_none());
    }
}
