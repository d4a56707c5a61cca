//! Secrets never leak. Every flow runs with `-v` — login, cache hit,
//! refresh, refused refresh with password fallback, errors (including a
//! server that echoes what it was sent), git get/erase, status, logout,
//! `token --format json`, Keycloak with a one-time code, client credentials
//! — and afterwards every byte of stdout and stderr is scanned for every
//! secret the test can know: passwords (right and wrong), one-time codes,
//! every refresh token (read from the cache after each step and from the
//! IdP's request log), client secrets, Keystone tokens. stderr must not
//! contain a whole id or access token either (a fingerprint is fine), and
//! `status` no token material at all.
//!
//! Separately: the password never appears on a command line that `ps`
//! shows, and there is no `--password` flag to put it there.

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use dexcred_testkit::http::Reply;
use dexcred_testkit::idp::{
    DEX_CLIENT, FakeIdp, Fault, KEYCLOAK_PUBLIC_CLIENT, SERVICE_CLIENT, SERVICE_CLIENT_SECRET, User,
};
use serde_json::json;

const CAROL: &str = "carol@example.com";
/// Characters that JSON, Go's HTML-safe encoder, Python's ASCII encoder,
/// form encoding and HTML all write differently.
const CAROL_PASSWORD: &str = "Tr0ub4dor&3 <\"x\\y> é";
const WRONG_PASSWORD: &str = "wr0ng-Passw0rd&<>";
const BOB: &str = "bob";
const BOB_PASSWORD: &str = "b0b's secret+pass/word";
const OTP_CODES: [&str; 3] = ["246810", "135791", "864200"];
const WRONG_CLIENT_SECRET: &str = "n0t-the:secret/&";

const EXEC_INFO: &str = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#;

/// Everything printed, and everything that must not be.
struct Scan<'a> {
    env: &'a Env,
    idp: &'a FakeIdp,
    outputs: Vec<(String, Output)>,
    /// Never on stdout or stderr.
    secrets: BTreeSet<String>,
    /// id and access tokens: never on stderr, nor in `status`.
    tokens: BTreeSet<String>,
}

