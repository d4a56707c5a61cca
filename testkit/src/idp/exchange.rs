//! Dex's token exchange (RFC 8693, `handleTokenExchange` in Dex ≥ 2.38) as
//! `shared/reference/dex-token-exchange.md` describes it, a test "CI issuer"
//! whose ES256-signed JWTs the exchange connectors trust, and a stand-in for
//! GitHub Actions' ID token endpoint.
//!
//! Dex's answers, in its order of checks:
//! - `subject_token_type` not id_token/access_token → 400 `request_not_supported` "Invalid subject_token_type."
//! - no `subject_token` → 400 `invalid_request` "Missing subject_token"
//! - unknown `connector_id` → 400 `invalid_request` "Requested connector does not exist."
//! - connector without the grant → 400 `invalid_request` "Requested connector does not support token exchange."
//! - subject token rejected (signature, issuer, audience, expiry) → 401 `{"error":"access_denied"}`
//! - `requested_token_type` not id_token/access_token → 400 `request_not_supported` "Invalid requested_token_type."
//! - success: 200, `Cache-Control: no-store`, the issued token in
//!   `access_token` whatever its type, `issued_token_type`, no refresh token.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde_json::{Map, Value, json};

use super::dex::{dex_error, field};
use super::jwt;
use super::state::State;
use crate::http::{Reply, Request};
use crate::util::{random_token, unix_secs};

/// The grant type Dex registers for token exchange.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub(crate) const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
pub(crate) const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Path of the GitHub Actions ID token stand-in.
pub const GITHUB_PATH: &str = "/_github/idtoken";
/// `sub` of the tokens the GitHub stand-in issues.
pub const GITHUB_SUBJECT: &str = "repo:octo-org/octo-repo:ref:refs/heads/main";
/// `aud` GitHub gives a token when no audience is asked for.
pub const GITHUB_DEFAULT_AUDIENCE: &str = "https://github.com/octo-org";

/// A Dex connector as far as token exchange is concerned.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    /// The `aud` it requires in subject tokens.
    pub audience: String,
    /// Whether it implements `TokenIdentityConnector`.
    pub token_exchange: bool,
}

/// The CI system: its signing key, the connectors that trust it, and the
/// GitHub request token.
pub(crate) struct Ci {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    pub connectors: BTreeMap<String, Connector>,
    pub github_request_token: String,
}

impl std::fmt::Debug for Ci {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ci")
            .field("connectors", &self.connectors)
            .finish_non_exhaustive()
    }
}

impl Ci {
    pub fn new() -> Ci {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate the CI issuer key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("load the CI issuer key");
        Ci {
            key,
            rng,
            connectors: BTreeMap::new(),
            github_request_token: random_token(32),
        }
    }

    /// A compact ES256 JWS over `claims`.
    pub fn sign(&self, claims: &Map<String, Value>) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": "ci"});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string())
        );
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .expect("sign");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    /// The claims of `token` if its ES256 signature is by this key.
    fn verify(&self, token: &str) -> Option<Map<String, Value>> {
        let mut parts = token.split('.');
        let (header_b64, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).ok()?).ok()?;
        if header.get("alg")?.as_str()? != "ES256" {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key());
        public
            .verify(format!("{header_b64}.{payload}").as_bytes(), &signature)
            .ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }
}

/// The CI issuer's `iss`: `{base}/_ci`.
pub(crate) fn ci_issuer(state: &State) -> String {
    format!("{}/_ci", state.base_url)
}

/// Mints a CI identity token for `sub` with audience `aud`, valid for
/// `lifetime` from the IdP's clock (a zero lifetime gives an expired one).
pub(crate) fn mint_ci_token(state: &State, sub: &str, aud: &str, lifetime: Duration) -> String {
    let now = state.now();
    let mut claims = Map::new();
    claims.insert("iss".into(), ci_issuer(state).into());
    claims.insert("sub".into(), sub.into());
    claims.insert("aud".into(), aud.into());
    claims.insert("iat".into(), unix_secs(now).into());
    claims.insert("nbf".into(), unix_secs(now).into());
    claims.insert("exp".into(), unix_secs(now + lifetime).into());
    claims.insert("jti".into(), random_token(12).into());
    state.ci.sign(&claims)
}

