//! Token exchange (RFC 8693) as Dex implements it: a pipeline trades the
//! identity token its CI system gives it for a Dex token, with no password
//! and no refresh token. See `shared/reference/dex-token-exchange.md`.
//!
//! Dex's quirks this follows:
//! - `connector_id` is required (not in the RFC): the connector that
//!   verifies the subject token.
//! - The issued token is always in `access_token`, even when it is an
//!   id_token; `issued_token_type` says which it is.
//! - There is no refresh token: renewal is another exchange, with a subject
//!   token read afresh (CI systems rotate them).
//! - A subject token the connector rejects is a bare 401 `access_denied`.

use super::oauth::{Endpoint, discover};
use super::{
    ClientAuth, Context, Grant, Logout, Provider, RefreshError, TokenError, parse_token_response,
};
use crate::cache::{Entry, TokenField};
use crate::error::{Error, Result};
use crate::http::Response;
use crate::secret::Secret;
use crate::subject::{self, Source};

/// The grant's name in the cache key and on the command line.
pub const GRANT_NAME: &str = "token_exchange";
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN_URN: &str = "urn:ietf:params:oauth:token-type:id_token";
const ACCESS_TOKEN_URN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// RFC 8693's name for a token type.
pub fn type_urn(field: TokenField) -> &'static str {
    match field {
        TokenField::IdToken => ID_TOKEN_URN,
        TokenField::AccessToken => ACCESS_TOKEN_URN,
    }
}

#[derive(Debug, Clone)]
pub struct TokenExchange {
    pub endpoint: Endpoint,
    pub client_id: String,
    pub client_auth: ClientAuth,
    pub connector_id: String,
    /// Absent only for `logout --all`, which never exchanges.
    pub subject: Option<Source>,
    pub subject_token_type: TokenField,
    pub requested: TokenField,
    pub audience: Option<String>,
    pub scope: Option<String>,
    pub extra_params: Vec<(String, String)>,
    /// Dex behind `--pcd`: its client secret cannot be fetched through
    /// Keystone without a password, so the hint for `invalid_client` differs.
    pub via_pcd: bool,
}

impl TokenExchange {
    fn token_endpoint(&self, ctx: &Context<'_>, entry: &mut Entry) -> Result<String> {
        match &self.endpoint {
            Endpoint::TokenUrl(url) => Ok(url.clone()),
            Endpoint::Issuer(issuer) => {
                if let Some(saved) = &entry.endpoints {
                    return Ok(saved.token.clone());
                }
                let found = discover(ctx, issuer)?;
                entry.endpoints = Some(found.clone());
                Ok(found.token)
            }
        }
    }