impl<'a> Scan<'a> {
    fn new(env: &'a Env, idp: &'a FakeIdp) -> Scan<'a> {
        let mut secrets = BTreeSet::new();
        for s in [
            CAROL_PASSWORD,
            WRONG_PASSWORD,
            BOB_PASSWORD,
            SERVICE_CLIENT_SECRET,
            WRONG_CLIENT_SECRET,
        ]
        .into_iter()
        .chain(OTP_CODES)
        {
            secrets.insert(s.to_string());
        }
        Scan {
            env,
            idp,
            outputs: Vec::new(),
            secrets,
            tokens: BTreeSet::new(),
        }
    }

    /// Runs the step `label` (feeding `input` on stdin), records its
    /// output, and harvests new secrets from the cache and the IdP
    /// afterwards.
    fn run(&mut self, label: &str, cmd: &mut Command, input: Option<&str>) -> Output {
        let out = spawn_with_input(cmd, input)
            .wait_with_output()
            .expect("wait");
        self.harvest();
        self.outputs.push((label.to_string(), out.clone()));
        out
    }

    /// A step that must succeed. Returns its stdout.
    fn ok(&mut self, label: &str, cmd: &mut Command) -> String {
        self.ok_with_input(label, cmd, None)
    }

    fn ok_with_input(&mut self, label: &str, cmd: &mut Command, input: Option<&str>) -> String {
        let out = self.run(label, cmd, input);
        assert!(
            out.status.success(),
            "{label}: expected success, got {:?}\nstderr: {}",
            out.status.code(),
            stderr(&out)
        );
        stdout(&out)
    }

    /// A step that must fail with `code` under `-v`: nothing on stdout,
    /// the error as the last stderr line (after the debug lines). Returns
    /// that line.
    fn fails(&mut self, label: &str, cmd: &mut Command, code: i32) -> String {
        let out = self.run(label, cmd, None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{label}: {err}");
        assert!(out.stdout.is_empty(), "{label}: {}", stdout(&out));
        let last = err.lines().last().unwrap_or_default().to_string();
        assert!(last.starts_with("dexcred: "), "{label}: {err}");
        last
    }

    /// A step against a server that echoes secrets: a refused login (3)
    /// whose error line shows where a secret was blanked.
    fn fails_redacted(&mut self, label: &str, cmd: &mut Command) {
        let line = self.fails(label, cmd, 3);
        assert!(line.contains("[redacted]"), "{label}: {line}");
    }

    /// Collects the secrets and tokens now in the cache and in the IdP's
    /// request log.
    fn harvest(&mut self) {
        for path in self.env.cache_entries() {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(entry) = dexcred::cache::parse_entry(&bytes) else {
                continue;
            };
            for t in [&entry.id_token, &entry.access_token].into_iter().flatten() {
                self.tokens.insert(t.value.expose().to_string());
            }
            for s in [&entry.refresh_token, &entry.client_secret]
                .into_iter()
                .flatten()
            {
                self.secrets.insert(s.expose().to_string());
            }
        }
        for request in self.idp.requests() {
            for (key, value) in &request.form {
                if matches!(
                    key.as_str(),
                    "password" | "refresh_token" | "client_secret" | "otp" | "totp"
                ) {
                    self.secrets.insert(value.clone());
                }
            }
            for header in ["x-auth-token", "authorization"] {
                if let Some(v) = request.header(header) {
                    self.secrets.insert(v.to_string());
                    if let Some(basic) = v.strip_prefix("Basic ") {
                        self.secrets.insert(basic.to_string());
                    }
                }
            }
        }
        if let Some(s) = self.idp.client_secret(DEX_CLIENT) {
            self.secrets.insert(s);
        }
    }

    fn check(&self) {
        assert!(self.tokens.len() >= 6, "the flows issued tokens");
        assert!(
            self.secrets.len() >= 14,
            "the flows produced refresh tokens etc."
        );
        for (label, out) in &self.outputs {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            for secret in &self.secrets {
                for form in encoded_forms(secret) {
                    assert!(
                        !stdout.contains(&form),
                        "{label}: stdout contains a secret ({form:?}):\n{stdout}"
                    );
                    assert!(
                        !stderr.contains(&form),
                        "{label}: stderr contains a secret ({form:?}):\n{stderr}"
                    );
                }
            }
            for token in &self.tokens {
                for part in token_parts(token) {
                    assert!(
                        !stderr.contains(part),
                        "{label}: stderr contains (part of) a token:\n{stderr}"
                    );
                    if label.starts_with("status") {
                        assert!(
                            !stdout.contains(part),
                            "{label}: status shows token material:\n{stdout}"
                        );
                    }
                }
            }
        }
    }
}

/// A secret as sent, and form-encoded (how a careless log would show it).
fn encoded_forms(secret: &str) -> Vec<String> {
    let form: String = url_form(secret);
    let mut v = vec![secret.to_string()];
    if form != secret {
        v.push(form);
    }
    v
}

fn url_form(s: &str) -> String {
    dexcred_testkit::url_encode(s)
}

/// The whole token, and for a JWT its payload and signature segments.
fn token_parts(token: &str) -> Vec<&str> {
    let mut parts = vec![token];
    let segments: Vec<&str> = token.split('.').collect();
    if segments.len() == 3 {
        parts.extend(segments[1..].iter().filter(|s| s.len() >= 16));
    }
    parts
}

/// `dexcred <sub> -v` as carol at the PCD, without a password.
fn pcd(env: &Env, idp: &FakeIdp, sub: &[&str]) -> Command {
    let mut cmd = env.dexcred(sub);
    cmd.args(["-v", "--pcd", &idp.url(), "--username", CAROL]);
    cmd
}

/// The same with carol's right password in the environment.
fn pcd_pw(env: &Env, idp: &FakeIdp, sub: &[&str]) -> Command {
    let mut cmd = pcd(env, idp, sub);
    cmd.env("DEXCRED_PASSWORD", CAROL_PASSWORD);
    cmd
}

fn entry_of(env: &Env, user: &str) -> std::path::PathBuf {
    env.cache_entries()
        .into_iter()
        .find(|p| read_entry(p)["key"]["username"] == user)
        .expect("entry for user")
}

