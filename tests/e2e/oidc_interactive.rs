//! The interactive-login test infrastructure, proved without dexcred: the
//! real `oidc-provider` server (tests/oidc/server.mjs) and a real headless
//! Chromium (tests/oidc/browser.mjs, playwright-core) do an authorization
//! code + PKCE login through a loopback listener written here, and the
//! device authorization grant (RFC 8628), then refresh with rotation.
//!
//! These tests check the pieces dexcred's `--grant authorization_code` and
//! `--grant device_code` tests stand on: if one fails, those would fail for
//! a reason that is not dexcred's.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::oidc::{Browser, OidcServer, http_agent};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A loopback listener like dexcred's: answers every request with a page
/// saying the tab can be closed, and hands the request targets to the test.
struct Listener {
    port: u16,
    targets: mpsc::Receiver<String>,
}

impl Listener {
    fn start() -> Listener {
        let socket = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = socket.local_addr().expect("addr").port();
        let (tx, targets) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in socket.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || answer(conn, tx));
            }
        });
        Listener { port, targets }
    }

    fn redirect_uri(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }

    /// The query of the first request to `path` (browsers also ask for
    /// /favicon.ico).
    fn redirect(&self, path: &str) -> Vec<(String, String)> {
        loop {
            let target = self
                .targets
                .recv_timeout(Duration::from_secs(60))
                .expect("the browser came back to the listener");
            let (p, query) = target.split_once('?').unwrap_or((&target, ""));
            if p == path {
                return form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
            }
        }
    }
}

fn answer(conn: TcpStream, tx: mpsc::Sender<String>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&conn);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return; // a speculative connection with no request
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let target = line.split(' ').nth(1).unwrap_or("").to_string();
    let body = "<!DOCTYPE html><title>dexcred</title><p>Logged in. You can close this tab.</p>";
    let _ = write!(
        &conn,
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tx.send(target);
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// PKCE S256: (verifier, challenge).
fn pkce() -> (String, String) {
    let verifier = random_b64();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn random_b64() -> String {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .expect("random bytes");
    URL_SAFE_NO_PAD.encode(bytes)
}

struct AuthRequest {
    url: String,
    state: String,
    nonce: String,
    verifier: String,
}

fn auth_request(server: &OidcServer, client_id: &str, redirect_uri: &str) -> AuthRequest {
    let (verifier, challenge) = pkce();
    let (state, nonce) = (random_b64(), random_b64());
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid offline_access")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    AuthRequest {
        url: server.endpoint(&format!("/auth?{query}")),
        state,
        nonce,
        verifier,
    }
}

fn post_form(url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let mut r = http_agent()
        .post(url)
        .send_form(form.iter().copied())
        .expect("POST");
    let body = r.body_mut().read_to_string().expect("body");
    (
        r.status().as_u16(),
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

/// (status, Location) of a GET that is not followed.
fn get_location(url: &str) -> (u16, String) {
    let r = http_agent().get(url).call().expect("GET");
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (r.status().as_u16(), location)
}

fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

fn refresh(server: &OidcServer, client_id: &str, refresh_token: &str) -> (u16, Value) {
    post_form(
        &server.endpoint("/token"),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token),
        ],
    )
}

/// Refresh with rotation: R0 → R1, then R0 again is refused.
fn check_rotation(server: &OidcServer, client_id: &str, r0: &str) {
    let (status, renewed) = refresh(server, client_id, r0);
    assert_eq!(status, 200, "{renewed}");
    let r1 = renewed["refresh_token"]
        .as_str()
        .expect("a new refresh token");
    assert_ne!(r1, r0, "refresh tokens rotate");
    assert!(renewed["access_token"].is_string());
    let (status, reused) = refresh(server, client_id, r0);
    assert_eq!(status, 400, "{reused}");
    assert_eq!(reused["error"], "invalid_grant");
}

#[test]
fn browser_login_with_pkce_through_a_loopback_listener_then_refresh_rotation() {
    let server = OidcServer::start();
    let (client, _) = server.client("native");
    let listener = Listener::start();
    let req = auth_request(
        &server,
        &client,
        &listener.redirect_uri("127.0.0.1", "/callback"),
    );
    let browser = Browser::new("login", &[]);

    let out = browser.run(&req.url);
    assert!(out.status.success(), "{:?}", browser.records());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let redirect = listener.redirect("/callback");
    assert_eq!(param(&redirect, "state"), Some(req.state.as_str()));
    let code = param(&redirect, "code").expect("a code in the redirect");

    // The browser read the listener's page, and says what it saw.
    let ends = browser.wait_ended();
    assert_eq!(browser.starts(), 1);
    assert_eq!(ends[0]["result"], "ok", "{ends:?}");
    assert_eq!(ends[0]["listener_status"], 200);
    assert!(
        ends[0]["listener_text"]
            .as_str()
            .unwrap()
            .contains("close this tab")
    );
    assert_eq!(ends[0]["redirect"]["has_code"], true);
    assert!(
        !browser
            .records()
            .iter()
            .any(|r| r.to_string().contains(code)),
        "the browser log never holds the code"
    );
    let start = &browser.events("start")[0];
    assert_eq!(start["params"]["code_challenge_method"], "S256");

    // A code without its verifier is refused; with it, tokens.
    let token_url = server.endpoint("/token");
    let redirect_uri = listener.redirect_uri("127.0.0.1", "/callback");
    let (status, body) = post_form(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &pkce().0),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    // That wrong try consumed the code (oidc-provider), so log in again.
    let req = auth_request(&server, &client, &redirect_uri);
    assert!(
        browser.run(&req.url).status.success(),
        "{:?}",
        browser.records()
    );
    let redirect = listener.redirect("/callback");
    let code = param(&redirect, "code").expect("a code");
    let (status, tokens) = post_form(
        &token_url,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &req.verifier),
        ],
    );
    assert_eq!(status, 200, "{tokens}");
    let claims = jwt_claims(tokens["id_token"].as_str().expect("an id_token"));
    assert_eq!(claims["nonce"], req.nonce.as_str());
    assert_eq!(claims["iss"], server.issuer.as_str());
    assert_eq!(claims["aud"], client.as_str());
    assert_eq!(browser.starts(), 2);

    check_rotation(
        &server,
        &client,
        tokens["refresh_token"].as_str().expect("a refresh token"),
    );
    let counts = server.counts();
    assert_eq!(counts["authorization_code"], 1, "{counts}");
    assert_eq!(counts["refresh_token"], 1, "{counts}");
    assert_eq!(counts["logins"], 2, "{counts}");
    assert_eq!(counts["consents"], 2, "{counts}");
    assert_eq!(counts["token_errors"]["invalid_grant"], 2, "{counts}");
    assert_eq!(counts["requests"]["GET /auth"], 2, "{counts}");
}

