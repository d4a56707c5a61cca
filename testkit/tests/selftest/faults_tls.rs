//! Injected faults, HTTPS trust situations, and HTTP framing with curl.

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{Resp, agent, agent_with_timeout, post_form, tls_agent, try_post_form};
use dexcred_testkit::http::{Handler, Reply, Request, Server};
use dexcred_testkit::idp::{ALICE, ALICE_PASSWORD, DEX_CLIENT, FakeIdp, Fault, IdpConfig};
use dexcred_testkit::tls::TestCa;
use serde_json::json;

fn dex_login(idp: &FakeIdp, client: &ureq::Agent) -> Result<Resp, ureq::Error> {
    let secret = idp.client_secret(DEX_CLIENT).unwrap_or_default();
    try_post_form(
        client,
        &idp.dex_token_url(),
        &[
            ("grant_type", "password"),
            ("username", ALICE),
            ("password", ALICE_PASSWORD),
            ("scope", "openid offline_access"),
        ],
        Some((DEX_CLIENT, &secret)),
    )
}

fn refresh(idp: &FakeIdp, client: &ureq::Agent, token: &str) -> Result<Resp, ureq::Error> {
    let secret = idp.client_secret(DEX_CLIENT).unwrap_or_default();
    try_post_form(
        client,
        &idp.dex_token_url(),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
        Some((DEX_CLIENT, &secret)),
    )
}

#[test]
fn plain_faults_apply_the_given_number_of_times() {
    let idp = FakeIdp::pcd();
    idp.inject(Fault::new(
        "/dex/",
        2,
        Reply::json(503, &json!({"error": "unavailable"})),
    ));
    let html = Reply::text(200, "text/html", "<html><body>Login</body></html>");
    idp.inject(Fault::new("/dex/token", 1, html));
    let client = agent();
    assert_eq!(dex_login(&idp, &client).map(|r| r.status).ok(), Some(503));
    assert_eq!(dex_login(&idp, &client).map(|r| r.status).ok(), Some(503));
    let page = dex_login(&idp, &client).expect("html answer");
    assert_eq!(page.header("content-type"), Some("text/html"));
    assert_eq!(dex_login(&idp, &client).map(|r| r.status).ok(), Some(200));
    let counts = idp.counts();
    assert_eq!((counts.faults, counts.password_grant), (3, 4));

    let no_id_token = json!({"access_token": "x", "token_type": "bearer", "expires_in": 10});
    idp.inject(Fault::new("/dex/token", 1, Reply::json(200, &no_id_token)));
    assert!(
        dex_login(&idp, &client)
            .expect("ok")
            .json()
            .get("id_token")
            .is_none()
    );
    idp.inject(Fault::new(
        "/dex/token",
        1,
        Reply::text(200, "application/json", "{not json"),
    ));
    assert_eq!(dex_login(&idp, &client).expect("ok").body, "{not json");
    let big = "x".repeat(5 * 1024 * 1024);
    idp.inject(Fault::new(
        "/dex/token",
        1,
        Reply::text(200, "application/json", big),
    ));
    assert_eq!(
        dex_login(&idp, &client).expect("ok").body.len(),
        5 * 1024 * 1024
    );
}

#[test]
fn hang_close_cut_and_drip_break_the_client() {
    let idp = FakeIdp::pcd();
    let quick = agent_with_timeout(Duration::from_millis(300));
    idp.inject(Fault::new("/dex/token", 1, Reply::hang()));
    // The hang is cut off by the client's timeout, not by the server.
    let hung = dex_login(&idp, &quick).expect_err("a hang never answers");
    assert!(matches!(hung, ureq::Error::Timeout(_)), "{hung}");

    idp.inject(Fault::new("/dex/token", 1, Reply::close()));
    assert!(dex_login(&idp, &agent()).is_err());
    idp.inject(Fault::new(
        "/dex/token",
        1,
        Reply::cut(Reply::passthrough(), 40),
    ));
    assert!(dex_login(&idp, &agent()).is_err());

    let slow = Reply::drip(Reply::passthrough(), 128, Duration::from_millis(60));
    idp.inject(Fault::new("/dex/token", 2, slow));
    let dripped = dex_login(&idp, &quick).expect_err("dripping outlasts the timeout");
    assert!(matches!(dripped, ureq::Error::Timeout(_)), "{dripped}");
    let patient = dex_login(&idp, &agent()).expect("slow but complete");
    assert_eq!(patient.status, 200);
    assert!(patient.json()["id_token"].is_string());
}

