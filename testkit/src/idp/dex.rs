//! PCD steps 3 and 4: Dex's token endpoint (`POST /dex/token`), following
//! Dex's `handleToken`, `withClientFromStorage`, `handlePasswordGrant` and
//! `handleRefreshToken`, with the status codes and texts of pcd-auth.md.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::exchange;
use super::jwt;
use super::state::{Account, DexRefresh, State};
use crate::http::{Reply, Request};
use crate::util::{dex_id, query_unescape};

/// Text of the "unknown or already rotated" refresh error (pcd-auth.md).
pub(crate) const CLAIMED: &str =
    "Refresh token is invalid or has already been claimed by another client.";

/// Scopes Dex understands besides cross-client ones.
const KNOWN_SCOPES: &[&str] = &[
    "openid",
    "offline_access",
    "email",
    "profile",
    "groups",
    "federated:id",
];

/// Dex's `tokenErr`: `{"error":…,"error_description":…}`, description
/// omitted when empty; no cache headers on errors.
pub(crate) fn dex_error(status: u16, error: &str, description: &str) -> Reply {
    let mut body = Map::new();
    body.insert("error".into(), error.into());
    if !description.is_empty() {
        body.insert("error_description".into(), description.into());
    }
    Reply::json(status, &Value::Object(body))
}

/// Formats a list the way Go's `%q` formats a `[]string`: `["a" "b"]`.
fn go_quote_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// `POST /dex/token`.
pub(crate) fn token(state: &mut State, req: &Request) -> Reply {
    if req.method != "POST" {
        return dex_error(400, "invalid_request", "method not allowed");
    }
    // Go's ParseForm reads the body only for form content types; anything
    // else (e.g. JSON) reads as an empty form.
    let form = if req.is_form() {
        req.form()
    } else {
        Vec::new()
    };
    let get = |key: &str| field(&form, key);
    let grant = get("grant_type");
    if grant != "password" && grant != "refresh_token" && grant != exchange::GRANT_TYPE {
        return dex_error(400, "unsupported_grant_type", "");
    }
    let client_id = match authenticate_client(state, req, &form) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    if grant == exchange::GRANT_TYPE {
        exchange::grant(state, &client_id, &form)
    } else if grant == "password" {
        password_grant(state, &client_id, &form)
    } else {
        refresh_grant(state, &client_id, &form)
    }
}

/// First value of `key` in a decoded form, or "".
pub(crate) fn field<'a>(form: &'a [(String, String)], key: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// Dex's `withClientFromStorage`: Basic wins over form fields; Basic parts
/// are URL-decoded; unknown client or wrong secret is 401 invalid_client.
fn authenticate_client(
    state: &State,
    req: &Request,
    form: &[(String, String)],
) -> Result<String, Reply> {
    let (id, secret) = match req.basic_auth_raw() {
        Some((raw_id, raw_secret)) => {
            let id = query_unescape(&raw_id)
                .ok_or_else(|| dex_error(400, "invalid_request", "client_id improperly encoded"))?;
            let secret = query_unescape(&raw_secret).ok_or_else(|| {
                dex_error(400, "invalid_request", "client_secret improperly encoded")
            })?;
            (id, secret)
        }
        None => (
            field(form, "client_id").to_owned(),
            field(form, "client_secret").to_owned(),
        ),
    };
    let invalid = || dex_error(401, "invalid_client", "Invalid client credentials.");
    let client = state.clients.get(&id).ok_or_else(invalid)?;
    if client.secret.as_deref().unwrap_or("") != secret {
        return Err(invalid());
    }
    Ok(id)
}

/// Dex's `handlePasswordGrant`.
fn password_grant(state: &mut State, client_id: &str, form: &[(String, String)]) -> Reply {
    let scopes: Vec<&str> = field(form, "scope").split_whitespace().collect();
    if let Err(reply) = check_scopes(&scopes, client_id) {
        return reply;
    }
    let connector = field(form, "connector_id");
    if !connector.is_empty() && connector != "default" {
        return dex_error(
            400,
            "invalid_request",
            "Requested connector does not exist.",
        );
    }
    let account = match login(state, field(form, "username"), field(form, "password")) {
        Ok(account) => account,
        Err(reply) => return reply,
    };
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let refresh = scopes
        .iter()
        .any(|s| s == "offline_access")
        .then(|| new_chain(state, &account, client_id, &scopes));
    issue(state, &account, client_id, &scopes, refresh)
}

