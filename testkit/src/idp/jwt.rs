//! JWT-shaped tokens. Nobody verifies the signature (validity is decided by
//! looking the token up in the IdP state), but the shape is real so clients
//! that decode `exp` from the payload work unchanged.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::util::{random_bytes, random_token, unix_secs};

use super::state::Account;

/// `header.payload.signature`, base64url without padding, with a random
/// 256-byte "RS256 signature" and a unique `jti` (so two tokens minted in
/// the same second differ).
pub(crate) fn sign(mut claims: Map<String, Value>) -> String {
    claims
        .entry("jti")
        .or_insert_with(|| Value::String(random_token(16)));
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "testkit"});
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string()),
        URL_SAFE_NO_PAD.encode(random_bytes(256))
    )
}

/// A JWT-shaped token with exactly `claims` (an object), for tests that
/// need a token the IdP would never mint (an `exp` in year 14000, one that
/// expired before it was issued). The IdP does not know it: it is never
/// valid at the fake Kubernetes API.
pub fn unsigned_jwt(claims: &Value) -> String {
    let claims = claims.as_object().cloned().unwrap_or_default();
    sign(claims)
}

/// The registered claims every token carries.
pub(crate) fn base_claims(
    iss: &str,
    sub: &str,
    aud: Value,
    now: SystemTime,
    lifetime: Duration,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("iss".into(), iss.into());
    m.insert("sub".into(), sub.into());
    m.insert("aud".into(), aud);
    m.insert("exp".into(), unix_secs(now + lifetime).into());
    m.insert("iat".into(), unix_secs(now).into());
    m
}

/// Profile claims of a user, as Dex and Keycloak emit them.
pub(crate) fn user_claims(account: &Account) -> Map<String, Value> {
    let user = &account.user;
    let mut m = Map::new();
    m.insert("email".into(), email_of(&user.username).into());
    m.insert("email_verified".into(), true.into());
    m.insert("groups".into(), json!(user.groups));
    m.insert("name".into(), display_name(&user.username).into());
    m.insert("preferred_username".into(), user.username.clone().into());
    m
}

/// Dex's `sub`: base64url of the protobuf `{user_id, connector_id}`.
pub(crate) fn dex_subject(account: &Account) -> String {
    let mut buf = Vec::new();
    push_proto_string(&mut buf, 1, &account.keystone_id);
    push_proto_string(&mut buf, 2, "default");
    URL_SAFE_NO_PAD.encode(buf)
}

/// Appends a length-delimited protobuf field (lengths < 128 only).
pub(crate) fn push_proto_string(buf: &mut Vec<u8>, field: u8, s: &str) {
    let len = u8::try_from(s.len()).unwrap_or(u8::MAX).min(127);
    buf.push(field << 3 | 2);
    buf.push(len);
    buf.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

fn email_of(username: &str) -> String {
    if username.contains('@') {
        username.to_owned()
    } else {
        format!("{username}@example.com")
    }
}

/// "alice@example.com" → "Alice".
fn display_name(username: &str) -> String {
    let local = username.split('@').next().unwrap_or(username);
    let mut chars = local.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// Decodes the payload of a JWT-shaped token (for tests and the kube stub's
/// diagnostics); `None` if it is not one.
pub fn decode_payload(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_three_part_and_unique() {
        let claims = base_claims(
            "i",
            "s",
            "a".into(),
            SystemTime::now(),
            Duration::from_secs(60),
        );
        let a = sign(claims.clone());
        let b = sign(claims);
        assert_ne!(a, b);
        assert_eq!(a.split('.').count(), 3);
        assert!(!a.contains('='));
        let payload = decode_payload(&a).unwrap_or_default();
        assert_eq!(payload["iss"], "i");
        assert!(payload["exp"].as_u64() > payload["iat"].as_u64());
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("alice@example.com"), "Alice");
        assert_eq!(display_name(""), "");
    }
}
