//! PCD flavour: Keystone, resmgr dexclients and Dex, checked against the
//! status codes, bodies and refresh rules of pcd-auth.md.

use std::time::Duration;

use crate::common::{Resp, get, post_form, post_raw};
use dexcred_testkit::idp::{
    ALICE, ALICE_PASSWORD, DEX_CLIENT, FakeIdp, IdpConfig, OTHER_DEX_CLIENT, decode_payload,
};
use serde_json::{Value, json};

const SCOPE: &str = "openid offline_access groups email profile";
const CLAIMED: &str = "Refresh token is invalid or has already been claimed by another client.";

fn keystone_body(user: &str, password: &str) -> Value {
    json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password}}}}})
}

fn keystone(idp: &FakeIdp, body: &str) -> Resp {
    let url = format!("{}/keystone/v3/auth/tokens", idp.url());
    post_raw(&url, &[("Content-Type", "application/json")], body)
}

fn secret(idp: &FakeIdp) -> String {
    idp.client_secret(DEX_CLIENT).expect("kubernetes client")
}

/// A Dex password grant with form client authentication.
fn login(idp: &FakeIdp, scope: &str) -> Resp {
    let secret = secret(idp);
    post_form(
        &idp.dex_token_url(),
        &[
            ("grant_type", "password"),
            ("client_id", DEX_CLIENT),
            ("client_secret", &secret),
            ("username", ALICE),
            ("password", ALICE_PASSWORD),
            ("scope", scope),
            ("connector_id", "default"),
        ],
        None,
    )
}

fn refresh(idp: &FakeIdp, token: &str) -> Resp {
    let secret = secret(idp);
    post_form(
        &idp.dex_token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEX_CLIENT),
            ("client_secret", &secret),
            ("refresh_token", token),
        ],
        None,
    )
}

fn refresh_token_of(resp: &Resp) -> String {
    resp.json()["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

fn assert_error(resp: &Resp, status: u16, body: Value) {
    assert_eq!(resp.status, status, "{}", resp.body);
    assert_eq!(resp.json(), body);
}

#[test]
fn keystone_password_auth_returns_201_and_subject_token() {
    let idp = FakeIdp::pcd();
    let resp = keystone(&idp, &keystone_body(ALICE, ALICE_PASSWORD).to_string());
    assert_eq!(resp.status, 201);
    let token = resp.header("x-subject-token").expect("X-Subject-Token");
    assert!(token.len() > 100);
    let body = resp.json();
    assert_eq!(body["token"]["user"]["name"], ALICE);
    assert_eq!(body["token"]["methods"], json!(["password"]));
    assert!(
        body["token"]["expires_at"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );

    let mut scoped = keystone_body(ALICE, ALICE_PASSWORD);
    scoped["auth"]["scope"] =
        json!({"project": {"name": "service", "domain": {"name": "Default"}}});
    let resp = keystone(&idp, &scoped.to_string());
    assert_eq!(resp.status, 201);
    assert_eq!(resp.json()["token"]["project"]["name"], "service");
}

#[test]
fn keystone_rejects_bad_credentials_and_malformed_bodies() {
    let idp = FakeIdp::pcd();
    let unauthorized = json!({"error": {"code": 401,
        "message": "The request you have made requires authentication.", "title": "Unauthorized"}});
    for body in [
        keystone_body(ALICE, "wrong"),
        keystone_body("bob@example.com", "x"),
    ] {
        assert_error(
            &keystone(&idp, &body.to_string()),
            401,
            unauthorized.clone(),
        );
    }
    for body in [
        "not json",
        "{}",
        r#"{"auth":{"identity":{"methods":["password"]}}}"#,
    ] {
        let resp = keystone(&idp, body);
        assert_eq!(resp.status, 400, "{body}");
        assert_eq!(resp.json()["error"]["code"], 400);
        assert_eq!(resp.json()["error"]["title"], "Bad Request");
    }
    assert_eq!(idp.counts().keystone, 5);
}

#[test]
fn dexclients_needs_a_keystone_token() {
    let idp = FakeIdp::pcd();
    let url = format!("{}/resmgr/v2/dexclients", idp.url());
    let unauthorized = json!({"message": "Unauthorized", "code": 401});
    assert_error(&get(&url, &[]), 401, unauthorized.clone());
    assert_error(&get(&url, &[("x-auth-token", "bogus")]), 401, unauthorized);

    let login = keystone(&idp, &keystone_body(ALICE, ALICE_PASSWORD).to_string());
    let token = login.header("x-subject-token").expect("token").to_owned();
    let resp = get(&url, &[("X-Auth-Token", &token)]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()[DEX_CLIENT], secret(&idp));
    assert!(resp.json()[OTHER_DEX_CLIENT].is_string());

    let rotated = idp.rotate_client_secret(DEX_CLIENT).expect("client exists");
    assert_eq!(
        get(&url, &[("x-auth-token", &token)]).json()[DEX_CLIENT],
        rotated
    );
    idp.advance_clock(Duration::from_secs(25 * 3600));
    assert_eq!(get(&url, &[("x-auth-token", &token)]).status, 401);
}

#[test]
fn dex_password_grant_success_shape() {
    let idp = FakeIdp::pcd();
    let resp = login(&idp, SCOPE);
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let body = resp.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 86_399);
    let id_token = body["id_token"].as_str().expect("id_token");
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());
    assert!(idp.is_valid_token(id_token));

    let claims = decode_payload(id_token).expect("JWT payload");
    assert_eq!(claims["iss"], format!("{}/dex", idp.url()));
    assert_eq!(claims["aud"], DEX_CLIENT);
    assert_eq!(claims["email"], ALICE);
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["groups"], json!(["developers"]));
    assert!(claims["name"].is_string() && claims["preferred_username"].is_string());
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    assert_eq!(exp.zip(iat).map(|(e, i)| e - i), Some(86_400));

    let header = id_token.split('.').next().unwrap_or("");
    assert!(!id_token.contains('='));
    assert!(header.starts_with("eyJ"));
}

