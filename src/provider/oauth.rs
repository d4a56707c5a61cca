//! Any OAuth 2.0 / OpenID Connect token endpoint.
//!
//! Covers the token services in `shared/reference/`: Keycloak's password
//! grant with a one-time code and its logout endpoint, client credentials
//! with the secret in the form (`client_secret_post`) or in HTTP Basic
//! (`client_secret_basic`), and any server found by OpenID discovery.
//!
//! Browser and device logins (`--grant authorization_code`, `device_code`)
//! are run by `crate::login`; this module gives them the discovered
//! endpoints and the token exchange, and renews their sessions like
//! password sessions.
//!
//! Renewal policy: password sessions renew with their refresh token;
//! client-credentials tokens are renewed by asking again, because a client
//! holding its secret gains nothing from a refresh token (RFC 6749 §4.4.3
//! says servers should not even issue one) and some servers that do issue
//! one refuse the refresh grant.

use super::{
    ClientAuth, Context, Grant, Logout, Provider, RefreshError, TokenError, token_request,
};
use crate::cache::{Endpoints, Entry, TokenField};
use crate::error::{Error, Result};
use crate::login::{self, browser, device};
use crate::secret::{self, Secret};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `--token-url`: the token endpoint itself.
    TokenUrl(String),
    /// `--issuer`: find the endpoints with OpenID discovery.
    Issuer(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    Password,
    ClientCredentials,
    /// A browser login: authorization code + PKCE, loopback redirect.
    AuthorizationCode,
    /// RFC 8628: a code entered on another device.
    DeviceCode,
}

impl GrantKind {
    pub const ALL: [GrantKind; 4] = [
        GrantKind::Password,
        GrantKind::ClientCredentials,
        GrantKind::AuthorizationCode,
        GrantKind::DeviceCode,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GrantKind::Password => "password",
            GrantKind::ClientCredentials => "client_credentials",
            GrantKind::AuthorizationCode => "authorization_code",
            GrantKind::DeviceCode => "device_code",
        }
    }

    /// The grant a cache key names (`Key::grant`).
    pub fn from_name(name: &str) -> Option<GrantKind> {
        GrantKind::ALL.into_iter().find(|g| g.name() == name)
    }

    /// Logins a person must complete in a browser or on another device.
    pub fn needs_person(self) -> bool {
        matches!(self, GrantKind::AuthorizationCode | GrantKind::DeviceCode)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Post,
    Basic,
}

#[derive(Debug, Clone)]
pub struct OAuth {
    pub endpoint: Endpoint,
    /// An explicit Keycloak-style logout endpoint (`--logout-url`).
    pub logout_url: Option<String>,
    pub grant: GrantKind,
    pub username: Option<String>,
    pub client_id: String,
    /// Absent: a public client.
    pub client_secret: Option<Secret>,
    pub auth_method: AuthMethod,
    pub scope: Option<String>,
    pub extra_params: Vec<(String, String)>,
    /// The token handed out: decides what a refresh without an id_token
    /// means for browser and device sessions.
    pub field: TokenField,
    /// Listener, browser command and time limit of browser/device logins.
    pub login: login::Settings,
}

/// Scope of browser and device logins without `--scope`: an id_token
/// (`openid`) and a refresh token (`offline_access`, which Dex and
/// oidc-provider require before they issue one).
pub const DEFAULT_INTERACTIVE_SCOPE: &str = "openid offline_access";

const KEYCLOAK_TOKEN_SUFFIX: &str = "/protocol/openid-connect/token";
const KEYCLOAK_LOGOUT_SUFFIX: &str = "/protocol/openid-connect/logout";

impl OAuth {
    fn client_auth(&self) -> ClientAuth {
        match (&self.client_secret, self.auth_method) {
            (None, _) => ClientAuth::None,
            (Some(s), AuthMethod::Post) => ClientAuth::Post(s.clone()),
            (Some(s), AuthMethod::Basic) => ClientAuth::Basic(s.clone()),
        }
    }

