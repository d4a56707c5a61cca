//! `--grant authorization_code` and `--grant device_code` end to end with
//! the real `oidc-provider` server (tests/oidc/server.mjs) and a real
//! headless Chromium (tests/oidc/browser.mjs) as `--browser-command`,
//! which logs in on the provider's own pages and follows the redirect to
//! dexcred's loopback listener. dexcred runs at a pseudo-terminal
//! (`script`), as a person would run it.
//!
//! Request counts come from the server's `/_test/counts`; browser windows
//! from the browser's log (one `start` record per window).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::oidc::{Browser, OidcServer};
use crate::common::pty::{
    argv, assert_terminal_ok, in_terminal, shell_line, spawn_in_terminal, transcript,
};
use crate::common::*;

/// dexcred's flags for the server's public native client.
fn flags(server: &OidcServer, grant: &str, browser: &Browser) -> Vec<String> {
    let (client, _) = server.client("native");
    vec![
        "--issuer".into(),
        server.issuer.clone(),
        "--client-id".into(),
        client,
        "--grant".into(),
        grant.into(),
        "--browser-command".into(),
        browser.command().display().to_string(),
    ]
}

/// `dexcred <sub> <flags>` at a terminal, stdout into `out`; returns the
/// output (stdout: what the terminal showed) and what went to stdout.
fn at_terminal(
    env: &Env,
    sub: &str,
    flags: &[String],
    extra: &[(&str, &str)],
) -> (std::process::Output, String) {
    let out_file = env.path().join(format!("stdout-{}", unique()));
    let out = in_terminal(env, &argv(&["dexcred", sub], flags), extra, Some(&out_file));
    let printed = std::fs::read_to_string(&out_file).unwrap_or_default();
    (out, printed)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The error line a failed terminal run showed (the last `dexcred: ` line).
fn terminal_failure(out: &std::process::Output, code: i32) -> String {
    let shown = transcript(out);
    assert_eq!(out.status.code(), Some(code), "terminal:\n{shown}");
    shown
        .lines()
        .rfind(|l| l.starts_with("dexcred: "))
        .unwrap_or_else(|| panic!("no dexcred line:\n{shown}"))
        .to_string()
}

fn access_token(env: &Env) -> String {
    entry_token(&env.only_entry(), "access_token").expect("cached access_token")
}

#[test]
fn browser_login_then_token_and_kubectl_use_the_cache_without_another_prompt() {
    let server = OidcServer::start();
    let browser = Browser::new("login", &[]);
    let env = Env::new();
    let flags = flags(&server, "authorization_code", &browser);

    let (out, printed) = at_terminal(&env, "login", &flags, &[]);
    assert_terminal_ok(&out);
    let shown = transcript(&out);
    assert!(shown.contains("log in with your browser"), "{shown}");
    assert!(
        printed.starts_with(&format!("Logged in to {}", server.issuer)),
        "{printed}"
    );
    assert_eq!(browser.starts(), 1);
    let start = &browser.events("start")[0];
    assert_eq!(start["params"]["code_challenge_method"], "S256");
    assert!(
        start["params"]["redirect_uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
        "{start}"
    );
    let ends = browser.wait_ended();
    assert_eq!(ends[0]["result"], "ok", "{ends:?}");
    assert!(
        ends[0]["listener_text"]
            .as_str()
            .is_some_and(|t| t.contains("You may close this tab")),
        "{ends:?}"
    );
    assert_eq!(server.count(&["authorization_code"]), 1);
    let token = access_token(&env);
    let requests_after_login = server.counts()["requests"].clone();

    // No terminal, CI: served from the cache, nobody asked anything.
    let mut cmd = env.dexcred(argv(&["token"], &flags));
    cmd.env("CI", "true");
    let out = run_bounded(&mut cmd, Duration::from_secs(30));
    assert_eq!(ok(&out).trim(), token);
    // kubectl's exec plugin, non-interactive (interactiveMode Never).
    let mut cmd = env.dexcred(argv(&["kubectl"], &flags));
    cmd.env(
        "KUBERNETES_EXEC_INFO",
        r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#,
    );
    let out = run_bounded(&mut cmd, Duration::from_secs(30));
    let cred: serde_json::Value = serde_json::from_str(&ok(&out)).expect("ExecCredential");
    assert_eq!(cred["status"]["token"], token.as_str());
    assert_eq!(
        server.counts()["requests"],
        requests_after_login,
        "no request"
    );
    assert_eq!(browser.starts(), 1, "no second window");
}

#[test]
fn after_a_chromium_login_real_kubectl_and_git_need_no_further_prompt() {
    use dexcred_testkit::git::{GitAuth, GitServer};
    use dexcred_testkit::idp::FakeIdp;
    use dexcred_testkit::kube::KubeApi;
    use dexcred_testkit::tls::TestCa;

    let server = OidcServer::start();
    let browser = Browser::new("login", &[]);
    let env = Env::new();
    let flags = flags(&server, "authorization_code", &browser);
    assert_terminal_ok(&at_terminal(&env, "login", &flags, &[]).0);
    let token = access_token(&env);
    // The cluster and the git server trust this provider's tokens.
    let trust = FakeIdp::pcd();
    trust.trust_token(&token, &server.username(), Duration::from_secs(600));
    let kube = KubeApi::start(trust.clone(), &TestCa::new());
    let git = GitServer::start(trust.clone(), None, GitAuth::default());
    let requests = server.counts()["requests"].clone();

    // The kubeconfig dexcred writes (interactiveMode IfAvailable), used by
    // kubectl 1.32 without a terminal.
    let mut args = argv(&["kubeconfig"], &flags);
    args.extend([
        "--server".to_string(),
        kube.url(),
        "--cluster-certificate-authority".into(),
    ]);
    args.push(kube.ca_pem_path().display().to_string());
    let kubeconfig = env.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        ok(&run_bounded(
            &mut env.dexcred(&args),
            Duration::from_secs(30),
        )),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(kubectl("1.32"));
    env.apply(&mut cmd);
    cmd.arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "pods"]);
    let listed = ok(&run_bounded(&mut cmd, Duration::from_secs(60)));
    assert!(listed.lines().any(|l| l.starts_with("demo ")), "{listed}");
    assert!(kube.seen_tokens().contains(&token));

    // git 2.47 through the credential helper, GIT_TERMINAL_PROMPT=0.
    let mut cmd = std::process::Command::new(git_new());
    env.apply(&mut cmd);
    cmd.current_dir(env.path())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["-c", "credential.helper="])
        .arg("-c")
        .arg(format!(
            "credential.{}.helper=!dexcred git {}",
            git.url(),
            shell_line(&flags)
        ))
        .args(["clone", "-q", &git.repo_url(), "repo"]);
    let out = run_bounded(&mut cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{}", stderr(&out));

    assert_eq!(
        server.counts()["requests"],
        requests,
        "no request to the provider"
    );
    assert_eq!(browser.starts(), 1, "no second window");
}

