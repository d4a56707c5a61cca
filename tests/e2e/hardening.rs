//! Issue 13, items 1, 2, 8, 9, 10, 11 and 13: attacks on the binary that
//! must not work, each checked the way a user (or the attacker) would see it.
//!
//! - 1: the git helper gives a token only to its hosts, over https (or http
//!   to loopback): real git 2.47 and 2.39 against two testkit git servers and
//!   a redirecting one, and `git credential fill` for smtp/imap/cert/http.
//! - 2: `logout --all` logs each entry out with its own settings only.
//! - 8: FIFOs and huge files named by flags are refused, never waited on.
//! - 9: server-controlled text reaches the terminal escaped.
//! - 10: helper commands do not inherit dexcred's secret variables.
//! - 11: no directory is created inside another user's directory (`sudo -E`).
//! - 13: invalid input fails with exit 2 before any request.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dexcred_testkit::git::{AuthScheme, GitAuth, GitServer};
use dexcred_testkit::http::{Handler, Reply, Request, Server};
use dexcred_testkit::idp::{FakeIdp, Fault, User};

/// Longest any single run may take before the test calls it hung. Not a
/// speed assertion: a healthy run takes a fraction of it.
const HANG_DEADLINE: Duration = Duration::from_secs(60);

fn host_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned()
}

/// Runs `cmd` with `input` on stdin, ignoring a pipe the program closed
/// early: a run that refuses its flags exits before reading anything.
fn run_with_input(cmd: &mut Command, input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start command");
    let mut stdin = child.stdin.take().expect("stdin pipe");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("wait for command");
    writer.join().expect("stdin writer");
    out
}

// ---------------------------------------------------------------------------
// 1. the git helper answers only for its hosts
// ---------------------------------------------------------------------------

/// A home with a global git config holding an identity and `extra`.
fn git_home(env: &Env, extra: &str) -> PathBuf {
    let path = env.path().join("gitconfig");
    std::fs::write(
        &path,
        format!(
            "[user]\n\tname = Test\n\temail = test@example.com\n\
             [credential]\n\thelper =\n{extra}"
        ),
    )
    .expect("write git config");
    path
}

fn git(env: &Env, bin: &Path, gitconfig: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    env.apply(&mut cmd);
    cmd.current_dir(env.path())
        .env("GIT_CONFIG_GLOBAL", gitconfig)
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
        .args(args);
    run_bounded(&mut cmd, HANG_DEADLINE)
}

/// Requests that carried an Authorization header.
fn authenticated(server: &GitServer) -> Vec<dexcred_testkit::git::AuthEvent> {
    server
        .auth_log()
        .into_iter()
        .filter(|e| e.scheme != AuthScheme::None)
        .collect()
}

/// git failed after reaching `server` (`reached` says how it got there),
/// and `server` saw no credentials.
fn reached_but_got_nothing(bin: &Path, out: &Output, server: &GitServer, reached: &str) {
    assert!(!out.status.success(), "{bin:?}: {}", stderr(out));
    assert!(!server.auth_log().is_empty(), "{bin:?}: {reached}");
    assert!(
        authenticated(server).is_empty(),
        "{bin:?}: {:?}",
        server.auth_log()
    );
}

/// A server that redirects every request to `target` (same path and query),
/// as a compromised or misconfigured trusted git server could.
fn redirector(target: String) -> Server {
    let handler: Handler = Arc::new(move |req: &Request| {
        let query = if req.query.is_empty() {
            String::new()
        } else {
            format!("?{}", req.query)
        };
        Reply::new(302).with_header("Location", &format!("{target}{}{query}", req.path))
    });
    Server::start(handler, None)
}