#[test]
fn a_confidential_client_and_localhost_with_any_port_and_path() {
    let server = OidcServer::start();
    let (client, secret) = server.client("native_secret");
    let listener = Listener::start();
    let redirect_uri = listener.redirect_uri("localhost", "/some/path");
    let req = auth_request(&server, &client, &redirect_uri);
    let browser = Browser::new("login", &[]);
    assert!(
        browser.run(&req.url).status.success(),
        "{:?}",
        browser.records()
    );
    let redirect = listener.redirect("/some/path");
    let code = param(&redirect, "code").expect("a code");
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client.as_str()),
        ("code", code),
        ("redirect_uri", &redirect_uri),
        ("code_verifier", &req.verifier),
    ];
    // Without its secret the client is refused …
    let (status, body) = post_form(&server.endpoint("/token"), &form);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    // … with it (client_secret_post), tokens.
    let mut with_secret = form.to_vec();
    with_secret.push(("client_secret", &secret));
    let (status, tokens) = post_form(&server.endpoint("/token"), &with_secret);
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["refresh_token"].is_string());
}

#[test]
fn the_server_requires_pkce_s256_and_checks_redirect_uris() {
    let server = OidcServer::start_with(&["--fixed-port", "18000"]);
    let (native, _) = server.client("native");
    let (fixed, _) = server.client("fixed");
    let to_login = |url: &str| {
        let (status, location) = get_location(url);
        status == 303 && location.starts_with("/interaction/")
    };

    // Native clients: any loopback host, port and path.
    for uri in [
        "http://127.0.0.1:1234/callback",
        "http://127.0.0.1:40000/",
        "http://localhost:5555/x/y",
        "http://[::1]:8000/callback",
    ] {
        assert!(to_login(&auth_request(&server, &native, uri).url), "{uri}");
    }
    // … but nothing else.
    for uri in [
        "http://example.com:1234/callback",
        "https://127.0.0.1:1234/callback",
        "http://10.0.0.1:1234/callback",
    ] {
        let (status, _) = get_location(&auth_request(&server, &native, uri).url);
        assert_eq!(status, 400, "{uri}");
    }
    // The exact-redirect client: its registered port only.
    for uri in [
        "http://127.0.0.1:18000/callback",
        "http://127.0.0.1:18000/",
        "http://localhost:18000/callback",
    ] {
        assert!(to_login(&auth_request(&server, &fixed, uri).url), "{uri}");
    }
    for uri in [
        "http://127.0.0.1:18001/callback",
        "http://127.0.0.1:18000/other",
    ] {
        let (status, _) = get_location(&auth_request(&server, &fixed, uri).url);
        assert_eq!(status, 400, "{uri}");
    }

    // PKCE: a request without a challenge, or with `plain`, is sent back
    // to the redirect URI with invalid_request.
    let uri = "http://127.0.0.1:1234/callback";
    let good = auth_request(&server, &native, uri).url;
    for (from, to) in [
        (
            "&code_challenge_method=S256",
            "&code_challenge_method=plain",
        ),
        ("&code_challenge=", "&not_a_challenge="),
    ] {
        let bad = good.replace(from, to);
        assert_ne!(bad, good);
        let (status, location) = get_location(&bad);
        assert_eq!(status, 303, "{bad}");
        assert!(location.starts_with(uri), "{location}");
        assert!(location.contains("error=invalid_request"), "{location}");
    }
}

