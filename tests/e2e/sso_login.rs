//! Browser and device logins against the testkit's SSO issuer (`/sso` of
//! the fake IdP), whose tokens the HTTPS Kubernetes stub and the git server
//! accept — so real kubectl (1.32) and real git can use them — and whose
//! request log shows every form field dexcred sent (to prove the secrets
//! in them never reach stderr). The "browser" is real curl following the
//! issuer's redirect to dexcred's listener; the device approval is
//! scripted. The real-server, real-browser tests are in browser_login.rs.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::pty::{argv, assert_terminal_ok, in_terminal, transcript};
use crate::common::*;
use dexcred_testkit::git::{GitAuth, GitServer};
use dexcred_testkit::idp::{BrowserMode, DeviceAnswer, FakeIdp};
use dexcred_testkit::kube::{ExecPlugin, KubeApi};
use dexcred_testkit::tls::TestCa;

const CLIENT: &str = "kube-sso";

struct World {
    env: Env,
    idp: FakeIdp,
    browser_log: PathBuf,
}

impl World {
    fn new() -> World {
        let env = Env::new();
        let idp = FakeIdp::pcd();
        idp.add_client(CLIENT, None);
        let browser_log = env.path().join("browser.log");
        // A browser: records the URL, then follows the issuer's redirect
        // to dexcred's listener (device URLs are only recorded: the
        // approval is scripted on the issuer).
        let script = format!(
            "#!/bin/sh\necho \"$1\" >> '{log}'\ncase \"$1\" in */device*) exit 0;; esac\n\
             exec curl -sS -L -o /dev/null --max-time 30 \"$1\"\n",
            log = browser_log.display()
        );
        let path = env.bin_dir().join("test-browser");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        World {
            env,
            idp,
            browser_log,
        }
    }

    fn flags(&self, grant: &str) -> Vec<String> {
        [
            "--issuer",
            &self.idp.sso_issuer(),
            "--client-id",
            CLIENT,
            "--grant",
            grant,
            "--browser-command",
            "test-browser",
        ]
        .map(String::from)
        .to_vec()
    }