#[test]
fn an_expired_token_is_refreshed_silently_with_the_rotated_refresh_token() {
    let server = OidcServer::start();
    let browser = Browser::new("login", &[]);
    let env = Env::new();
    let flags = flags(&server, "authorization_code", &browser);
    assert_terminal_ok(&at_terminal(&env, "token", &flags, &[]).0);
    let entry = env.only_entry();
    let (token, refresh) = (
        access_token(&env),
        read_entry(&entry)["refresh_token"].clone(),
    );
    age_tokens(&entry, -10);

    // Unattended (CI, no terminal): the refresh needs nobody.
    let mut cmd = env.dexcred(argv(&["token"], &flags));
    cmd.env("CI", "true");
    let out = run_bounded(&mut cmd, Duration::from_secs(30));
    let renewed = ok(&out).trim().to_string();
    assert_ne!(renewed, token);
    assert_eq!(renewed, access_token(&env));
    assert_ne!(
        read_entry(&entry)["refresh_token"],
        refresh,
        "rotated and saved"
    );
    assert_eq!(server.count(&["refresh_token"]), 1);
    assert_eq!(server.count(&["authorization_code"]), 1);
    assert_eq!(browser.starts(), 1);
}

#[test]
fn nobody_there_means_no_browser_no_request_and_exit_3() {
    let server = OidcServer::start();
    let env = Env::new();
    let interactive_false = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#;
    for grant in ["authorization_code", "device_code"] {
        let browser = Browser::new("login", &[]);
        let flags = flags(&server, grant, &browser);
        // No terminal at all.
        let out = run_bounded(
            &mut env.dexcred(argv(&["token"], &flags)),
            Duration::from_secs(30),
        );
        let line = fails_with(&out, 3);
        assert!(line.contains("`dexcred login --issuer"), "{line}");
        assert!(line.contains(&format!("--grant {grant}")), "{line}");
        // A terminal, but CI says unattended.
        let (out, _) = at_terminal(&env, "token", &flags, &[("CI", "true")]);
        assert!(terminal_failure(&out, 3).contains("in a terminal"));
        // kubectl with interactiveMode Never, at a terminal.
        let (out, _) = at_terminal(
            &env,
            "kubectl",
            &flags,
            &[("KUBERNETES_EXEC_INFO", interactive_false)],
        );
        assert!(terminal_failure(&out, 3).contains("dexcred login"));
        // git with GIT_TERMINAL_PROMPT=0, at a terminal.
        let mut git_words = argv(&["dexcred", "git", "--git-host", "git.example.com"], &flags);
        git_words.push("get".into());
        let line = format!(
            "printf 'protocol=https\\nhost=git.example.com\\n\\n' | {}",
            shell_line(&git_words)
        );
        let out = run_bounded(
            &mut crate::common::pty::script_command(&env, &line, &[("GIT_TERMINAL_PROMPT", "0")]),
            Duration::from_secs(60),
        );
        assert!(terminal_failure(&out, 3).contains("dexcred login"));
        assert_eq!(browser.starts(), 0, "{grant}: no browser");
    }
    let counts = server.counts();
    assert_eq!(
        counts["requests"],
        serde_json::json!({}),
        "the IdP saw nothing: {counts}"
    );
    assert!(env.cache_entries().is_empty());
}

