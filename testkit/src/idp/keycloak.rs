//! Keycloak (OCP IAM) under `/auth/realms/{realm}/…` and `/realms/{realm}/…`:
//! token (password with OTP, refresh_token, client_credentials), logout,
//! revoke and discovery, with Keycloak's error texts and session model.

use serde_json::{Map, Value, json};

use super::jwt;
use super::state::{Account, KcRefresh, State};
use crate::http::{Reply, Request};

const INVALID_CLIENT: &str = "Invalid client or Invalid client credentials";

/// `{"error":…,"error_description":…}` as Keycloak's OAuth endpoints send.
fn kc_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// A parsed Keycloak path.
pub(crate) struct KcPath<'a> {
    /// `/auth` or "" (newer Keycloak dropped the prefix).
    pub prefix: &'a str,
    pub realm: &'a str,
    pub rest: &'a str,
}

/// Splits `/auth/realms/{realm}/{rest}` or `/realms/{realm}/{rest}`.
pub(crate) fn parse_path(path: &str) -> Option<KcPath<'_>> {
    let (prefix, tail) = if let Some(t) = path.strip_prefix("/auth/realms/") {
        ("/auth", t)
    } else {
        ("", path.strip_prefix("/realms/")?)
    };
    let (realm, rest) = tail.split_once('/').unwrap_or((tail, ""));
    (!realm.is_empty()).then_some(KcPath {
        prefix,
        realm,
        rest,
    })
}

/// Routes one request under a realm.
pub(crate) fn route(state: &mut State, req: &Request, path: &KcPath<'_>) -> Reply {
    if !state.knobs.realms.iter().any(|r| r == path.realm) {
        return Reply::json(404, &json!({"error": "Realm does not exist"}));
    }
    let endpoint = path.rest;
    match (req.method.as_str(), endpoint) {
        ("GET", ".well-known/openid-configuration") => discovery(state, path),
        ("POST", "protocol/openid-connect/token") => token(state, req, path.realm),
        ("POST", "protocol/openid-connect/logout") => logout(state, req),
        ("POST", "protocol/openid-connect/revoke") => revoke(state, req),
        (
            _,
            ".well-known/openid-configuration"
            | "protocol/openid-connect/token"
            | "protocol/openid-connect/logout"
            | "protocol/openid-connect/revoke",
        ) => Reply::text(405, "text/plain", "HTTP 405 Method Not Allowed"),
        _ => Reply::json(
            404,
            &json!({"error": "Unable to find matching target resource method"}),
        ),
    }
}

/// `{issuer}` for a realm, with the same prefix the client used.
fn issuer(state: &State, prefix: &str, realm: &str) -> String {
    format!("{}{prefix}/realms/{realm}", state.base_url)
}

fn discovery(state: &State, path: &KcPath<'_>) -> Reply {
    let iss = issuer(state, path.prefix, path.realm);
    let oidc = format!("{iss}/protocol/openid-connect");
    Reply::json(
        200,
        &json!({
            "issuer": iss,
            "authorization_endpoint": format!("{oidc}/auth"),
            "token_endpoint": format!("{oidc}/token"),
            "introspection_endpoint": format!("{oidc}/token/introspect"),
            "userinfo_endpoint": format!("{oidc}/userinfo"),
            "end_session_endpoint": format!("{oidc}/logout"),
            "jwks_uri": format!("{oidc}/certs"),
            "revocation_endpoint": format!("{oidc}/revoke"),
            "grant_types_supported": ["authorization_code", "implicit", "refresh_token",
                "password", "client_credentials"],
            "response_types_supported": ["code", "none", "id_token", "token", "id_token token"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"]
        }),
    )
}

/// The client that authenticated a request.
struct AuthedClient {
    id: String,
    public: bool,
}

/// Keycloak client authentication: Basic (URL-decoded parts) or form
/// fields. Unknown client → 401 invalid_client; known confidential client
/// with a wrong or missing secret → 401 unauthorized_client.
fn authenticate_client(
    state: &State,
    req: &Request,
    form: &[(String, String)],
) -> Result<AuthedClient, Reply> {
    let (id, secret) = match req.basic_auth() {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            field(form, "client_id").to_owned(),
            form.iter()
                .find(|(k, _)| k == "client_secret")
                .map(|(_, v)| v.clone()),
        ),
    };
    let Some(client) = state.clients.get(&id) else {
        return Err(kc_error(401, "invalid_client", INVALID_CLIENT));
    };
    match &client.secret {
        None => Ok(AuthedClient { id, public: true }),
        Some(expected) if secret.as_deref() == Some(expected.as_str()) => {
            Ok(AuthedClient { id, public: false })
        }
        Some(_) => Err(kc_error(401, "unauthorized_client", INVALID_CLIENT)),
    }
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> &'a str {
    super::dex::field(form, key)
}

