//! Hostile or malformed input must never crash a fake: every endpoint
//! answers a client error, and the server keeps serving afterwards.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use dexcred_testkit::git::{GitAuth, GitServer};
use dexcred_testkit::idp::FakeIdp;
use dexcred_testkit::kube::KubeApi;
use dexcred_testkit::tls::TestCa;

const PATHS: &[&str] = &[
    "/keystone/v3/auth/tokens",
    "/resmgr/v2/dexclients",
    "/dex/token",
    "/api/id/v1/auth/token",
    "/auth/realms/ocp/protocol/openid-connect/token",
    "/auth/realms/ocp/protocol/openid-connect/logout",
    "/auth/realms/ocp/protocol/openid-connect/revoke",
    "/realms/master/protocol/openid-connect/token",
    "/auth/realms//x",
    "/%ff%00",
];

/// Sends raw bytes, returns the status code of the first response line.
fn status_of(addr: SocketAddr, raw: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(raw).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split(' ').nth(1)?.parse().ok()
}

fn odd_requests(path: &str) -> Vec<Vec<u8>> {
    let non_utf8 = STANDARD.encode([0xff, 0xfe, b':', 0xfd]);
    let headers = [
        "Authorization: Basic ####".to_owned(),
        format!("Authorization: Basic {non_utf8}"),
        format!("Authorization: Basic {}", STANDARD.encode("%zz:%")),
        "Authorization: Bearer".to_owned(),
        "Authorization: \u{e9}t\u{e9}".to_owned(),
        "X-Auth-Token: \u{1f600}".to_owned(),
    ];
    let bodies: [&[u8]; 6] = [
        b"",
        b"\xff\xfe\x00garbage=%%%&&&==",
        b"grant_type=password&grant_type=refresh_token&refresh_token=%00&scope=openid%20offline_access",
        b"{\"auth\": 5}",
        b"{\"auth\":{\"identity\":{\"methods\":\"password\",\"password\":{\"user\":[]}}}}",
        b"grant_type=client_credentials&scope=",
    ];
    let mut out = Vec::new();
    for header in &headers {
        for body in bodies {
            for ct in ["application/x-www-form-urlencoded", "application/json"] {
                let mut raw = format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {ct}\r\n{header}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                raw.extend_from_slice(body);
                out.push(raw);
            }
        }
    }
    out.push(format!("GET {path}?a=%zz HTTP/1.1\r\nConnection: close\r\n\r\n").into_bytes());
    out
}

#[test]
fn idp_answers_client_errors_to_garbage() {
    let idp = FakeIdp::pcd();
    for path in PATHS {
        for raw in odd_requests(path) {
            let status = status_of(idp.addr(), &raw);
            assert!(
                status.is_some_and(|s| s < 500),
                "{path}: {status:?} for {:?}",
                String::from_utf8_lossy(&raw)
            );
        }
    }
    assert!(idp.counts().total > 100);
    assert_eq!(
        status_of(idp.addr(), b"GET /_testkit/counts HTTP/1.0\r\n\r\n"),
        Some(200)
    );
}

#[test]
fn kube_and_git_answer_client_errors_to_garbage() {
    let idp = FakeIdp::pcd();
    let kube = KubeApi::start(idp.clone(), &TestCa::new());
    let git = GitServer::start(idp.clone(), None, GitAuth::default());
    let git_addr: SocketAddr = git
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("git address");
    for path in [
        "/repo.git/info/refs",
        "/repo.git/git-upload-pack",
        "/../etc/passwd",
    ] {
        for raw in odd_requests(path) {
            let status = status_of(git_addr, &raw);
            assert!(status.is_some_and(|s| s < 500), "{path}: {status:?}");
        }
    }
    assert!(kube.url().starts_with("https://"));
}