#[test]
fn denied_consent_and_a_tampered_state_reach_the_listener() {
    let server = OidcServer::start();
    let (client, _) = server.client("native");
    let listener = Listener::start();
    let redirect_uri = listener.redirect_uri("127.0.0.1", "/callback");

    let deny = Browser::new("deny", &[]);
    let req = auth_request(&server, &client, &redirect_uri);
    assert!(deny.run(&req.url).status.success(), "{:?}", deny.records());
    let redirect = listener.redirect("/callback");
    assert_eq!(param(&redirect, "error"), Some("access_denied"));
    assert_eq!(param(&redirect, "code"), None);
    assert_eq!(param(&redirect, "state"), Some(req.state.as_str()));
    assert_eq!(server.count(&["denials"]), 1);

    let tamper = Browser::new("tamper-state", &[]);
    let req = auth_request(&server, &client, &redirect_uri);
    assert!(
        tamper.run(&req.url).status.success(),
        "{:?}",
        tamper.records()
    );
    let redirect = listener.redirect("/callback");
    assert!(param(&redirect, "code").is_some());
    let state = param(&redirect, "state").expect("a state");
    assert_ne!(state, req.state);
    assert!(state.starts_with(&req.state));
    assert_eq!(tamper.wait_ended()[0]["tampered"], true);

    let drop_code = Browser::new("drop-code", &[]);
    let req = auth_request(&server, &client, &redirect_uri);
    assert!(drop_code.run(&req.url).status.success());
    let redirect = listener.redirect("/callback");
    assert_eq!(param(&redirect, "code"), None);
    assert_eq!(param(&redirect, "state"), Some(req.state.as_str()));
}

#[test]
fn the_browser_ends_by_itself_when_nobody_listens() {
    let server = OidcServer::start();
    let (client, _) = server.client("native");
    // A port nothing listens on: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let req = auth_request(
        &server,
        &client,
        &format!("http://127.0.0.1:{port}/callback"),
    );
    let browser = Browser::new("login", &[]);
    let out = browser.run(&req.url);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(browser.wait_ended()[0]["result"], "listener-unreachable");

    // And with a bounded --timeout when a page never comes: `ignore` opens
    // nothing at all and ends at once.
    let ignore = Browser::new("ignore", &[]);
    assert!(ignore.run(&req.url).status.success());
    assert_eq!(ignore.starts(), 1);
    assert_eq!(
        ignore.events("start")[0]["params"]["state"],
        req.state.as_str()
    );
}

struct DeviceStart {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    interval: u64,
}

fn device_start(server: &OidcServer, client: &str) -> DeviceStart {
    let (status, body) = post_form(
        &server.endpoint("/device/auth"),
        &[("client_id", client), ("scope", "openid offline_access")],
    );
    assert_eq!(status, 200, "{body}");
    let s = |k: &str| body[k].as_str().expect(k).to_string();
    DeviceStart {
        device_code: s("device_code"),
        user_code: s("user_code"),
        verification_uri: s("verification_uri"),
        verification_uri_complete: s("verification_uri_complete"),
        interval: body["interval"].as_u64().expect("interval"),
    }
}

/// Polls as RFC 8628 says until an answer other than authorization_pending
/// or slow_down; returns it and the errors seen on the way.
fn poll(server: &OidcServer, client: &str, start: &DeviceStart) -> ((u16, Value), Vec<String>) {
    let mut interval = start.interval;
    let mut seen = Vec::new();
    for _ in 0..60 {
        std::thread::sleep(Duration::from_secs(interval));
        let (status, body) = post_form(
            &server.endpoint("/token"),
            &[
                ("grant_type", DEVICE_GRANT),
                ("client_id", client),
                ("device_code", &start.device_code),
            ],
        );
        match body["error"].as_str() {
            Some("authorization_pending") => seen.push("authorization_pending".into()),
            Some("slow_down") => {
                seen.push("slow_down".into());
                interval += 5;
            }
            _ => return ((status, body), seen),
        }
    }
    panic!("the device login never finished: {seen:?}");
}