/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` at Dex's
/// token endpoint, after client authentication.
pub(crate) fn grant(state: &mut State, client_id: &str, form: &[(String, String)]) -> Reply {
    let scopes: Vec<String> = field(form, "scope")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let requested = match field(form, "requested_token_type") {
        "" => ACCESS_TOKEN,
        other => other,
    };
    let subject_token = field(form, "subject_token");
    let subject_type = field(form, "subject_token_type");
    if subject_type != ID_TOKEN && subject_type != ACCESS_TOKEN {
        return dex_error(400, "request_not_supported", "Invalid subject_token_type.");
    }
    if subject_token.is_empty() {
        return dex_error(400, "invalid_request", "Missing subject_token");
    }
    let connector_id = field(form, "connector_id");
    let Some(connector) = state.ci.connectors.get(connector_id).cloned() else {
        return dex_error(
            400,
            "invalid_request",
            "Requested connector does not exist.",
        );
    };
    if !connector.token_exchange {
        return dex_error(
            400,
            "invalid_request",
            "Requested connector does not support token exchange.",
        );
    }
    let Some(claims) = verified_identity(state, subject_token, &connector) else {
        return dex_error(401, "access_denied", "");
    };
    if requested != ID_TOKEN && requested != ACCESS_TOKEN {
        return dex_error(
            400,
            "request_not_supported",
            "Invalid requested_token_type.",
        );
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let token = mint_exchanged(state, sub, connector_id, client_id, &scopes, &claims);
    let lifetime = state.lifetimes.dex_id_token;
    Reply::json(
        200,
        &json!({
            "access_token": token,
            "issued_token_type": requested,
            "token_type": "bearer",
            "expires_in": lifetime.saturating_sub(Duration::from_millis(1)).as_secs(),
        }),
    )
    .with_header("Cache-Control", "no-store")
}

/// What Dex's OIDC connector checks: signature by the trusted issuer,
/// `iss`, `aud`, `exp`.
fn verified_identity(
    state: &State,
    token: &str,
    connector: &Connector,
) -> Option<Map<String, Value>> {
    let claims = state.ci.verify(token)?;
    let now = unix_secs(state.now());
    let iss_ok = claims.get("iss").and_then(Value::as_str) == Some(ci_issuer(state).as_str());
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == connector.audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&connector.audience)),
        _ => false,
    };
    let exp_ok = claims
        .get("exp")
        .and_then(Value::as_u64)
        .is_some_and(|exp| exp > now);
    (iss_ok && aud_ok && exp_ok && claims.get("sub").is_some()).then_some(claims)
}

/// The Dex token for the exchanged identity; remembered, so the Kubernetes
/// stub and the git server accept it. Its user is the CI token's `sub`.
fn mint_exchanged(
    state: &mut State,
    sub: &str,
    connector_id: &str,
    client_id: &str,
    scopes: &[String],
    ci_claims: &Map<String, Value>,
) -> String {
    let lifetime = state.lifetimes.dex_id_token;
    let iss = format!("{}/dex", state.base_url);
    let mut buf = Vec::new();
    jwt::push_proto_string(&mut buf, 1, sub);
    jwt::push_proto_string(&mut buf, 2, connector_id);
    let dex_sub = URL_SAFE_NO_PAD.encode(buf);
    let mut claims = jwt::base_claims(&iss, &dex_sub, client_id.into(), state.now(), lifetime);
    if scopes.iter().any(|s| s == "profile") {
        claims.insert("preferred_username".into(), sub.into());
    }
    if scopes.iter().any(|s| s == "groups") {
        let groups = ci_claims.get("groups").cloned().unwrap_or(json!(["ci"]));
        claims.insert("groups".into(), groups);
    }
    let token = jwt::sign(claims);
    state.remember_token(&token, Some(sub), lifetime, None);
    token
}

/// `GET /_github/idtoken?…&audience=…` with `Authorization: Bearer
/// <request token>`: `{"value":"<jwt>"}`. A missing or wrong bearer is
/// refused, as the real endpoint does.
pub(crate) fn github_id_token(state: &mut State, req: &Request) -> Reply {
    if req.method != "GET" {
        return Reply::json(405, &json!({"message": "method not allowed"}));
    }
    if req.bearer() != Some(state.ci.github_request_token.as_str()) {
        return Reply::json(401, &json!({"message": "Bad credentials"}));
    }
    let audience = req
        .query_pairs()
        .into_iter()
        .find(|(k, _)| k == "audience")
        .map_or_else(|| GITHUB_DEFAULT_AUDIENCE.to_owned(), |(_, v)| v);
    let lifetime = Duration::from_secs(300);
    let token = mint_ci_token(state, GITHUB_SUBJECT, &audience, lifetime);
    Reply::json(200, &json!({"count": 1, "value": token}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_key() {
        let ci = Ci::new();
        let mut claims = Map::new();
        claims.insert("sub".into(), "x".into());
        let token = ci.sign(&claims);
        assert_eq!(ci.verify(&token).unwrap()["sub"], "x");
        let other = Ci::new();
        assert!(other.verify(&token).is_none());
        let mut forged: Vec<&str> = token.split('.').collect();
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"y"}"#);
        forged[1] = &payload;
        assert!(ci.verify(&forged.join(".")).is_none());
    }
}