/// `POST …/protocol/openid-connect/token`.
fn token(state: &mut State, req: &Request, realm: &str) -> Reply {
    let form = req.form();
    let grant = field(&form, "grant_type");
    if grant.is_empty() {
        return kc_error(400, "invalid_request", "Missing form parameter: grant_type");
    }
    if !matches!(grant, "password" | "refresh_token" | "client_credentials") {
        return kc_error(400, "unsupported_grant_type", "Unsupported grant_type");
    }
    let client = match authenticate_client(state, req, &form) {
        Ok(client) => client,
        Err(reply) => return reply,
    };
    match grant {
        "password" => password_grant(state, &client, &form, realm),
        "refresh_token" => refresh_grant(state, &client, &form),
        _ => client_credentials(state, &client, &form, realm),
    }
}

/// Resource-owner password grant, with OTP when the user has codes.
fn password_grant(
    state: &mut State,
    client: &AuthedClient,
    form: &[(String, String)],
    realm: &str,
) -> Reply {
    let bad_credentials = || kc_error(401, "invalid_grant", "Invalid user credentials");
    let Some(account) = state.account_ci(field(form, "username")).cloned() else {
        return bad_credentials();
    };
    if account.user.password != field(form, "password") {
        return bad_credentials();
    }
    if !account.user.otp_codes.is_empty() {
        let code = Some(field(form, "otp"))
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| field(form, "totp"));
        if code.is_empty() || !state.consume_otp(&account.user.username, code) {
            return bad_credentials();
        }
    }
    if state.active_sessions(&account.user.username) >= state.knobs.max_sessions {
        // Our guess: the OCP docs only say a five-session limit exists; the
        // body of the real refusal is not documented.
        return kc_error(400, "invalid_grant", "Maximum number of sessions reached");
    }
    let scope = granted_scope(field(form, "scope"));
    let session = state.start_session(&account.user.username, realm, &scope);
    respond(state, &account, &client.id, &session)
}

/// Keycloak's granted scope: the default client scopes plus `openid` and
/// `offline_access` when requested.
fn granted_scope(requested: &str) -> String {
    let requested: Vec<&str> = requested.split_whitespace().collect();
    let mut granted = Vec::new();
    if requested.contains(&"openid") {
        granted.push("openid");
    }
    granted.extend(["profile", "email"]);
    if requested.contains(&"offline_access") {
        granted.push("offline_access");
    }
    granted.join(" ")
}

/// refresh_token grant: checks in Keycloak's order (token active, client,
/// session, reuse), keeps the session, issues a new refresh token.
fn refresh_grant(state: &mut State, client: &AuthedClient, form: &[(String, String)]) -> Reply {
    let text = field(form, "refresh_token");
    if text.is_empty() {
        return kc_error(400, "invalid_request", "Missing parameter: refresh_token");
    }
    let Some(record) = state.kc_refresh.get(text).cloned() else {
        return kc_error(400, "invalid_grant", "Invalid refresh token");
    };
    if state.now() >= record.expires_at {
        return kc_error(400, "invalid_grant", "Token is not active");
    }
    if record.client_id != client.id {
        return kc_error(
            400,
            "invalid_grant",
            "Invalid refresh token. Token client and authorized client don't match",
        );
    }
    if let Err(reply) = check_session(state, &record.session) {
        return reply;
    }
    if state.knobs.kc_revoke_refresh && record.used {
        // Keycloak detaches the client session when it sees reuse, so the
        // newer refresh token of that session dies too.
        if let Some(s) = state.sessions.get_mut(&record.session) {
            s.detached = true;
        }
        return kc_error(
            400,
            "invalid_grant",
            "Maximum allowed refresh token reuse exceeded",
        );
    }
    let now = state.now();
    if let Some(r) = state.kc_refresh.get_mut(text) {
        r.used = true;
    }
    let Some(session) = state.sessions.get_mut(&record.session) else {
        return kc_error(400, "invalid_grant", "Session not active");
    };
    session.last_refresh = now;
    let username = session.username.clone();
    let Some(account) = state.account_ci(&username).cloned() else {
        return kc_error(400, "invalid_grant", "Session not active");
    };
    respond(state, &account, &client.id, &record.session)
}