#[test]
fn git_helper_without_a_host_answers_for_none_and_says_why() {
    for bin in [git_new(), git_old()] {
        let env = Env::new();
        let idp = FakeIdp::pcd();
        let server = GitServer::start(idp.clone(), None, GitAuth::default());
        // The pipeline setup docs/git.md used to suggest: no URL, no --git-host.
        let config = git_home(
            &env,
            &format!("\thelper = dexcred {}\n", pcd_args(&idp).join(" ")),
        );
        let out = git(
            &env,
            &bin,
            &config,
            &["ls-remote", &format!("{}/repo.git", server.url())],
        );
        assert!(!out.status.success(), "{bin:?}: {}", stderr(&out));
        let err = stderr(&out);
        let ours: Vec<&str> = err.lines().filter(|l| l.starts_with("dexcred:")).collect();
        assert_eq!(ours.len(), 1, "{bin:?}: {err}");
        assert!(ours[0].contains("configured for no host"), "{err}");
        assert!(ours[0].contains("--git-host"), "{err}");
        assert!(authenticated(&server).is_empty(), "{:?}", server.auth_log());
        assert_eq!(
            idp.counts().total,
            0,
            "no login for a host it does not serve"
        );
    }
}

#[test]
fn git_gives_no_token_to_a_second_host_or_a_redirect_target() {
    for bin in [git_new(), git_old()] {
        let env = Env::new();
        let idp = FakeIdp::pcd();
        // Both servers accept the IdP's tokens: only the helper can say no.
        let trusted = GitServer::start(idp.clone(), None, GitAuth::default());
        let other = GitServer::start(idp.clone(), None, GitAuth::default());
        let bouncer = redirector(other.url());
        let helper = |hosts: &[String]| {
            format!(
                "\thelper = dexcred --git-host {} {}\n",
                hosts.join(","),
                pcd_args(&idp).join(" ")
            )
        };

        // Without --git-host, the URL scopes in git's config decide, even
        // when an unscoped dexcred entry is there too: the redirect target
        // gets nothing.
        let scoped = format!(
            "[credential \"{}\"]\n\thelper = dexcred {}\n",
            bouncer.url(),
            pcd_args(&idp).join(" ")
        );
        let config = git_home(
            &env,
            &format!("\thelper = dexcred {}\n{scoped}", pcd_args(&idp).join(" ")),
        );
        let out = git(
            &env,
            &bin,
            &config,
            &["ls-remote", &format!("{}/repo.git", bouncer.url())],
        );
        reached_but_got_nothing(&bin, &out, &other, "git followed the redirect");

        // Unscoped helper with --git-host: the trusted host works…
        other.clear_auth_log();
        let config = git_home(
            &env,
            &helper(&[host_of(&trusted.url()), host_of(&bouncer.url())]),
        );
        let ls = |url: String| git(&env, &bin, &config, &["ls-remote", &url]);
        let out = ls(format!("{}/repo.git", trusted.url()));
        assert!(out.status.success(), "{bin:?}: {}", stderr(&out));
        assert!(!authenticated(&trusted).is_empty());
        // …a second host answering 401 gets nothing…
        let out = ls(format!("{}/repo.git", other.url()));
        reached_but_got_nothing(&bin, &out, &other, "git did reach the second host");
        // …and neither does the host a trusted one redirects to.
        other.clear_auth_log();
        let out = ls(format!("{}/repo.git", bouncer.url()));
        reached_but_got_nothing(&bin, &out, &other, "git followed the redirect");
    }
}

#[test]
fn a_url_scoped_helper_from_git_dash_c_needs_no_git_host() {
    // The pipeline form of docs/git.md: the scope travels to the helper in
    // GIT_CONFIG_PARAMETERS, and `git config` (run by the helper) sees it.
    for bin in [git_new(), git_old()] {
        let env = Env::new();
        let idp = FakeIdp::pcd();
        let server = GitServer::start(idp.clone(), None, GitAuth::default());
        let other = GitServer::start(idp.clone(), None, GitAuth::default());
        let config = git_home(&env, "");
        for (target, works) in [(&server, true), (&other, false)] {
            let mut cmd = Command::new(&bin);
            env.apply(&mut cmd);
            cmd.current_dir(env.path())
                .env("GIT_CONFIG_GLOBAL", &config)
                .env("DEXCRED_PCD", idp.url())
                .env("DEXCRED_USERNAME", ALICE)
                .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
                .args(["-c", &format!("credential.{}.helper=", server.url())])
                .args(["-c", &format!("credential.{}.helper=dexcred", server.url())])
                // An unscoped one too, as a job may inherit: it must not
                // widen the scope.
                .args(["-c", "credential.helper=dexcred"])
                .args(["ls-remote", &format!("{}/repo.git", target.url())]);
            let out = run_bounded(&mut cmd, HANG_DEADLINE);
            assert_eq!(out.status.success(), works, "{bin:?}: {}", stderr(&out));
        }
        assert!(!authenticated(&server).is_empty());
        assert!(authenticated(&other).is_empty(), "{:?}", other.auth_log());
    }
}

