//! Identity provider faults: every way a token endpoint can fail — refused
//! connections, silence, TLS trouble, 5xx, HTML where JSON was expected,
//! malformed or incomplete token responses, oversized and dripping bodies —
//! must end in the right exit code and one clear line, must leave the cache
//! byte for byte as it was, and must fall back to a cached token that is
//! inside its refresh margin but still alive (exit 0, the old token, one
//! warning line).
//!
//! Every run goes through [`run_bounded`]: a dexcred that hangs past a
//! generous deadline is killed and the test fails, instead of the suite
//! hanging.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;
use dexcred_testkit::http::Reply;
use dexcred_testkit::idp::{FakeIdp, Fault, IdpConfig};
use dexcred_testkit::tls::TestCa;
use serde_json::json;

/// Far above `--timeout 2`: only a dexcred that ignores its own time limit
/// gets anywhere near it.
const DEADLINE: Duration = Duration::from_secs(40);

/// The cache entry's exact state: bytes, inode and modification time. Equal
/// snapshots mean the file was not rewritten, not even with the same bytes.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    bytes: Vec<u8>,
    ino: u64,
    mtime_ns: (i64, i64),
}

fn snapshot(path: &Path) -> Snapshot {
    let meta = std::fs::symlink_metadata(path).expect("entry exists");
    Snapshot {
        bytes: std::fs::read(path).expect("read entry"),
        ino: meta.ino(),
        mtime_ns: (meta.mtime(), meta.mtime_nsec()),
    }
}

/// A user environment with a logged-in PCD entry at `idp`.
struct World {
    idp: FakeIdp,
    env: Env,
    entry: PathBuf,
    /// `--certificate-authority` for a TLS IdP.
    ca_args: Vec<String>,
}

impl World {
    fn new(idp: FakeIdp) -> World {
        World::with_ca(idp, Vec::new())
    }

    fn with_ca(idp: FakeIdp, ca_args: Vec<String>) -> World {
        let env = Env::new();
        let mut world = World {
            idp,
            env,
            entry: PathBuf::new(),
            ca_args,
        };
        let out = run_bounded(&mut world.token(&[]), DEADLINE);
        ok(&out);
        let entries = world.env.cache_entries();
        assert_eq!(entries.len(), 1, "one entry after login");
        world.entry = entries[0].clone();
        world
    }

    /// `dexcred token` for alice with the password available and a
    /// 2-second request time limit.
    fn token(&self, extra: &[&str]) -> Command {
        let mut cmd = self.env.dexcred(["token", "--pcd", &self.idp.url()]);
        cmd.args(["--username", ALICE, "--timeout", "2"])
            .args(&self.ca_args)
            .args(extra)
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        cmd
    }

    fn cached_id_token(&self) -> String {
        read_entry(&self.entry)["id_token"]["value"]
            .as_str()
            .expect("id_token in entry")
            .to_string()
    }
}

/// Whether the cached token is dead or only inside its refresh margin.
#[derive(Debug, Clone, Copy)]
enum Age {
    Expired,
    InMargin,
}

impl Age {
    fn apply(self, entry: &Path) {
        match self {
            Age::Expired => age_tokens(entry, -30),
            Age::InMargin => age_tokens(entry, 120),
        }
    }
}

/// Asserts the outcome of a failed renewal for a token of age `age`: with
/// an expired token, exit `code` and one error line containing every
/// `needle`; with a token still alive, exit 0, the old token and one warning
/// line with the same cause. The cache entry must not be touched either way.
fn assert_fault_outcome(world: &World, age: Age, out: &Output, code: i32, needles: &[&str]) {
    let line = match age {
        Age::Expired => fails_with(out, code),
        Age::InMargin => {
            let printed = ok(out);
            assert_eq!(
                printed.trim(),
                world.cached_id_token(),
                "the still-valid cached token is served"
            );
            let err = stderr(out);
            let lines: Vec<&str> = err.lines().collect();
            assert_eq!(lines.len(), 1, "exactly one warning line:\n{err}");
            assert!(lines[0].starts_with("dexcred: warning: "), "{err}");
            assert!(lines[0].contains("using the cached token"), "{err}");
            lines[0].to_string()
        }
    };
    for needle in needles {
        assert!(
            line.contains(needle),
            "{age:?}: expected {needle:?} in the message: {line}"
        );
    }
    assert!(!line.contains("panicked"), "{line}");
}

/// Injects `reply` for every Dex token request, then checks both token ages:
/// exit code, message, untouched cache, stale fallback.
fn check_refresh_fault(world: &World, reply: Reply, code: i32, needles: &[&str]) {
    for age in [Age::Expired, Age::InMargin] {
        age.apply(&world.entry);
        let before = snapshot(&world.entry);
        world.idp.clear_faults();
        world
            .idp
            .inject(Fault::new("/dex/token", 100, reply.clone()));
        let out = run_bounded(&mut world.token(&[]), DEADLINE);
        world.idp.clear_faults();
        assert_fault_outcome(world, age, &out, code, needles);
        assert_eq!(
            snapshot(&world.entry),
            before,
            "{age:?}: the cache entry must be untouched"
        );
    }
}