fn check_session(state: &State, id: &str) -> Result<(), Reply> {
    let Some(session) = state.sessions.get(id) else {
        return Err(kc_error(400, "invalid_grant", "Session not active"));
    };
    if session.ended || state.session_idle(session) {
        return Err(kc_error(400, "invalid_grant", "Session not active"));
    }
    if session.detached {
        return Err(kc_error(
            400,
            "invalid_grant",
            "Session doesn't have required client",
        ));
    }
    Ok(())
}

/// client_credentials for confidential clients: a service-account access
/// token, no session, no refresh token (Keycloak's default).
fn client_credentials(
    state: &mut State,
    client: &AuthedClient,
    form: &[(String, String)],
    realm: &str,
) -> Reply {
    if client.public {
        return kc_error(
            401,
            "unauthorized_client",
            "Public client not allowed to retrieve service account",
        );
    }
    let scope = granted_scope(field(form, "scope"));
    let lifetime = state.lifetimes.keycloak_access;
    let iss = issuer(state, "/auth", realm);
    let sub = service_account_id(&client.id);
    let mut claims = jwt::base_claims(&iss, &sub, json!([client.id]), state.now(), lifetime);
    claims.insert("typ".into(), "Bearer".into());
    claims.insert("azp".into(), client.id.clone().into());
    claims.insert("scope".into(), scope.clone().into());
    claims.insert(
        "preferred_username".into(),
        format!("service-account-{}", client.id).into(),
    );
    let access = jwt::sign(claims.clone());
    state.remember_token(&access, None, lifetime, None);
    let mut body = json!({
        "access_token": access,
        "expires_in": lifetime.as_secs(),
        "refresh_expires_in": 0,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "scope": scope,
    });
    if scope.split(' ').any(|s| s == "openid") {
        claims.insert("typ".into(), "ID".into());
        claims.insert("aud".into(), client.id.clone().into());
        let id_token = jwt::sign(claims);
        state.remember_token(&id_token, None, lifetime, None);
        body["id_token"] = id_token.into();
    }
    Reply::json(200, &body).with_header("Cache-Control", "no-store")
}