/// Scope validation in Dex's order: openid required, then unknown scopes,
/// then cross-client scopes (no trusted peers are configured here).
fn check_scopes(scopes: &[&str], client_id: &str) -> Result<(), Reply> {
    let mut unrecognized = Vec::new();
    let mut untrusted = Vec::new();
    for &scope in scopes {
        if KNOWN_SCOPES.contains(&scope) {
            continue;
        }
        match scope.strip_prefix("audience:server:client_id:") {
            Some(peer) if peer == client_id => {}
            Some(_) => untrusted.push(scope),
            None => unrecognized.push(scope),
        }
    }
    if !scopes.contains(&"openid") {
        return Err(dex_error(
            400,
            "invalid_request",
            r#"Missing required scope(s) ["openid"]."#,
        ));
    }
    if !unrecognized.is_empty() {
        let text = format!("Unrecognized scope(s) {}", go_quote_list(&unrecognized));
        return Err(dex_error(400, "invalid_request", &text));
    }
    if !untrusted.is_empty() {
        let text = format!(
            "Client can't request scope(s) {}",
            go_quote_list(&untrusted)
        );
        return Err(dex_error(400, "invalid_request", &text));
    }
    Ok(())
}

/// Password check through the configured connector.
fn login(state: &State, username: &str, password: &str) -> Result<Account, Reply> {
    match state.account(username) {
        Some(a) if a.user.password == password && !password.is_empty() => Ok(a.clone()),
        _ if state.knobs.dex_keystone_connector => {
            Err(dex_error(400, "invalid_request", "Could not login user"))
        }
        _ => Err(dex_error(
            401,
            "access_denied",
            "Invalid username or password",
        )),
    }
}

/// Creates a refresh chain, first deleting the user's previous chain for
/// this client (Dex keeps one refresh token per user and client in the
/// offline session).
fn new_chain(state: &mut State, account: &Account, client_id: &str, scopes: &[String]) -> String {
    let username = &account.user.username;
    state
        .dex_refresh
        .retain(|_, r| !(r.username == *username && r.client_id == client_id));
    let now = state.now();
    let chain = DexRefresh {
        token: dex_id(),
        client_id: client_id.to_owned(),
        username: username.clone(),
        scopes: scopes.to_vec(),
        created_at: now,
        last_used: now,
    };
    let id = dex_id();
    let text = encode_refresh(&id, &chain.token);
    state.dex_refresh.insert(id, chain);
    text
}

/// Dex's refresh token text: base64url(protobuf{refresh_id, token}).
fn encode_refresh(id: &str, token: &str) -> String {
    let mut buf = Vec::new();
    jwt::push_proto_string(&mut buf, 1, id);
    jwt::push_proto_string(&mut buf, 2, token);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Inverse of `encode_refresh`. Like Dex, text that does not decode is taken
/// as a bare chain id with an empty token (and so is always rejected).
pub(crate) fn decode_refresh(text: &str) -> (String, String) {
    let parsed = URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| parse_proto_pair(&bytes));
    parsed.unwrap_or_else(|| (text.to_owned(), String::new()))
}

fn parse_proto_pair(bytes: &[u8]) -> Option<(String, String)> {
    let (id, rest) = parse_proto_string(bytes, 1)?;
    let (token, rest) = parse_proto_string(rest, 2)?;
    rest.is_empty().then_some((id, token))
}

fn parse_proto_string(bytes: &[u8], field: u8) -> Option<(String, &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if tag != (field << 3 | 2) || len > 127 {
        return None;
    }
    let len = usize::from(len);
    let value = rest.get(..len)?;
    Some((String::from_utf8(value.to_vec()).ok()?, &rest[len..]))
}

/// Dex's `handleRefreshToken`: lookup, client check, rotation check,
/// expiry, scopes, upstream refresh, then rotation.
fn refresh_grant(state: &mut State, client_id: &str, form: &[(String, String)]) -> Reply {
    let text = field(form, "refresh_token");
    if text.is_empty() {
        return dex_error(
            400,
            "invalid_request",
            "No refresh token is found in request.",
        );
    }
    let (id, presented) = decode_refresh(text);
    let chain = match check_chain(state, &id, &presented, client_id) {
        Ok(chain) => chain,
        Err(reply) => return reply,
    };
    let scopes = match refresh_scopes(field(form, "scope"), &chain.scopes) {
        Ok(scopes) => scopes,
        Err(reply) => return reply,
    };
    if state.knobs.fail_upstream_refresh {
        return dex_error(500, "invalid_request", "");
    }
    let Some(account) = state.account(&chain.username).cloned() else {
        // The user was removed: Keystone refuses the upstream refresh.
        return dex_error(500, "invalid_request", "");
    };
    let rotate = state.knobs.dex_rotate;
    let now = state.now();
    let Some(stored) = state.dex_refresh.get_mut(&id) else {
        return claimed(state);
    };
    if rotate {
        stored.token = dex_id();
    }
    stored.last_used = now;
    let new_text = encode_refresh(&id, &stored.token);
    issue(state, &account, client_id, &scopes, Some(new_text))
}