#[test]
fn delayed_refresh_has_already_rotated_when_the_client_gives_up() {
    let idp = FakeIdp::pcd();
    let first = dex_login(&idp, &agent()).expect("login").json();
    let r1 = first["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    idp.inject(Fault::new(
        "/dex/token",
        1,
        Reply::delay(Duration::from_millis(500), Reply::passthrough()),
    ));
    assert!(refresh(&idp, &agent_with_timeout(Duration::from_millis(100)), &r1).is_err());
    let retry = refresh(&idp, &agent(), &r1).expect("answer");
    assert_eq!(retry.status, 400, "the lost response rotated r1 away");
    assert_eq!(idp.counts().claimed_errors, 1);
}

/// The delay holds every answer back: a client that waits less than the
/// delay times out, and once the delay is removed the same login answers.
#[test]
fn global_delay_slows_every_response() {
    let idp = FakeIdp::start(IdpConfig {
        delay: Duration::from_secs(2),
        ..IdpConfig::pcd()
    });
    let e = dex_login(&idp, &agent_with_timeout(Duration::from_millis(200)))
        .expect_err("held back by the delay");
    assert!(matches!(e, ureq::Error::Timeout(_)), "{e}");
    idp.set_delay(Duration::ZERO);
    assert_eq!(dex_login(&idp, &agent()).map(|r| r.status).ok(), Some(200));
}

#[test]
fn https_idp_trusted_untrusted_and_wrong_name() {
    let ca = TestCa::new();
    let idp = FakeIdp::start_tls(
        IdpConfig::pcd(),
        ca.server_config(&["127.0.0.1", "localhost"]),
    );
    assert!(idp.url().starts_with("https://127.0.0.1:"));
    assert_eq!(
        dex_login(&idp, &tls_agent(Some(&ca)))
            .map(|r| r.status)
            .ok(),
        Some(200)
    );
    let untrusted = dex_login(&idp, &tls_agent(None));
    assert!(untrusted.is_err(), "no CA: {untrusted:?}");

    let wrong = FakeIdp::start_tls(IdpConfig::pcd(), ca.server_config(&["wrong.example"]));
    let mismatch = dex_login(&wrong, &tls_agent(Some(&ca)));
    let text = format!("{mismatch:?}");
    assert!(mismatch.is_err());
    assert!(
        text.contains("NotValidForName") || text.contains("name"),
        "{text}"
    );
}

fn echo() -> Server {
    let handler: Handler = Arc::new(|req: &Request| {
        let body = json!({
            "method": req.method,
            "len": req.body.len(),
            "expect": req.header("expect"),
            "te": req.header("transfer-encoding"),
            "form": req.form().len(),
        });
        Reply::json(200, &body)
    });
    Server::start(handler, None)
}

fn curl(args: &[&str]) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

#[test]
fn curl_expect_continue_and_chunked_bodies() {
    let server = echo();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("body");
    let mut file = std::fs::File::create(&path).expect("create body");
    file.write_all(&vec![b'a'; 2 * 1024 * 1024])
        .expect("write body");
    let data = format!("@{}", path.display());
    let url = format!("{}/x", server.url());

    let big = curl(&["-H", "Expect: 100-continue", "--data-binary", &data, &url]);
    assert_eq!(big["len"], 2 * 1024 * 1024);
    assert_eq!(big["expect"], "100-continue");
    let chunked = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &data,
        &url,
    ]);
    assert_eq!(chunked["len"], 2 * 1024 * 1024);
    assert_eq!(chunked["te"], "chunked");
    let out = Command::new("curl")
        .args(["-sv", "-o", "/dev/null", "-o", "/dev/null", &url, &url])
        .output()
        .expect("curl is installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Re-using existing connection"), "{stderr}");
}

#[test]
fn form_posts_decode() {
    let server = echo();
    let resp = post_form(
        &format!("{}/f", server.url()),
        &[("a", "x y"), ("b", "+%")],
        None,
    );
    assert_eq!(resp.json()["form"], 2);
}