#[test]
fn connection_refused_fails_cleanly_and_falls_back_to_a_live_token() {
    let idp = FakeIdp::pcd();
    let world = World::new(idp);
    let url = world.idp.url();
    // Stop the IdP: its port now refuses connections.
    let World {
        idp,
        env,
        entry,
        ca_args,
    } = world;
    drop(idp);
    let run = |age: Age| {
        age.apply(&entry);
        let before = snapshot(&entry);
        let mut cmd = env.dexcred(["token", "--pcd", &url, "--username", ALICE]);
        cmd.args(["--timeout", "2"])
            .args(&ca_args)
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        let out = run_bounded(&mut cmd, DEADLINE);
        assert_eq!(snapshot(&entry), before, "{age:?}: cache untouched");
        out
    };
    let out = run(Age::Expired);
    let line = fails_with(&out, 4);
    assert!(line.contains("connection refused"), "{line}");
    assert!(line.contains(&url), "the message names the server: {line}");

    let out = run(Age::InMargin);
    let printed = ok(&out);
    let cached = read_entry(&entry)["id_token"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(printed.trim(), cached);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("dexcred: warning: ") && err.contains("connection refused"),
        "{err}"
    );

    // No cache at all and nothing listening: exit 4, nothing written.
    let fresh = Env::new();
    let out = run_bounded(
        fresh
            .dexcred(["token", "--pcd", &url, "--username", ALICE])
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD),
        DEADLINE,
    );
    let line = fails_with(&out, 4);
    assert!(line.contains("connection refused"), "{line}");
    assert!(fresh.cache_entries().is_empty());
}

#[test]
fn no_answer_times_out_at_the_configured_limit() {
    let world = World::new(FakeIdp::pcd());
    check_refresh_fault(
        &world,
        Reply::hang(),
        4,
        &["/dex/token", "no complete answer within 2s", "--timeout"],
    );
    // The same silence during a first login (Keystone): exit 4, no entry.
    let fresh = Env::new();
    world.idp.inject(Fault::new("/keystone", 1, Reply::hang()));
    let out = run_bounded(
        fresh
            .dexcred(["token", "--pcd", &world.idp.url(), "--username", ALICE])
            .args(["--timeout", "2"])
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD),
        DEADLINE,
    );
    let line = fails_with(&out, 4);
    assert!(line.contains("keystone") && line.contains("2s"), "{line}");
    assert!(fresh.cache_entries().is_empty());
}

#[test]
fn slow_drip_is_cut_off_by_the_total_time_limit() {
    let world = World::new(FakeIdp::pcd());
    let body = json!({"access_token": "a".repeat(64), "token_type": "bearer", "expires_in": 3600});
    check_refresh_fault(
        &world,
        Reply::drip(Reply::json(200, &body), 1, Duration::from_millis(200)),
        4,
        &["/dex/token", "no complete answer within 2s"],
    );
}

#[test]
fn server_errors_500_and_503() {
    let world = World::new(FakeIdp::pcd());
    // 503 (and 502/504): the server was not really reached; the refresh
    // token is kept and the stale token served while it lives.
    check_refresh_fault(
        &world,
        Reply::json(503, &json!({"error": "temporarily_unavailable"})),
        4,
        &["HTTP 503", "temporarily_unavailable"],
    );
    // 500 on a refresh is PCD's "upstream session gone": dexcred logs in
    // with the password, which fails with the same 500 → exit 4.
    check_refresh_fault(
        &world,
        Reply::json(500, &json!({"error": "invalid_request"})),
        4,
        &["logging in to Dex", "HTTP 500"],
    );
    let counts = world.idp.counts();
    assert_eq!(counts.refresh_grant, 4, "{counts:?}");
    assert_eq!(counts.password_grant, 1 + 2, "login + two 500 re-logins");

    // Keystone answering 503 on a first login.
    let fresh = Env::new();
    world.idp.inject(Fault::new(
        "/keystone",
        1,
        Reply::text(503, "text/plain", "Service Unavailable\n"),
    ));
    let out = run_bounded(
        fresh
            .dexcred(["token", "--pcd", &world.idp.url(), "--username", ALICE])
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD),
        DEADLINE,
    );
    let line = fails_with(&out, 4);
    assert!(
        line.contains("Keystone") && line.contains("HTTP 503"),
        "{line}"
    );
    assert!(fresh.cache_entries().is_empty());
}

