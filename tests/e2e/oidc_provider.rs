//! Interop with a real OpenID Connect server nobody here wrote: the
//! `oidc-provider` npm package, pinned in `tests/oidc/package-lock.json` and
//! started by `tests/oidc/server.mjs` (see that file for its clients).
//!
//! Covers discovery (`--issuer`), client credentials with
//! `client_secret_post` and `client_secret_basic` (opaque tokens, so the
//! expiry comes from `expires_in`), the password grant with refresh-token
//! rotation (the old refresh token dies, dexcred keeps the new one),
//! RFC 7009 revocation through `dexcred logout`, and `--token-field
//! id_token`.
//!
//! node and the npm packages are required: a missing one fails the test
//! (run `npm ci` in tests/oidc; `scripts/test.sh` does it for you).

use std::process::Output;

use crate::common::oidc::{OidcServer, http_agent};
use crate::common::*;
use serde_json::Value;

/// What these interop tests ask of the server beyond `common::oidc`: a
/// counter that must exist, and two requests another client would make.
trait Interop {
    fn counter(&self, what: &str) -> i64;
    fn refresh_directly(&self, client_id: &str, refresh_token: &str) -> (u16, Value);
    fn active(&self, which: &str, token: &str) -> bool;
}

impl Interop for OidcServer {
    fn counter(&self, what: &str) -> i64 {
        let counts = self.counts();
        counts[what]
            .as_i64()
            .unwrap_or_else(|| panic!("the server counts no {what:?}: {counts}"))
    }

    /// A refresh_token grant sent directly, as another client would.
    fn refresh_directly(&self, client_id: &str, refresh_token: &str) -> (u16, Value) {
        let (status, body) = post(
            &self.endpoint("/token"),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", client_id),
                ("refresh_token", refresh_token),
            ],
        );
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// RFC 7662 introspection by a confidential client (`client_secret_post`).
    fn active(&self, which: &str, token: &str) -> bool {
        let (id, secret) = self.client(which);
        let (status, body) = post(
            &self.endpoint("/token/introspection"),
            &[
                ("client_id", &id),
                ("client_secret", &secret),
                ("token", token),
            ],
        );
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("introspection JSON");
        v["active"].as_bool().expect("active")
    }
}

fn post(url: &str, form: &[(&str, &str)]) -> (u16, String) {
    let mut r = http_agent()
        .post(url)
        .send_form(form.iter().copied())
        .expect("POST");
    let body = r.body_mut().read_to_string().expect("body");
    (r.status().as_u16(), body)
}

fn raw_token(out: &Output) -> String {
    let text = ok(out);
    assert_eq!(text.lines().count(), 1, "{text:?}");
    text.trim_end().to_string()
}

/// `dexcred token` for a confidential client with its secret in the env.
fn client_token<S: AsRef<std::ffi::OsStr>>(env: &Env, flags: &[S], secret: &str) -> Output {
    run(env
        .dexcred(["token"])
        .args(flags)
        .env("DEXCRED_CLIENT_SECRET", secret))
}

/// The `client_secret_post` client found by discovery: its flags and secret.
fn post_client_by_discovery(server: &OidcServer) -> (Vec<String>, String) {
    let (id, secret) = server.client("post");
    let flags = vec![
        "--issuer".to_string(),
        server.issuer.clone(),
        "--client-id".into(),
        id,
    ];
    (flags, secret)
}

/// `dexcred token` for the password client.
fn user_token(env: &Env, server: &OidcServer, extra: &[&str]) -> Output {
    let (public, _) = server.client("public");
    let user = server.username();
    let mut cmd = env.dexcred(["token", "--issuer", &server.issuer]);
    cmd.args(["--client-id", &public, "--username", &user])
        .args(extra)
        .env("DEXCRED_PASSWORD", server.password());
    run(&mut cmd)
}

fn user_logout(env: &Env, server: &OidcServer, extra: &[&str]) -> Output {
    let (public, _) = server.client("public");
    let user = server.username();
    let mut cmd = env.dexcred(["logout", "--issuer", &server.issuer]);
    cmd.args(["--client-id", &public, "--username", &user])
        .args(extra);
    run(&mut cmd)
}

fn refresh_token_of(env: &Env) -> String {
    read_entry(&env.only_entry())["refresh_token"]
        .as_str()
        .expect("a refresh token in the entry")
        .to_string()
}

