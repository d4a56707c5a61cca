//! Property tests for every parser that reads untrusted input: git's
//! credential requests, kubectl's KUBERNETES_EXEC_INFO, JWT payloads, token
//! responses and cache files. Each must never panic on arbitrary input, and
//! each writer/reader pair must round-trip.
//!
//! Cases proptest finds are kept in `proptest-regressions/parsers.txt` and
//! replayed first on every run; the ones that taught us something are also
//! spelled out as plain tests at the bottom.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dexcred::cache::{Entry, Key, StoredToken, parse_entry};
use dexcred::http::Response;
use dexcred::protocol::git::{Answer, read_request, render_get};
use dexcred::protocol::kubectl::{parse_exec_info, render};
use dexcred::provider::parse_token_response;
use dexcred::secret::Secret;
use dexcred::{jwt, protocol};
use proptest::prelude::*;

fn response(status: u16, body: String) -> Response {
    Response {
        status,
        body,
        headers: vec![],
        what: "POST https://idp.test/token".into(),
    }
}

fn jwt_with(payload: &serde_json::Value) -> String {
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

/// Values git can transmit: anything but newline and NUL, and no carriage
/// return (git's reader strips a trailing CR as part of the line ending).
fn git_value() -> impl Strategy<Value = String> {
    "[^\n\r\u{0}]{0,40}"
}

fn git_key() -> impl Strategy<Value = String> {
    "[a-z_]{1,12}"
}

/// A printable-ASCII token, as providers issue them.
fn token() -> impl Strategy<Value = String> {
    "[!-~]{1,200}"
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    (
        "[a-z]{1,8}",
        proptest::option::of("[ -~]{0,20}"),
        proptest::option::of(token()),
        proptest::option::of(token()),
        any::<i32>(),
        any::<u16>(),
        any::<bool>(),
        proptest::collection::vec(("[a-z]{1,5}", "[ -~]{0,8}"), 0..3),
    )
        .prop_map(|(client, user, id, refresh, at, life, rejected, extra)| {
            let key = Key {
                provider: dexcred::cache::ProviderKind::Pcd,
                url: "https://pcd.test".into(),
                grant: dexcred::cache::Grant::Password,
                username: user,
                user_domain: Some("Default".into()),
                project: None,
                client_id: client,
                connector_id: None,
                scope: Some("openid".into()),
                extra_params: extra,
                exchange: None,
            };
            let mut e = Entry::new(key, i64::from(at));
            e.id_token = id.map(|v| StoredToken {
                value: Secret::new(v),
                issued_at: i64::from(at),
                expires_at: i64::from(at) + i64::from(life),
            });
            e.refresh_token = refresh.map(Secret::new);
            e.rejected = rejected;
            e
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn git_request_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = read_request(&bytes[..]);
    }

    #[test]
    fn git_request_reads_back_what_git_writes(
        pairs in proptest::collection::vec((git_key(), git_value()), 0..12),
        caps in proptest::collection::vec("[a-z]{1,10}", 0..4),
    ) {
        let mut input = String::new();
        for c in &caps {
            input.push_str(&format!("capability[]={c}\n"));
        }
        for (k, v) in &pairs {
            input.push_str(&format!("{k}={v}\n"));
        }
        input.push('\n');
        input.push_str("after=blank\n");
        let request = read_request(input.as_bytes()).unwrap();
        for (k, _) in &pairs {
            let last = pairs.iter().rev().find(|(k2, _)| k2 == k).map(|(_, v)| v.as_str());
            prop_assert_eq!(request.get(k), last);
        }
        prop_assert_eq!(request.list("capability"), caps.as_slice());
        prop_assert_eq!(request.get("after"), None);
    }

    #[test]
    fn git_answer_is_exactly_its_protocol_lines(tok in "\\PC{0,60}", user in "\\PC{0,20}", expiry in any::<i64>()) {
        for answer in [
            Answer::Bearer { token: &tok, expiry },
            Answer::Basic { username: &user, token: &tok, expiry },
        ] {
            match render_get(&answer) {
                Ok(text) => {
                    let expected_lines = match answer { Answer::Bearer { .. } => 5, Answer::Basic { .. } => 3 };
                    prop_assert_eq!(text.matches('\n').count(), expected_lines);
                    prop_assert!(!text.contains('\r') && !text.contains('\0'));
                    // What git would read back is what we meant to say.
                    let back = read_request(text.as_bytes()).unwrap();
                    prop_assert_eq!(back.presented_secret().unwrap_or(""), tok.as_str());
                }
                Err(_) => prop_assert!(tok.contains(['\n', '\r', '\0']) || user.contains(['\n', '\r', '\0'])),
            }
        }
    }

    #[test]
    fn exec_info_never_panics(text in "\\PC{0,300}") {
        let _ = parse_exec_info(Some(&text));
    }

    #[test]
    fn exec_info_reads_interactive_flag(interactive in any::<bool>(), beta in any::<bool>()) {
        let version = if beta { protocol::kubectl::V1BETA1 } else { protocol::kubectl::V1 };
        let raw = serde_json::json!({
            "kind": "ExecCredential", "apiVersion": version,
            "spec": {"interactive": interactive, "cluster": {"server": "https://k", "config": null}}
        }).to_string();
        let info = parse_exec_info(Some(&raw)).unwrap();
        prop_assert_eq!(info.api_version, version);
        prop_assert_eq!(info.interactive, Some(interactive));
    }

    #[test]
    fn exec_credential_round_trips_any_printable_token(tok in token(), at in 0i64..4_000_000_000) {
        let out = render(protocol::kubectl::V1, &tok, at).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        prop_assert_eq!(v["status"]["token"].as_str(), Some(tok.as_str()));
        let ts = v["status"]["expirationTimestamp"].as_str().unwrap();
        let parsed = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).unwrap();
        prop_assert_eq!(parsed.unix_timestamp(), at);
    }

    #[test]
    fn jwt_decode_never_panics(text in "\\PC{0,400}") {
        let _ = jwt::decode(&text);
    }

    #[test]
    fn jwt_claims_round_trip(exp in any::<i64>(), iat in any::<i64>(), sub in "\\PC{0,30}", groups in proptest::collection::vec("\\PC{0,10}", 0..5)) {
        let t = jwt_with(&serde_json::json!({"exp": exp, "iat": iat, "sub": sub, "groups": groups}));
        let c = jwt::decode(&t).unwrap();
        prop_assert_eq!(c.exp, Some(exp));
        prop_assert_eq!(c.iat, Some(iat));
        prop_assert_eq!(c.sub.as_deref(), Some(sub.as_str()));
        prop_assert_eq!(c.groups, groups);
    }

    #[test]
    fn token_response_never_panics(body in "\\PC{0,400}", status in 200u16..300) {
        let _ = parse_token_response(&response(status, body), 1_700_000_000);
    }

    #[test]
    fn token_response_accepts_printable_and_rejects_control(tok in token(), bad in "[!-~]{0,10}[\u{0}-\u{1f}\u{7f} ][!-~]{0,10}", expires_in in 1i64..10_000_000) {
        let ok = serde_json::json!({"access_token": tok, "expires_in": expires_in}).to_string();
        let g = parse_token_response(&response(200, ok), 1_000).unwrap();
        let at = g.access_token.unwrap();
        prop_assert_eq!(at.value.expose(), tok.as_str());
        // An opaque token expires expires_in after the response arrived
        // (a token that happens to decode as a JWT may carry its own exp).
        if jwt::decode(&tok).is_none() {
            prop_assert_eq!(at.expires_at, 1_000 + expires_in);
        }
        let bad_body = serde_json::json!({"access_token": bad}).to_string();
        prop_assert!(parse_token_response(&response(200, bad_body), 1_000).is_err());
    }

    #[test]
    fn cache_file_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_entry(&bytes);
    }

    #[test]
    fn cache_entry_round_trips(entry in arb_entry()) {
        let bytes = serde_json::to_vec(&entry).unwrap();
        prop_assert_eq!(parse_entry(&bytes).unwrap(), entry);
    }

    #[test]
    fn truncated_cache_files_are_refused_not_misread(entry in arb_entry(), cut in 0.0f64..1.0) {
        let bytes = serde_json::to_vec_pretty(&entry).unwrap();
        let n = ((bytes.len() as f64) * cut) as usize;
        prop_assert!(parse_entry(&bytes[..n]).is_err());
    }
}

