//! The Basic client-credentials server of basic-auth-client-credentials.txt:
//! `POST /api/id/v1/auth/token`, client authentication only through
//! `Authorization: Basic`, errors as `{"error":…,"errorDescription":…}`
//! (camelCase, unlike RFC 6749).
//!
//! The document gives one error example (`"Forbidden"` / `"permission
//! denied"`); the other `error` values follow the same reason-phrase style
//! and are our inference.

use serde_json::json;

use super::jwt;
use super::state::State;
use crate::http::{Reply, Request};

/// The server's error shape.
fn cc_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": error, "errorDescription": description}),
    )
}

/// Any other path under `/api/id/`.
pub(crate) fn not_found() -> Reply {
    cc_error(404, "Not Found", "no such route")
}

/// `POST /api/id/v1/auth/token`.
pub(crate) fn token(state: &mut State, req: &Request) -> Reply {
    if req.method != "POST" {
        return not_found();
    }
    let client_id = match authenticate(state, req) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let form = req.form();
    let field = |key: &str| super::dex::field(&form, key);
    match field("grant_type") {
        "" => return cc_error(400, "Bad Request", "grant_type is required"),
        "client_credentials" => {}
        other => {
            let text = format!("unsupported grant_type: {other}");
            return cc_error(400, "Bad Request", &text);
        }
    }
    let scope = field("scope")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if scope.is_empty() {
        return cc_error(400, "Bad Request", "scope is required");
    }
    if !scopes_allowed(state, &client_id, &scope) {
        return cc_error(403, "Forbidden", "permission denied");
    }
    issue(state, &client_id, &scope)
}

/// Basic only: the form's `client_id`/`client_secret` are ignored. The
/// document says `Basic base64(client_id:client_secret)`, and the service
/// decodes exactly that: base64, split at the first `:`, no URL-decoding
/// (unlike RFC 6749 §2.3.1, which Dex and Keycloak follow). A client that
/// form-encodes a secret containing `+ / = %` or a space is refused.
fn authenticate(state: &State, req: &Request) -> Result<String, Reply> {
    let Some((id, secret)) = req.basic_auth_raw() else {
        return Err(cc_error(
            401,
            "Unauthorized",
            "client authentication required (HTTP Basic)",
        ));
    };
    let valid = state
        .clients
        .get(&id)
        .and_then(|c| c.secret.as_deref())
        .is_some_and(|expected| expected == secret);
    if valid {
        Ok(id)
    } else {
        Err(cc_error(401, "Unauthorized", "invalid client credentials"))
    }
}

fn scopes_allowed(state: &State, client_id: &str, scope: &str) -> bool {
    let allowed = state
        .clients
        .get(client_id)
        .and_then(|c| c.allowed_scopes.as_ref());
    allowed.is_none_or(|allowed| scope.split(' ').all(|s| allowed.iter().any(|a| a == s)))
}

/// The 200 body, shaped exactly like the document's example.
fn issue(state: &mut State, client_id: &str, scope: &str) -> Reply {
    let lifetime = state.lifetimes.client_credentials;
    let iss = format!("{}/api/id/v1", state.base_url);
    let now = state.now();
    let sub = client_id.to_owned();

    let mut access = jwt::base_claims(&iss, &sub, client_id.into(), now, lifetime);
    access.insert("scp".into(), scope.into());
    let access = jwt::sign(access);
    state.remember_token(&access, None, lifetime, None);

    let mut id = jwt::base_claims(&iss, &sub, client_id.into(), now, lifetime);
    id.insert("name".into(), client_id.into());
    let id_token = jwt::sign(id);
    state.remember_token(&id_token, None, lifetime, None);

    // The refresh token is JWT-shaped like the example, but this server does
    // not accept grant_type=refresh_token, so it is never recorded.
    let mut refresh = jwt::base_claims(&iss, &sub, client_id.into(), now, lifetime * 26);
    refresh.insert("scp".into(), scope.into());
    let refresh = jwt::sign(refresh);

    Reply::json(
        200,
        &json!({
            "scope": scope,
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": lifetime.as_secs(),
            "id_token": id_token,
            "refresh_token": refresh,
        }),
    )
}