#[test]
fn device_flow_with_the_complete_uri_then_refresh_rotation() {
    let server = OidcServer::start();
    let (client, _) = server.client("native");
    let discovery: Value = {
        let mut r = http_agent()
            .get(&server.endpoint("/.well-known/openid-configuration"))
            .call()
            .unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    };
    assert_eq!(
        discovery["device_authorization_endpoint"],
        server.endpoint("/device/auth")
    );
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&DEVICE_GRANT.into())
    );

    let start = device_start(&server, &client);
    assert_eq!(start.interval, 1);
    assert!(start.verification_uri_complete.contains(&start.user_code));
    let browser = Browser::new("device", &[]);
    // Detached, as dexcred starts it: the test polls meanwhile.
    let mut child = std::process::Command::new(browser.command())
        .arg(&start.verification_uri_complete)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("start the browser");
    let ((status, tokens), _) = poll(&server, &client, &start);
    assert_eq!(status, 200, "{tokens}");
    assert!(child.wait().unwrap().success(), "{:?}", browser.records());
    let end = &browser.wait_ended()[0];
    assert_eq!(end["result"], "ok", "{end}");
    assert_eq!(end["user_code"], start.user_code.as_str());
    assert_eq!(server.count(&["device_code"]), 1);
    assert_eq!(server.count(&["device_polls_too_fast"]), 0);
    check_rotation(
        &server,
        &client,
        tokens["refresh_token"].as_str().expect("a refresh token"),
    );

    // A device code works once. Wait out the polling interval first, or the
    // server rightly answers slow_down before it looks at the code.
    std::thread::sleep(Duration::from_millis(start.interval * 1000 + 500));
    let (status, body) = post_form(
        &server.endpoint("/token"),
        &[
            ("grant_type", DEVICE_GRANT),
            ("client_id", &client),
            ("device_code", &start.device_code),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}

#[test]
fn device_flow_typing_the_code_with_slow_down_then_denial() {
    let server = OidcServer::start_with(&["--slow-down", "1"]);
    let (client, _) = server.client("native");

    // The user types the code on the verification page, then logs in.
    let start = device_start(&server, &client);
    let browser = Browser::new("device", &["--user-code", &start.user_code]);
    let mut child = std::process::Command::new(browser.command())
        .arg(&start.verification_uri)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("start the browser");
    let ((status, tokens), seen) = poll(&server, &client, &start);
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        seen.first().map(String::as_str),
        Some("slow_down"),
        "{seen:?}"
    );
    assert_eq!(server.count(&["token_errors", "slow_down"]), 1);
    assert!(child.wait().unwrap().success(), "{:?}", browser.records());

    // "Not my device": access_denied (a server without forced slow_down).
    let server = OidcServer::start();
    let start = device_start(&server, &client);
    let deny = Browser::new("device-deny", &[]);
    assert!(deny.run(&start.verification_uri_complete).status.success());
    let ((status, body), _) = poll(&server, &client, &start);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "access_denied");

    // Consent refused after logging in: access_denied too.
    let start = device_start(&server, &client);
    let deny = Browser::new("device-deny-consent", &[]);
    assert!(
        deny.run(&start.verification_uri_complete).status.success(),
        "{:?}",
        deny.records()
    );
    let ((status, body), _) = poll(&server, &client, &start);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "access_denied");
}

#[test]
fn an_expired_device_code_and_polling_too_fast() {
    let server = OidcServer::start_with(&["--device-code-ttl", "1", "--device-interval", "2"]);
    let (client, _) = server.client("native");
    let start = device_start(&server, &client);
    assert_eq!(start.interval, 2);
    let form = [
        ("grant_type", DEVICE_GRANT),
        ("client_id", client.as_str()),
        ("device_code", start.device_code.as_str()),
    ];
    // At once, well inside the 2 s interval: slow_down, and counted.
    let (status, body) = post_form(&server.endpoint("/token"), &form);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "slow_down");
    assert_eq!(server.count(&["device_polls_too_fast"]), 1);
    // After the code's lifetime (1 s; the new interval is 7 s so this is
    // early too, but expiry wins): expired_token.
    std::thread::sleep(Duration::from_millis(2100));
    let (status, body) = post_form(&server.endpoint("/token"), &form);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "expired_token");
}
