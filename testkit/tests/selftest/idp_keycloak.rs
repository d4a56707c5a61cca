//! Keycloak flavour (OCP IAM): password + OTP, refresh, client_credentials,
//! sessions, logout, revoke, discovery.

use std::time::Duration;

use crate::common::{Resp, get, post_form};
use dexcred_testkit::idp::{
    ALICE, ALICE_PASSWORD, FakeIdp, KEYCLOAK_PUBLIC_CLIENT as OCP, SERVICE_CLIENT,
    SERVICE_CLIENT_SECRET, User, decode_payload,
};
use serde_json::{Value, json};

fn oidc(idp: &FakeIdp, endpoint: &str) -> String {
    format!(
        "{}/auth/realms/ocp/protocol/openid-connect/{endpoint}",
        idp.url()
    )
}

fn login_with(idp: &FakeIdp, user: &str, password: &str, extra: &[(&str, &str)]) -> Resp {
    let mut form = vec![
        ("client_id", OCP),
        ("grant_type", "password"),
        ("username", user),
        ("password", password),
    ];
    form.extend_from_slice(extra);
    post_form(&idp.keycloak_token_url("ocp"), &form, None)
}

fn login(idp: &FakeIdp) -> Value {
    let resp = login_with(idp, ALICE, ALICE_PASSWORD, &[("scope", "openid")]);
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()
}

fn refresh(idp: &FakeIdp, token: &str) -> Resp {
    post_form(
        &idp.keycloak_token_url("ocp"),
        &[
            ("client_id", OCP),
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
        ],
        None,
    )
}

fn logout(idp: &FakeIdp, token: &str) -> Resp {
    post_form(
        &oidc(idp, "logout"),
        &[("client_id", OCP), ("refresh_token", token)],
        None,
    )
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

fn assert_error(resp: &Resp, status: u16, error: &str, description: &str) {
    assert_eq!(resp.status, status, "{}", resp.body);
    assert_eq!(
        resp.json(),
        json!({"error": error, "error_description": description})
    );
}

#[test]
fn password_grant_response_shape() {
    let idp = FakeIdp::pcd();
    let body = login(&idp);
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["refresh_expires_in"], 1800);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["not-before-policy"], 0);
    assert_eq!(body["scope"], "openid profile email");
    assert!(
        body["session_state"]
            .as_str()
            .is_some_and(|s| s.len() == 36)
    );
    let access = decode_payload(&text(&body, "access_token")).expect("JWT");
    assert_eq!(access["aud"], json!([OCP]));
    assert_eq!(access["iss"], format!("{}/auth/realms/ocp", idp.url()));
    assert_eq!(access["preferred_username"], ALICE);
    assert!(idp.is_valid_token(&text(&body, "access_token")));
    assert!(idp.is_valid_token(&text(&body, "id_token")));
    assert_eq!(
        decode_payload(&text(&body, "refresh_token")).map(|c| c["typ"].clone()),
        Some(json!("Refresh"))
    );

    let no_openid = login_with(&idp, ALICE, ALICE_PASSWORD, &[]).json();
    assert!(no_openid.get("id_token").is_none());
    assert_eq!(no_openid["scope"], "profile email");
    assert_eq!(idp.active_sessions(ALICE), 2);
}

#[test]
fn otp_is_required_and_each_code_works_once() {
    let idp = FakeIdp::pcd();
    idp.add_user(User::new("bob", "pw").with_otp(&["111111", "222222"]));
    let invalid =
        |resp: &Resp| assert_error(resp, 401, "invalid_grant", "Invalid user credentials");
    invalid(&login_with(&idp, "bob", "pw", &[]));
    invalid(&login_with(&idp, "bob", "pw", &[("otp", "999999")]));
    invalid(&login_with(&idp, "bob", "wrong", &[("otp", "111111")]));
    assert_eq!(
        login_with(&idp, "bob", "pw", &[("otp", "111111")]).status,
        200
    );
    invalid(&login_with(&idp, "bob", "pw", &[("otp", "111111")]));
    assert_eq!(
        login_with(&idp, "BOB", "pw", &[("totp", "222222")]).status,
        200
    );
    let sent_otp = idp
        .requests()
        .iter()
        .filter(|r| r.form_keys().contains(&"otp"))
        .count();
    assert_eq!(sent_otp, 4);
    invalid(&login_with(&idp, ALICE, "wrong", &[]));
}