#[test]
fn git_credential_fill_gets_nothing_for_other_protocols_or_cleartext_http() {
    for bin in [git_new(), git_old()] {
        let env = Env::new();
        let idp = FakeIdp::pcd();
        // An unscoped dexcred helper (git runs it for every URL) beside
        // https entries for both hosts: the hosts are the helper's, but only
        // over https.
        let line = format!("\thelper = dexcred {}\n", pcd_args(&idp).join(" "));
        let config = git_home(
            &env,
            &format!(
                "{line}[credential \"https://mail.example.com\"]\n{line}\
                 [credential \"https://git.example.com\"]\n{line}"
            ),
        );
        for input in [
            "protocol=smtp\nhost=mail.example.com\n\n",
            "protocol=imap\nhost=mail.example.com\n\n",
            "protocol=cert\npath=/home/u/cert.p12\n\n",
            "protocol=http\nhost=git.example.com\n\n",
        ] {
            let mut cmd = Command::new(&bin);
            env.apply(&mut cmd);
            cmd.current_dir(env.path())
                .env("GIT_CONFIG_GLOBAL", &config)
                .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
                .args(["credential", "fill"]);
            let out = run_with_input(&mut cmd, input);
            // git finds no credential and may not prompt: it fails, and
            // prints no password.
            assert!(!out.status.success(), "{bin:?} {input:?}: {}", stdout(&out));
            assert!(!stdout(&out).contains("password="), "{}", stdout(&out));
        }
        assert_eq!(idp.counts().total, 0, "{bin:?}: no token was even fetched");
    }
}

#[test]
fn helper_for_other_protocols_is_silent_with_exit_0() {
    let env = Env::new();
    let idp = FakeIdp::pcd();
    for input in [
        "protocol=smtp\nhost=mail.example.com:587\n\n",
        "protocol=imap\nhost=mail.example.com\n\n",
        "protocol=cert\npath=/x.p12\n\n",
        "protocol=ftp\nhost=mail.example.com\n\n",
    ] {
        let mut cmd = env.dexcred(["git", "get", "--git-host", "mail.example.com"]);
        cmd.args(pcd_args(&idp))
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        let out = run_with_input(&mut cmd, input);
        assert_eq!(out.status.code(), Some(0), "{input:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{input:?}: {}", stdout(&out));
    }
    assert_eq!(idp.counts().total, 0);
}

// ---------------------------------------------------------------------------
// 2. logout --all uses each entry's own settings
// ---------------------------------------------------------------------------

#[test]
fn logout_all_never_applies_one_providers_secret_or_url_to_another() {
    let env = Env::new();
    let a = FakeIdp::pcd();
    let b = FakeIdp::pcd();
    for idp in [&a, &b] {
        let out = run(env
            .dexcred(["login"])
            .args(keycloak_args(idp))
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD));
        ok(&out);
    }
    let refresh_token_of = |idp: &FakeIdp| -> String {
        env.cache_entries()
            .iter()
            .map(|p| read_entry(p))
            .find(|e| e["key"]["url"] == idp.keycloak_token_url("ocp").as_str())
            .and_then(|e| e["refresh_token"].as_str().map(str::to_owned))
            .expect("entry with a refresh token")
    };
    let (rt_a, rt_b) = (refresh_token_of(&a), refresh_token_of(&b));
    a.clear_requests();
    b.clear_requests();

    // Settings meant for A only: its secret and its logout URL.
    let a_logout = a.keycloak_token_url("ocp").replace("/token", "/logout");
    let out = run(env
        .dexcred(["logout", "--all", "--logout-url", &a_logout])
        .env("DEXCRED_CLIENT_SECRET", "secret-of-a"));
    let text = ok(&out);
    assert_eq!(
        text.matches("Deleted the cached tokens").count(),
        2,
        "{text}"
    );
    assert!(
        stderr(&out).contains("ignoring --logout-url, DEXCRED_CLIENT_SECRET with --all"),
        "{}",
        stderr(&out)
    );
    let sent = |idp: &FakeIdp| -> String {
        idp.requests()
            .iter()
            .map(|r| format!("{} {} {:?} {:?}", r.method, r.path, r.headers, r.form))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (to_a, to_b) = (sent(&a), sent(&b));
    for secret in ["secret-of-a", rt_a.as_str()] {
        assert!(!to_b.contains(secret), "B received A's secret: {to_b}");
    }
    assert!(
        !to_a.contains(&rt_b),
        "A received B's refresh token: {to_a}"
    );
    assert!(
        !to_a.contains("secret-of-a"),
        "no secret with --all: {to_a}"
    );
    // Each ended its own session at its own server.
    assert_eq!(a.active_sessions(ALICE), 0, "{to_a}");
    assert_eq!(b.active_sessions(ALICE), 0, "{to_b}");
    assert!(env.cache_entries().is_empty());
}