#[test]
fn dex_without_offline_access_has_no_refresh_token() {
    let idp = FakeIdp::pcd();
    let resp = login(&idp, "openid email");
    assert_eq!(resp.status, 200);
    assert!(resp.json().get("refresh_token").is_none());
    let claims = decode_payload(resp.json()["id_token"].as_str().unwrap_or("")).expect("claims");
    assert!(
        claims.get("groups").is_none(),
        "groups needs the groups scope"
    );
}

#[test]
fn dex_basic_client_auth_wins_over_form_fields() {
    let idp = FakeIdp::pcd();
    let secret = secret(&idp);
    let form = [
        ("grant_type", "password"),
        ("client_id", DEX_CLIENT),
        ("client_secret", secret.as_str()),
        ("username", ALICE),
        ("password", ALICE_PASSWORD),
        ("scope", SCOPE),
    ];
    let good = post_form(
        &idp.dex_token_url(),
        &form[3..],
        Some((DEX_CLIENT, &secret)),
    );
    assert_eq!(good.status, 400, "grant_type missing: {}", good.body);
    let mut with_grant = vec![("grant_type", "password")];
    with_grant.extend_from_slice(&form[3..]);
    let good = post_form(
        &idp.dex_token_url(),
        &with_grant,
        Some((DEX_CLIENT, &secret)),
    );
    assert_eq!(good.status, 200, "{}", good.body);
    let basic_wrong = post_form(&idp.dex_token_url(), &form, Some((DEX_CLIENT, "wrong")));
    assert_error(
        &basic_wrong,
        401,
        json!({"error": "invalid_client", "error_description": "Invalid client credentials."}),
    );
    assert!(idp.requests().iter().any(|r| r.used_basic_auth()));
}