#[test]
fn discovery_and_client_credentials_with_client_secret_post() {
    let server = OidcServer::start();
    let env = Env::new();
    let (flags, secret) = post_client_by_discovery(&server);

    let token = raw_token(&client_token(&env, &flags, &secret));
    assert_eq!(server.counter("discovery"), 1);
    assert_eq!(server.counter("client_credentials"), 1);
    assert!(
        server.active("post", &token),
        "the server accepts the token"
    );

    // Discovery found the endpoints, and the entry keeps them.
    let entry = read_entry(&env.only_entry());
    assert_eq!(
        entry["endpoints"]["token"],
        format!("{}/token", server.issuer)
    );
    assert_eq!(
        entry["endpoints"]["revocation"],
        format!("{}/token/revocation", server.issuer)
    );
    // An opaque token: its expiry is expires_in counted from the response.
    assert!(
        !token.contains('.'),
        "oidc-provider issues opaque tokens: {token}"
    );
    let at = &entry["access_token"];
    let lifetime = at["expires_at"].as_i64().unwrap() - at["issued_at"].as_i64().unwrap();
    assert_eq!(lifetime, server.info["cc_ttl"].as_i64().unwrap());

    // A cache hit asks the server nothing, discovery included.
    let before = server.counts();
    assert_eq!(raw_token(&client_token(&env, &flags, &secret)), token);
    assert_eq!(server.counts(), before);

    // A renewal repeats the grant at the saved token endpoint.
    age_tokens(&env.only_entry(), 2);
    let renewed = raw_token(&client_token(&env, &flags, &secret));
    assert_ne!(renewed, token);
    assert_eq!(server.counter("client_credentials"), 2);
    assert_eq!(server.counter("discovery"), 1);
}

#[test]
fn client_credentials_with_client_secret_basic() {
    let server = OidcServer::start();
    let env = Env::new();
    let (id, secret) = server.client("basic");
    assert!(secret.contains(':') && secret.contains('%') && secret.contains(' '));
    let token_url = format!("{}/token", server.issuer);

    // The secret, with `:+/ %&`, must be form-urlencoded inside Basic.
    let flags = [
        "--token-url",
        token_url.as_str(),
        "--client-id",
        id.as_str(),
        "--client-auth",
        "basic",
    ];
    let token = raw_token(&client_token(&env, &flags, &secret));
    assert_eq!(server.counter("client_credentials"), 1);
    assert_eq!(server.counter("grant_errors"), 0);
    let entry = read_entry(&env.only_entry());
    let at = &entry["access_token"];
    assert_eq!(at["value"], token.as_str());
    let lifetime = at["expires_at"].as_i64().unwrap() - at["issued_at"].as_i64().unwrap();
    assert_eq!(lifetime, server.info["cc_ttl"].as_i64().unwrap());

    // The secret went in the Basic header (oidc-provider would also take it
    // in the form; what it cannot take is a badly encoded header).
    assert_eq!(server.counter("basic_auth"), 1);

    // A wrong secret: the server's reason and a hint, exit 3.
    let env2 = Env::new();
    let line = fails_with(&client_token(&env2, &flags, "b4s:c+/ %&wrong"), 3);
    assert!(line.contains("invalid_client"), "{line}");
    assert!(line.contains("--client-id and the client secret"), "{line}");
    assert!(!line.contains("wrong"), "{line}");
    assert!(env2.cache_entries().is_empty());
}

#[test]
fn password_grant_with_refresh_token_rotation() {
    let server = OidcServer::start();
    let env = Env::new();
    let (public, _) = server.client("public");
    let scope = ["--scope", "openid offline_access"];

    let first = raw_token(&user_token(&env, &server, &scope));
    let r0 = refresh_token_of(&env);
    assert_eq!(server.counter("password"), 1);

    // First renewal (the token reached its margin): R0 → R1.
    age_tokens(&env.only_entry(), 2);
    let second = raw_token(&user_token(&env, &server, &scope));
    let r1 = refresh_token_of(&env);
    assert_ne!(second, first);
    assert_ne!(r1, r0, "oidc-provider rotates refresh tokens");

    // Second renewal: only works with R1, because R0 was consumed (and
    // presenting R0 again would make the server revoke the whole grant).
    let third = raw_token(&user_token(
        &env,
        &server,
        &[&scope[..], &["--force-refresh"]].concat(),
    ));
    let r2 = refresh_token_of(&env);
    assert_ne!(third, second);
    assert_ne!(r2, r1);
    assert_eq!(server.counter("refresh_token"), 2);
    assert_eq!(server.counter("password"), 1);
    assert_eq!(server.counter("grant_errors"), 0);

    // The old refresh token is dead at the server.
    let (status, body) = server.refresh_directly(&public, &r0);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");

    // That reuse made oidc-provider revoke the grant (its reuse detection),
    // killing R2 too: dexcred's next renewal is refused and it logs in again
    // with the password, without failing the run.
    let fourth = raw_token(&user_token(
        &env,
        &server,
        &[&scope[..], &["--force-refresh"]].concat(),
    ));
    assert_ne!(fourth, third);
    assert_eq!(server.counter("password"), 2);
    assert_eq!(server.counter("refresh_token"), 2);
    assert_eq!(
        server.counter("grant_errors"),
        2,
        "R0 directly, then R2 by dexcred"
    );
}