    fn request(
        &self,
        ctx: &Context<'_>,
        endpoint: &str,
        subject_token: &Secret,
    ) -> std::result::Result<Response, TokenError> {
        let mut form = vec![
            ("grant_type", GRANT_TYPE),
            ("subject_token", subject_token.expose()),
            ("subject_token_type", type_urn(self.subject_token_type)),
            ("requested_token_type", type_urn(self.requested)),
            ("connector_id", self.connector_id.as_str()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        if let Some(audience) = &self.audience {
            form.push(("audience", audience));
        }
        form.extend(
            self.extra_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let basic = self.client_auth.apply(&self.client_id, &mut form);
        let response = ctx
            .http
            .post_form(endpoint, &form, basic)
            .map_err(TokenError::Unavailable)?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(TokenError::Refused(response))
        }
    }

    /// The issued token, put where the cache expects the requested type.
    fn issued(&self, response: &Response) -> Result<Grant> {
        let grant = parse_token_response(response, super::now_secs())?;
        let issued_type = serde_json::from_str::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|v| v.get("issued_token_type")?.as_str().map(str::to_string));
        let issued_as = match issued_type.as_deref() {
            None => self.requested,
            Some(ID_TOKEN_URN) => TokenField::IdToken,
            Some(ACCESS_TOKEN_URN) => TokenField::AccessToken,
            Some(other) => {
                return Err(Error::provider(format!(
                    "{} issued a token of type {other:?}, not the {} asked for",
                    response.what,
                    self.requested.name()
                )));
            }
        };
        if issued_as != self.requested {
            return Err(Error::provider(format!(
                "{} issued an {} although an {} was asked for",
                response.what,
                issued_as.name(),
                self.requested.name()
            )));
        }
        // RFC 8693 §2.2.1: the issued token is in `access_token` whatever
        // its type; a server that put it in `id_token` is accepted too.
        let token = grant.access_token.or(grant.id_token).ok_or_else(|| {
            Error::provider(format!("{} answered without a token", response.what))
        })?;
        let (id_token, access_token) = match self.requested {
            TokenField::IdToken => (Some(token), None),
            TokenField::AccessToken => (None, Some(token)),
        };
        Ok(Grant {
            id_token,
            access_token,
            refresh_token: None,
            refresh_expires_at: None,
        })
    }

    /// One line that says what the server refused and what to change.
    fn refusal(&self, error: TokenError, source: &Source) -> Error {
        let code = error.oauth_code();
        let e = error.into_error("exchanging the subject token");
        let hint = match code.as_deref() {
            Some("access_denied") => format!(
                "the server rejected the subject token from {} (expired, not yet valid, wrong \
                 audience, or not from an issuer that connector {:?} trusts)",
                source.describe(),
                self.connector_id
            ),
            Some("invalid_client") if self.via_pcd => {
                "check --client-id; with --pcd, token exchange needs the client secret from \
                 --client-secret-file or DEXCRED_CLIENT_SECRET (or a public client)"
                    .to_string()
            }
            Some("invalid_client" | "unauthorized_client") => {
                "check --client-id and the client secret".to_string()
            }
            Some("unsupported_grant_type") => {
                "the server does not offer token exchange (Dex 2.38 or later, with the grant \
                 enabled in oauth2.grantTypes)"
                    .to_string()
            }
            _ if e.message().contains("connector") => "check --connector-id".to_string(),
            Some("request_not_supported") => {
                "check --subject-token-type and --requested-token-type".to_string()
            }
            _ => return e,
        };
        Error::new(e.kind(), format!("{}; {hint}", e.message()))
    }
}

impl Provider for TokenExchange {
    fn login(&self, ctx: &Context<'_>, entry: &mut Entry) -> Result<Grant> {
        let source = self
            .subject
            .as_ref()
            .ok_or_else(|| Error::usage("--grant token_exchange needs a subject token source"))?;
        let subject_token = source.read(ctx.http, self.audience.as_deref())?;
        subject::check_not_expired(&subject_token, source, super::now_secs())?;
        ctx.log.debug(|| {
            format!(
                "exchanging subject token {} from {} at connector {:?}",
                subject_token.fingerprint(),
                source.describe(),
                self.connector_id
            )
        });
        let endpoint = self.token_endpoint(ctx, entry)?;
        let response = self
            .request(ctx, &endpoint, &subject_token)
            .map_err(|e| self.refusal(e, source))?;
        self.issued(&response)
    }

    fn refresh(
        &self,
        _ctx: &Context<'_>,
        _entry: &mut Entry,
        _refresh_token: &Secret,
    ) -> std::result::Result<Grant, RefreshError> {
        Err(RefreshError::Rejected(
            "token exchange has no refresh token".to_string(),
        ))
    }

    fn logout(&self, _ctx: &Context<'_>, _entry: &Entry) -> Logout {
        Logout::NotSupported(
            "a token exchange leaves no session at the server; the token expires on its own"
                .to_string(),
        )
    }

    fn login_needs_password(&self) -> bool {
        false
    }

    fn uses_refresh_tokens(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provider(requested: TokenField) -> TokenExchange {
        TokenExchange {
            endpoint: Endpoint::TokenUrl("https://dex/token".into()),
            client_id: "c".into(),
            client_auth: ClientAuth::None,
            connector_id: "ci".into(),
            subject: None,
            subject_token_type: TokenField::IdToken,
            requested,
            audience: None,
            scope: None,
            extra_params: vec![],
            via_pcd: false,
        }
    }

    fn resp(body: serde_json::Value) -> Response {
        Response {
            status: 200,
            body: body.to_string(),
            headers: vec![],
            what: "POST https://dex/token".into(),
        }
    }

    #[test]
    fn an_id_token_in_access_token_is_handed_out_as_the_id_token() {
        let g = provider(TokenField::IdToken)
            .issued(&resp(
                json!({"access_token": "tok", "issued_token_type": ID_TOKEN_URN,
                "token_type": "bearer", "expires_in": 60}),
            ))
            .unwrap();
        assert_eq!(g.id_token.unwrap().value.expose(), "tok");
        assert!(g.access_token.is_none() && g.refresh_token.is_none());
    }

    #[test]
    fn a_token_of_another_type_is_refused() {
        let e = provider(TokenField::IdToken)
            .issued(&resp(
                json!({"access_token": "tok", "issued_token_type": ACCESS_TOKEN_URN}),
            ))
            .unwrap_err();
        assert_eq!(e.exit_code(), 4);
    }

    #[test]
    fn a_refresh_token_is_never_kept() {
        let g = provider(TokenField::AccessToken)
            .issued(&resp(json!({"access_token": "tok", "refresh_token": "r"})))
            .unwrap();
        assert!(g.refresh_token.is_none());
        assert_eq!(g.access_token.unwrap().value.expose(), "tok");
    }
}
