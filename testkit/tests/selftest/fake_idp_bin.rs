//! The standalone `fake-idp` binary: announcement line, counters endpoint,
//! state file, shutdown on stdin EOF.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::{get, post_form};
use dexcred_testkit::idp::DEX_CLIENT;
use serde_json::Value;

#[test]
fn announces_serves_and_writes_counts_on_exit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-idp"))
        .args(["--kube", "--token-lifetime", "120", "--state-file"])
        .arg(&state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start fake-idp");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("announcement");
    let info: Value = serde_json::from_str(&line).expect("JSON line");
    let idp = info["idp"].as_str().expect("idp url").to_owned();
    assert!(idp.starts_with("http://127.0.0.1:"));
    assert!(
        info["kube"]
            .as_str()
            .is_some_and(|k| k.starts_with("https://"))
    );
    let ca = info["ca"].as_str().expect("ca path").to_owned();
    assert!(std::fs::read_to_string(&ca).is_ok_and(|pem| pem.contains("BEGIN CERTIFICATE")));

    // The Dex secret comes from dexclients in real life; here the password
    // grant with a wrong secret is enough to exercise the counters.
    let resp = post_form(
        &format!("{idp}/dex/token"),
        &[
            ("grant_type", "password"),
            ("client_id", DEX_CLIENT),
            ("client_secret", "unknown"),
            ("scope", "openid"),
        ],
        None,
    );
    assert_eq!(resp.status, 401);
    let counts = get(&format!("{idp}/_testkit/counts"), &[]).json();
    assert_eq!(counts["password_grant"], 1);

    drop(child.stdin.take());
    let status = child.wait().expect("wait");
    assert!(status.success());
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(saved["password_grant"], 1);
    assert!(
        !std::path::Path::new(&ca).exists(),
        "temp CA removed on exit"
    );
}