#[test]
fn logout_revokes_the_refresh_token() {
    let server = OidcServer::start();
    let env = Env::new();
    let (public, _) = server.client("public");
    let scope = ["--scope", "openid offline_access"];

    raw_token(&user_token(&env, &server, &scope));
    let refresh = refresh_token_of(&env);

    let out = user_logout(&env, &server, &scope);
    let text = ok(&out);
    assert!(
        text.contains(&format!(
            "Logged out: revoked the refresh token at {}/token/revocation",
            server.issuer
        )),
        "{text}"
    );
    assert!(text.contains("Deleted the cached tokens"), "{text}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(env.cache_entries().is_empty());
    assert_eq!(server.counter("revocation"), 1);
    // Logout reused the endpoints saved at login.
    assert_eq!(server.counter("discovery"), 1);

    let (status, body) = server.refresh_directly(&public, &refresh);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}

#[test]
fn logout_revokes_a_client_credentials_token() {
    let server = OidcServer::start();
    let env = Env::new();
    let (flags, secret) = post_client_by_discovery(&server);
    let token = raw_token(&client_token(&env, &flags, &secret));
    assert!(server.active("post", &token));

    let out = run(env
        .dexcred(["logout"])
        .args(&flags)
        .env("DEXCRED_CLIENT_SECRET", &secret));
    let text = ok(&out);
    assert!(
        text.contains("Logged out: revoked the access token"),
        "{text}"
    );
    assert!(env.cache_entries().is_empty());
    assert_eq!(server.counter("revocation"), 1);
    assert!(!server.active("post", &token), "the token is revoked");
}

#[test]
fn token_field_id_token_with_the_openid_scope() {
    let server = OidcServer::start();
    let env = Env::new();
    let (public, _) = server.client("public");

    let out = user_token(
        &env,
        &server,
        &[
            "--scope",
            "openid offline_access",
            "--token-field",
            "id_token",
        ],
    );
    let token = raw_token(&out);
    let claims = dexcred_testkit::idp::decode_payload(&token).expect("the id_token is a JWT");
    assert_eq!(claims["iss"], server.issuer.as_str());
    assert_eq!(claims["aud"], public.as_str());
    // Its expiry in the cache is the JWT's exp.
    let entry = read_entry(&env.only_entry());
    assert_eq!(entry["id_token"]["value"], token.as_str());
    assert_eq!(entry["id_token"]["expires_at"], claims["exp"]);

    let json_text = ok(&user_token(
        &env,
        &server,
        &[
            "--scope",
            "openid offline_access",
            "--token-field",
            "id_token",
            "--format",
            "json",
        ],
    ));
    let json: Value = serde_json::from_str(&json_text).expect("JSON");
    assert_eq!(json["token"], token.as_str());
    assert_eq!(json["token_field"], "id_token");

    // Without `openid` the server sends no id_token: a clear error.
    let env2 = Env::new();
    let line = fails_with(
        &user_token(
            &env2,
            &server,
            &["--scope", "offline_access", "--token-field", "id_token"],
        ),
        4,
    );
    assert!(
        line.contains("no id_token") && line.contains("--token-field"),
        "{line}"
    );
}

#[test]
fn wrong_password_shows_the_servers_reason() {
    let server = OidcServer::start();
    let env = Env::new();
    let (public, _) = server.client("public");
    let user = server.username();
    let out = run(env
        .dexcred(["token", "--issuer", &server.issuer])
        .args(["--client-id", &public, "--username", &user])
        .env("DEXCRED_PASSWORD", "not the password"));
    let line = fails_with(&out, 3);
    assert!(line.contains("invalid_grant"), "{line}");
    assert!(!line.contains("not the password"), "{line}");
    assert!(env.cache_entries().is_empty());
}

#[test]
fn revocation_url_names_rfc7009_revocation_without_discovery() {
    let server = OidcServer::start();
    let env = Env::new();
    let (public, _) = server.client("public");
    let user = server.username();
    let token_url = format!("{}/token", server.issuer);
    let revocation_url = format!("{}/token/revocation", server.issuer);
    let flags = [
        "--token-url",
        token_url.as_str(),
        "--revocation-url",
        revocation_url.as_str(),
        "--client-id",
        public.as_str(),
        "--username",
        user.as_str(),
        "--scope",
        "openid offline_access",
    ];
    let out = run(env
        .dexcred(["token"])
        .args(flags)
        .env("DEXCRED_PASSWORD", server.password()));
    raw_token(&out);
    let refresh = refresh_token_of(&env);

    let out = run(env.dexcred(["logout"]).args(flags));
    let text = ok(&out);
    assert!(
        text.contains(&format!(
            "Logged out: revoked the refresh token at {revocation_url}"
        )),
        "{text}"
    );
    assert_eq!(server.counter("revocation"), 1);
    assert_eq!(server.counter("discovery"), 0, "the URLs were given");
    let (status, body) = server.refresh_directly(&public, &refresh);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}