    fn browser_runs(&self) -> Vec<String> {
        std::fs::read_to_string(&self.browser_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn requests_to(&self, path: &str) -> usize {
        self.idp
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// `dexcred <words>` at a terminal; returns (output, stdout text).
    fn at_terminal(
        &self,
        words: &[String],
        env: &[(&str, &str)],
    ) -> (std::process::Output, String) {
        let out_file = self.env.path().join("stdout");
        let _ = std::fs::remove_file(&out_file);
        let mut all = vec!["dexcred".to_string()];
        all.extend_from_slice(words);
        let out = in_terminal(&self.env, &all, env, Some(&out_file));
        (out, std::fs::read_to_string(&out_file).unwrap_or_default())
    }
}

#[test]
fn device_login_through_real_kubectl_with_interactive_mode_if_available() {
    let w = World::new();
    w.idp.set_device_timing(1, 600);
    w.idp
        .script_device(&[DeviceAnswer::Pending, DeviceAnswer::Pending]);
    let kube = KubeApi::start(w.idp.clone(), &TestCa::new());
    let mut args = argv(&["kubeconfig"], &w.flags("device_code"));
    args.extend(["--server".to_string(), kube.url()]);
    args.push("--cluster-certificate-authority".into());
    args.push(kube.ca_pem_path().display().to_string());
    let out = run_bounded(&mut w.env.dexcred(&args), Duration::from_secs(30));
    let kubeconfig_text = ok(&out);
    assert!(kubeconfig_text.contains("IfAvailable"), "{kubeconfig_text}");
    let kubeconfig = w.env.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kubeconfig_text).unwrap();

    let kubectl = kubectl("1.32").display().to_string();
    let words = [
        kubectl.as_str(),
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "get",
        "pods",
    ];
    let out = in_terminal(&w.env, &words, &[], None);
    let shown = transcript(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("enter the code WDJB-MJHT"), "{shown}");
    assert!(shown.lines().any(|l| l.starts_with("demo ")), "{shown}");
    assert_eq!(w.requests_to("/sso/device/code"), 1);
    assert_eq!(w.idp.device_poll_times().len(), 3);
    // The browser command got the complete verification URI.
    assert_eq!(
        w.browser_runs(),
        [format!("{}/device?user_code=WDJB-MJHT", w.idp.sso_issuer())]
    );
    let token = entry_token(&w.env.only_entry(), "access_token").unwrap();
    assert!(kube.seen_tokens().contains(&token));

    // A second kubectl (interactiveMode Never now): the cache, no prompt.
    let plugin = ExecPlugin::new(
        "dexcred",
        &argv(&["kubectl"], &w.flags("device_code"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let never = w.env.path().join("kubeconfig-never");
    std::fs::write(&never, kube.kubeconfig_with_exec(&plugin)).unwrap();
    let mut cmd = Command::new(kubectl);
    w.env.apply(&mut cmd);
    cmd.args(["--kubeconfig", &never.display().to_string(), "get", "pods"]);
    assert!(ok(&run_bounded(&mut cmd, Duration::from_secs(60))).contains("demo"));
    assert_eq!(w.requests_to("/sso/device/code"), 1);
}

#[test]
fn kubectl_with_interactive_mode_never_fails_fast_and_starts_nothing() {
    let w = World::new();
    let kube = KubeApi::start(w.idp.clone(), &TestCa::new());
    for grant in ["device_code", "authorization_code"] {
        let args = argv(&["kubectl"], &w.flags(grant));
        let plugin = ExecPlugin::new(
            "dexcred",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let path = w.env.path().join("kubeconfig");
        std::fs::write(&path, kube.kubeconfig_with_exec(&plugin)).unwrap();
        // At a terminal, but interactiveMode Never: kubectl says
        // interactive=false.
        let kubectl = kubectl("1.32").display().to_string();
        let out = in_terminal(
            &w.env,
            &[
                kubectl.as_str(),
                "--kubeconfig",
                &path.display().to_string(),
                "get",
                "pods",
            ],
            &[],
            None,
        );
        let shown = transcript(&out);
        assert!(!out.status.success(), "{shown}");
        assert!(shown.contains("run `dexcred login --issuer"), "{shown}");
        assert!(shown.contains("exit code 3"), "{shown}");
    }
    assert!(w.idp.requests().is_empty(), "the IdP saw nothing");
    assert!(w.browser_runs().is_empty(), "no browser");
}

#[test]
fn after_a_browser_login_git_uses_the_cached_token_without_asking() {
    let w = World::new();
    let (out, _) = w.at_terminal(&argv(&["login"], &w.flags("authorization_code")), &[]);
    assert_terminal_ok(&out);
    assert_eq!(w.browser_runs().len(), 1);
    let server = GitServer::start(w.idp.clone(), None, GitAuth::default());
    let requests = w.idp.requests().len();
    for git in [git_new(), git_old()] {
        let mut cmd = Command::new(&git);
        w.env.apply(&mut cmd); // GIT_TERMINAL_PROMPT=0: nobody to ask
        cmd.current_dir(w.env.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(["-c", "credential.helper="])
            .arg("-c")
            .arg(format!(
                "credential.{}.helper=!dexcred git {}",
                server.url(),
                w.flags("authorization_code").join(" ")
            ))
            .args(["clone", "-q", &server.repo_url()])
            .arg(format!("clone-{}", git.display().to_string().len()));
        let out = run_bounded(&mut cmd, Duration::from_secs(60));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(w.idp.requests().len(), requests, "no IdP request");
    assert_eq!(w.browser_runs().len(), 1, "no second browser");
}

#[test]
fn codes_verifiers_and_tokens_never_reach_stderr_even_verbose() {
    let w = World::new();
    w.idp.set_device_timing(1, 600);
    w.idp.script_device(&[DeviceAnswer::Pending]);
    let mut shown = String::new();
    let mut printed = Vec::new();
    let mut tokens = Vec::new();
    for grant in ["authorization_code", "device_code"] {
        let env_cache = w.env.path().join(format!("cache-{grant}"));
        let mut flags = w.flags(grant);
        flags.extend([
            "-v".to_string(),
            "--cache-dir".into(),
            env_cache.display().to_string(),
        ]);
        let (out, stdout_text) = w.at_terminal(&argv(&["token"], &flags), &[]);
        assert_terminal_ok(&out);
        shown.push_str(&transcript(&out));
        printed.push(stdout_text);
        // Refresh too (-v), after making the token expire.
        let entry = std::fs::read_dir(&env_cache)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
            .unwrap();
        let before = read_entry(&entry);
        age_tokens(&entry, -5);
        let (out, _) = w.at_terminal(&argv(&["token"], &flags), &[]);
        assert_terminal_ok(&out);
        shown.push_str(&transcript(&out));
        let after = read_entry(&entry);
        for e in [before, after] {
            for field in ["access_token", "id_token"] {
                printed_secret(&mut tokens, e[field]["value"].as_str());
            }
            printed_secret(&mut tokens, e["refresh_token"].as_str());
        }
    }
    let mut secrets: Vec<String> = Vec::new();
    for r in w.idp.requests() {
        for (k, v) in &r.form {
            if ["code", "code_verifier", "device_code", "refresh_token"].contains(&k.as_str()) {
                secrets.push(v.clone());
            }
        }
    }
    assert!(secrets.len() >= 6, "{secrets:?}");
    secrets.extend(tokens);
    assert!(
        shown.contains("got authorization code"),
        "-v was on:\n{shown}"
    );
    for s in &secrets {
        assert!(s.len() >= 20);
        assert!(
            !shown.contains(s.as_str()),
            "a secret reached the terminal:\n{shown}"
        );
    }
    // stdout: the token and nothing else.
    for out in &printed {
        assert_eq!(out.lines().count(), 1, "{out}");
    }
}

fn printed_secret(list: &mut Vec<String>, value: Option<&str>) {
    if let Some(v) = value {
        list.push(v.to_string());
    }
}

#[test]
fn an_id_token_with_another_nonce_is_refused() {
    let w = World::new();
    w.idp.set_browser_mode(BrowserMode::WrongNonce);
    let (out, printed) = w.at_terminal(&argv(&["token"], &w.flags("authorization_code")), &[]);
    assert_eq!(out.status.code(), Some(4), "{}", transcript(&out));
    assert!(transcript(&out).contains("nonce does not match"));
    assert!(printed.is_empty());
    assert!(w.env.cache_entries().is_empty());
}

#[test]
fn a_refresh_without_id_token_keeps_the_old_one_only_while_it_lives() {
    let w = World::new();
    let mut flags = w.flags("authorization_code");
    flags.extend(["--token-field".to_string(), "id_token".into()]);
    let (out, first) = w.at_terminal(&argv(&["token"], &flags), &[]);
    assert_terminal_ok(&out);
    w.idp.set_omit_id_token_on_refresh(true);
    let entry = w.env.only_entry();

    // Inside its margin but alive: served (with a warning), after a refresh.
    age_tokens(&entry, 60);
    let out = run_bounded(
        &mut w.env.dexcred(argv(&["token"], &flags)),
        Duration::from_secs(30),
    );
    assert_eq!(ok(&out).trim(), first.trim());
    assert_eq!(w.requests_to("/sso/token"), 2);

    // Expired: no terminal, so "log in again" is a clear exit 3 ...
    age_tokens(&entry, -5);
    let out = run_bounded(
        &mut w.env.dexcred(argv(&["token"], &flags)),
        Duration::from_secs(30),
    );
    assert!(fails_with(&out, 3).contains("dexcred login"));
    // ... and at a terminal a new browser login.
    let (out, renewed) = w.at_terminal(&argv(&["token"], &flags), &[]);
    assert_terminal_ok(&out);
    assert_ne!(renewed.trim(), first.trim());
    assert_eq!(w.browser_runs().len(), 2);
}

#[test]
fn the_browser_gets_neither_our_secrets_nor_our_stdout() {
    let w = World::new();
    w.idp
        .add_client("kube-sso-confidential", Some("client-secret-value-123"));
    // A browser that reports its environment and chats on stdout.
    let env_dump = w.env.path().join("browser-env");
    let script = format!(
        "#!/bin/sh\nenv > '{}'\necho BROWSER-STDOUT\nexec curl -sS -L -o /dev/null --max-time 30 \"$1\"\n",
        env_dump.display()
    );
    let chatty = w.env.bin_dir().join("chatty-browser");
    std::fs::write(&chatty, script).unwrap();
    std::fs::set_permissions(&chatty, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut flags = w.flags("authorization_code");
    flags[3] = "kube-sso-confidential".into();
    flags[7] = "chatty-browser".into();
    let (out, printed) = w.at_terminal(
        &argv(&["token"], &flags),
        &[
            ("DEXCRED_CLIENT_SECRET", "client-secret-value-123"),
            ("DEXCRED_PASSWORD", "password-value-456"),
        ],
    );
    assert_terminal_ok(&out);
    assert_eq!(
        printed.trim(),
        entry_token(&w.env.only_entry(), "access_token").unwrap()
    );
    let seen = std::fs::read_to_string(&env_dump).expect("the browser ran");
    assert!(seen.contains("HOME="), "{seen}");
    assert!(!seen.contains("client-secret-value-123"), "{seen}");
    assert!(!seen.contains("password-value-456"), "{seen}");
}

#[test]
fn git_at_a_terminal_logs_in_through_the_browser_itself() {
    let w = World::new();
    let server = GitServer::start(w.idp.clone(), None, GitAuth::default());
    let helper = format!(
        "credential.{}.helper=!dexcred git {}",
        server.url(),
        w.flags("authorization_code").join(" ")
    );
    let git = git_new().display().to_string();
    let dest = w.env.path().join("repo").display().to_string();
    let words = [
        git.as_str(),
        "-c",
        "credential.helper=",
        "-c",
        &helper,
        "clone",
        "-q",
        &server.repo_url(),
        &dest,
    ];
    let out = in_terminal(&w.env, &words, &[("GIT_CONFIG_GLOBAL", "/dev/null")], None);
    let shown = transcript(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("log in with your browser"), "{shown}");
    assert_eq!(w.browser_runs().len(), 1);
    assert!(std::path::Path::new(&dest).join(".git").exists());
}
