//! Issue 13, "servers, URLs and the network": what real servers and real
//! networks do that the documents do not say, through the real binary.
//!
//! - HTTP Basic client authentication in both encodings (`basic`,
//!   `basic-raw`) against servers that decode each way (item 5);
//! - secrets a server echoes in other spellings are blanked (item 7);
//! - plain http: refused when an https issuer's discovery points there,
//!   warned about when given explicitly (item 12);
//! - endpoint URLs used exactly as given, 404/405 as a wrong URL, Keystone's
//!   generic 401 with a project scope (items 14–16);
//! - RFC 8414 metadata, RFC 7009 revocation and `--revocation-url` against a
//!   Django-style server (item 17; the real oidc-provider is in
//!   tests/oidc_provider.rs);
//! - HTTPS_PROXY / NO_PROXY through a real tinyproxy (item 18).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dexcred_testkit::http::{Reply, Request, Server};
use dexcred_testkit::idp::{
    ALICE, ALICE_PASSWORD, FakeIdp, Fault, IdpConfig, KEYCLOAK_PUBLIC_CLIENT, SERVICE_CLIENT,
    SERVICE_CLIENT_SECRET,
};
use dexcred_testkit::tls::TestCa;
use dexcred_testkit::url_encode;
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(60);
const REALM: &str = "ocp";

/// A secret with every character the two Basic encodings spell differently.
const AWKWARD_SECRET: &str = "a+b/c= d%2F";
const AWKWARD_CLIENT: &str = "awkward";

fn bounded(cmd: &mut Command) -> Output {
    run_bounded(cmd, DEADLINE)
}

/// The failure shape of a `-v` run: the exit code, nothing on stdout, and
/// the error as the last stderr line. Returns that line.
fn fails_verbose(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
    assert!(out.stdout.is_empty(), "{}", stdout(out));
    let err = stderr(out);
    let last = err.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("dexcred: "), "{err}");
    last
}

/// The plain-http warning dexcred prints once per run.
fn is_plain_http_warning(line: &str) -> bool {
    line.starts_with("dexcred: warning:") && line.contains("is plain http")
}

// ---------------------------------------------------------------- item 5

/// `dexcred token` as the awkward client with `--client-auth <how>`.
fn awkward_client(env: &Env, token_url: &str, how: &str, extra: &[&str]) -> Output {
    let mut cmd = env.dexcred(["token", "--token-url", token_url]);
    cmd.args(["--client-id", AWKWARD_CLIENT, "--client-auth", how])
        .args(extra)
        .env("DEXCRED_CLIENT_SECRET", AWKWARD_SECRET);
    bounded(&mut cmd)
}

#[test]
fn basic_client_auth_in_the_encoding_each_server_decodes() {
    let idp = FakeIdp::pcd();
    idp.add_client(AWKWARD_CLIENT, Some(AWKWARD_SECRET));
    let scope = ["--scope", "openid email profile"];

    // The service of basic-auth-client-credentials.txt decodes raw.
    let env = Env::new();
    let out = awkward_client(&env, &idp.client_credentials_url(), "basic", &scope);
    let line = fails_with(&out, 3);
    assert!(line.contains("--client-auth basic-raw"), "{line}");
    assert!(!line.contains(AWKWARD_SECRET), "{line}");
    let out = awkward_client(&env, &idp.client_credentials_url(), "basic-raw", &scope);
    assert!(!ok(&out).trim().is_empty());
    let sent = idp.requests().last().cloned().expect("a request");
    let header = sent.header("Authorization").expect("Basic header");
    let raw = format!("{AWKWARD_CLIENT}:{AWKWARD_SECRET}");
    assert_eq!(header, format!("Basic {}", STANDARD.encode(raw)));

    // Keycloak decodes as RFC 6749 says (form-decoding after base64).
    let env = Env::new();
    let keycloak = idp.keycloak_token_url(REALM);
    let out = awkward_client(&env, &keycloak, "basic-raw", &[]);
    let line = fails_with(&out, 3);
    assert!(line.contains("--client-auth basic"), "{line}");
    let out = awkward_client(&env, &keycloak, "basic", &[]);
    assert!(!ok(&out).trim().is_empty());

    // Dex too (password grant with a confidential client in Basic).
    let env = Env::new();
    let mut cmd = env.dexcred(["token", "--token-url", &idp.dex_token_url()]);
    cmd.args(["--client-id", AWKWARD_CLIENT, "--client-auth", "basic"])
        .args(["--username", ALICE, "--scope", "openid"])
        .env("DEXCRED_CLIENT_SECRET", AWKWARD_SECRET)
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    assert!(!ok(&bounded(&mut cmd)).trim().is_empty());
}