// ---------------------------------------------------------------------------
// 8. files named by flags
// ---------------------------------------------------------------------------

#[test]
fn fifos_named_by_flags_are_refused_instead_of_hanging() {
    let env = Env::new();
    let idp = FakeIdp::pcd();
    let fifo = env.path().join("fifo");
    mkfifo(&fifo);
    let fifo = fifo.display().to_string();
    let service = [
        "--token-url".to_string(),
        idp.keycloak_token_url("ocp"),
        "--client-id".into(),
        "svc".into(),
    ];
    // (flags, exit code, what, whether the password is in the environment:
    // a login needs one before it gets to the CA file)
    let cases: Vec<(Vec<String>, i32, &str, bool)> = vec![
        (
            [pcd_args(&idp), vec!["--password-file".into(), fifo.clone()]].concat(),
            5,
            "--password-file",
            false,
        ),
        (
            [
                service.to_vec(),
                vec!["--client-secret-file".into(), fifo.clone()],
            ]
            .concat(),
            5,
            "--client-secret-file",
            false,
        ),
        (
            [
                pcd_args(&idp),
                vec!["--certificate-authority".into(), fifo.clone()],
            ]
            .concat(),
            2,
            "--certificate-authority",
            true,
        ),
    ];
    for (args, code, what, with_password) in cases {
        let mut cmd = env.dexcred(["token"]);
        cmd.args(&args);
        if with_password {
            cmd.env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        }
        let out = run_bounded(&mut cmd, HANG_DEADLINE);
        let line = fails_with(&out, code);
        assert!(line.contains("FIFO"), "{what}: {line}");
        assert!(line.contains(&fifo), "{what}: {line}");
    }
    // kubeconfig's --cluster-certificate-authority too.
    let mut cmd = env.dexcred(["kubeconfig", "--server", "https://k8s.example.com"]);
    cmd.args(pcd_args(&idp))
        .args(["--cluster-certificate-authority", &fifo]);
    let line = fails_with(&run_bounded(&mut cmd, HANG_DEADLINE), 5);
    assert!(line.contains("FIFO"), "{line}");
    assert_eq!(idp.counts().total, 0);
}

#[test]
fn a_huge_ca_file_is_refused_without_reading_it() {
    let env = Env::new();
    let idp = FakeIdp::pcd();
    let big = env.path().join("big.pem");
    // 300 MB, sparse: costs no disk, but reading it whole would.
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(300 * 1024 * 1024))
        .expect("create sparse file");
    let mut cmd = env.dexcred(["token"]);
    cmd.args(pcd_args(&idp))
        .args(["--certificate-authority", big.to_str().unwrap()])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    let line = fails_with(&run_bounded(&mut cmd, HANG_DEADLINE), 2);
    assert!(line.contains("larger than 4096 KiB"), "{line}");
    assert_eq!(idp.counts().total, 0);
}

// ---------------------------------------------------------------------------
// 9. terminal injection
// ---------------------------------------------------------------------------

fn unsigned_jwt(claims: serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.c2ln")
}

/// Bytes that would act on a terminal rather than print.
fn assert_inert(text: &str) {
    for bad in ['\u{1b}', '\r', '\u{7}', '\u{202e}', '\u{9b}'] {
        assert!(
            !text.contains(bad),
            "{bad:?} reached the terminal: {text:?}"
        );
    }
}

