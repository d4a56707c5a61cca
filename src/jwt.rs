//! Reading the claims of a JWT without verifying it.
//!
//! dexcred never decides whether a token is genuine: the API server or git
//! server that receives it does. We only read `exp` (to know when to renew)
//! and a few identity claims (to tell the user who they are logged in as).
//! So this module only splits the compact serialization and decodes the
//! payload, and treats anything odd as "not a JWT" rather than an error:
//! opaque access tokens are legitimate and their expiry comes from
//! `expires_in` instead.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};

/// The claims dexcred cares about. Everything is optional: a token from a
/// provider that leaves a claim out is still usable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    pub groups: Vec<String>,
    /// The OpenID Connect `nonce` a browser login sent (checked, not shown).
    pub nonce: Option<String>,
}

/// Upper bound on a token we are willing to decode. Real id_tokens with many
/// groups reach a few KiB; anything this large is not a token.
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Decodes the payload of a compact JWS (`header.payload.signature`).
/// Returns `None` when `token` is not one.
pub fn decode(token: &str) -> Option<Claims> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None; // five parts: a JWE, whose payload we cannot read
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| URL_SAFE.decode(payload))
        .ok()?;
    let map: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    Some(Claims {
        exp: numeric_date(map.get("exp")),
        iat: numeric_date(map.get("iat")),
        iss: string(map.get("iss")),
        sub: string(map.get("sub")),
        email: string(map.get("email")),
        name: string(map.get("name")),
        preferred_username: string(map.get("preferred_username")),
        groups: groups(map.get("groups")),
        nonce: string(map.get("nonce")),
    })
}

/// RFC 7519 NumericDate: seconds, possibly fractional. Some providers send
/// floats (`1.7e9`) or, against the spec, numeric strings.
fn numeric_date(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

fn string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// `groups` is an array of strings in Dex and Keycloak, but a single string
/// from some providers; anything else is ignored.
fn groups(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
pub(crate) fn encode_for_test(payload: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload.to_string());
    format!("{header}.{body}.c2ln")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_dex_style_claims() {
        let t = encode_for_test(&json!({
            "iss": "https://pcd/dex", "sub": "CgVhbGljZQ", "aud": "kubernetes",
            "exp": 1_900_000_000, "iat": 1_899_913_600,
            "email": "alice@example.com", "groups": ["admins", "dev"], "name": "Alice"
        }));
        let c = decode(&t).unwrap();
        assert_eq!(c.exp, Some(1_900_000_000));
        assert_eq!(c.iat, Some(1_899_913_600));
        assert_eq!(c.email.as_deref(), Some("alice@example.com"));
        assert_eq!(c.groups, vec!["admins", "dev"]);
    }

    #[test]
    fn accepts_float_and_string_dates_and_padded_base64() {
        let payload = URL_SAFE.encode(r#"{"exp":1.9e9,"iat":"100"}"#);
        let c = decode(&format!("e30.{payload}.x")).unwrap();
        assert_eq!(c.exp, Some(1_900_000_000));
        assert_eq!(c.iat, Some(100));
    }

    #[test]
    fn opaque_or_broken_tokens_are_not_jwts() {
        for t in [
            "",
            "opaque-token",
            "a.b",
            "a.b.c.d.e",
            "e30.!!!.x",
            "e30.bm90IGpzb24.x",
            "e30.WzFd.x",
        ] {
            assert_eq!(decode(t), None, "{t}");
        }
        let huge = format!("e30.{}.x", "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(decode(&huge), None);
    }

    #[test]
    fn wrong_claim_types_are_ignored_not_fatal() {
        let t = encode_for_test(&json!({"exp": "soon", "groups": [1, "ops"], "email": 7}));
        let c = decode(&t).unwrap();
        assert_eq!(c.exp, None);
        assert_eq!(c.groups, vec!["ops"]);
        assert_eq!(c.email, None);
    }
}