/// Regression: serde accepts a JSON array for a struct, so `[]` once parsed
/// as an ExecCredential with defaults.
#[test]
fn exec_info_array_is_rejected() {
    assert!(parse_exec_info(Some("[]")).is_err());
    assert!(parse_exec_info(Some("[\"client.authentication.k8s.io/v1\", null]")).is_err());
}

/// Regression (found by `git_request_reads_back_what_git_writes`): a value
/// ending in CR loses it, because CRLF is a line ending — exactly as git's
/// own reader treats it.
#[test]
fn trailing_carriage_return_is_part_of_the_line_ending() {
    let r = read_request(&b"a=\r\nb=x\ry\n"[..]).unwrap();
    assert_eq!(r.get("a"), Some(""));
    assert_eq!(r.get("b"), Some("x\ry"));
}

/// Regression: a JWT whose `exp` is a float must still give an expiry.
#[test]
fn float_exp_is_read() {
    let t = jwt_with(&serde_json::json!({"exp": 1.7e9}));
    assert_eq!(jwt::decode(&t).unwrap().exp, Some(1_700_000_000));
}

// Server error bodies are untrusted text that ends up in the one error line
// users see: whatever a server sends, the reason is one short printable
// line that starts with the status.
proptest! {
    #[test]
    fn error_reason_is_one_short_printable_line(
        status in 400u16..600,
        before in "\\PC{0,100}",
        title in "\\PC{0,300}",
        after in "\\PC{0,2000}",
        html in any::<bool>(),
    ) {
        let body = if html {
            format!("{before}<TITLE>{title}</title>{after}")
        } else {
            serde_json::json!({"error": before, "error_description": format!("{title}{after}")})
                .to_string()
        };
        let reason = response(status, body).reason();
        prop_assert!(reason.starts_with(&format!("HTTP {status}")), "{}", reason);
        prop_assert!(!reason.chars().any(char::is_control), "{:?}", reason);
        prop_assert!(reason.chars().count() <= 300, "{}", reason.len());
    }
}