#[test]
fn login_prints_hostile_claims_escaped() {
    let env = Env::new();
    let idp = FakeIdp::pcd();
    let path = idp
        .keycloak_token_url("ocp")
        .trim_start_matches(&idp.url())
        .to_owned();
    let claims = serde_json::json!({
        "sub": "x\u{1b}]0;pwned\u{7}",
        "email": "alice@example.com\r\u{1b}[2KLogged in as root",
        "name": "Alice \u{202e}toor\u{9b}31m",
        "groups": ["dev\nFAKE: line"],
        "iat": now(),
        "exp": now() + 600,
    });
    let token = unsigned_jwt(claims);
    idp.inject(Fault::new(
        &path,
        1,
        Reply::json(
            200,
            &serde_json::json!({
                "access_token": token, "id_token": token, "token_type": "Bearer",
                "expires_in": 600, "refresh_token": "rt-1"
            }),
        ),
    ));
    let out = run(env
        .dexcred(["login"])
        .args(keycloak_args(&idp))
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD));
    let text = ok(&out);
    assert_inert(&text);
    assert!(
        !text.lines().any(|l| l.starts_with("FAKE")),
        "a claim faked a line: {text}"
    );
    assert!(text.contains("\\u{1b}[2KLogged in as root"), "{text}");
    assert!(text.contains("\\u{202e}"), "{text}");

    // An error description quoted in the one error line, and `status`.
    // Twice: the refresh grant, then the password login it falls back to.
    idp.inject(Fault::new(
        &path,
        2,
        Reply::json(
            401,
            &serde_json::json!({"error": "invalid_grant",
                "error_description": "bad \u{202e}drowssap\u{1b}[8m hidden"}),
        ),
    ));
    let out = run(env
        .dexcred(["login"])
        .args(keycloak_args(&idp))
        .args(["--force-refresh"])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD));
    // The server's text reached stderr (as the error or as the warning of
    // the stale fallback), inert.
    assert!(stderr(&out).contains("drowssap"), "{}", stderr(&out));
    assert_inert(&stderr(&out));
    assert_inert(&ok(&run(&mut env.dexcred(["status"]))));
}

// ---------------------------------------------------------------------------
// 10. children inherit no secrets
// ---------------------------------------------------------------------------

const SECRET_VARS: [(&str, &str); 5] = [
    ("DEXCRED_PASSWORD", "pw-value-1"),
    ("DEXCRED_CLIENT_SECRET", "cs-value-2"),
    ("DEXCRED_OTP", "otp-value-3"),
    ("DEXCRED_PAT", "pat-value-4"),
    ("DEXCRED_SUBJECT_TOKEN", "st-value-5"),
];

fn assert_env_dump_clean(dump: &Path, run: &Output) {
    let text = std::fs::read_to_string(dump).unwrap_or_else(|e| {
        panic!(
            "the command did not dump its env ({e}); dexcred said: {}",
            stderr(run)
        )
    });
    assert!(text.contains("MARKER=visible"), "the dump works: {text}");
    for (name, value) in SECRET_VARS {
        assert!(!text.contains(name), "{name} inherited: {text}");
        assert!(!text.contains(value), "{name}'s value inherited: {text}");
    }
}

