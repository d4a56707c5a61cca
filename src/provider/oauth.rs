//! Any OAuth 2.0 / OpenID Connect token endpoint.
//!
//! Covers: Keycloak's password
//! grant with a one-time code and its logout endpoint, client credentials
//! with the secret in the form (`client_secret_post`) or in HTTP Basic
//! (`client_secret_basic`), and any server found by OpenID discovery.
//!
//! Renewal policy: password sessions renew with their refresh token;
//! client-credentials tokens are renewed by asking again, because a client
//! holding its secret gains nothing from a refresh token (RFC 6749 §4.4.3
//! says servers should not even issue one) and some servers that do issue
//! one refuse the refresh grant.

use super::{
    ClientAuth, Context, Grant, Logout, Provider, RefreshError, TokenError, token_request,
};
use crate::cache::{Endpoints, Entry};
use crate::error::{Error, Result};
use crate::secret::{self, Secret};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `--token-url`: the token endpoint itself.
    TokenUrl(String),
    /// `--issuer`: find the endpoints with OpenID discovery.
    Issuer(String),
}

/// The grant that logs in: the cache key's vocabulary.
pub use crate::cache::Grant as GrantKind;

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
}

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
        let basic = match &auth {
            ClientAuth::None => {
                form.push(("client_id", &self.client_id));
                None
            }
            ClientAuth::Post(s) => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", s.expose()));
                None
            }
            ClientAuth::Basic(s) => Some((self.client_id.as_str(), s.expose())),
        };
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
    })
}

impl Provider for OAuth {
    fn login(&self, ctx: &Context<'_>, entry: &mut Entry) -> Result<Grant> {
        match self.grant {
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
        token_request(
            ctx,
            &endpoints.token,
            &self.client_id,
            &self.client_auth(),
            &fields,
        )
        .map_err(TokenError::into_refresh_error)
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

    fn uses_refresh_tokens(&self) -> bool {
        self.grant == GrantKind::Password
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(parse_discovery(r#"{"issuer":"https://i"}"#).is_none());
        assert!(parse_discovery(r#"{"token_endpoint":"javascript:x"}"#).is_none());
        assert!(parse_discovery("<html>").is_none());
    }
}