#[test]
fn client_authentication_errors() {
    let idp = FakeIdp::pcd();
    let url = idp.keycloak_token_url("ocp");
    let form = [
        ("grant_type", "password"),
        ("username", ALICE),
        ("password", ALICE_PASSWORD),
    ];
    let msg = "Invalid client or Invalid client credentials";
    let mut unknown = vec![("client_id", "nope")];
    unknown.extend_from_slice(&form);
    assert_error(&post_form(&url, &unknown, None), 401, "invalid_client", msg);
    let mut no_secret = vec![("client_id", SERVICE_CLIENT)];
    no_secret.extend_from_slice(&form);
    assert_error(
        &post_form(&url, &no_secret, None),
        401,
        "unauthorized_client",
        msg,
    );
    assert_error(
        &post_form(&url, &[("client_id", OCP)], None),
        400,
        "invalid_request",
        "Missing form parameter: grant_type",
    );
    assert_error(
        &post_form(&url, &[("client_id", OCP), ("grant_type", "magic")], None),
        400,
        "unsupported_grant_type",
        "Unsupported grant_type",
    );
}

#[test]
fn client_credentials_with_form_or_basic() {
    let idp = FakeIdp::pcd();
    let url = idp.keycloak_token_url("master");
    let grant = ("grant_type", "client_credentials");
    let form = [
        grant,
        ("client_id", SERVICE_CLIENT),
        ("client_secret", SERVICE_CLIENT_SECRET),
    ];
    let resp = post_form(&url, &form, None);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["refresh_expires_in"], 0);
    assert!(body.get("refresh_token").is_none());
    assert!(idp.is_valid_token(&text(&body, "access_token")));

    let basic = post_form(
        &url,
        &[grant],
        Some((SERVICE_CLIENT, SERVICE_CLIENT_SECRET)),
    );
    assert_eq!(
        basic.status, 200,
        "special characters survive Basic: {}",
        basic.body
    );
    let msg = "Invalid client or Invalid client credentials";
    let bad = post_form(&url, &[grant], Some((SERVICE_CLIENT, "wrong")));
    assert_error(&bad, 401, "unauthorized_client", msg);
    let public = post_form(&url, &[grant, ("client_id", OCP)], None);
    assert_eq!(public.status, 401);
    assert_eq!(idp.counts().client_credentials, 4);
}

#[test]
fn refresh_keeps_the_session_and_old_tokens_stay_valid_by_default() {
    let idp = FakeIdp::pcd();
    let first = login(&idp);
    let r1 = text(&first, "refresh_token");
    let second = refresh(&idp, &r1);
    assert_eq!(second.status, 200, "{}", second.body);
    let second = second.json();
    assert_ne!(text(&second, "refresh_token"), r1);
    assert_eq!(second["session_state"], first["session_state"]);
    assert!(second["id_token"].is_string());
    assert_eq!(
        refresh(&idp, &r1).status,
        200,
        "Keycloak default: no revocation"
    );
    assert_eq!(idp.active_sessions(ALICE), 1);
}

#[test]
fn revoke_refresh_token_setting_detects_reuse() {
    let idp = FakeIdp::pcd();
    idp.set_keycloak_revoke_refresh_token(true);
    let r1 = text(&login(&idp), "refresh_token");
    let r2 = text(&refresh(&idp, &r1).json(), "refresh_token");
    assert_error(
        &refresh(&idp, &r1),
        400,
        "invalid_grant",
        "Maximum allowed refresh token reuse exceeded",
    );
    assert_error(
        &refresh(&idp, &r2),
        400,
        "invalid_grant",
        "Session doesn't have required client",
    );
    assert_eq!(idp.counts().refresh_rejected, 2);
}

