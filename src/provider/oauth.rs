//! Any OAuth 2.0 / OpenID Connect token endpoint.
//!
//! Covers: Keycloak's password
//! grant with a one-time code and its logout endpoint, client credentials
//! with the secret in the form (`client_secret_post`) or in HTTP Basic
//! (`client_secret_basic`), and any server found by OpenID discovery.
//!
//! Browser and device logins (`--grant authorization_code`, `device_code`)
//! are run by `super::login`; this module gives them the discovered
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
use crate::http::{BasicAuth, BasicEncoding};
use crate::provider::login::{self, browser, device};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `--token-url`: the token endpoint itself.
    TokenUrl(String),
    /// `--issuer`: find the endpoints with OpenID discovery.
    Issuer(String),
}

/// The grants this provider logs in with itself. The cache key's
/// vocabulary ([`crate::cache::Grant`]) has one more: token exchange is
/// [`super::exchange`].
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
    /// Logins a person must complete in a browser or on another device.
    pub fn needs_person(self) -> bool {
        matches!(self, GrantKind::AuthorizationCode | GrantKind::DeviceCode)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Post,
    /// HTTP Basic, form-encoded first (RFC 6749 §2.3.1).
    Basic,
    /// HTTP Basic of the raw `id:secret`.
    BasicRaw,
}

impl AuthMethod {
    /// How a client with this method and `secret` authenticates: the one
    /// place that turns `--client-auth` into what goes on the wire.
    pub fn client_auth(self, secret: Option<Secret>) -> ClientAuth {
        match (secret, self) {
            (None, _) => ClientAuth::None,
            (Some(s), AuthMethod::Post) => ClientAuth::Post(s),
            (Some(s), AuthMethod::Basic) => ClientAuth::Basic(s, BasicEncoding::Form),
            (Some(s), AuthMethod::BasicRaw) => ClientAuth::Basic(s, BasicEncoding::Raw),
        }
    }
}