/// Ten `dexcred token` processes started together at one terminal on an
/// empty cache; the person takes longer than `--lock-timeout` (1 s), so the
/// waiters must wait for the login instead of giving up. Returns what the
/// terminal showed; asserts all ten printed the one cached token.
fn ten_at_once(server: &OidcServer, grant: &str, browser: &Browser) -> String {
    let slow = browser.dir().join("slow-browser");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\nsleep 3\nexec {} \"$@\"\n",
            browser.command().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let env = Env::new();
    let mut flags = flags(server, grant, browser);
    let last = flags.len() - 1;
    flags[last] = slow.display().to_string();
    flags.extend(["--lock-timeout".to_string(), "1".to_string()]);
    let run = shell_line(&argv(&["dexcred", "token"], &flags));
    let line = format!("for i in 0 1 2 3 4 5 6 7 8 9; do {run} < /dev/tty > out.$i & done; wait");
    let mut cmd = crate::common::pty::script_command(&env, &line, &[]);
    cmd.current_dir(env.path());
    let out = run_bounded(&mut cmd, Duration::from_secs(180));
    let shown = transcript(&out);
    let tokens: Vec<String> = (0..10)
        .map(|i| {
            std::fs::read_to_string(env.path().join(format!("out.{i}")))
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect();
    let token = access_token(&env);
    assert!(tokens.iter().all(|t| *t == token), "{tokens:?}\n{shown}");
    assert_eq!(browser.starts(), 1, "{shown}");
    shown
}

#[test]
fn ten_processes_on_an_empty_cache_open_one_browser_window() {
    let server = OidcServer::start();
    let browser = Browser::new("login", &[]);
    let shown = ten_at_once(&server, "authorization_code", &browser);
    assert_eq!(server.count(&["authorization_code"]), 1);
    assert_eq!(server.count(&["requests", "GET /auth"]), 1);
    assert_eq!(server.count(&["requests", "POST /token"]), 1);
    assert_eq!(
        shown.matches("log in with your browser").count(),
        1,
        "{shown}"
    );
}

#[test]
fn ten_processes_on_an_empty_cache_get_one_device_code() {
    let server = OidcServer::start();
    let browser = Browser::new("device", &[]);
    let shown = ten_at_once(&server, "device_code", &browser);
    assert_eq!(server.count(&["device_authorization"]), 1);
    assert_eq!(server.count(&["device_code"]), 1);
    assert_eq!(shown.matches("enter the code").count(), 1, "{shown}");
}

#[test]
fn denied_consent_tampered_state_and_a_missing_code_each_end_the_login() {
    let server = OidcServer::start();
    let env = Env::new();
    for (mode, code, says) in [
        ("deny", 3, "access_denied"),
        ("tamper-state", 3, "state does not match"),
        ("drop-code", 4, "no authorization code"),
    ] {
        let browser = Browser::new(mode, &[]);
        let (out, printed) = at_terminal(
            &env,
            "token",
            &flags(&server, "authorization_code", &browser),
            &[],
        );
        let line = terminal_failure(&out, code);
        assert!(line.contains(says), "{mode}: {line}");
        assert!(printed.is_empty(), "{mode}: nothing on stdout");
        assert_eq!(browser.starts(), 1);
        let end = &browser.wait_ended()[0];
        assert!(
            end["listener_status"].as_u64().is_some_and(|s| s >= 400),
            "{mode}: {end}"
        );
    }
    // Not one code was exchanged, nothing cached.
    assert_eq!(server.count(&["authorization_code"]), 0);
    assert_eq!(server.count(&["requests", "POST /token"]), 0);
    assert!(env.cache_entries().is_empty());
}

#[test]
fn a_person_who_never_comes_back_times_out_and_the_port_is_freed() {
    let server = OidcServer::start();
    let env = Env::new();
    let browser = Browser::new("ignore", &[]);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut flags = flags(&server, "authorization_code", &browser);
    flags.extend(["--login-timeout", "3", "--listen-address"].map(String::from));
    flags.push(format!("127.0.0.1:{port}"));
    let (out, _) = at_terminal(&env, "token", &flags, &[]);
    let line = terminal_failure(&out, 3);
    assert!(
        line.contains("no login within 3s (--login-timeout)"),
        "{line}"
    );
    TcpListener::bind(("127.0.0.1", port)).expect("the listener is gone with the run");
    assert!(env.cache_entries().is_empty());
}

#[test]
fn a_busy_listen_address_is_skipped_and_all_busy_is_one_clear_error() {
    let server = OidcServer::start();
    let env = Env::new();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();

    let browser = Browser::new("login", &[]);
    let mut flags = flags(&server, "authorization_code", &browser);
    flags.extend([
        "--listen-address".into(),
        busy_addr.clone(),
        "--listen-address".into(),
        free.clone(),
    ]);
    assert_terminal_ok(&at_terminal(&env, "token", &flags, &[]).0);
    assert_eq!(
        browser.events("start")[0]["params"]["redirect_uri"],
        format!("http://{free}").as_str()
    );

    let env = Env::new();
    let browser = Browser::new("login", &[]);
    let mut flags = self::flags(&server, "authorization_code", &browser);
    flags.extend(["--listen-address".into(), busy_addr.clone()]);
    let (out, _) = at_terminal(&env, "token", &flags, &[]);
    let line = terminal_failure(&out, 5);
    assert!(
        line.contains(&busy_addr) && line.contains("--listen-address"),
        "{line}"
    );
    assert_eq!(browser.starts(), 0);
    drop(busy);
}

#[test]
fn device_login_with_the_complete_uri_honours_slow_down() {
    let server = OidcServer::start_with(&["--slow-down", "1"]);
    let browser = Browser::new("device", &[]);
    let env = Env::new();
    let (out, printed) = at_terminal(&env, "token", &flags(&server, "device_code", &browser), &[]);
    assert_terminal_ok(&out);
    let shown = transcript(&out);
    let user_code = browser.events("start")[0]["params"]["user_code"]
        .as_str()
        .expect("the browser got the complete URI with the user code")
        .to_string();
    assert!(
        shown.contains(&format!("enter the code {user_code}")),
        "{shown}"
    );
    assert_eq!(printed.trim(), access_token(&env));
    assert_eq!(server.count(&["device_authorization"]), 1);
    assert_eq!(server.count(&["device_code"]), 1);
    assert_eq!(server.count(&["token_errors", "slow_down"]), 1);
    assert_eq!(
        server.count(&["device_polls_too_fast"]),
        0,
        "{}",
        server.counts()
    );
}

#[test]
fn device_login_denied_or_expired_ends_with_exit_3() {
    let env = Env::new();
    // The person aborts on the confirmation page; or never comes, and the
    // code expires (after 3 s here).
    for (server, mode, says) in [
        (OidcServer::start(), "device-deny", "denied"),
        (
            OidcServer::start_with(&["--device-code-ttl", "3"]),
            "ignore",
            "expired",
        ),
    ] {
        let browser = Browser::new(mode, &[]);
        let (out, printed) =
            at_terminal(&env, "token", &flags(&server, "device_code", &browser), &[]);
        let line = terminal_failure(&out, 3);
        assert!(line.contains(says), "{mode}: {line}");
        assert!(printed.is_empty());
        assert_eq!(server.count(&["device_code"]), 0);
        assert_eq!(server.count(&["device_polls_too_fast"]), 0);
    }
    assert!(env.cache_entries().is_empty());
}

/// Waits (bounded) until `check` holds.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_server_going_down_mid_poll_is_exit_4() {
    let mut server = OidcServer::start();
    let env = Env::new();
    let browser = Browser::new("ignore", &[]);
    let line = shell_line(&argv(
        &["dexcred", "token"],
        &flags(&server, "device_code", &browser),
    ));
    let child = spawn_in_terminal(&env, &line, &[]);
    eventually("a device poll", || {
        server.count(&["token_errors", "authorization_pending"]) >= 1
    });
    server.stop();
    let out = child.wait_with_output().unwrap();
    let line = terminal_failure(&out, 4);
    assert!(line.contains("waiting for the device login"), "{line}");
    assert!(env.cache_entries().is_empty());
}

#[test]
fn ctrl_c_stops_a_device_login_cleanly() {
    let server = OidcServer::start();
    let env = Env::new();
    let browser = Browser::new("ignore", &[]);
    let flags = flags(&server, "device_code", &browser);
    let line = shell_line(&argv(&["dexcred", "token"], &flags));
    let mut child = spawn_in_terminal(&env, &line, &[]);
    eventually("a device poll", || {
        server.count(&["token_errors", "authorization_pending"]) >= 1
    });
    // Ctrl-C typed at the terminal.
    child.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let polls = server.count(&["token_errors", "authorization_pending"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        server.count(&["token_errors", "authorization_pending"]),
        polls,
        "polling stopped"
    );
    // Nothing half-written, nothing left locked: the next run starts at once.
    let leftovers: Vec<PathBuf> = std::fs::read_dir(env.cache_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| !is_lock(p))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let mut flags = flags.clone();
    flags.extend(["--lock-timeout", "1", "--login-timeout", "1"].map(String::from));
    let (out, _) = at_terminal(&env, "token", &flags, &[]);
    assert!(terminal_failure(&out, 3).contains("--login-timeout"));
}

/// The entry lock (`.lock`) and the login lock (`.login`): empty files that
/// stay, unlike a half-written entry.
fn is_lock(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "lock" || x == "login")
}

#[test]
fn logout_revokes_the_refresh_token() {
    let server = OidcServer::start();
    let browser = Browser::new("login", &[]);
    let env = Env::new();
    let flags = flags(&server, "authorization_code", &browser);
    assert_terminal_ok(&at_terminal(&env, "login", &flags, &[]).0);
    let out = run_bounded(
        &mut env.dexcred(argv(&["logout"], &flags)),
        Duration::from_secs(30),
    );
    let text = ok(&out);
    assert!(text.contains("revoked the refresh token"), "{text}");
    assert_eq!(server.count(&["revocation"]), 1);
    assert!(env.cache_entries().is_empty());
}