#[test]
fn logout_ends_the_session() {
    let idp = FakeIdp::pcd();
    let body = login(&idp);
    let access = text(&body, "access_token");
    let r = text(&body, "refresh_token");
    let resp = logout(&idp, &r);
    assert_eq!(resp.status, 204);
    assert!(resp.body.is_empty());
    assert!(!idp.is_valid_token(&access));
    assert_eq!(idp.active_sessions(ALICE), 0);
    assert_error(
        &refresh(&idp, &r),
        400,
        "invalid_grant",
        "Session not active",
    );
    assert_error(
        &logout(&idp, "garbage"),
        400,
        "invalid_grant",
        "Invalid refresh token",
    );
    assert_eq!(
        logout(&idp, &r).status,
        204,
        "repeat logout of a known token"
    );
    assert_eq!(idp.counts().logout, 3);
}

#[test]
fn expired_refresh_token_is_not_active() {
    let idp = FakeIdp::pcd();
    let body = login(&idp);
    idp.advance_clock(Duration::from_secs(301));
    assert!(!idp.is_valid_token(&text(&body, "access_token")));
    assert_eq!(refresh(&idp, &text(&body, "refresh_token")).status, 200);
    idp.advance_clock(Duration::from_secs(1801));
    assert_error(
        &refresh(&idp, &text(&body, "refresh_token")),
        400,
        "invalid_grant",
        "Token is not active",
    );
    assert_eq!(idp.active_sessions(ALICE), 0, "idle sessions time out");
}

#[test]
fn session_limit() {
    let idp = FakeIdp::pcd();
    let tokens: Vec<String> = (0..5)
        .map(|_| text(&login(&idp), "refresh_token"))
        .collect();
    assert_eq!(idp.active_sessions(ALICE), 5);
    let sixth = login_with(&idp, ALICE, ALICE_PASSWORD, &[]);
    assert_error(
        &sixth,
        400,
        "invalid_grant",
        "Maximum number of sessions reached",
    );
    assert_eq!(logout(&idp, &tokens[0]).status, 204);
    assert_eq!(login_with(&idp, ALICE, ALICE_PASSWORD, &[]).status, 200);
    idp.set_max_sessions(1);
    assert_eq!(login_with(&idp, ALICE, ALICE_PASSWORD, &[]).status, 400);
    idp.revoke_refresh_tokens(ALICE);
    assert_eq!(idp.active_sessions(ALICE), 0);
}

#[test]
fn revoke_endpoint() {
    let idp = FakeIdp::pcd();
    let url = oidc(&idp, "revoke");
    let body = login(&idp);
    let form = |token: &str, hint: &str| {
        post_form(
            &url,
            &[
                ("client_id", OCP),
                ("token", token),
                ("token_type_hint", hint),
            ],
            None,
        )
    };
    assert_eq!(form("unknown", "access_token").status, 200);
    let access = text(&body, "access_token");
    assert_eq!(form(&access, "access_token").status, 200);
    assert!(!idp.is_valid_token(&access));
    assert_eq!(idp.active_sessions(ALICE), 1);
    assert_eq!(
        form(&text(&body, "refresh_token"), "refresh_token").status,
        200
    );
    assert_eq!(idp.active_sessions(ALICE), 0);
    assert_eq!(idp.counts().revoke, 3);
}

#[test]
fn discovery_and_realms() {
    let idp = FakeIdp::pcd();
    for prefix in ["/auth", ""] {
        let url = format!(
            "{}{prefix}/realms/master/.well-known/openid-configuration",
            idp.url()
        );
        let doc = get(&url, &[]).json();
        let issuer = format!("{}{prefix}/realms/master", idp.url());
        assert_eq!(doc["issuer"], issuer);
        assert_eq!(
            doc["token_endpoint"],
            format!("{issuer}/protocol/openid-connect/token")
        );
        assert_eq!(
            doc["end_session_endpoint"],
            format!("{issuer}/protocol/openid-connect/logout")
        );
        assert_eq!(
            doc["revocation_endpoint"],
            format!("{issuer}/protocol/openid-connect/revoke")
        );
    }
    let missing = get(
        &format!(
            "{}/auth/realms/nope/.well-known/openid-configuration",
            idp.url()
        ),
        &[],
    );
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), json!({"error": "Realm does not exist"}));
    assert_eq!(idp.counts().discovery, 3);
}