// ---------------------------------------------------------------- item 7

/// Runs a Keycloak password login with `-v` whose answer is `reply`, and
/// returns stderr after checking the failure shape.
fn login_answered_with(password: &str, reply: Reply) -> String {
    let idp = FakeIdp::pcd();
    idp.inject(Fault::new("/auth/realms/", 1, reply));
    let env = Env::new();
    let mut cmd = env.dexcred(["token", "-v", "--token-url", &idp.keycloak_token_url(REALM)]);
    cmd.args(["--client-id", KEYCLOAK_PUBLIC_CLIENT, "--username", ALICE])
        .env("DEXCRED_PASSWORD", password);
    let out = bounded(&mut cmd);
    fails_verbose(&out, 3);
    stderr(&out)
}

#[test]
fn echoed_passwords_are_blanked_in_every_spelling() {
    let password = "pa/ss'w\u{e9}+rd";
    let echoes = [
        // JSON with `\/` and an upper-case `\u00E9` (PHP, Java).
        r#"{"error":"invalid_grant","error_description":"bad password pa\/ss'w\u00E9+rd"}"#,
        // Go's escaping of `'` and Python's of `é`.
        r#"{"error":"invalid_grant","error_description":"bad password pa/ss\u0027w\u00e9+rd"}"#,
        // HTML with hex, decimal and named character references.
        "<html><title>bad password pa/ss&#x27;w\u{e9}+rd</title></html>",
        "<html><title>bad password pa&#47;ss&#39;w&#233;+rd</title></html>",
        "<html><title>bad password pa/ss&apos;w\u{e9}&#X2B;rd</title></html>",
        // Form-encoded with lower-case hex.
        "error=invalid_grant&password=pa%2fss%27w%c3%a9%2brd",
    ];
    for echo in echoes {
        let content_type = if echo.starts_with('{') {
            "application/json"
        } else {
            "text/html"
        };
        let err = login_answered_with(password, Reply::text(401, content_type, echo));
        for leak in [password, "pa/ss", "pa\\/ss", "ss&#", "pa&#47;", "pa%2fss"] {
            assert!(!err.contains(leak), "{echo}\n-> {err}");
        }
        assert!(err.contains("[redacted]"), "{echo}\n-> {err}");
    }
}

#[test]
fn short_passwords_are_blanked_as_whole_words() {
    let body =
        json!({"error": "invalid_grant", "error_description": "password ab1 is wrong for ab1x"});
    let err = login_answered_with("ab1", Reply::json(401, &body));
    let line = err
        .lines()
        .find(|l| l.contains("is wrong"))
        .expect("the server's reason");
    assert!(
        line.contains("password [redacted] is wrong for ab1x"),
        "the message survives, the password does not: {line}"
    );
}

#[test]
fn an_echoed_basic_header_is_blanked_in_both_encodings() {
    // What dexcred sends with `basic`: application/x-www-form-urlencoded
    // (a space is `+`).
    let form_encode = |s: &str| url_encode(s).replace("%20", "+");
    let form = format!(
        "{}:{}",
        form_encode(SERVICE_CLIENT),
        form_encode(SERVICE_CLIENT_SECRET)
    );
    let raw = format!("{SERVICE_CLIENT}:{SERVICE_CLIENT_SECRET}");
    for (how, echoed) in [("basic", &form), ("basic-raw", &raw), ("basic", &raw)] {
        let b64 = STANDARD.encode(echoed);
        let idp = FakeIdp::pcd();
        let body = json!({
            "error": "invalid_client",
            "error_description": format!("rejected Authorization: Basic {b64}"),
        });
        idp.inject(Fault::new("/auth/realms/", 1, Reply::json(401, &body)));
        let env = Env::new();
        let mut cmd = env.dexcred(["token", "-v", "--token-url", &idp.keycloak_token_url(REALM)]);
        cmd.args(["--client-id", SERVICE_CLIENT, "--client-auth", how])
            .env("DEXCRED_CLIENT_SECRET", SERVICE_CLIENT_SECRET);
        let out = bounded(&mut cmd);
        let line = fails_verbose(&out, 3);
        let err = stderr(&out);
        assert!(!err.contains(&b64), "{how}: {err}");
        assert!(!err.contains(b64.trim_end_matches('=')), "{how}: {err}");
        assert!(line.contains("Basic [redacted]"), "{how}: {line}");
    }
}