#[test]
fn html_error_pages_are_reduced_to_their_title() {
    let world = World::new(FakeIdp::pcd());
    let page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                </body>\r\n</html>\r\n";
    check_refresh_fault(
        &world,
        Reply::text(502, "text/html", page),
        4,
        &["HTTP 502: 502 Bad Gateway"],
    );
    // A captive portal or SSO login page answering 200 with HTML.
    let portal = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>\
                  <form action=/login></form></body></html>";
    check_refresh_fault(
        &world,
        Reply::text(200, "text/html", portal),
        4,
        &["not a JSON token response"],
    );
}

#[test]
fn malformed_and_incomplete_token_responses() {
    let world = World::new(FakeIdp::pcd());
    check_refresh_fault(
        &world,
        Reply::text(200, "application/json", r#"{"access_token": "abc", "#),
        4,
        &["/dex/token", "not a JSON token response"],
    );
    check_refresh_fault(
        &world,
        Reply::json(200, &json!({"token_type": "bearer", "expires_in": 3600})),
        4,
        &["without an access_token or id_token"],
    );
    // PCD hands out the id_token; a response with only an access token must
    // not make dexcred serve the old, expired id_token as if it were new.
    check_refresh_fault(
        &world,
        Reply::json(
            200,
            &json!({"access_token": "x".repeat(40), "token_type": "bearer", "expires_in": 3600}),
        ),
        4,
        &["no id_token"],
    );
    // A token with a line break would inject lines into git's protocol.
    check_refresh_fault(
        &world,
        Reply::json(200, &json!({"id_token": "a\nquit=1", "expires_in": 3600})),
        4,
        &["malformed id_token"],
    );
    // Cut off mid-body.
    let body = json!({"id_token": "y".repeat(100), "expires_in": 3600});
    check_refresh_fault(
        &world,
        Reply::cut(Reply::json(200, &body), 90),
        4,
        &["/dex/token"],
    );
    // Closed without a byte.
    check_refresh_fault(
        &world,
        Reply::close(),
        4,
        &["/dex/token", "closed the connection"],
    );
}

#[test]
fn oversized_response_is_refused_after_the_cap() {
    let world = World::new(FakeIdp::pcd());
    // 5 MiB: a valid-looking token response padded far past the 1 MiB cap.
    let mut body = String::from(r#"{"id_token":"z","pad":""#);
    body.push_str(&"p".repeat(5 * 1024 * 1024));
    body.push_str(r#""}"#);
    check_refresh_fault(
        &world,
        Reply::text(200, "application/json", body),
        4,
        &["/dex/token", "larger than 1048576 bytes"],
    );
}

/// A TLS IdP whose certificate names `names`, and the PEM of its CA.
fn tls_idp(names: &[&str], dir: &Path) -> (FakeIdp, PathBuf) {
    let ca = TestCa::new();
    let pem = dir.join("idp-ca.pem");
    ca.write_pem(&pem).expect("write CA");
    (
        FakeIdp::start_tls(IdpConfig::pcd(), ca.server_config(names)),
        pem,
    )
}

#[test]
fn tls_untrusted_wrong_name_and_private_ca() {
    let env = Env::new();
    let (idp, pem) = tls_idp(&["127.0.0.1", "localhost"], env.path());
    let pem = pem.display().to_string();
    let login = |extra: &[&str]| {
        let mut cmd = env.dexcred(["token", "--pcd", &idp.url(), "--username", ALICE]);
        cmd.args(extra).env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        run_bounded(&mut cmd, DEADLINE)
    };

    // A certificate from a CA nobody told us about.
    let out = login(&[]);
    let line = fails_with(&out, 4);
    assert!(line.contains("TLS error"), "{line}");
    assert!(
        line.contains("--certificate-authority"),
        "names the fix: {line}"
    );
    assert!(env.cache_entries().is_empty());
    assert_eq!(idp.counts().total, 0, "no request got through");

    // The same server with its CA: works.
    let out = login(&["--certificate-authority", &pem]);
    let token = ok(&out);
    assert!(idp.is_valid_token(token.trim()));
    assert_eq!(env.cache_entries().len(), 1);

    // --insecure-skip-tls-verify works without the CA, with one warning.
    let out = login(&["--insecure-skip-tls-verify", "--force-refresh"]);
    ok(&out);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("warning:") && err.contains("--insecure-skip-tls-verify"),
        "{err}"
    );

    // A certificate for another host name, even from the trusted CA.
    let other_dir = env.path().join("other-ca");
    std::fs::create_dir_all(&other_dir).unwrap();
    let (wrong, wrong_pem) = tls_idp(&["wrong.example.com"], &other_dir);
    let wrong_pem = wrong_pem.display().to_string();
    let mut cmd = env.dexcred(["token", "--pcd", &wrong.url(), "--username", ALICE]);
    cmd.args(["--certificate-authority", &wrong_pem])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    let out = run_bounded(&mut cmd, DEADLINE);
    let line = fails_with(&out, 4);
    assert!(line.contains("TLS error"), "{line}");
    assert!(
        line.contains("NotValidForName") || line.contains("not valid for"),
        "says the name is wrong: {line}"
    );
    assert_eq!(wrong.counts().total, 0);

    // A renewal against the untrusted server (CA dropped from the flags)
    // keeps the cache and falls back to a live token.
    let world = World {
        idp,
        entry: env.cache_entries()[0].clone(),
        env,
        ca_args: Vec::new(),
    };
    check_refresh_fault_without_fault(&world, &["TLS error"]);
}

/// Like [`check_refresh_fault`] for failures that need no injected reply.
fn check_refresh_fault_without_fault(world: &World, needles: &[&str]) {
    for age in [Age::Expired, Age::InMargin] {
        age.apply(&world.entry);
        let before = snapshot(&world.entry);
        let out = run_bounded(&mut world.token(&[]), DEADLINE);
        assert_fault_outcome(world, age, &out, 4, needles);
        assert_eq!(snapshot(&world.entry), before, "{age:?}: cache untouched");
    }
}

#[test]
fn plain_http_is_refused_for_remote_hosts() {
    let env = Env::new();
    let out = run_bounded(
        env.dexcred([
            "token",
            "--pcd",
            "http://pcd.example.com",
            "--username",
            ALICE,
        ])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD),
        DEADLINE,
    );
    let line = fails_with(&out, 2);
    assert!(line.contains("use https"), "{line}");
    assert!(env.cache_entries().is_empty());
}

#[test]
fn rejected_refresh_without_a_password_keeps_the_cache() {
    // Not an outage: Dex refuses the refresh token (rotated elsewhere), and
    // this non-interactive run has no password. Exit 3 with the fix; a live
    // token is still served.
    let world = World::new(FakeIdp::pcd());
    world.idp.revoke_refresh_tokens(ALICE);
    for age in [Age::Expired, Age::InMargin] {
        age.apply(&world.entry);
        let before = snapshot(&world.entry);
        let mut cmd = world.env.dexcred(["token", "--pcd", &world.idp.url()]);
        cmd.args(["--username", ALICE]);
        let out = run_bounded(&mut cmd, DEADLINE);
        assert_fault_outcome(&world, age, &out, 3, &["DEXCRED_PASSWORD"]);
        assert_eq!(snapshot(&world.entry), before, "{age:?}: cache untouched");
    }
}

#[test]
fn a_rotated_refresh_token_is_kept_even_from_an_unusable_response() {
    // Dex spent the old refresh token and sent a new one, but no id_token:
    // nothing can be handed out, yet losing the new refresh token would
    // end the session. It is saved; the old id_token is not passed off as
    // new.
    let world = World::new(FakeIdp::pcd());
    age_tokens(&world.entry, -30);
    let before = read_entry(&world.entry);
    world.idp.inject(Fault::new(
        "/dex/token",
        1,
        Reply::json(
            200,
            &json!({"access_token": "n".repeat(40), "refresh_token": "rotated-refresh-token",
                    "token_type": "bearer", "expires_in": 3600}),
        ),
    ));
    let out = run_bounded(&mut world.token(&[]), DEADLINE);
    let line = fails_with(&out, 4);
    assert!(line.contains("no id_token"), "{line}");
    let after = read_entry(&world.entry);
    assert_eq!(after["refresh_token"], "rotated-refresh-token");
    assert_eq!(
        after["id_token"], before["id_token"],
        "old id_token kept, not renewed"
    );
}

#[test]
fn a_discovery_document_cannot_downgrade_to_plain_http() {
    // A malicious or misconfigured issuer points its token endpoint at a
    // plain-http host elsewhere: the password must not be sent there.
    // (0.0.0.0 is not loopback by name, yet stays on this machine should
    // the check ever be missing.)
    let idp = FakeIdp::pcd();
    let issuer = format!("{}/auth/realms/ocp", idp.url());
    idp.inject(Fault::new(
        "/auth/realms/ocp/.well-known/openid-configuration",
        1,
        Reply::json(
            200,
            &json!({"issuer": issuer, "token_endpoint": "http://0.0.0.0:9/token"}),
        ),
    ));
    let env = Env::new();
    let mut cmd = env.dexcred(["token", "--issuer", &issuer, "--client-id", "ocp"]);
    cmd.args(["--username", ALICE, "--timeout", "2"])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    let out = run_bounded(&mut cmd, DEADLINE);
    let line = fails_with(&out, 4);
    assert!(line.contains("plain http"), "{line}");
    assert!(line.contains("http://0.0.0.0:9/token"), "{line}");
    assert!(env.cache_entries().is_empty());
    assert_eq!(idp.counts().password_grant, 0);
}
