//! Platform9 PCD: Keystone → Dex client secret → Dex token endpoint.
//!
//! A login takes three requests:
//! 1. `POST {pcd}/keystone/v3/auth/tokens` with the password; the Keystone
//!    token comes back in the `X-Subject-Token` header of a 201.
//! 2. `GET {pcd}/resmgr/v2/dexclients` with that token; the Dex client secret
//!    is the value under the client id (`kubernetes`).
//! 3. `POST {pcd}/dex/token` with the password grant.
//!
//! The client secret is kept in the cache entry, so later logins skip steps
//! 1 and 2; if Dex rejects the cached secret (`invalid_client`, e.g. after
//! the operator rotated it) it is fetched again once. Renewals are one
//! refresh-token request to Dex. Dex rotates the refresh token on every
//! use and accepts each one only once, so the rotated token is saved before
//! anything else.

use serde_json::json;

use super::{
    ClientAuth, Context, Grant, Logout, Provider, RefreshError, TokenError, token_request,
};
use crate::cache::Entry;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// The scopes PCD's documentation asks for: `openid` is required by Dex,
/// `offline_access` is what makes it issue a refresh token.
pub const DEFAULT_SCOPE: &str = "openid offline_access groups email profile";

#[derive(Debug, Clone)]
pub struct Pcd {
    /// The deployment URL without a trailing slash.
    pub base: String,
    pub username: String,
    pub user_domain: String,
    pub project: Option<String>,
    pub client_id: String,
    pub connector_id: String,
    pub scope: String,
    pub extra_params: Vec<(String, String)>,
    /// A client secret given by the user (`--client-secret-file`,
    /// `DEXCRED_CLIENT_SECRET`): Keystone and dexclients are then skipped.
    pub static_secret: Option<Secret>,
}

impl Pcd {
    fn token_endpoint(&self) -> String {
        format!("{}/dex/token", self.base)
    }

    fn password_grant(
        &self,
        ctx: &Context<'_>,
        secret: &Secret,
        password: &Secret,
    ) -> std::result::Result<Grant, TokenError> {
        let mut fields = vec![
            ("grant_type", "password"),
            ("username", self.username.as_str()),
            ("password", password.expose()),
            ("scope", self.scope.as_str()),
            ("connector_id", self.connector_id.as_str()),
        ];
        fields.extend(
            self.extra_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        token_request(
            ctx,
            &self.token_endpoint(),
            &self.client_id,
            &ClientAuth::Post(secret.clone()),
            &fields,
        )
    }

    /// Steps 1 and 2: a Keystone token, then the Dex client secret.
    fn fetch_client_secret(&self, ctx: &Context<'_>, password: &Secret) -> Result<Secret> {
        let keystone_token = self.keystone_token(ctx, password)?;
        let url = format!("{}/resmgr/v2/dexclients", self.base);
        let response = ctx
            .http
            .get(&url, &[("x-auth-token", keystone_token.expose())])
            .map_err(|e| e.context("fetching the Dex client secret"))?;
        if !response.is_success() {
            return Err(response.refusal("fetching the Dex client secret"));
        }
        let clients: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&response.body).map_err(|_| {
                Error::provider(format!(
                    "{} did not return a JSON object of Dex clients",
                    response.what
                ))
            })?;
        match clients.get(&self.client_id).and_then(|v| v.as_str()) {
            Some(secret) if !secret.is_empty() => Ok(Secret::new(secret)),
            _ => {
                let names: Vec<&str> = clients.keys().map(String::as_str).collect();
                Err(Error::provider(format!(
                    "{} has no Dex client named {:?} (it has: {}); check --client-id",
                    response.what,
                    self.client_id,
                    names.join(", ")
                )))
            }
        }
    }

    fn keystone_token(&self, ctx: &Context<'_>, password: &Secret) -> Result<Secret> {
        let url = format!("{}/keystone/v3/auth/tokens", self.base);
        let mut auth = json!({
            "identity": {
                "methods": ["password"],
                "password": {"user": {
                    "name": self.username,
                    "domain": {"name": self.user_domain},
                    "password": password.expose(),
                }}
            }
        });
        if let Some(project) = &self.project {
            auth["scope"] =
                json!({"project": {"name": project, "domain": {"name": self.user_domain}}});
        }
        let body = json!({ "auth": auth }).to_string();
        let response = ctx
            .http
            .post_json(&url, &body, &[password.expose()])
            .map_err(|e| e.context("logging in to Keystone"))?;
        if response.status == 401 {
            return Err(self.keystone_refused(&response));
        }
        if !response.is_success() {
            return Err(response.refusal("logging in to Keystone"));
        }
        response
            .header("X-Subject-Token")
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .ok_or_else(|| {
                Error::provider(format!(
                    "{} answered {} without an X-Subject-Token header",
                    response.what, response.status
                ))
            })
    }