// ---------------------------------------------------------------- item 12

/// An https "issuer" whose discovery document points at `token_endpoint`.
fn https_issuer(ca: &TestCa, token_endpoint: String) -> Server {
    let handler = Arc::new(move |req: &Request| {
        if req.path == "/.well-known/openid-configuration" {
            Reply::json(
                200,
                &json!({"issuer": "x", "token_endpoint": token_endpoint}),
            )
        } else {
            Reply::text(404, "text/plain", "not found")
        }
    });
    Server::start(handler, Some(ca.server_config(&["127.0.0.1"])))
}

#[test]
fn an_https_issuer_cannot_send_the_login_to_plain_http() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let ca = TestCa::new();
    let pem = env.path().join("ca.pem");
    ca.write_pem(&pem).expect("write CA");
    let issuer = https_issuer(&ca, idp.keycloak_token_url(REALM));
    let mut cmd = env.dexcred(["token", "--issuer", &issuer.url()]);
    cmd.args(["--client-id", KEYCLOAK_PUBLIC_CLIENT, "--username", ALICE])
        .arg("--certificate-authority")
        .arg(&pem)
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    let out = bounded(&mut cmd);
    let line = fails_with(&out, 4);
    assert!(line.contains("token_endpoint"), "{line}");
    assert!(line.contains("plain http"), "{line}");
    assert_eq!(idp.counts().total, 0, "nothing reached the http endpoint");
    assert!(env.cache_entries().is_empty());
}

#[test]
fn explicit_loopback_http_is_warned_about_once_per_run() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    // Discovery and the login: two plain-http requests, one warning.
    let mut cmd = env.dexcred(["token", "--issuer"]);
    cmd.arg(format!("{}/auth/realms/{REALM}", idp.url()))
        .args(["--client-id", KEYCLOAK_PUBLIC_CLIENT, "--username", ALICE])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    let out = bounded(&mut cmd);
    ok(&out);
    let err = raw_stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| is_plain_http_warning(l)).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains(&idp.url()), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // A cache hit makes no request and says nothing.
    let out = bounded(&mut cmd);
    ok(&out);
    assert!(raw_stderr(&out).is_empty(), "{}", raw_stderr(&out));
}

// ---------------------------------------------------------- items 14, 15, 17

/// What the Django-style server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    form: Vec<(String, String)>,
}

