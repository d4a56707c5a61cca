//! Concurrency torture: 64 dexcred processes in waves of 16, each wave
//! started at once just after the shared token entered its refresh margin,
//! with tokens that live 4 seconds (margin: 2 s, the "never more than half
//! the lifetime" rule) and a slow Dex so every wave piles up on the lock.
//!
//! Dex rotates refresh tokens with no grace, so two processes renewing with
//! one refresh token show up as a "claimed by another client" error.
//! Required: none of those, exactly one refresh per token handed out after
//! the first login, no token replaced before it entered its margin (which
//! catches a process renewing again right after another one did), and every
//! process exits 0 with a token the IdP still accepts when the process ends
//! (and so when it printed it). The three front ends share the one cache entry:
//! kubectl's exec plugin, `token --format json` and the git helper.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use dexcred_testkit::idp::FakeIdp;

const WAVES: usize = 4;
const PER_WAVE: usize = 16;
const LIFETIME: Duration = Duration::from_secs(4);
/// Every Dex answer takes this long: the renewing process holds the lock
/// long enough for the whole wave to queue behind it.
const IDP_DELAY: Duration = Duration::from_millis(150);
const DEADLINE: Duration = Duration::from_secs(60);

/// The cached token's renewal time (start of its margin), computed by
/// dexcred's own rule.
fn renew_at(entry: &Path) -> i64 {
    let bytes = std::fs::read(entry).expect("read entry");
    let entry = dexcred::cache::parse_entry(&bytes).expect("entry parses");
    entry.id_token.expect("id_token").renew_at()
}

#[derive(Debug, Clone, Copy)]
enum FrontEnd {
    Kubectl,
    TokenJson,
    Git,
}

/// One process's result: exit status, the token it printed, and whether the
/// IdP accepted that token right after the process ended.
#[derive(Debug)]
struct Outcome {
    front: FrontEnd,
    code: Option<i32>,
    stderr: String,
    token: Option<String>,
    valid_at_exit: bool,
}

fn command(env: &Env, url: &str, front: FrontEnd) -> (Command, Option<&'static str>) {
    let provider = ["--pcd", url, "--username", ALICE, "--lock-timeout", "30"];
    match front {
        FrontEnd::Kubectl => {
            let mut cmd = env.dexcred(["kubectl"]);
            cmd.args(provider).env(
                "KUBERNETES_EXEC_INFO",
                r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#,
            );
            (cmd, None)
        }
        FrontEnd::TokenJson => {
            let mut cmd = env.dexcred(["token", "--format", "json"]);
            cmd.args(provider);
            (cmd, None)
        }
        FrontEnd::Git => {
            // As git runs it: the helper name, flags, then the action.
            let mut cmd = Command::new(env.bin_dir().join("git-credential-dexcred"));
            env.apply(&mut cmd);
            cmd.args(["--git-host", "git.example.com"])
                .args(provider)
                .arg("get");
            (
                cmd,
                Some("capability[]=authtype\nprotocol=https\nhost=git.example.com\n\n"),
            )
        }
    }
}

fn parse_token(front: FrontEnd, stdout: &str) -> Option<String> {
    match front {
        FrontEnd::Kubectl => {
            let v: serde_json::Value = serde_json::from_str(stdout).ok()?;
            assert_eq!(v["kind"], "ExecCredential");
            v["status"]["token"].as_str().map(str::to_string)
        }
        FrontEnd::TokenJson => {
            let v: serde_json::Value = serde_json::from_str(stdout).ok()?;
            v["token"].as_str().map(str::to_string)
        }
        FrontEnd::Git => stdout
            .lines()
            .find_map(|l| l.strip_prefix("credential="))
            .map(str::to_string),
    }
}