fn git_request(token: Option<&str>) -> String {
    let mut s = String::from("capability[]=authtype\nprotocol=https\nhost=git.example.com\n");
    if let Some(t) = token {
        s.push_str(&format!("authtype=Bearer\ncredential={t}\n"));
    }
    s.push('\n');
    s
}

/// An `error_description` repeating `secrets` as Go's HTML-safe JSON
/// encoder and form encoding write them.
fn dex_echo(secrets: &[&str]) -> String {
    let mut description = String::from("you sent:");
    for s in secrets {
        let json = serde_json::to_string(s).unwrap();
        let go = json
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026");
        description.push_str(&format!(" {} {}", &go[1..go.len() - 1], url_form(s)));
    }
    format!(r#"{{"error":"invalid_request","error_description":"{description}"}}"#)
}

#[test]
fn no_flow_prints_a_secret_even_with_verbose() {
    let idp = FakeIdp::pcd();
    idp.add_user(User::new(CAROL, CAROL_PASSWORD));
    idp.add_user(User::new(BOB, BOB_PASSWORD).with_otp(&OTP_CODES));
    let env = Env::new();
    let mut scan = Scan::new(&env, &idp);

    // PCD: login, cache hit, refresh, refused refresh → password.
    scan.ok("login", &mut pcd_pw(&env, &idp, &["login"]));
    let entry = entry_of(&env, CAROL);
    let out = scan.run("cache hit", &mut pcd_pw(&env, &idp, &["token"]), None);
    ok(&out);
    assert!(stderr(&out).contains("cache hit"), "{}", stderr(&out));
    age_tokens(&entry, -30);
    scan.ok(
        "refresh (token --format json)",
        &mut pcd_pw(&env, &idp, &["token", "--format", "json"]),
    );
    assert_eq!(idp.counts().refresh_grant, 1);
    idp.revoke_refresh_tokens(CAROL);
    age_tokens(&entry, -30);
    scan.ok(
        "refused refresh → password (kubectl)",
        pcd_pw(&env, &idp, &["kubectl"]).env("KUBERNETES_EXEC_INFO", EXEC_INFO),
    );
    assert_eq!(idp.counts().password_grant, 2);

    // git: get (Bearer and Basic), erase of the token just handed out,
    // and the renewal that follows.
    let helper = |action: &str| {
        let mut cmd = Command::new(env.bin_dir().join("git-credential-dexcred"));
        env.apply(&mut cmd);
        cmd.args(["-v", "--git-host", "git.example.com", "--pcd", &idp.url()])
            .args(["--username", CAROL, action])
            .env("DEXCRED_PASSWORD", CAROL_PASSWORD);
        cmd
    };
    let answer = scan.ok_with_input("git get", &mut helper("get"), Some(&git_request(None)));
    let token = answer
        .lines()
        .find_map(|l| l.strip_prefix("credential="))
        .expect("bearer credential")
        .to_string();
    let basic = "protocol=https\nhost=git.example.com\n\n";
    let answer = scan.ok_with_input("git get (basic)", &mut helper("get"), Some(basic));
    assert!(answer.contains("password="), "git get (basic): {answer}");
    let erase = git_request(Some(&token));
    scan.ok_with_input("git erase", &mut helper("erase"), Some(&erase));
    assert_eq!(read_entry(&entry)["rejected"], true);
    let get = git_request(None);
    scan.ok_with_input("git get after erase", &mut helper("get"), Some(&get));
    assert_eq!(
        idp.counts().refresh_grant,
        3,
        "the refused one, the first refresh, and the renewal after erase"
    );

    // Errors. A wrong password after the session ended, from the
    // environment, a password file and a password command:
    idp.revoke_refresh_tokens(CAROL);
    age_tokens(&entry, -30);
    let pw_file = env.path().join("pw");
    std::fs::write(&pw_file, format!("{WRONG_PASSWORD}\nmetadata\n")).unwrap();
    let pw_command = format!("cat '{}'", pw_file.display());
    let pw_file = pw_file.display().to_string();
    let wrong_passwords: [(&str, &[&str], Option<&str>); 3] = [
        ("wrong password", &[], Some(WRONG_PASSWORD)),
        (
            "wrong password (file)",
            &["--password-file", &pw_file],
            None,
        ),
        (
            "wrong password (command)",
            &["--password-command", &pw_command],
            None,
        ),
    ];
    for (label, args, var) in wrong_passwords {
        let mut cmd = pcd(&env, &idp, &["token"]);
        cmd.args(args);
        if let Some(password) = var {
            cmd.env("DEXCRED_PASSWORD", password);
        }
        scan.fails(label, &mut cmd, 3);
    }
    // A server that echoes everything it was sent, in every encoding a
    // real server might use, on the refresh and on the login:
    scan.ok("relogin", &mut pcd_pw(&env, &idp, &["token"]));
    age_tokens(&entry, -30);
    let refresh_token = read_entry(&entry)["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let client_secret = idp.client_secret(DEX_CLIENT).unwrap();
    // Each answer echoes what its own request carried: first the refresh,
    // then the password login it falls back to.
    for sent in [
        [refresh_token.as_str(), client_secret.as_str()],
        [CAROL_PASSWORD, client_secret.as_str()],
    ] {
        idp.inject(Fault::new(
            "/dex/token",
            1,
            Reply::text(400, "application/json", dex_echo(&sent)),
        ));
    }
    scan.fails_redacted("echoing Dex", &mut pcd_pw(&env, &idp, &["token"]));
    // Keystone (Python: non-ASCII as \u00e9) echoing the password, on a
    // first login.
    std::fs::remove_file(&entry).unwrap();
    let python = serde_json::to_string(&json!({"error": {"code": 401, "title": "Unauthorized",
        "message": format!("bad password {}", CAROL_PASSWORD)}}))
    .unwrap()
    .replace('é', "\\u00e9");
    idp.inject(Fault::new(
        "/keystone",
        1,
        Reply::text(401, "application/json", python),
    ));
    scan.fails_redacted("echoing Keystone", &mut pcd_pw(&env, &idp, &["token"]));
    scan.ok("login again", &mut pcd_pw(&env, &idp, &["login"]));

    // Keycloak with a one-time code, by discovery.
    let issuer = format!("{}/auth/realms/ocp", idp.url());
    let kc = |sub: &str| {
        let mut cmd = env.dexcred([sub, "-v", "--issuer", &issuer]);
        cmd.args(["--client-id", KEYCLOAK_PUBLIC_CLIENT, "--username", BOB])
            .env("DEXCRED_PASSWORD", BOB_PASSWORD);
        cmd
    };
    scan.ok(
        "keycloak login (otp)",
        kc("token").env("DEXCRED_OTP", OTP_CODES[0]),
    );
    age_tokens(&entry_of(&env, BOB), -30);
    scan.ok("keycloak refresh", &mut kc("token"));
    let text = scan.ok("keycloak logout", &mut kc("logout"));
    assert!(text.contains("Logged out"), "keycloak logout: {text}");
    scan.fails(
        "keycloak reused otp",
        kc("token").env("DEXCRED_OTP", OTP_CODES[0]),
        3,
    );
    let otp_command = format!("echo {}", OTP_CODES[1]);
    scan.ok(
        "keycloak otp command",
        kc("token").args(["--otp-command", &otp_command]),
    );

    // Client credentials with the secret in HTTP Basic. The failing runs
    // use a cache of their own, so no live token can be served instead.
    let cc_errors = env.path().join("cc-errors");
    let cc = |secret: &str| {
        let mut cmd = env.dexcred(["token", "-v", "--format", "json"]);
        cmd.args(["--token-url", &idp.client_credentials_url()])
            .args(["--client-id", SERVICE_CLIENT, "--client-auth", "basic-raw"])
            .args(["--scope", "openid inspect"])
            .env("DEXCRED_CLIENT_SECRET", secret);
        cmd
    };
    scan.ok("client credentials", &mut cc(SERVICE_CLIENT_SECRET));
    scan.fails(
        "wrong client secret",
        cc(WRONG_CLIENT_SECRET).arg("--cache-dir").arg(&cc_errors),
        3,
    );
    idp.inject(Fault::new(
        "/api/id/v1/auth/token",
        1,
        Reply::text(
            401,
            "text/html",
            format!(
                "<html><body>client {SERVICE_CLIENT} secret {} rejected</body></html>",
                SERVICE_CLIENT_SECRET.replace('&', "&amp;")
            ),
        ),
    ));
    scan.fails_redacted(
        "echoing client-credentials server",
        cc(SERVICE_CLIENT_SECRET).arg("--cache-dir").arg(&cc_errors),
    );

    // status (table and JSON) and logout.
    let table = scan.ok("status", &mut env.dexcred(["status", "-v"]));
    assert!(table.contains(CAROL), "status: {table}");
    let text = scan.ok(
        "status --json",
        &mut env.dexcred(["status", "--json", "-v"]),
    );
    let rows: serde_json::Value = serde_json::from_str(&text).expect("status JSON");
    assert!(rows.as_array().is_some_and(|r| r.len() == 3), "{rows}");
    scan.ok("logout", &mut pcd_pw(&env, &idp, &["logout"]));
    scan.ok("logout --all", &mut env.dexcred(["logout", "--all", "-v"]));
    assert!(env.cache_entries().is_empty());

    scan.check();
}

/// How a password is supplied: a label, extra arguments, an environment
/// variable.
type PasswordSource = (
    &'static str,
    Vec<String>,
    Option<(&'static str, &'static str)>,
);

#[test]
fn the_password_is_never_on_a_command_line() {
    let idp = FakeIdp::pcd();
    idp.add_user(User::new(CAROL, CAROL_PASSWORD));
    let env = Env::new();
    let pw_file = env.path().join("password");
    std::fs::write(&pw_file, CAROL_PASSWORD).unwrap();

    // No flag takes a password value: clap refuses it, before any request.
    for args in [
        vec!["--password", CAROL_PASSWORD],
        vec!["--password=hunter2-in-argv"],
    ] {
        let out = run(env
            .dexcred(["token", "--pcd", &idp.url(), "--username", CAROL])
            .args(&args));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("unexpected argument '--password'"), "{err}");
        assert!(
            !err.contains(CAROL_PASSWORD) && !err.contains("hunter2"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    assert_eq!(idp.counts().total, 0);

    // While a login is in progress (Keystone slowed down), no process on
    // the machine shows the password in its command line, for each way of
    // supplying it.
    let sources: Vec<PasswordSource> = vec![
        (
            "environment",
            vec![],
            Some(("DEXCRED_PASSWORD", CAROL_PASSWORD)),
        ),
        (
            "file",
            vec!["--password-file".into(), pw_file.display().to_string()],
            None,
        ),
        (
            "command",
            vec![
                "--password-command".into(),
                format!("sleep 1; cat '{}'", pw_file.display()),
            ],
            None,
        ),
    ];
    for (how, args, var) in sources {
        let _ = std::fs::remove_dir_all(env.cache_dir());
        idp.inject(Fault::new(
            "/keystone",
            1,
            Reply::delay(Duration::from_millis(1500), Reply::passthrough()),
        ));
        let mut cmd = env.dexcred(["token", "--pcd", &idp.url(), "--username", CAROL]);
        cmd.args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((k, v)) = var {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start dexcred");
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut saw_ours = false;
        // Sample every command line until dexcred exits.
        while child.try_wait().expect("poll").is_none() {
            let lines = all_command_lines();
            for (p, line) in &lines {
                assert!(
                    !line.contains(CAROL_PASSWORD),
                    "{how}: the password is in the command line of pid {p}: {line}"
                );
            }
            saw_ours |= lines.iter().any(|(p, l)| *p == pid && l.contains("token"));
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{how}: dexcred did not finish");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("wait");
        assert!(saw_ours, "{how}: the scan saw the running dexcred");
        ok(&out);
        let ps = run(Command::new("ps").args(["-eo", "args"]));
        assert!(!stdout(&ps).contains(CAROL_PASSWORD));
    }
}