/// A server shaped like Django OAuth Toolkit under `/o/`: endpoints with
/// trailing slashes (404 without), RFC 8414 metadata only (no OpenID
/// discovery), RFC 7009 revocation that answers 200 with an empty body.
struct Django {
    server: Server,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Django {
    fn start() -> Django {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let base: Arc<Mutex<String>> = Arc::default();
        let handler = {
            let (seen, base) = (Arc::clone(&seen), Arc::clone(&base));
            Arc::new(move |req: &Request| {
                seen.lock().unwrap().push(Seen {
                    method: req.method.clone(),
                    path: req.path.clone(),
                    form: req.form(),
                });
                let base = base.lock().unwrap().clone();
                django_reply(&base, req)
            })
        };
        let server = Server::start(handler, None);
        *base.lock().unwrap() = server.url();
        Django { server, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn django_reply(base: &str, req: &Request) -> Reply {
    let not_found = || {
        Reply::text(
            404,
            "text/html",
            "<!doctype html><html><head><title>Not Found</title></head>\
             <body><h1>Not Found</h1><p>The requested resource was not found.</p></body></html>",
        )
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/.well-known/oauth-authorization-server/o") => Reply::json(
            200,
            &json!({
                "issuer": format!("{base}/o"),
                "token_endpoint": format!("{base}/o/token/"),
                "revocation_endpoint": format!("{base}/o/revoke_token/"),
                "grant_types_supported": ["password", "refresh_token", "client_credentials"],
            }),
        ),
        ("POST", "/o/token/") => {
            let form = req.form();
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let good = match get("grant_type") {
                Some("password") => {
                    get("username") == Some(ALICE) && get("password") == Some(ALICE_PASSWORD)
                }
                Some("refresh_token") => get("refresh_token").is_some(),
                Some("client_credentials") => true,
                _ => false,
            };
            if !good {
                return Reply::json(400, &json!({"error": "invalid_grant"}));
            }
            let n = req.peer.port();
            Reply::json(
                200,
                &json!({
                    "access_token": format!("access-{n}"),
                    "expires_in": 36000,
                    "token_type": "Bearer",
                    "scope": "read",
                    "refresh_token": format!("refresh-{n}"),
                }),
            )
        }
        ("POST", "/o/revoke_token/") => Reply::new(200),
        _ => not_found(),
    }
}

#[test]
fn endpoint_urls_are_used_exactly_as_given() {
    let django = Django::start();
    let env = Env::new();
    let mut cmd = env.dexcred(["token", "--token-url", &django.url("/o/token/")]);
    cmd.args(["--client-id", "app", "--username", ALICE])
        .args(["--logout-url", &django.url("/o/logout/")])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    assert!(ok(&bounded(&mut cmd)).starts_with("access-"));
    let paths: Vec<String> = django.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/o/token/"]);

    // The logout URL keeps its slash too (this server has no such
    // endpoint, so the logout fails there and still deletes the entry).
    let mut cmd = env.dexcred(["logout", "--token-url", &django.url("/o/token/")]);
    cmd.args(["--client-id", "app", "--username", ALICE])
        .args(["--logout-url", &django.url("/o/logout/")]);
    ok(&bounded(&mut cmd));
    assert_eq!(
        django.seen().last().map(|s| s.path.clone()).as_deref(),
        Some("/o/logout/")
    );
}

#[test]
fn a_404_or_405_from_the_token_endpoint_is_a_wrong_url() {
    let django = Django::start();
    let env = Env::new();
    let url = django.url("/o/token");
    let mut cmd = env.dexcred(["token", "--token-url", &url]);
    cmd.args(["--client-id", "app", "--username", ALICE])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    let line = fails_with(&bounded(&mut cmd), 4);
    assert!(line.contains(&format!("POST {url} ")), "{line}");
    assert!(line.contains("HTTP 404"), "{line}");
    assert!(line.contains("check the URL"), "{line}");
    assert!(!line.contains("password"), "{line}");

    let idp = FakeIdp::pcd();
    idp.inject(Fault::new(
        "/auth/realms/",
        1,
        Reply::text(405, "text/plain", "HTTP 405 Method Not Allowed"),
    ));
    let mut cmd = env.dexcred(["token", "--token-url", &idp.keycloak_token_url(REALM)]);
    cmd.args(["--client-id", KEYCLOAK_PUBLIC_CLIENT, "--username", ALICE])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    let line = fails_with(&bounded(&mut cmd), 4);
    assert!(line.contains("HTTP 405"), "{line}");
    assert!(line.contains(&idp.keycloak_token_url(REALM)), "{line}");
}

/// The form of the one revocation request the Django server saw.
fn revocation_form(django: &Django) -> Vec<(String, String)> {
    let revocations: Vec<Seen> = django
        .seen()
        .into_iter()
        .filter(|s| s.path == "/o/revoke_token/")
        .collect();
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    assert_eq!(revocations[0].method, "POST");
    revocations[0].form.clone()
}

#[test]
fn rfc8414_metadata_gives_the_token_and_revocation_endpoints() {
    let django = Django::start();
    let env = Env::new();
    let flags = [
        "--issuer".to_string(),
        django.url("/o"),
        "--client-id".into(),
        "app".into(),
        "--username".into(),
        ALICE.into(),
    ];
    let mut cmd = env.dexcred(["token"]);
    cmd.args(&flags).env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    assert!(ok(&bounded(&mut cmd)).starts_with("access-"));
    let refresh = entry_token(&env.only_entry(), "refresh_token");
    let refresh = refresh.or_else(|| {
        read_entry(&env.only_entry())["refresh_token"]
            .as_str()
            .map(str::to_string)
    });
    let refresh = refresh.expect("a refresh token in the entry");

    let mut cmd = env.dexcred(["logout"]);
    cmd.args(&flags);
    let out = bounded(&mut cmd);
    let text = ok(&out);
    assert!(
        text.contains(&format!(
            "revoked the refresh token at {}",
            django.url("/o/revoke_token/")
        )),
        "{text}"
    );
    let form = revocation_form(&django);
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("token"), Some(refresh));
    assert_eq!(get("token_type_hint").as_deref(), Some("refresh_token"));
    assert_eq!(get("client_id").as_deref(), Some("app"));
    assert_eq!(get("refresh_token"), None, "not Keycloak's logout form");
}

#[test]
fn revocation_url_is_named_apart_from_the_logout_url() {
    let django = Django::start();
    let env = Env::new();
    let flags = [
        "--token-url".to_string(),
        django.url("/o/token/"),
        "--revocation-url".into(),
        django.url("/o/revoke_token/"),
        "--client-id".into(),
        "app".into(),
        "--username".into(),
        ALICE.into(),
    ];
    let mut cmd = env.dexcred(["token"]);
    cmd.args(&flags).env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    ok(&bounded(&mut cmd));
    let mut cmd = env.dexcred(["logout"]);
    cmd.args(&flags);
    let text = ok(&bounded(&mut cmd));
    assert!(
        text.contains("Logged out: revoked the refresh token"),
        "{text}"
    );
    let form = revocation_form(&django);
    assert!(
        form.iter()
            .any(|(k, v)| k == "token_type_hint" && v == "refresh_token")
    );
    assert!(env.cache_entries().is_empty());
}

// ---------------------------------------------------------------- item 16

#[test]
fn keystone_401_with_a_project_names_the_project() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let mut cmd = env.dexcred(["token", "--pcd", &idp.url(), "--username", ALICE]);
    cmd.args(["--project", "no-such-project"])
        .env("DEXCRED_PASSWORD", "wrong password");
    let line = fails_with(&bounded(&mut cmd), 3);
    assert!(line.contains("project no-such-project"), "{line}");
    assert!(line.contains("check the project"), "{line}");
}

// ---------------------------------------------------------------- item 18

/// A real tinyproxy on a loopback port, with a recording relay in front of
/// it that keeps every byte dexcred sends to "the proxy".
struct Proxy {
    child: Child,
    relay_port: u16,
    log: PathBuf,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Proxy {
    fn start(dir: &Path) -> Proxy {
        let tinyproxy = Path::new("/usr/bin/tinyproxy");
        assert!(
            tinyproxy.exists(),
            "tinyproxy is required (apt-get install tinyproxy; scripts/test.sh does it)"
        );
        let port = free_port();
        let log = dir.join("tinyproxy.log");
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\n\
                 LogFile \"{}\"\nLogLevel Info\n",
                log.display()
            ),
        )
        .expect("write tinyproxy.conf");
        let child = Command::new(tinyproxy)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tinyproxy");
        wait_for_port(port);
        let sent: Arc<Mutex<Vec<u8>>> = Arc::default();
        let relay_port = relay(port, Arc::clone(&sent));
        Proxy {
            child,
            relay_port,
            log,
            sent,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.relay_port)
    }

    fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + DEADLINE;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tinyproxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Listens on a loopback port and relays every connection to `target`,
/// recording what the client sends.
fn relay(target: u16, sent: Arc<Mutex<Vec<u8>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let sent = Arc::clone(&sent);
            let (mut c_read, mut u_write) =
                (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 || u_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                let _ = u_write.shutdown(Shutdown::Write);
            });
            let (mut u_read, mut c_write) = (upstream, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u_read, &mut c_write);
                let _ = c_write.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

/// A TLS Keycloak and the PEM of its CA.
fn tls_keycloak(dir: &Path) -> (FakeIdp, PathBuf) {
    let ca = TestCa::new();
    let pem = dir.join("idp-ca.pem");
    ca.write_pem(&pem).expect("write CA");
    let idp = FakeIdp::start_tls(IdpConfig::pcd(), ca.server_config(&["127.0.0.1"]));
    (idp, pem)
}

fn tls_login(env: &Env, idp: &FakeIdp, pem: &Path, proxy_env: &[(&str, &str)]) -> Output {
    let mut cmd = env.dexcred(["token", "--token-url", &idp.keycloak_token_url(REALM)]);
    cmd.args(["--client-id", KEYCLOAK_PUBLIC_CLIENT, "--username", ALICE])
        .arg("--certificate-authority")
        .arg(pem)
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
        .envs(proxy_env.iter().copied());
    bounded(&mut cmd)
}

#[test]
fn https_proxy_carries_the_login_but_never_sees_a_secret() {
    let env = Env::new();
    let proxy = Proxy::start(env.path());
    let (idp, pem) = tls_keycloak(env.path());
    let target = format!("127.0.0.1:{}", idp.addr().port());

    let out = tls_login(&env, &idp, &pem, &[("https_proxy", &proxy.url())]);
    let token = ok(&out).trim().to_string();
    assert!(idp.is_valid_token(&token));
    let sent = proxy.sent();
    assert!(
        sent.starts_with(&format!("CONNECT {target} HTTP/1.1")),
        "{sent}"
    );
    assert!(proxy.log().contains("CONNECT"), "{}", proxy.log());
    assert!(!sent.contains(ALICE_PASSWORD), "the proxy saw the password");
    assert!(!sent.contains(&token), "the proxy saw the token");
    assert!(!sent.contains("grant_type"), "the proxy saw the form");
}

#[test]
fn no_proxy_exempts_hosts_ports_and_ranges() {
    let env = Env::new();
    let proxy = Proxy::start(env.path());
    let (idp, pem) = tls_keycloak(env.path());
    let port = idp.addr().port();
    for no_proxy in [
        format!("127.0.0.1:{port}"),
        "127.0.0.0/8".to_string(),
        format!("example.com, 127.0.0.1:{port}"),
    ] {
        let env = Env::new();
        let out = tls_login(
            &env,
            &idp,
            &pem,
            &[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", &no_proxy)],
        );
        ok(&out);
        assert!(proxy.sent().is_empty(), "{no_proxy}: {}", proxy.sent());
    }
    // A port that is not the IdP's does not exempt it.
    let out = tls_login(
        &env,
        &idp,
        &pem,
        &[
            ("HTTPS_PROXY", &proxy.url()),
            ("no_proxy", &format!("127.0.0.1:{}", port.wrapping_add(1))),
        ],
    );
    ok(&out);
    assert!(proxy.sent().starts_with("CONNECT "), "{}", proxy.sent());
}

#[test]
fn plain_http_never_goes_through_a_proxy() {
    let env = Env::new();
    let proxy = Proxy::start(env.path());
    let idp = FakeIdp::pcd();
    let mut cmd = env.dexcred(["token", "--token-url", &idp.keycloak_token_url(REALM)]);
    cmd.args(["--client-id", KEYCLOAK_PUBLIC_CLIENT, "--username", ALICE])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
        .env("HTTP_PROXY", proxy.url())
        .env("http_proxy", proxy.url())
        .env("ALL_PROXY", proxy.url());
    ok(&bounded(&mut cmd));
    assert!(proxy.sent().is_empty(), "{}", proxy.sent());
}

#[test]
fn a_dead_proxy_is_exit_4_naming_the_proxy() {
    let env = Env::new();
    let (idp, pem) = tls_keycloak(env.path());
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = tls_login(&env, &idp, &pem, &[("HTTPS_PROXY", &dead)]);
    let line = fails_with(&out, 4);
    assert!(
        line.contains(&format!("through the proxy {dead}")),
        "{line}"
    );
    assert!(line.contains("HTTPS_PROXY"), "{line}");
    assert!(line.contains("NO_PROXY"), "{line}");
    assert_eq!(idp.counts().total, 0);
}