/// Starts `PER_WAVE` processes back to back, then collects each one on its
/// own thread so its token is checked the moment it exits.
fn wave(env: &Env, idp: &FakeIdp, wave: usize) -> Vec<Outcome> {
    let url = idp.url();
    let mut started = Vec::new();
    for i in 0..PER_WAVE {
        let front = [FrontEnd::Kubectl, FrontEnd::TokenJson, FrontEnd::Git][(i + wave) % 3];
        let (mut cmd, input) = command(env, &url, front);
        cmd.env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        started.push((front, spawn_with_input(&mut cmd, input)));
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = started
            .into_iter()
            .map(|(front, child)| {
                s.spawn(move || {
                    let out = child.wait_with_output().expect("wait");
                    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                    let token = parse_token(front, &stdout);
                    let valid_at_exit = token.as_deref().is_some_and(|t| idp.is_valid_token(t));
                    Outcome {
                        front,
                        code: out.status.code(),
                        stderr: stderr(&out),
                        token,
                        valid_at_exit,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("waiter"))
            .collect()
    })
}

#[test]
fn heavy_64_processes_in_waves_renew_exactly_once_per_expiry() {
    let idp = FakeIdp::pcd();
    idp.set_token_lifetime(LIFETIME);
    idp.set_delay(IDP_DELAY);
    let env = Env::new();

    // The first login, by one process.
    let mut login = env.dexcred(["token", "--pcd", &idp.url(), "--username", ALICE]);
    login.env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    let first = ok(&run(&mut login)).trim().to_string();
    let entry = env.cache_entries().pop().expect("entry");
    let mut handed_out: BTreeSet<String> = BTreeSet::from([first]);
    let mut all = Vec::new();

    for w in 0..WAVES {
        // Wait (polling, generous deadline) until the cached token is inside
        // its margin: every process of the wave must then renew or wait for
        // the one that does.
        let deadline = Instant::now() + DEADLINE;
        while now() < renew_at(&entry) {
            assert!(Instant::now() < deadline, "the token never aged");
            std::thread::sleep(Duration::from_millis(50));
        }
        let refreshes = idp.counts().refresh_grant;
        let outcomes = wave(&env, &idp, w);
        assert!(
            idp.counts().refresh_grant > refreshes,
            "wave {w} started on a stale token and must have renewed it"
        );
        all.extend(outcomes);
    }

    assert_eq!(all.len(), 64);
    for o in &all {
        assert_eq!(o.code, Some(0), "{:?} failed: {}", o.front, o.stderr);
        assert!(o.stderr.is_empty(), "{:?}: {}", o.front, o.stderr);
        let token = o.token.as_deref().expect("a token was printed");
        assert!(
            o.valid_at_exit,
            "{:?} printed a token the IdP did not accept",
            o.front
        );
        handed_out.insert(token.to_string());
    }
    let counts = idp.counts();
    eprintln!(
        "torture: {} distinct tokens, counts {counts:?}",
        handed_out.len()
    );
    assert_eq!(
        counts.claimed_errors, 0,
        "a refresh token was presented twice"
    );
    assert_eq!(counts.refresh_rejected, 0, "{counts:?}");
    assert_eq!(counts.password_grant, 1, "only the first login: {counts:?}");
    assert_eq!(
        counts.refresh_grant as usize,
        handed_out.len() - 1,
        "exactly one renewal per token handed out after the first"
    );
    assert!(handed_out.len() > WAVES, "every wave got a new token");

    // One renewal per *expiry*: no token was replaced while still fresh.
    // The IdP stamps `iat` from the same clock dexcred decides with, so the
    // next token's `iat` is never before the previous token's renew_at (a
    // redundant second renewal in the same wave would be).
    let mut life: Vec<(i64, i64)> = handed_out
        .iter()
        .map(|t| {
            let claims = dexcred::jwt::decode(t).expect("a JWT");
            let (iat, exp) = (claims.iat.expect("iat"), claims.exp.expect("exp"));
            let stored = dexcred::cache::StoredToken {
                value: dexcred::secret::Secret::new(t.as_str()),
                expires_at: exp,
                issued_at: iat,
            };
            (iat, stored.renew_at())
        })
        .collect();
    life.sort();
    for pair in life.windows(2) {
        let ((_, renew_at), (next_iat, _)) = (pair[0], pair[1]);
        assert!(
            next_iat >= renew_at,
            "a token was renewed while still fresh (renewal due at {renew_at}, \
             replaced at {next_iat}): {life:?}"
        );
    }
}