/// Validates a presented refresh token against its chain.
fn check_chain(
    state: &mut State,
    id: &str,
    presented: &str,
    client_id: &str,
) -> Result<DexRefresh, Reply> {
    let Some(chain) = state.dex_refresh.get(id).cloned() else {
        return Err(claimed(state));
    };
    if chain.client_id != client_id {
        state.counts.claimed_errors += 1;
        return Err(dex_error(400, "invalid_grant", CLAIMED));
    }
    if chain.token != presented {
        // Rotated away (no reuse grace) or forged.
        return Err(claimed(state));
    }
    let now = state.now();
    let lifetimes = &state.lifetimes;
    let too_old = lifetimes
        .dex_refresh_absolute
        .is_some_and(|d| now >= chain.created_at + d);
    let unused = lifetimes
        .dex_refresh_idle
        .is_some_and(|d| now >= chain.last_used + d);
    if too_old || unused {
        return Err(dex_error(400, "invalid_request", "Refresh token expired."));
    }
    Ok(chain)
}

/// The "invalid or already claimed" answer, counted for tests.
fn claimed(state: &mut State) -> Reply {
    state.counts.claimed_errors += 1;
    dex_error(400, "invalid_request", CLAIMED)
}

/// Dex's `getRefreshScopes`: no scope means the original ones; a scope
/// outside the original set is refused.
fn refresh_scopes(requested: &str, original: &[String]) -> Result<Vec<String>, Reply> {
    if requested.trim().is_empty() {
        return Ok(original.to_vec());
    }
    let requested: Vec<&str> = requested.split_whitespace().collect();
    let unauthorized: Vec<&str> = requested
        .iter()
        .copied()
        .filter(|s| !original.iter().any(|o| o == s))
        .collect();
    if unauthorized.is_empty() {
        return Ok(requested.iter().map(|s| (*s).to_owned()).collect());
    }
    let text = format!(
        "Requested scopes contain unauthorized scope(s): {}.",
        go_quote_list(&unauthorized)
    );
    Err(dex_error(400, "invalid_request", &text))
}

/// Mints id and access tokens and writes Dex's access-token response.
fn issue(
    state: &mut State,
    account: &Account,
    client_id: &str,
    scopes: &[String],
    refresh: Option<String>,
) -> Reply {
    let lifetime = state.lifetimes.dex_id_token;
    let id_token = mint(state, account, client_id, scopes, lifetime);
    let access_token = mint(state, account, client_id, scopes, lifetime);
    let mut body = json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": dex_expires_in(lifetime),
        "id_token": id_token,
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = refresh.into();
    }
    Reply::json(200, &body)
        .with_header("Cache-Control", "no-store")
        .with_header("Pragma", "no-cache")
}

/// Dex computes `int(expiry.Sub(now).Seconds())` a moment after minting, so
/// a 24 h lifetime is reported as 86399.
fn dex_expires_in(lifetime: Duration) -> u64 {
    lifetime.saturating_sub(Duration::from_millis(1)).as_secs()
}

/// Mints one Dex JWT with the claims the scopes ask for and remembers it.
pub(crate) fn mint(
    state: &mut State,
    account: &Account,
    client_id: &str,
    scopes: &[String],
    lifetime: Duration,
) -> String {
    let iss = format!("{}/dex", state.base_url);
    let sub = jwt::dex_subject(account);
    let mut claims = jwt::base_claims(&iss, &sub, client_id.into(), state.now(), lifetime);
    let profile = jwt::user_claims(account);
    let wanted: &[(&str, &[&str])] = &[
        ("email", &["email", "email_verified"]),
        ("groups", &["groups"]),
        ("profile", &["name", "preferred_username"]),
    ];
    for (scope, keys) in wanted {
        if scopes.iter().any(|s| s == scope) {
            for key in *keys {
                if let Some(v) = profile.get(*key) {
                    claims.insert((*key).to_owned(), v.clone());
                }
            }
        }
    }
    let token = jwt::sign(claims);
    let username = account.user.username.clone();
    state.remember_token(&token, Some(&username), lifetime, None);
    token
}

/// Discovery document at `/dex/.well-known/openid-configuration`.
pub(crate) fn discovery(state: &State) -> Reply {
    let issuer = format!("{}/dex", state.base_url);
    Reply::json(
        200,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/keys"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "device_authorization_endpoint": format!("{issuer}/device/code"),
            "grant_types_supported": ["authorization_code", "password", "refresh_token",
                exchange::GRANT_TYPE],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "scopes_supported": ["openid", "email", "groups", "profile", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": ["iss", "sub", "aud", "iat", "exp", "email", "email_verified",
                "locale", "name", "preferred_username", "at_hash"]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_text_roundtrip_and_garbage() {
        let text = encode_refresh("chainid", "secret");
        assert_eq!(decode_refresh(&text), ("chainid".into(), "secret".into()));
        assert_eq!(decode_refresh("!!"), ("!!".into(), String::new()));
        assert_eq!(decode_refresh(""), (String::new(), String::new()));
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote_list(&["a", "b c"]), r#"["a" "b c"]"#);
    }

    #[test]
    fn expires_in_matches_dex() {
        assert_eq!(dex_expires_in(Duration::from_secs(86_400)), 86_399);
        assert_eq!(dex_expires_in(Duration::ZERO), 0);
    }
}