/// A stable pseudo-UUID for a client's service account.
fn service_account_id(client_id: &str) -> String {
    let hex: String = client_id
        .bytes()
        .chain(std::iter::repeat(0))
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Builds the token response for a session: access token, refresh token
/// and (with `openid`) an id_token.
fn respond(state: &mut State, account: &Account, client_id: &str, session_id: &str) -> Reply {
    let Some(session) = state.sessions.get(session_id).cloned() else {
        return kc_error(400, "invalid_grant", "Session not active");
    };
    let access_lifetime = state.lifetimes.keycloak_access;
    let refresh_lifetime = state.lifetimes.keycloak_refresh;
    let iss = issuer(state, "/auth", &session.realm);
    let now = state.now();
    let mut common = jwt::base_claims(
        &iss,
        &account.keycloak_id,
        json!([client_id]),
        now,
        access_lifetime,
    );
    common.insert("azp".into(), client_id.into());
    common.insert("sid".into(), session_id.into());
    common.insert("session_state".into(), session_id.into());
    common.insert("scope".into(), session.scope.clone().into());
    common.extend(jwt::user_claims(account));

    let access = with_claims(&common, &[("typ", "Bearer".into())]);
    let access = jwt::sign(access);
    state.remember_token(
        &access,
        Some(&account.user.username),
        access_lifetime,
        Some(session_id),
    );

    let refresh = refresh_token(state, &iss, account, client_id, session_id, &session.scope);
    let mut body = json!({
        "access_token": access,
        "expires_in": access_lifetime.as_secs(),
        "refresh_expires_in": refresh_lifetime.as_secs(),
        "refresh_token": refresh,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "session_state": session_id,
        "scope": session.scope,
    });
    if session.scope.split(' ').any(|s| s == "openid") {
        let id = with_claims(&common, &[("typ", "ID".into()), ("aud", client_id.into())]);
        let id_token = jwt::sign(id);
        state.remember_token(
            &id_token,
            Some(&account.user.username),
            access_lifetime,
            Some(session_id),
        );
        body["id_token"] = id_token.into();
    }
    Reply::json(200, &body)
        .with_header("Cache-Control", "no-store")
        .with_header("Pragma", "no-cache")
}

fn with_claims(base: &Map<String, Value>, extra: &[(&str, Value)]) -> Map<String, Value> {
    let mut m = base.clone();
    for (k, v) in extra {
        m.insert((*k).to_owned(), v.clone());
    }
    m
}

/// Mints and records a JWT-shaped Keycloak refresh token.
fn refresh_token(
    state: &mut State,
    iss: &str,
    account: &Account,
    client_id: &str,
    session_id: &str,
    scope: &str,
) -> String {
    let lifetime = state.lifetimes.keycloak_refresh;
    let now = state.now();
    let mut claims = jwt::base_claims(iss, &account.keycloak_id, iss.into(), now, lifetime);
    claims.insert("typ".into(), "Refresh".into());
    claims.insert("azp".into(), client_id.into());
    claims.insert("sid".into(), session_id.into());
    claims.insert("session_state".into(), session_id.into());
    claims.insert("scope".into(), scope.into());
    let text = jwt::sign(claims);
    let record = KcRefresh {
        session: session_id.to_owned(),
        client_id: client_id.to_owned(),
        expires_at: now + lifetime,
        used: false,
    };
    state.kc_refresh.insert(text.clone(), record);
    text
}

/// `POST …/logout` with `refresh_token`: ends the session → 204.
fn logout(state: &mut State, req: &Request) -> Reply {
    let form = req.form();
    let client = match authenticate_client(state, req, &form) {
        Ok(client) => client,
        Err(reply) => return reply,
    };
    let text = field(&form, "refresh_token");
    if text.is_empty() {
        return kc_error(400, "invalid_request", "No refresh token");
    }
    let Some(record) = state.kc_refresh.get(text).cloned() else {
        return kc_error(400, "invalid_grant", "Invalid refresh token");
    };
    if record.client_id != client.id {
        return kc_error(
            400,
            "invalid_grant",
            "Invalid refresh token. Token client and authorized client don't match",
        );
    }
    // Keycloak answers 204 even when the session is already gone.
    if let Some(session) = state.sessions.get_mut(&record.session) {
        session.ended = true;
    }
    Reply::new(204)
}

/// RFC 7009 revocation: 200 for any token, known or not. A refresh token
/// ends its session; an access token is revoked alone.
fn revoke(state: &mut State, req: &Request) -> Reply {
    let form = req.form();
    if let Err(reply) = authenticate_client(state, req, &form) {
        return reply;
    }
    let text = field(&form, "token");
    if text.is_empty() {
        return kc_error(400, "invalid_request", "Token not provided");
    }
    if let Some(record) = state.kc_refresh.get(text).cloned() {
        if let Some(session) = state.sessions.get_mut(&record.session) {
            session.ended = true;
        }
    } else if let Some(token) = state.tokens.get_mut(text) {
        token.revoked = true;
    }
    Reply::new(200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = parse_path("/auth/realms/ocp/protocol/openid-connect/token");
        let p = p.map(|p| (p.prefix, p.realm, p.rest));
        assert_eq!(p, Some(("/auth", "ocp", "protocol/openid-connect/token")));
        let p = parse_path("/realms/master/.well-known/openid-configuration");
        assert_eq!(p.map(|p| p.prefix), Some(""));
        assert!(parse_path("/realms/").is_none());
        assert!(parse_path("/other").is_none());
    }

    #[test]
    fn scopes_granted() {
        assert_eq!(granted_scope(""), "profile email");
        assert_eq!(granted_scope("openid x"), "openid profile email");
    }

    #[test]
    fn service_account_ids_are_uuid_shaped() {
        assert_eq!(service_account_id("x").len(), 36);
        assert_eq!(
            service_account_id("a-very-long-client-identifier").len(),
            36
        );
    }
}
