//! Clocks and expiry edge values (issue 13, items 4 and 6), through the
//! real binary: a server clock ahead of ours must not stretch a token's
//! life; an expiry after year 9999 or an `expires_in` of 2^63 and more must
//! neither break kubectl's RFC 3339 timestamp nor wrap around; a token that
//! has already expired when it arrives must not be handed out or cached as
//! servable.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use dexcred_testkit::http::Reply;
use dexcred_testkit::idp::{FakeIdp, Fault, unsigned_jwt};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(120);
const EXEC_INFO: &str = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#;
/// libfaketime, as Debian's `faketime` package installs it.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn token_cmd(env: &Env, idp: &FakeIdp, extra: &[&str]) -> Command {
    let mut cmd = env.dexcred(["token", "--pcd", &idp.url(), "--username", ALICE]);
    cmd.args(extra).env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    cmd
}

fn kubectl_cmd(env: &Env, idp: &FakeIdp) -> Command {
    let mut cmd = env.dexcred(["kubectl", "--pcd", &idp.url(), "--username", ALICE]);
    cmd.env("DEXCRED_PASSWORD", ALICE_PASSWORD)
        .env("KUBERNETES_EXEC_INFO", EXEC_INFO);
    cmd
}

/// Answers the next Dex token request (the login's password grant) with
/// `body`; Keystone and dexclients answer normally.
fn dex_answers(idp: &FakeIdp, body: serde_json::Value) {
    idp.inject(Fault::new("/dex/token", 1, Reply::json(200, &body)));
}

#[test]
fn with_our_clock_behind_the_servers_the_earlier_expiry_is_used() {
    let idp = FakeIdp::pcd();
    idp.set_token_lifetime(Duration::from_secs(3600));
    // The identity provider's clock is two hours ahead of ours: its id_token
    // says exp = (our now) + 3 h, while expires_in says one hour.
    idp.advance_clock(Duration::from_secs(2 * 3600));
    let env = Env::new();

    let out = run_bounded(&mut token_cmd(&env, &idp, &["--format", "json"]), DEADLINE);
    let answer: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    let first = answer["token"].as_str().expect("token").to_string();
    let advertised = answer["expiry_unix"].as_i64().expect("expiry_unix");
    assert!(
        advertised <= now() + 3600,
        "the expiry follows expires_in (one hour), not the server's exp: {answer}"
    );

    // One hour later on both clocks: the API server (the IdP's clock) now
    // rejects the token. dexcred, on our clock one hour later (libfaketime),
    // must renew instead of handing it out.
    idp.advance_clock(Duration::from_secs(3600));
    assert!(!idp.is_valid_token(&first));
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's faketime package"
    );
    let mut later = token_cmd(&env, &idp, &[]);
    later
        .env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME", "+1h")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    let printed = ok(&run_bounded(&mut later, DEADLINE)).trim().to_string();
    assert_ne!(printed, first, "the expired token was handed out");
    assert!(idp.is_valid_token(&printed));
}

#[test]
fn an_expiry_after_year_9999_is_served_with_a_four_digit_year() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    // Year 14645: no RFC 3339 timestamp can say it.
    let token = unsigned_jwt(&json!({"sub": "alice", "iat": now(), "exp": 400_000_000_000_i64}));
    dex_answers(
        &idp,
        json!({"id_token": token, "access_token": "at", "token_type": "bearer", "refresh_token": "r1"}),
    );
    for run in ["login", "cache hit"] {
        let out = run_bounded(&mut kubectl_cmd(&env, &idp), DEADLINE);
        let credential: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
        assert_eq!(credential["status"]["token"], token.as_str(), "{run}");
        // The last second of 9999, minus the five-minute margin.
        assert_eq!(
            credential["status"]["expirationTimestamp"], "9999-12-31T23:54:59Z",
            "{run}"
        );
    }
    assert_eq!(idp.counts().password_grant, 1, "the second run was a hit");
}

#[test]
fn an_expires_in_of_two_to_the_63_or_more_does_not_wrap_around() {
    for huge in [
        json!(9_223_372_036_854_775_807_i64),
        json!(18_446_744_073_709_551_615_u64),
    ] {
        let idp = FakeIdp::pcd();
        let env = Env::new();
        dex_answers(
            &idp,
            json!({"id_token": "opaque-id-token", "token_type": "bearer", "expires_in": huge, "refresh_token": "r1"}),
        );
        let out = run_bounded(&mut token_cmd(&env, &idp, &["--format", "json"]), DEADLINE);
        let answer: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
        assert_eq!(answer["token"], "opaque-id-token", "{huge}");
        assert_eq!(answer["expiry"], "9999-12-31T23:54:59Z", "{huge}");
        // Cached as fresh, so the next run is a hit.
        let out = run_bounded(&mut token_cmd(&env, &idp, &[]), DEADLINE);
        assert_eq!(ok(&out).trim(), "opaque-id-token");
        assert_eq!(idp.counts().password_grant, 1, "{huge}");
    }
}

#[test]
fn a_token_already_expired_on_arrival_is_neither_served_nor_cached_as_fresh() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let dead = unsigned_jwt(&json!({"sub": "alice", "iat": now() - 3700, "exp": now() - 100}));
    dex_answers(
        &idp,
        json!({"id_token": dead, "token_type": "bearer", "refresh_token": "r-from-the-dead-answer"}),
    );
    let out = run_bounded(&mut token_cmd(&env, &idp, &[]), DEADLINE);
    let line = fails_with(&out, 4);
    assert!(
        line.contains("id_token that had already expired") && line.contains("clock"),
        "{line}"
    );
    // Nothing servable was cached; the refresh token of the answer was kept.
    let entry = env.only_entry();
    assert_eq!(entry_token(&entry, "id_token"), None);
    assert_eq!(
        read_entry(&entry)["refresh_token"],
        "r-from-the-dead-answer"
    );

    // The next run renews (the fake Dex does not know that refresh token, so
    // it logs in) and serves a live token.
    let out = run_bounded(&mut token_cmd(&env, &idp, &[]), DEADLINE);
    let printed = ok(&out).trim().to_string();
    assert!(idp.is_valid_token(&printed));
    let counts = idp.counts();
    assert_eq!(
        (counts.password_grant, counts.refresh_grant),
        (2, 1),
        "{counts:?}"
    );
}