    /// The endpoints to use: from the flags, from the entry's saved
    /// discovery, or (when `rediscover`, or nothing is saved) from a fresh
    /// discovery request whose result is saved in the entry.
    fn endpoints(
        &self,
        ctx: &Context<'_>,
        entry: &mut Entry,
        rediscover: bool,
    ) -> Result<Endpoints> {
        match &self.endpoint {
            Endpoint::TokenUrl(url) => Ok(Endpoints {
                token: url.clone(),
                revocation: None,
                end_session: self.logout_url.clone().or_else(|| keycloak_logout_for(url)),
                authorization: None,
                device_authorization: None,
            }),
            Endpoint::Issuer(issuer) => {
                if let (Some(saved), false) = (&entry.endpoints, rediscover) {
                    return Ok(saved.clone());
                }
                let mut found = discover(ctx, issuer)?;
                if self.logout_url.is_some() {
                    found.end_session = self.logout_url.clone();
                }
                entry.endpoints = Some(found.clone());
                Ok(found)
            }
        }
    }

    fn password_login(&self, ctx: &Context<'_>, endpoint: &str) -> Result<Grant> {
        let username = self.username.as_deref().ok_or_else(|| {
            Error::usage("the password grant needs --username (or DEXCRED_USERNAME)")
        })?;
        let password = ctx.credentials.password()?;
        let otp = ctx.credentials.configured_otp()?;
        match self.password_request(ctx, endpoint, username, &password, otp.as_ref()) {
            Ok(grant) => Ok(grant),
            // Keycloak answers a missing one-time code exactly like a wrong
            // password, so at a terminal, with no code configured, offer to
            // enter one before giving up.
            Err(e)
                if otp.is_none() && ctx.credentials.is_interactive() && is_bad_credentials(&e) =>
            {
                let code = secret::prompt(
                    "The server refused the login. One-time code (leave empty if you have none): ",
                )?;
                if code.expose().trim().is_empty() {
                    return Err(e.into_error("logging in"));
                }
                let code = Secret::new(code.expose().trim());
                self.password_request(ctx, endpoint, username, &password, Some(&code))
                    .map_err(|e| e.into_error("logging in"))
            }
            Err(e) => Err(e.into_error("logging in")),
        }
    }