#[test]
fn password_and_otp_commands_do_not_inherit_secret_variables() {
    // `login`, not `token`: with DEXCRED_PAT set, `token` hands out the
    // personal access token and runs no login at all.
    let env = Env::new();
    let idp = FakeIdp::pcd();
    idp.add_user(User::new(ALICE, ALICE_PASSWORD).with_otp(&["123456"]));
    // --password-command: every secret variable but the password is set
    // (DEXCRED_PASSWORD would win over the command).
    let dump = env.path().join("password-env");
    let mut cmd = env.dexcred(["login"]);
    cmd.args(keycloak_args(&idp))
        .args([
            "--password-command",
            &format!("env > {}; echo {ALICE_PASSWORD}", dump.display()),
        ])
        .env("MARKER", "visible");
    for (name, value) in SECRET_VARS.iter().skip(1) {
        cmd.env(name, value);
    }
    let out = run_bounded(&mut cmd, HANG_DEADLINE);
    assert_env_dump_clean(&dump, &out);

    // --otp-command with the password (and the others but the OTP) set.
    let dump = env.path().join("otp-env");
    let mut cmd = env.dexcred(["login"]);
    cmd.args(keycloak_args(&idp))
        .args([
            "--otp-command",
            &format!("env > {}; echo 123456", dump.display()),
            "--force-refresh",
        ])
        .env("MARKER", "visible")
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    for (name, value) in SECRET_VARS
        .iter()
        .skip(1)
        .filter(|(n, _)| *n != "DEXCRED_OTP")
    {
        cmd.env(name, value);
    }
    ok(&run_bounded(&mut cmd, HANG_DEADLINE));
    let text = std::fs::read_to_string(&dump).expect("otp command ran");
    assert!(!text.contains(ALICE_PASSWORD), "password inherited: {text}");
    assert!(!text.contains("DEXCRED_PASSWORD"), "{text}");
    assert!(text.contains("MARKER=visible"), "{text}");
    for (name, _) in SECRET_VARS {
        assert!(!text.contains(name), "{name} inherited: {text}");
    }
}

// ---------------------------------------------------------------------------
// 11. sudo -E
// ---------------------------------------------------------------------------

#[test]
fn as_root_with_another_users_home_no_directory_is_created_there() {
    assert_eq!(
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() },
        0,
        "this test plays `sudo -E` and must run as root (CI does)"
    );
    let env = Env::new();
    let idp = FakeIdp::pcd();
    // The user's home, owned by uid 65534, with no ~/.cache yet.
    let user_home = env.path().join("user-home");
    std::fs::create_dir(&user_home).expect("create home");
    std::os::unix::fs::chown(&user_home, Some(65534), Some(65534)).expect("chown home");
    for xdg in [None, Some(user_home.join(".cache"))] {
        let mut cmd = env.dexcred(["token"]);
        cmd.args(pcd_args(&idp))
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
            .env("HOME", &user_home)
            .env_remove("XDG_CACHE_HOME");
        if let Some(xdg) = &xdg {
            cmd.env("XDG_CACHE_HOME", xdg);
        }
        let line = fails_with(&run_bounded(&mut cmd, HANG_DEADLINE), 5);
        let cache = user_home.join(".cache").join("dexcred");
        assert!(line.contains(&cache.display().to_string()), "{line}");
        assert!(line.contains("uid 65534"), "{line}");
        assert!(line.contains("--cache-dir"), "{line}");
        assert!(line.contains("sudo -E"), "{line}");
        assert!(!user_home.join(".cache").exists(), "nothing created");
    }
    assert_eq!(idp.counts().total, 0, "failed before any request");
    // A --cache-dir of root's own works.
    let mut cmd = env.dexcred(["token"]);
    cmd.args(pcd_args(&idp))
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
        .env("HOME", &user_home)
        .args([
            "--cache-dir",
            env.path().join("root-cache").to_str().unwrap(),
        ]);
    ok(&run_bounded(&mut cmd, HANG_DEADLINE));
}

// ---------------------------------------------------------------------------
// 13. validation before any request
// ---------------------------------------------------------------------------

#[test]
fn invalid_input_fails_with_exit_2_before_any_request() {
    let env = Env::new();
    let idp = FakeIdp::pcd();
    let host = host_of(&idp.url());
    let git_input = format!("protocol=http\nhost={host}\n\n");
    let mut cases: Vec<(Command, &str)> = Vec::new();
    // No --git-host: the flag would not even parse before this change, and
    // the check must come before the scope is looked up.
    let mut cmd = env.dexcred(["git", "get", "--git-username", "oauth2\nx"]);
    cmd.args(pcd_args(&idp));
    cases.push((cmd, "--git-username"));
    let mut cmd = env.dexcred(["git", "get", "--git-host", "https://git.example.com"]);
    cmd.args(pcd_args(&idp));
    cases.push((cmd, "--git-host"));
    let mut cmd = env.dexcred(["token", "--pcd", &idp.url(), "--username", "alice\n"]);
    cmd.arg("--project").arg("p");
    cases.push((cmd, "--username"));
    let mut cmd = env.dexcred(["token"]);
    cmd.args(pcd_args(&idp))
        .args(["--client-id", "kube\rnetes"]);
    cases.push((cmd, "--client-id"));
    let mut cmd = env.dexcred(["token"]);
    cmd.args(keycloak_args(&idp))
        .args(["--extra-param", "audience=api\u{1b}[0m"]);
    cases.push((cmd, "--extra-param"));
    for (mut cmd, flag) in cases {
        cmd.env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        let out = run_with_input(&mut cmd, &git_input);
        let line = fails_with(&out, 2);
        assert!(line.contains(flag), "{flag}: {line}");
    }
    assert_eq!(idp.counts().total, 0, "{:?}", idp.requests());
    assert!(idp.requests().is_empty());
}