    /// Keystone answers 401 with one generic text for a wrong password, an
    /// unknown or disabled user and an unknown or forbidden project, so
    /// with a project scope the project is named as a possible cause.
    fn keystone_refused(&self, response: &crate::http::Response) -> Error {
        let (what, check) = match &self.project {
            Some(project) => (
                format!(
                    "the login of {} in domain {} scoped to project {project}",
                    self.username, self.user_domain
                ),
                "the project (it may not exist or not be open to this user), the user name, \
                 --user-domain and the password",
            ),
            None => (
                format!(
                    "the password for {} in domain {}",
                    self.username, self.user_domain
                ),
                "the user name, --user-domain and the password",
            ),
        };
        Error::auth(format!(
            "Keystone rejected {what} ({}); check {check}",
            response.reason()
        ))
    }

    fn login_error(&self, error: TokenError) -> Error {
        let code = error.oauth_code();
        let e = error.into_error("logging in to Dex");
        match code.as_deref() {
            Some("invalid_client") if self.static_secret.is_some() => Error::auth(format!(
                "{}; the client secret from --client-secret-file or DEXCRED_CLIENT_SECRET is wrong",
                e.message()
            )),
            _ => e,
        }
    }
}

impl Provider for Pcd {
    fn login(&self, ctx: &Context<'_>, entry: &mut Entry) -> Result<Grant> {
        let password = ctx.credentials.password()?;
        let (secret, from_cache) = match (&self.static_secret, &entry.client_secret) {
            (Some(s), _) => (s.clone(), false),
            (None, Some(s)) => (s.clone(), true),
            (None, None) => (self.fetch_client_secret(ctx, &password)?, false),
        };
        let grant = match self.password_grant(ctx, &secret, &password) {
            Ok(grant) => {
                if self.static_secret.is_none() {
                    entry.client_secret = Some(secret);
                }
                grant
            }
            Err(e) if from_cache && e.oauth_code().as_deref() == Some("invalid_client") => {
                ctx.log.debug(|| {
                    "Dex rejected the cached client secret; fetching it again".to_string()
                });
                let fresh = self.fetch_client_secret(ctx, &password)?;
                let grant = self
                    .password_grant(ctx, &fresh, &password)
                    .map_err(|e| self.login_error(e))?;
                entry.client_secret = Some(fresh);
                grant
            }
            Err(e) => return Err(self.login_error(e)),
        };
        Ok(grant)
    }

    fn refresh(
        &self,
        ctx: &Context<'_>,
        entry: &mut Entry,
        refresh_token: &Secret,
    ) -> std::result::Result<Grant, RefreshError> {
        let Some(secret) = self.static_secret.as_ref().or(entry.client_secret.as_ref()) else {
            return Err(RefreshError::Rejected(
                "no Dex client secret is cached".to_string(),
            ));
        };
        let fields = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ];
        token_request(
            ctx,
            &self.token_endpoint(),
            &self.client_id,
            &ClientAuth::Post(secret.clone()),
            &fields,
        )
        .map_err(|e| {
            // The cached client secret was rotated: forget it, so the login
            // that follows fetches the new one at once instead of first
            // sending the password with a secret Dex just refused.
            if self.static_secret.is_none() && e.oauth_code().as_deref() == Some("invalid_client") {
                ctx.log.debug(|| {
                    "Dex rejected the cached client secret; it will be fetched again".to_string()
                });
                entry.client_secret = None;
            }
            e.into_refresh_error()
        })
    }

    fn logout(&self, _ctx: &Context<'_>, _entry: &Entry) -> Logout {
        Logout::NotSupported(
            "Dex has no logout or revocation endpoint: the refresh token stays valid at Dex until \
             it expires or your next login replaces it"
                .to_string(),
        )
    }

    fn login_needs_password(&self) -> bool {
        true
    }
}