/// Every row of pcd-auth.md's error table.
#[test]
fn dex_error_table() {
    let idp = FakeIdp::pcd();
    let url = idp.dex_token_url();
    let secret = secret(&idp);
    let base = |grant: &str| {
        vec![
            ("grant_type".to_owned(), grant.to_owned()),
            ("client_id".to_owned(), DEX_CLIENT.to_owned()),
            ("client_secret".to_owned(), secret.clone()),
            ("username".to_owned(), ALICE.to_owned()),
            ("password".to_owned(), ALICE_PASSWORD.to_owned()),
            ("scope".to_owned(), SCOPE.to_owned()),
        ]
    };
    let send = |mut form: Vec<(String, String)>, edits: &[(&str, &str)]| {
        for (k, v) in edits {
            form.retain(|(key, _)| key != k);
            if !v.is_empty() {
                form.push(((*k).to_owned(), (*v).to_owned()));
            }
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        post_form(&url, &pairs, None)
    };
    let err = |e: &str, d: &str| json!({"error": e, "error_description": d});
    let invalid_client = err("invalid_client", "Invalid client credentials.");

    assert_error(
        &send(base("client_credentials"), &[]),
        400,
        json!({"error": "unsupported_grant_type"}),
    );
    let json_body = post_raw(
        &url,
        &[("Content-Type", "application/json")],
        r#"{"grant_type":"password"}"#,
    );
    assert_error(&json_body, 400, json!({"error": "unsupported_grant_type"}));
    assert_error(
        &send(base("password"), &[("client_id", "nope")]),
        401,
        invalid_client.clone(),
    );
    assert_error(
        &send(base("password"), &[("client_secret", "wrong")]),
        401,
        invalid_client.clone(),
    );
    assert_error(
        &send(base("password"), &[("client_secret", "")]),
        401,
        invalid_client,
    );
    assert_error(
        &send(base("password"), &[("scope", "offline_access email")]),
        400,
        err(
            "invalid_request",
            r#"Missing required scope(s) ["openid"]."#,
        ),
    );
    assert_error(
        &send(base("password"), &[("scope", "openid foo bar")]),
        400,
        err("invalid_request", r#"Unrecognized scope(s) ["foo" "bar"]"#),
    );
    assert_error(
        &send(base("password"), &[("connector_id", "ldap")]),
        400,
        err("invalid_request", "Requested connector does not exist."),
    );
    assert_error(
        &send(base("password"), &[("password", "wrong")]),
        400,
        err("invalid_request", "Could not login user"),
    );
    assert_error(
        &send(base("refresh_token"), &[("refresh_token", "garbage")]),
        400,
        err("invalid_request", CLAIMED),
    );
    assert_error(
        &send(base("refresh_token"), &[]),
        400,
        err("invalid_request", "No refresh token is found in request."),
    );
    assert_eq!(idp.counts().claimed_errors, 1);
}

#[test]
fn dex_other_connectors_answer_access_denied() {
    let idp = FakeIdp::start(IdpConfig {
        dex_keystone_connector: false,
        ..IdpConfig::pcd()
    });
    let secret = secret(&idp);
    let resp = post_form(
        &idp.dex_token_url(),
        &[
            ("grant_type", "password"),
            ("username", ALICE),
            ("password", "wrong"),
            ("scope", "openid"),
        ],
        Some((DEX_CLIENT, &secret)),
    );
    assert_error(
        &resp,
        401,
        json!({"error": "access_denied", "error_description": "Invalid username or password"}),
    );
}

#[test]
fn dex_rotation_has_no_grace() {
    let idp = FakeIdp::pcd();
    let r1 = refresh_token_of(&login(&idp, SCOPE));
    let second = refresh(&idp, &r1);
    assert_eq!(second.status, 200, "{}", second.body);
    let r2 = refresh_token_of(&second);
    assert_ne!(r1, r2);
    assert!(second.json()["id_token"].is_string());

    let replay = refresh(&idp, &r1);
    assert_error(
        &replay,
        400,
        json!({"error": "invalid_request", "error_description": CLAIMED}),
    );
    let third = refresh(&idp, &r2);
    assert_eq!(
        third.status, 200,
        "the chain's current token survives a replay"
    );
    let counts = idp.counts();
    assert_eq!(
        (
            counts.refresh_grant,
            counts.refresh_rejected,
            counts.claimed_errors
        ),
        (3, 1, 1)
    );
}

#[test]
fn dex_new_login_kills_the_previous_refresh_token_for_that_client() {
    let idp = FakeIdp::pcd();
    let first = refresh_token_of(&login(&idp, SCOPE));
    let second = refresh_token_of(&login(&idp, SCOPE));
    assert_eq!(idp.dex_refresh_tokens(ALICE), 1);
    assert_eq!(refresh(&idp, &first).json()["error_description"], CLAIMED);
    let renewed = refresh(&idp, &second);
    assert_eq!(renewed.status, 200);
    // A login without offline_access leaves the refresh token alone.
    let third = refresh_token_of(&renewed);
    assert_eq!(login(&idp, "openid").status, 200);
    assert_eq!(refresh(&idp, &third).status, 200);
}

#[test]
fn dex_refresh_by_another_client_is_invalid_grant() {
    let idp = FakeIdp::pcd();
    let token = refresh_token_of(&login(&idp, SCOPE));
    let other_secret = idp.client_secret(OTHER_DEX_CLIENT).expect("other client");
    let resp = post_form(
        &idp.dex_token_url(),
        &[("grant_type", "refresh_token"), ("refresh_token", &token)],
        Some((OTHER_DEX_CLIENT, &other_secret)),
    );
    assert_error(
        &resp,
        400,
        json!({"error": "invalid_grant", "error_description": CLAIMED}),
    );
}

#[test]
fn dex_refresh_expiry_upstream_failure_and_rotation_off() {
    let idp = FakeIdp::pcd();
    idp.set_refresh_lifetime(Duration::from_secs(60));
    let token = refresh_token_of(&login(&idp, SCOPE));
    idp.set_fail_upstream_refresh(true);
    assert_error(
        &refresh(&idp, &token),
        500,
        json!({"error": "invalid_request"}),
    );
    idp.set_fail_upstream_refresh(false);
    idp.advance_clock(Duration::from_secs(61));
    assert_error(
        &refresh(&idp, &token),
        400,
        json!({"error": "invalid_request", "error_description": "Refresh token expired."}),
    );

    let idp = FakeIdp::pcd();
    idp.set_rotate_refresh_tokens(false);
    let token = refresh_token_of(&login(&idp, SCOPE));
    assert_eq!(refresh_token_of(&refresh(&idp, &token)), token);
    assert_eq!(refresh(&idp, &token).status, 200);
}

#[test]
fn dex_tokens_expire_and_can_be_revoked() {
    let idp = FakeIdp::pcd();
    idp.set_token_lifetime(Duration::from_secs(30));
    let body = login(&idp, SCOPE).json();
    assert_eq!(body["expires_in"], 29);
    let id_token = body["id_token"].as_str().expect("id_token").to_owned();
    let refresh_tok = body["refresh_token"].as_str().expect("refresh").to_owned();
    assert!(idp.is_valid_token(&id_token));
    assert_eq!(idp.token_user(&id_token).as_deref(), Some(ALICE));
    idp.advance_clock(Duration::from_secs(31));
    assert!(!idp.is_valid_token(&id_token));
    let fresh = refresh(&idp, &refresh_tok).json()["id_token"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(idp.is_valid_token(&fresh));
    idp.revoke_token(&fresh);
    assert!(!idp.is_valid_token(&fresh));
    idp.revoke_refresh_tokens(ALICE);
    assert_eq!(idp.dex_refresh_tokens(ALICE), 0);
}

#[test]
fn discovery_and_counts_endpoint() {
    let idp = FakeIdp::pcd();
    let doc = get(
        &format!("{}/dex/.well-known/openid-configuration", idp.url()),
        &[],
    )
    .json();
    assert_eq!(doc["token_endpoint"], idp.dex_token_url());
    let counts = get(&format!("{}/_testkit/counts", idp.url()), &[]).json();
    assert_eq!(counts["discovery"], 1);
    assert_eq!(get(&format!("{}/nope", idp.url()), &[]).status, 404);
}