// ---------------------------------------------------------------------------
// 1 (setup). `dexcred gitconfig` writes the safe, URL-scoped setup
// ---------------------------------------------------------------------------

#[test]
fn gitconfig_prints_and_writes_a_helper_scoped_to_one_host() {
    let env = Env::new();
    let idp = FakeIdp::pcd();
    let server = GitServer::start(idp.clone(), None, GitAuth::default());
    let other = GitServer::start(idp.clone(), None, GitAuth::default());
    let host = host_of(&server.url());
    let key = format!("credential.https://{host}.helper");
    let mut flags = vec!["--host".to_string(), host.clone()];
    flags.extend(pcd_args(&idp));
    flags.extend(["--scope".into(), "openid offline_access groups".into()]);

    // Printed: two commands a shell runs as they are.
    let printed = ok(&run(env.dexcred(["gitconfig"]).args(&flags)));
    assert_eq!(printed.lines().count(), 2, "{printed}");
    assert!(
        printed.contains(&format!("--replace-all {key} ''")),
        "{printed}"
    );
    let printed_config = env.path().join("printed.gitconfig");
    let mut sh = Command::new("/bin/sh");
    env.apply(&mut sh);
    sh.env("GIT_CONFIG_GLOBAL", &printed_config)
        .arg("-c")
        .arg(&printed);
    ok(&run(&mut sh));

    // --write runs the same commands.
    let written_config = env.path().join("written.gitconfig");
    let out = run(env
        .dexcred(["gitconfig", "--write"])
        .args(&flags)
        .env("GIT_CONFIG_GLOBAL", &written_config));
    ok(&out);
    let get_all = |config: &Path| {
        let mut cmd = Command::new(git_new());
        env.apply(&mut cmd);
        cmd.env("GIT_CONFIG_GLOBAL", config)
            .args(["config", "--global", "--get-all", &key]);
        ok(&run(&mut cmd))
    };
    let entries = get_all(&written_config);
    assert_eq!(entries, get_all(&printed_config));
    let lines: Vec<&str> = entries.lines().collect();
    assert_eq!(lines[0], "", "the list is cleared first: {entries}");
    assert!(
        lines[1].starts_with(&format!("dexcred --git-host {host} --pcd ")),
        "{entries}"
    );
    assert!(
        lines[1].contains("'openid offline_access groups'"),
        "{entries}"
    );

    // The helper git runs is the https one for that host; for the http test
    // server, copy the line under its http URL as a user of a local server
    // would. It serves that host and no other.
    let local = env.path().join("local.gitconfig");
    std::fs::write(
        &local,
        format!(
            "[credential]\n\thelper = {}\n[credential \"{}\"]\n\thelper = {}\n",
            lines[1],
            server.url(),
            lines[1]
        ),
    )
    .expect("write config");
    for (target, works) in [(&server, true), (&other, false)] {
        let out = git(
            &env,
            &git_new(),
            &local,
            &["ls-remote", &format!("{}/repo.git", target.url())],
        );
        assert_eq!(out.status.success(), works, "{}", stderr(&out));
    }
    assert!(authenticated(&other).is_empty(), "{:?}", other.auth_log());

    // A URL is not a host.
    let line = fails_with(
        &run(env
            .dexcred(["gitconfig", "--host", "https://git.example.com"])
            .args(pcd_args(&idp))),
        2,
    );
    assert!(
        line.contains("--host") && line.contains("host only"),
        "{line}"
    );
}