#[derive(Debug, Clone)]
pub struct OAuth {
    pub endpoint: Endpoint,
    /// An explicit Keycloak-style logout endpoint (`--logout-url`).
    pub logout_url: Option<String>,
    /// An explicit RFC 7009 revocation endpoint (`--revocation-url`).
    pub revocation_url: Option<String>,
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
        self.auth_method.client_auth(self.client_secret.clone())
    }

    /// A token-endpoint failure as a user-facing error; `check` is advice
    /// for a refused client (`invalid_client`, `unauthorized_client`).
    ///
    /// When HTTP Basic was refused and the id or secret holds characters
    /// that the two Basic encodings spell differently, the server may simply
    /// decode the other way: the message then also names the
    /// `--client-auth` value that sends the other spelling, rather than only
    /// blaming the secret.
    fn token_error(&self, e: TokenError, doing: &str, check: Option<&str>) -> Error {
        let refused_basic = matches!(&e, TokenError::Refused(r) if r.status == 401);
        let code = e.oauth_code();
        let other = match self.auth_method {
            AuthMethod::Basic => "basic-raw",
            AuthMethod::BasicRaw => "basic",
            AuthMethod::Post => "",
        };
        let ambiguous = self
            .client_secret
            .as_ref()
            .is_some_and(|s| BasicAuth::encodings_differ(&self.client_id, s.expose()));
        let error = e.into_error(doing);
        let mut message = error.message().to_string();
        if let (Some(check), Some("invalid_client" | "unauthorized_client")) =
            (check, code.as_deref())
        {
            message.push_str(&format!("; {check}"));
        }
        if refused_basic && ambiguous && !other.is_empty() {
            message.push_str(&format!(
                "; the client id or secret contains characters (such as + / = % or a space) \
                 that HTTP Basic can encode two ways, so the server may have decoded it \
                 differently: if the secret is right, try --client-auth {other}"
            ));
        }
        Error::new(error.kind(), message)
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
                revocation: self.revocation_url.clone(),
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
                if self.revocation_url.is_some() {
                    found.revocation = self.revocation_url.clone();
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
                let code = ctx.credentials.prompt(
                    "The server refused the login. One-time code (leave empty if you have none): ",
                )?;
                if code.expose().trim().is_empty() {
                    return Err(self.token_error(e, "logging in", None));
                }
                let code = Secret::new(code.expose().trim());
                self.password_request(ctx, endpoint, username, &password, Some(&code))
                    .map_err(|e| self.token_error(e, "logging in", None))
            }
            Err(e) => Err(self.token_error(e, "logging in", None)),
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
            self.token_error(
                e,
                "getting a client-credentials token",
                Some("check --client-id and the client secret"),
            )
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
        browser::login(&self.login, ctx.credentials, ctx.log, &request, |code| {
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
        // The secret is never cached; without it (`logout --all`) the
        // server would refuse, so the tokens are only deleted here.
        if self.client_secret.is_none() {
            return Logout::NotSupported(
                "revoking a client-credentials token needs the client secret, which the cache \
                 does not store; deleted here only, the token ends when it expires"
                    .to_string(),
            );
        }
        let revocation = self
            .revocation_url
            .as_ref()
            .or_else(|| entry.endpoints.as_ref().and_then(|e| e.revocation.as_ref()));
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
        let basic = auth.apply(&self.client_id, &mut form);
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

/// Finds the endpoints from the issuer's metadata. OpenID Connect discovery
/// (`{issuer}/.well-known/openid-configuration`) comes first; RFC 8414
/// authorization-server metadata (`/.well-known/oauth-authorization-server`,
/// inserted before the issuer's path) is read when there is no OpenID
/// document, or when it does not list a revocation endpoint (some servers
/// list `revocation_endpoint` only there).
pub fn discover(ctx: &Context<'_>, issuer: &str) -> Result<Endpoints> {
    let oidc_url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let oauth_url = rfc8414_url(issuer);
    let oidc = fetch_metadata(ctx, &oidc_url)?;
    let oidc = match oidc {
        Fetched::Document(body) => Some(parse_discovery(issuer, &oidc_url, &body)?),
        Fetched::Missing(_) => None,
    };
    if let Some(found) = &oidc
        && found.revocation.is_some()
    {
        return Ok(found.clone());
    }
    let oauth = match fetch_metadata(ctx, &oauth_url) {
        Ok(Fetched::Document(body)) => parse_discovery(issuer, &oauth_url, &body).map(Some),
        Ok(Fetched::Missing(reason)) => {
            ctx.log
                .debug(|| format!("no RFC 8414 metadata at {oauth_url}: {reason}"));
            Ok(None)
        }
        Err(e) if oidc.is_some() => {
            ctx.log.debug(|| e.one_line());
            Ok(None)
        }
        Err(e) => Err(e),
    };
    match (oidc, oauth) {
        (Some(mut found), Ok(Some(extra))) => {
            found.revocation = extra.revocation;
            Ok(found)
        }
        (Some(found), _) => Ok(found),
        (None, Ok(Some(found))) => Ok(found),
        (None, Err(e)) => Err(e),
        (None, Ok(None)) => Err(Error::provider(format!(
            "OpenID discovery: neither {oidc_url} nor {oauth_url} is a metadata document; check --issuer"
        ))),
    }
}

/// RFC 8414 §3.1: the well-known segment goes between the host and the
/// issuer's path (`https://h/tenant` → `https://h/.well-known/oauth-authorization-server/tenant`).
fn rfc8414_url(issuer: &str) -> String {
    let issuer = issuer.trim_end_matches('/');
    let (scheme, rest) = issuer.split_once("://").unwrap_or(("https", issuer));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    format!("{scheme}://{authority}/.well-known/oauth-authorization-server{path}")
}

enum Fetched {
    Document(String),
    /// The server answered that there is no document here (a 4xx).
    Missing(String),
}

fn fetch_metadata(ctx: &Context<'_>, url: &str) -> Result<Fetched> {
    let response = ctx
        .http
        .get(url, &[])
        .map_err(|e| e.context("OpenID discovery"))?;
    if response.is_success() {
        return Ok(Fetched::Document(response.body));
    }
    if (400..500).contains(&response.status) {
        return Ok(Fetched::Missing(response.reason()));
    }
    Err(Error::provider(format!(
        "OpenID discovery: {} failed: {}; check --issuer",
        response.what,
        response.reason()
    )))
}

/// Reads the endpoints from a metadata document. An https issuer's
/// document may name only https endpoints: a plain-http token endpoint
/// there (even on this machine, where another user may listen on the port)
/// would take the password out of TLS on the word of a document.
fn parse_discovery(issuer: &str, url: &str, body: &str) -> Result<Endpoints> {
    let not_metadata = || {
        Error::provider(format!(
            "OpenID discovery: {url} is not a discovery document with a token_endpoint"
        ))
    };
    let doc: serde_json::Value = serde_json::from_str(body).map_err(|_| not_metadata())?;
    let https_issuer = issuer.starts_with("https://");
    let field = |name: &str| -> Result<Option<String>> {
        let Some(value) = doc.get(name).and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        if value.starts_with("https://") {
            return Ok(Some(value.to_string()));
        }
        if value.starts_with("http://") {
            if https_issuer {
                return Err(Error::provider(format!(
                    "OpenID discovery: {url} gives {name} {value}, plain http for an https \
                     issuer; refusing to leave TLS on the word of a discovery document \
                     (pass the endpoint with --token-url if it really is plain http)"
                )));
            }
            return Ok(Some(value.to_string()));
        }
        Ok(None)
    };
    Ok(Endpoints {
        token: field("token_endpoint")?.ok_or_else(not_metadata)?,
        revocation: field("revocation_endpoint")?,
        end_session: field("end_session_endpoint")?,
        authorization: field("authorization_endpoint")?,
        device_authorization: field("device_authorization_endpoint")?,
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
        // What the user named wins over what was derived or discovered;
        // RFC 7009 revocation first when both are named.
        if let Some(url) = &self.revocation_url {
            return self.revoke(ctx, url, refresh_token);
        }
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
            "the server advertises no logout or revocation endpoint; pass --revocation-url (RFC 7009) or --logout-url (Keycloak-style) if it has one"
                .to_string(),
        )
    }

    fn login_needs_password(&self) -> bool {
        self.grant == GrantKind::Password
    }

    fn login_needs_person(&self, credentials: &super::Credentials) -> bool {
        self.grant.needs_person()
            || (self.login_needs_password() && credentials.password_needs_prompt())
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
            revocation_url: None,
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
                env: crate::environment::Environment::default(),
            },
        }
    }

    #[test]
    fn a_refresh_without_id_token_keeps_the_old_one_only_while_it_lives() {
        use crate::cache::{Key, StoredToken};
        let key = Key {
            provider: crate::cache::ProviderKind::Issuer,
            url: "https://i".into(),
            grant: crate::cache::Grant::AuthorizationCode,
            username: None,
            user_domain: None,
            project: None,
            client_id: "c".into(),
            connector_id: None,
            scope: None,
            extra_params: vec![],
            exchange: None,
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
        let parse = |doc: &str| parse_discovery("https://i", "https://i/.well-known/x", doc);
        let doc = r#"{"issuer":"https://i","token_endpoint":"https://i/token","revocation_endpoint":"https://i/revoke"}"#;
        let e = parse(doc).unwrap();
        assert_eq!(e.token, "https://i/token");
        assert_eq!(e.revocation.as_deref(), Some("https://i/revoke"));
        assert_eq!(e.end_session, None);
        assert_eq!(e.authorization, None);
        let doc = r#"{"token_endpoint":"https://i/token","authorization_endpoint":"https://i/auth",
            "device_authorization_endpoint":"https://i/device/code"}"#;
        let e = parse(doc).unwrap();
        assert_eq!(e.authorization.as_deref(), Some("https://i/auth"));
        assert_eq!(
            e.device_authorization.as_deref(),
            Some("https://i/device/code")
        );
        assert!(parse(r#"{"issuer":"https://i"}"#).is_err());
        assert!(parse(r#"{"token_endpoint":"javascript:x"}"#).is_err());
        assert!(parse("<html>").is_err());
    }

    #[test]
    fn an_https_issuer_cannot_point_anywhere_at_plain_http() {
        for field in [
            "token_endpoint",
            "revocation_endpoint",
            "end_session_endpoint",
        ] {
            let mut doc = serde_json::json!({"token_endpoint": "https://i/token"});
            doc[field] = "http://127.0.0.1:9/x".into();
            let e = parse_discovery("https://i", "https://i/.well-known/x", &doc.to_string())
                .unwrap_err();
            assert_eq!(e.exit_code(), 4);
            assert!(e.message().contains(field), "{e}");
        }
        let doc = r#"{"token_endpoint":"http://127.0.0.1:9/token"}"#;
        assert!(parse_discovery("http://127.0.0.1:9", "u", doc).is_ok());
    }

    #[test]
    fn rfc8414_metadata_url_inserts_the_well_known_segment() {
        assert_eq!(
            rfc8414_url("https://h:8443"),
            "https://h:8443/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            rfc8414_url("https://h/realms/x/"),
            "https://h/.well-known/oauth-authorization-server/realms/x"
        );
    }
}