    fn password_request(
        &self,
        ctx: &Context<'_>,
        endpoint: &str,
        username: &str,
        password: &Secret,
        otp: Option<&Secret>,
    ) -> std::result::Result<Grant, TokenError> {
        let mut fields = vec![
            ("grant_type", "password"),
            ("username", username),
            ("password", password.expose()),
        ];
        if let Some(scope) = &self.scope {
            fields.push(("scope", scope.as_str()));
        }
        if let Some(code) = otp {
            fields.push(("otp", code.expose()));
        }
        fields.extend(
            self.extra_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        token_request(ctx, endpoint, &self.client_id, &self.client_auth(), &fields)
    }

    fn client_credentials(&self, ctx: &Context<'_>, endpoint: &str) -> Result<Grant> {
        if self.client_secret.is_none() {
            return Err(Error::usage(
                "the client_credentials grant needs a client secret: --client-secret-file FILE or DEXCRED_CLIENT_SECRET",
            ));
        }
        let mut fields = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.scope {
            fields.push(("scope", scope.as_str()));
        }
        fields.extend(
            self.extra_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        token_request(ctx, endpoint, &self.client_id, &self.client_auth(), &fields).map_err(|e| {
            let code = e.oauth_code();
            let err = e.into_error("getting a client-credentials token");
            match code.as_deref() {
                Some("invalid_client" | "unauthorized_client") => Error::auth(format!(
                    "{}; check --client-id and the client secret",
                    err.message()
                )),
                _ => err,
            }
        })
    }

    fn scope_or_default(&self) -> &str {
        self.scope.as_deref().unwrap_or(DEFAULT_INTERACTIVE_SCOPE)
    }

    /// `--grant authorization_code`: a browser login, then the code
    /// exchange with the PKCE verifier.
    fn browser_login(&self, ctx: &Context<'_>, endpoints: &Endpoints) -> Result<Grant> {
        let authorization_endpoint = endpoints.authorization.as_deref().ok_or_else(|| {
            Error::provider(
                "the issuer's discovery document has no authorization_endpoint;                  it cannot do browser logins (try --grant device_code)",
            )
        })?;
        let request = browser::Request {
            authorization_endpoint,
            client_id: &self.client_id,
            scope: self.scope_or_default(),
            extra_params: &self.extra_params,
        };
        browser::login(&self.login, ctx.log, &request, |code| {
            let fields = [
                ("grant_type", "authorization_code"),
                ("code", code.code.expose()),
                ("redirect_uri", code.redirect_uri.as_str()),
                ("code_verifier", code.verifier.expose()),
            ];
            token_request(
                ctx,
                &endpoints.token,
                &self.client_id,
                &self.client_auth(),
                &fields,
            )
            .map_err(|e| e.into_error("exchanging the authorization code"))
        })
    }

    /// `--grant device_code`: RFC 8628.
    fn device_login(&self, ctx: &Context<'_>, endpoints: &Endpoints) -> Result<Grant> {
        let device_authorization_endpoint =
            endpoints.device_authorization.as_deref().ok_or_else(|| {
                Error::provider(
                    "the issuer's discovery document has no device_authorization_endpoint;                      it does not offer device logins (try --grant authorization_code)",
                )
            })?;
        let auth = self.client_auth();
        let request = device::Request {
            device_authorization_endpoint,
            token_endpoint: &endpoints.token,
            client_id: &self.client_id,
            auth: &auth,
            scope: self.scope_or_default(),
            extra_params: &self.extra_params,
        };
        device::login(ctx, &self.login, &request)
    }

    /// Keycloak may leave the id_token out of a refresh response (kubelogin
    /// issue #536). The old one is kept only while it is still alive; once
    /// it has expired it is dropped, and when it is the token handed out,
    /// the session needs a new login.
    fn check_refreshed_id_token(
        &self,
        entry: &mut Entry,
        grant: &Grant,
        now: i64,
    ) -> std::result::Result<(), RefreshError> {
        if grant.id_token.is_some() || entry.id_token.as_ref().is_some_and(|t| t.is_alive(now)) {
            return Ok(());
        }
        if self.field == TokenField::IdToken {
            return Err(RefreshError::Rejected(
                "the refresh response has no id_token and the cached one has expired".to_string(),
            ));
        }
        entry.id_token = None;
        Ok(())
    }

    /// Keycloak-style logout: POST the refresh token to the logout endpoint;
    /// 204 means the session is gone.
    fn keycloak_logout(&self, ctx: &Context<'_>, url: &str, refresh_token: &Secret) -> Logout {
        let fields = [("refresh_token", refresh_token.expose())];
        self.post_end(ctx, url, &fields, "ended the session")
    }

    /// RFC 7009 token revocation of the refresh token.
    fn revoke(&self, ctx: &Context<'_>, url: &str, refresh_token: &Secret) -> Logout {
        let fields = [
            ("token", refresh_token.expose()),
            ("token_type_hint", "refresh_token"),
        ];
        self.post_end(ctx, url, &fields, "revoked the refresh token")
    }

    /// Client credentials have no login session to end (a refresh token
    /// some servers return anyway has no user behind it). Where the server
    /// advertises RFC 7009 revocation, the access token is revoked so it
    /// stops working now; otherwise it simply expires.
    fn client_logout(&self, ctx: &Context<'_>, entry: &Entry) -> Logout {
        let revocation = entry.endpoints.as_ref().and_then(|e| e.revocation.as_ref());
        match (revocation, &entry.access_token) {
            (Some(url), Some(token)) => {
                let fields = [
                    ("token", token.value.expose()),
                    ("token_type_hint", "access_token"),
                ];
                self.post_end(ctx, url, &fields, "revoked the access token")
            }
            _ => Logout::NotSupported(
                "client-credentials tokens belong to no login session; they end when they expire"
                    .to_string(),
            ),
        }
    }

    fn post_end(
        &self,
        ctx: &Context<'_>,
        url: &str,
        fields: &[(&str, &str)],
        done: &str,
    ) -> Logout {
        let mut form = fields.to_vec();
        let auth = self.client_auth();
        let basic = super::add_client_auth(&mut form, &self.client_id, &auth);
        match ctx.http.post_form(url, &form, basic) {
            Ok(r) if r.is_success() => Logout::Ended(format!("{done} at {url}")),
            Ok(r) => Logout::Failed(format!("{} refused: {}", r.what, r.reason())),
            Err(e) => Logout::Failed(e.one_line()),
        }
    }
}

fn is_bad_credentials(e: &TokenError) -> bool {
    match e {
        TokenError::Refused(r) => {
            matches!(r.status, 400 | 401) && r.oauth_error().as_deref() == Some("invalid_grant")
        }
        TokenError::Unavailable(_) => false,
    }
}

/// Keycloak's token endpoint is `…/protocol/openid-connect/token`; its
/// logout endpoint sits beside it.
fn keycloak_logout_for(token_url: &str) -> Option<String> {
    token_url
        .strip_suffix(KEYCLOAK_TOKEN_SUFFIX)
        .map(|realm| format!("{realm}{KEYCLOAK_LOGOUT_SUFFIX}"))
}

/// Fetches `{issuer}/.well-known/openid-configuration`.
pub fn discover(ctx: &Context<'_>, issuer: &str) -> Result<Endpoints> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let response = ctx
        .http
        .get(&url, &[])
        .map_err(|e| e.context("OpenID discovery"))?;
    if !response.is_success() {
        return Err(Error::provider(format!(
            "OpenID discovery: {} failed: {}; check --issuer",
            response.what,
            response.reason()
        )));
    }
    parse_discovery(&response.body).ok_or_else(|| {
        Error::provider(format!(
            "OpenID discovery: {} is not a discovery document with a token_endpoint",
            response.what
        ))
    })
}

fn parse_discovery(body: &str) -> Option<Endpoints> {
    let doc: serde_json::Value = serde_json::from_str(body).ok()?;
    let field = |name: &str| {
        doc.get(name)
            .and_then(|v| v.as_str())
            .filter(|s| s.starts_with("https://") || s.starts_with("http://"))
            .map(str::to_string)
    };
    Some(Endpoints {
        token: field("token_endpoint")?,
        revocation: field("revocation_endpoint"),
        end_session: field("end_session_endpoint"),
        authorization: field("authorization_endpoint"),
        device_authorization: field("device_authorization_endpoint"),
    })
}

impl Provider for OAuth {
    fn login(&self, ctx: &Context<'_>, entry: &mut Entry) -> Result<Grant> {
        match self.grant {
            // Rare, like a password login: discover afresh.
            GrantKind::AuthorizationCode => {
                let endpoints = self.endpoints(ctx, entry, true)?;
                self.browser_login(ctx, &endpoints)
            }
            GrantKind::DeviceCode => {
                let endpoints = self.endpoints(ctx, entry, true)?;
                self.device_login(ctx, &endpoints)
            }
            // A password login is rare (first use, or the session ended):
            // a good moment to pick up changed endpoints.
            GrantKind::Password => {
                let endpoints = self.endpoints(ctx, entry, true)?;
                self.password_login(ctx, &endpoints.token)
            }
            // Client-credentials tokens are renewed by asking again, on
            // every expiry: like a refresh, that uses the saved endpoints,
            // and asks discovery again only if they no longer work.
            GrantKind::ClientCredentials => {
                let had_saved = entry.endpoints.is_some();
                let endpoints = self.endpoints(ctx, entry, false)?;
                match self.client_credentials(ctx, &endpoints.token) {
                    Err(e) if had_saved && matches!(self.endpoint, Endpoint::Issuer(_)) => {
                        match self.endpoints(ctx, entry, true) {
                            Ok(found) if found.token != endpoints.token => {
                                self.client_credentials(ctx, &found.token)
                            }
                            _ => Err(e),
                        }
                    }
                    result => result,
                }
            }
        }
    }

    fn refresh(
        &self,
        ctx: &Context<'_>,
        entry: &mut Entry,
        refresh_token: &Secret,
    ) -> std::result::Result<Grant, RefreshError> {
        let endpoints = self
            .endpoints(ctx, entry, false)
            .map_err(RefreshError::Unavailable)?;
        let fields = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ];
        let grant = token_request(
            ctx,
            &endpoints.token,
            &self.client_id,
            &self.client_auth(),
            &fields,
        )
        .map_err(TokenError::into_refresh_error)?;
        if self.grant.needs_person() {
            self.check_refreshed_id_token(entry, &grant, ctx.now)?;
        }
        Ok(grant)
    }

    fn logout(&self, ctx: &Context<'_>, entry: &Entry) -> Logout {
        if self.grant == GrantKind::ClientCredentials {
            return self.client_logout(ctx, entry);
        }
        let Some(refresh_token) = &entry.refresh_token else {
            return Logout::NotSupported("there is no session at the server to end".to_string());
        };
        let mut scratch = entry.clone();
        let endpoints = match self.endpoints(ctx, &mut scratch, false) {
            Ok(e) => e,
            Err(e) => return Logout::Failed(e.one_line()),
        };
        let keycloak_style = endpoints.end_session.as_deref().filter(|u| {
            self.logout_url.as_deref() == Some(*u) || u.ends_with(KEYCLOAK_LOGOUT_SUFFIX)
        });
        if let Some(url) = keycloak_style {
            return self.keycloak_logout(ctx, url, refresh_token);
        }
        if let Some(url) = &endpoints.revocation {
            return self.revoke(ctx, url, refresh_token);
        }
        Logout::NotSupported(
            "the server advertises no logout or revocation endpoint; pass --logout-url if it has one"
                .to_string(),
        )
    }

    fn login_needs_password(&self) -> bool {
        self.grant == GrantKind::Password
    }

    fn login_needs_person(&self, _credentials: &super::Credentials) -> bool {
        self.grant.needs_person()
    }

    fn uses_refresh_tokens(&self) -> bool {
        self.grant == GrantKind::Password || self.grant.needs_person()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn browser_oauth(field: TokenField) -> OAuth {
        OAuth {
            endpoint: Endpoint::Issuer("https://i".into()),
            logout_url: None,
            grant: GrantKind::AuthorizationCode,
            username: None,
            client_id: "c".into(),
            client_secret: None,
            auth_method: AuthMethod::Post,
            scope: None,
            extra_params: vec![],
            field,
            login: login::Settings {
                listen: vec![],
                browser_command: None,
                timeout: std::time::Duration::from_secs(300),
            },
        }
    }

    #[test]
    fn a_refresh_without_id_token_keeps_the_old_one_only_while_it_lives() {
        use crate::cache::{Key, StoredToken};
        let key = Key {
            provider: "issuer".into(),
            url: "https://i".into(),
            grant: "authorization_code".into(),
            username: None,
            user_domain: None,
            project: None,
            client_id: "c".into(),
            connector_id: None,
            scope: None,
            extra_params: vec![],
        };
        let token = |v: &str, expires_at| StoredToken {
            value: Secret::new(v),
            expires_at,
            issued_at: 0,
        };
        let grant = Grant {
            id_token: None,
            access_token: Some(token("at", 5000)),
            refresh_token: Some(Secret::new("r2")),
            refresh_expires_at: None,
        };
        let mut entry = Entry::new(key, 0);
        entry.id_token = Some(token("id", 1000));
        // Still alive at 999: kept, whatever is handed out.
        for field in [TokenField::IdToken, TokenField::AccessToken] {
            let mut e = entry.clone();
            browser_oauth(field)
                .check_refreshed_id_token(&mut e, &grant, 999)
                .unwrap();
            assert!(e.id_token.is_some());
        }
        // Expired: handing out the id_token means logging in again ...
        let mut e = entry.clone();
        let r = browser_oauth(TokenField::IdToken).check_refreshed_id_token(&mut e, &grant, 1000);
        assert!(matches!(r, Err(RefreshError::Rejected(_))));
        // ... otherwise the dead id_token is dropped and the refresh stands.
        let mut e = entry.clone();
        browser_oauth(TokenField::AccessToken)
            .check_refreshed_id_token(&mut e, &grant, 1000)
            .unwrap();
        assert!(e.id_token.is_none());
    }

    #[test]
    fn keycloak_logout_is_derived_from_the_token_url() {
        assert_eq!(
            keycloak_logout_for("https://h/auth/realms/master/protocol/openid-connect/token")
                .as_deref(),
            Some("https://h/auth/realms/master/protocol/openid-connect/logout")
        );
        assert_eq!(keycloak_logout_for("https://h/api/id/v1/auth/token"), None);
    }

    #[test]
    fn discovery_needs_a_token_endpoint_url() {
        let doc = r#"{"issuer":"https://i","token_endpoint":"https://i/token","revocation_endpoint":"https://i/revoke"}"#;
        let e = parse_discovery(doc).unwrap();
        assert_eq!(e.token, "https://i/token");
        assert_eq!(e.revocation.as_deref(), Some("https://i/revoke"));
        assert_eq!(e.end_session, None);
        assert_eq!(e.authorization, None);
        let doc = r#"{"token_endpoint":"https://i/token","authorization_endpoint":"https://i/auth",
            "device_authorization_endpoint":"https://i/device/code"}"#;
        let e = parse_discovery(doc).unwrap();
        assert_eq!(e.authorization.as_deref(), Some("https://i/auth"));
        assert_eq!(
            e.device_authorization.as_deref(),
            Some("https://i/device/code")
        );
        assert!(parse_discovery(r#"{"issuer":"https://i"}"#).is_none());
        assert!(parse_discovery(r#"{"token_endpoint":"javascript:x"}"#).is_none());
        assert!(parse_discovery("<html>").is_none());
    }
}
