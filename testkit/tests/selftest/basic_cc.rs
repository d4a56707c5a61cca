//! The Basic client-credentials server of basic-auth-client-credentials.txt.

use crate::common::{Resp, get, post_form, post_raw};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use dexcred_testkit::form_encode;
use dexcred_testkit::http::Reply;
use dexcred_testkit::idp::{FakeIdp, Fault, SERVICE_CLIENT, SERVICE_CLIENT_SECRET};
use serde_json::json;

const CREDS: Option<(&str, &str)> = Some((SERVICE_CLIENT, SERVICE_CLIENT_SECRET));
const SCOPE: &str = "openid email profile inspect";

/// A request as the document describes it: `Basic base64(id:secret)`, raw.
fn request(idp: &FakeIdp, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Resp {
    let Some((id, secret)) = basic else {
        return post_form(&idp.client_credentials_url(), form, None);
    };
    let raw = STANDARD.encode(format!("{id}:{secret}"));
    post_raw(
        &idp.client_credentials_url(),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", &format!("Basic {raw}")),
        ],
        &form_encode(form),
    )
}

fn assert_error(resp: &Resp, status: u16) {
    assert_eq!(resp.status, status, "{}", resp.body);
    let body = resp.json();
    let keys: Vec<&String> = body
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        ["error", "errorDescription"],
        "camelCase error body: {}",
        resp.body
    );
}

#[test]
fn success_body_has_exactly_the_documented_fields() {
    let idp = FakeIdp::pcd();
    let resp = request(
        &idp,
        &[("grant_type", "client_credentials"), ("scope", SCOPE)],
        CREDS,
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    let mut keys: Vec<&String> = body
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    keys.sort();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_in",
            "id_token",
            "refresh_token",
            "scope",
            "token_type"
        ]
    );
    assert_eq!(body["scope"], SCOPE);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 604_800);
    assert!(idp.is_valid_token(body["access_token"].as_str().unwrap_or("")));
    assert!(idp.requests().iter().all(|r| r.used_basic_auth()));
}

#[test]
fn client_authentication_is_basic_only() {
    let idp = FakeIdp::pcd();
    let form_only = request(
        &idp,
        &[
            ("grant_type", "client_credentials"),
            ("scope", SCOPE),
            ("client_id", SERVICE_CLIENT),
            ("client_secret", SERVICE_CLIENT_SECRET),
        ],
        None,
    );
    assert_error(&form_only, 401);
    let wrong = request(
        &idp,
        &[("grant_type", "client_credentials"), ("scope", SCOPE)],
        Some((SERVICE_CLIENT, "wrong")),
    );
    assert_error(&wrong, 401);
    // The service does not URL-decode Basic credentials: a client that
    // form-encodes them as RFC 6749 says (the secret has `+ / :`, a space
    // and `%`) sends a different secret and is refused.
    let rfc6749 = post_form(
        &idp.client_credentials_url(),
        &[("grant_type", "client_credentials"), ("scope", SCOPE)],
        CREDS,
    );
    assert_error(&rfc6749, 401);
}

#[test]
fn parameter_errors_are_400_and_refresh_is_unsupported() {
    let idp = FakeIdp::pcd();
    assert_error(&request(&idp, &[("scope", SCOPE)], CREDS), 400);
    assert_error(
        &request(&idp, &[("grant_type", "client_credentials")], CREDS),
        400,
    );
    let refresh = request(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("scope", SCOPE),
        ],
        CREDS,
    );
    assert_error(&refresh, 400);
    assert_eq!(idp.counts().refresh_rejected, 1);
}

#[test]
fn forbidden_not_found_and_server_error() {
    let idp = FakeIdp::pcd();
    idp.set_client_scopes(SERVICE_CLIENT, Some(&["openid", "email"]));
    let resp = request(
        &idp,
        &[("grant_type", "client_credentials"), ("scope", SCOPE)],
        CREDS,
    );
    assert_eq!(resp.status, 403);
    assert_eq!(
        resp.json(),
        json!({"error": "Forbidden", "errorDescription": "permission denied"})
    );
    let ok = request(
        &idp,
        &[("grant_type", "client_credentials"), ("scope", "openid")],
        CREDS,
    );
    assert_eq!(ok.status, 200);

    assert_error(&get(&idp.client_credentials_url(), &[]), 404);
    assert_error(&get(&format!("{}/api/id/v1/nothing", idp.url()), &[]), 404);

    let body = json!({"error": "Internal Server Error", "errorDescription": "boom"});
    idp.inject(Fault::new("/api/id/", 1, Reply::json(500, &body)));
    assert_error(
        &request(
            &idp,
            &[("grant_type", "client_credentials"), ("scope", "openid")],
            CREDS,
        ),
        500,
    );
}
