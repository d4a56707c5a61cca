//! End to end: real kubectl runs `dexcred kubectl` as its exec credential
//! plugin against the fake PCD (Keystone → dexclients → Dex) and an HTTPS
//! Kubernetes API stub that accepts only the id_tokens the fake Dex issued
//! and that are still valid.
//!
//! Every test checks what a user would: kubectl's output and exit code,
//! dexcred's one stderr line, the requests the identity provider saw, and
//! the cache file.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::*;
use dexcred_testkit::http::Reply;
use dexcred_testkit::idp::{DEX_CLIENT, FakeIdp, Fault, IdpConfig};
use dexcred_testkit::kube::{ExecPlugin, KubeApi};
use dexcred_testkit::tls::TestCa;

/// The demo program (`cargo run --example demo`), compiled into this test so
/// its core logic runs against the dexcred binary built for this test run.
#[path = "../../examples/demo.rs"]
#[allow(dead_code)]
mod demo;

const V1: &str = "client.authentication.k8s.io/v1";
const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";
const EXEC_INFO_V1: &str = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#;

/// One isolated user (HOME, PATH, cache) with a fake PCD and a Kubernetes
/// API stub that trusts it.
struct Rig {
    env: Env,
    idp: FakeIdp,
    kube: KubeApi,
}

impl Rig {
    fn new() -> Rig {
        Rig::with_idp(FakeIdp::pcd(), &TestCa::new())
    }

    fn with_idp(idp: FakeIdp, ca: &TestCa) -> Rig {
        let kube = KubeApi::start(idp.clone(), ca);
        Rig {
            env: Env::new(),
            idp,
            kube,
        }
    }

    /// The dexcred link in the isolated bin dir (what a user installs).
    fn dexcred_path(&self) -> String {
        self.env.bin_dir().join("dexcred").display().to_string()
    }

    /// `dexcred kubectl --pcd URL --username alice <extra>`, v1,
    /// `interactiveMode: Never`; the password comes from kubectl's own
    /// environment (see [`Rig::kubectl`]).
    fn plugin(&self, extra: &[&str]) -> ExecPlugin {
        let url = self.idp.url();
        let mut args = vec!["kubectl", "--pcd", url.as_str(), "--username", ALICE];
        args.extend_from_slice(extra);
        ExecPlugin::new(&self.dexcred_path(), &args)
    }

    fn write_kubeconfig(&self, name: &str, plugin: &ExecPlugin) -> PathBuf {
        let path = self.env.path().join(name);
        std::fs::write(&path, self.kube.kubeconfig_with_exec(plugin)).expect("write kubeconfig");
        path
    }

    /// The default kubeconfig: [`Rig::plugin`] with no extra arguments.
    fn kubeconfig(&self) -> PathBuf {
        self.write_kubeconfig("kubeconfig", &self.plugin(&[]))
    }

    /// `kubectl.<version> --kubeconfig K get pods` in the isolated
    /// environment, with `env` added (e.g. DEXCRED_PASSWORD).
    fn kubectl(&self, version: &str, kubeconfig: &Path, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(kubectl(version));
        self.env.apply(&mut cmd);
        cmd.envs(env.iter().copied())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["get", "pods", "--request-timeout=30s"]);
        run(&mut cmd)
    }

    /// kubectl 1.33 with the default kubeconfig and the right password;
    /// asserts the demo pod is listed.
    fn get_pods(&self) -> String {
        let out = self.kubectl(
            "1.33",
            &self.kubeconfig(),
            &[("DEXCRED_PASSWORD", ALICE_PASSWORD)],
        );
        assert_lists_pods(&out);
        stdout(&out)
    }

    /// `dexcred kubectl --pcd URL --username alice <extra>` run the way
    /// kubectl runs it (KUBERNETES_EXEC_INFO v1, non-interactive), with the
    /// right password in the environment.
    fn plugin_cmd(&self, extra: &[&str]) -> Command {
        let url = self.idp.url();
        let mut cmd = self
            .env
            .dexcred(["kubectl", "--pcd", url.as_str(), "--username", ALICE]);
        cmd.args(extra)
            .env("KUBERNETES_EXEC_INFO", EXEC_INFO_V1)
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        cmd
    }

    /// The one cache entry.
    fn entry(&self) -> PathBuf {
        self.env.only_entry()
    }

    /// The id_token stored in the entry.
    fn cached_token(&self) -> String {
        entry_token(&self.entry(), "id_token").expect("the entry holds an id_token")
    }

    fn cached_refresh_token(&self) -> String {
        read_entry(&self.entry())["refresh_token"]
            .as_str()
            .expect("the entry holds a refresh token")
            .to_string()
    }

    /// Forgets the IdP's counters and request log.
    fn reset(&self) {
        self.idp.reset_counts();
        self.idp.clear_requests();
    }

    /// Asserts the IdP's counters since the last reset; every request must
    /// be one of the four PCD kinds (nothing else was asked).
    #[track_caller]
    fn assert_requests(&self, keystone: u64, dexclients: u64, password: u64, refresh: u64) {
        let c = self.idp.counts();
        let got = (c.keystone, c.dexclients, c.password_grant, c.refresh_grant);
        assert_eq!(
            got,
            (keystone, dexclients, password, refresh),
            "(keystone, dexclients, password grants, refresh grants); all counters: {c:?}"
        );
        assert_eq!(
            c.total,
            keystone + dexclients + password + refresh,
            "unexpected other requests: {c:?}"
        );
    }
}

#[track_caller]
fn assert_lists_pods(out: &Output) {
    let text = ok(out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("demo ") && l.contains("Running")),
        "kubectl should list the demo pod:\n{text}\nstderr: {}",
        stderr(out)
    );
}

/// Parses an ExecCredential printed by `dexcred kubectl`.
fn exec_credential(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not an ExecCredential ({e}): {text}"))
}

fn printed_token(out: &Output) -> String {
    exec_credential(&ok(out))["status"]["token"]
        .as_str()
        .expect("status.token")
        .to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

// 1 ─────────────────────────────────────────────────────────────────────────

#[test]
fn first_login_through_real_kubectl_fills_a_private_cache() {
    let rig = Rig::new();
    rig.get_pods();

    // Keystone, then the Dex client secret, then one password grant.
    rig.assert_requests(1, 1, 1, 0);
    let entry = rig.entry();
    assert_eq!(mode(&entry), 0o600, "entry mode");
    assert_eq!(mode(&rig.env.cache_dir()), 0o700, "cache dir mode");
    assert_eq!(mode(&entry.with_extension("lock")), 0o600, "lock file mode");
    let text = std::fs::read_to_string(&entry).expect("read entry");
    assert!(
        !text.contains(ALICE_PASSWORD),
        "the password must never be cached"
    );
    let value = read_entry(&entry);
    assert_eq!(value["key"]["username"], ALICE);
    assert!(value["refresh_token"].is_string(), "{value}");
    assert_eq!(
        value["client_secret"].as_str(),
        rig.idp.client_secret(DEX_CLIENT).as_deref(),
        "the Dex client secret is kept for later logins"
    );
    // The API server saw exactly the cached, valid id_token.
    assert_eq!(rig.kube.seen_tokens(), vec![rig.cached_token()]);
    assert!(rig.idp.is_valid_token(&rig.cached_token()));
}

// 2 ─────────────────────────────────────────────────────────────────────────

#[test]
fn second_kubectl_run_is_a_cache_hit_without_any_request() {
    let rig = Rig::new();
    rig.get_pods();
    let entry_before = std::fs::read(rig.entry()).expect("read entry");
    rig.reset();

    // Not even a password is available this time: a hit needs none.
    let out = rig.kubectl("1.33", &rig.kubeconfig(), &[]);
    assert_lists_pods(&out);
    rig.assert_requests(0, 0, 0, 0);
    assert_eq!(rig.kube.seen_tokens().len(), 1, "same token both times");
    assert_eq!(
        std::fs::read(rig.entry()).expect("read entry"),
        entry_before
    );
}

// 3 ─────────────────────────────────────────────────────────────────────────

#[test]
fn due_token_is_renewed_with_the_refresh_token_and_the_rotation_saved() {
    let rig = Rig::new();
    rig.get_pods();
    let old_token = rig.cached_token();
    let old_refresh = rig.cached_refresh_token();
    // Inside the refresh margin, still alive for a minute.
    age_tokens(&rig.entry(), 60);
    rig.reset();

    rig.get_pods();
    rig.assert_requests(0, 0, 0, 1);
    assert_eq!(rig.idp.counts().refresh_rejected, 0);
    let new_token = rig.cached_token();
    assert_ne!(new_token, old_token);
    assert_eq!(
        rig.kube.seen_tokens(),
        vec![old_token, new_token],
        "the API server got the new token"
    );
    let new_refresh = rig.cached_refresh_token();
    assert_ne!(
        new_refresh, old_refresh,
        "the rotated refresh token is saved"
    );
    assert_eq!(rig.idp.dex_refresh_tokens(ALICE), 1);

    // The saved refresh token is the live one: the next renewal works
    // without a password.
    age_tokens(&rig.entry(), 60);
    rig.reset();
    let out = rig.kubectl("1.33", &rig.kubeconfig(), &[]);
    assert_lists_pods(&out);
    rig.assert_requests(0, 0, 0, 1);
    assert_eq!(rig.idp.counts().refresh_rejected, 0);
}

// 4 ─────────────────────────────────────────────────────────────────────────

#[test]
fn revoked_refresh_token_falls_back_to_password_and_rotated_client_secret_is_refetched() {
    let rig = Rig::new();
    rig.get_pods();
    let cached_secret = read_entry(&rig.entry())["client_secret"].clone();

    // The session is gone at Dex: one refused refresh, then a password
    // grant with the cached client secret (no Keystone, no dexclients).
    rig.idp.revoke_refresh_tokens(ALICE);
    age_tokens(&rig.entry(), -5);
    rig.reset();
    rig.get_pods();
    rig.assert_requests(0, 0, 1, 1);
    assert_eq!(rig.idp.counts().refresh_rejected, 1);
    assert!(rig.idp.is_valid_token(&rig.cached_token()));
    assert_eq!(read_entry(&rig.entry())["client_secret"], cached_secret);

    // The operator rotates the Dex client secret: the cached one now gets
    // invalid_client. dexcred fetches the new one once and logs in.
    let new_secret = rig
        .idp
        .rotate_client_secret(DEX_CLIENT)
        .expect("the kubernetes client exists");
    age_tokens(&rig.entry(), -5);
    rig.reset();
    rig.get_pods();
    // The refresh is refused (invalid_client), the secret is fetched once,
    // and one password grant with the new secret succeeds.
    rig.assert_requests(1, 1, 1, 1);
    assert_eq!(rig.idp.counts().refresh_rejected, 1);
    let dex: Vec<_> = rig
        .idp
        .requests()
        .into_iter()
        .filter(|r| r.path == "/dex/token")
        .collect();
    let last = dex.last().expect("a Dex request");
    assert_eq!(last.form_value("grant_type"), Some("password"));
    assert_eq!(last.form_value("client_secret"), Some(new_secret.as_str()));
    assert_eq!(dex.len(), 2, "one refresh, one password grant");
    assert_eq!(dex[0].form_value("grant_type"), Some("refresh_token"));
    assert_ne!(
        dex[0].form_value("client_secret"),
        Some(new_secret.as_str()),
        "the refresh carried the old, cached secret"
    );
    assert_eq!(
        read_entry(&rig.entry())["client_secret"].as_str(),
        Some(new_secret.as_str()),
        "the new secret is cached"
    );
    assert!(rig.idp.is_valid_token(&rig.cached_token()));
    assert_eq!(rig.kube.seen_tokens().last(), Some(&rig.cached_token()));
}

// 5 ─────────────────────────────────────────────────────────────────────────

#[test]
fn kubectl_1_27_and_1_33_accept_v1_and_v1beta1_answers() {
    for version in ["1.27", "1.33"] {
        for api_version in [V1, V1BETA1] {
            let rig = Rig::new();
            let mut plugin = rig.plugin(&[]);
            plugin.api_version = api_version.to_string();
            let kubeconfig = rig.write_kubeconfig("kubeconfig", &plugin);
            let password = [("DEXCRED_PASSWORD", ALICE_PASSWORD)];
            let out = rig.kubectl(version, &kubeconfig, &password);
            assert!(
                out.status.success(),
                "kubectl {version} with {api_version}: {}",
                stderr(&out)
            );
            assert_lists_pods(&out);
            rig.assert_requests(1, 1, 1, 0);
            // And the cache hit answers in the same version.
            let out = rig.kubectl(version, &kubeconfig, &[]);
            assert_lists_pods(&out);
            rig.assert_requests(1, 1, 1, 0);
            assert_eq!(rig.kube.seen_tokens(), vec![rig.cached_token()]);
        }
    }
}

#[test]
fn plugin_echoes_the_api_version_kubectl_sent() {
    let rig = Rig::new();
    for (info, expected) in [
        (EXEC_INFO_V1.to_string(), V1),
        (EXEC_INFO_V1.replace("/v1\"", "/v1beta1\""), V1BETA1),
    ] {
        let out = run(rig.plugin_cmd(&[]).env("KUBERNETES_EXEC_INFO", &info));
        let cred = exec_credential(&ok(&out));
        assert_eq!(cred["apiVersion"], expected, "for {info}");
        assert_eq!(cred["kind"], "ExecCredential");
        assert_eq!(
            cred["status"]["token"].as_str(),
            Some(rig.cached_token().as_str())
        );
    }
}

#[test]
fn dispatcher_kubectl_runs_the_plugin_twice_with_one_login() {
    let rig = Rig::new();
    let runs = rig.env.path().join("plugin-runs");
    // A wrapper that counts plugin runs, then execs dexcred.
    let url = rig.idp.url();
    let dexcred = rig.dexcred_path();
    let runs_arg = runs.display().to_string();
    let plugin = ExecPlugin::new(
        "/bin/sh",
        &[
            "-c",
            r#"echo run >> "$0"; exec "$@""#,
            runs_arg.as_str(),
            dexcred.as_str(),
            "kubectl",
            "--pcd",
            url.as_str(),
            "--username",
            ALICE,
        ],
    );
    let kubeconfig = rig.write_kubeconfig("kubeconfig", &plugin);
    let out = rig.kubectl(
        "dispatcher",
        &kubeconfig,
        &[("DEXCRED_PASSWORD", ALICE_PASSWORD)],
    );
    assert_lists_pods(&out);
    let count = std::fs::read_to_string(&runs)
        .unwrap_or_default()
        .lines()
        .count();
    assert_eq!(count, 2, "the dispatcher runs the plugin twice");
    rig.assert_requests(1, 1, 1, 0);
    assert_eq!(rig.kube.seen_tokens(), vec![rig.cached_token()]);
}

// 6 ─────────────────────────────────────────────────────────────────────────

#[test]
fn never_interactive_without_password_fails_with_one_line_and_no_request() {
    let rig = Rig::new();
    let out = rig.kubectl("1.33", &rig.kubeconfig(), &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "kubectl must fail: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("dexcred: ")).collect();
    assert!(
        !lines.is_empty(),
        "dexcred's line must reach the user:\n{err}"
    );
    // kubectl may run the plugin more than once; each run says one thing.
    assert!(lines.iter().all(|l| *l == lines[0]), "{err}");
    assert!(
        lines[0].contains("DEXCRED_PASSWORD") && lines[0].contains("--password-file"),
        "{err}"
    );
    assert!(err.contains("exit code 3"), "{err}");
    assert!(!err.contains("dexcred: warning"), "{err}");
    rig.assert_requests(0, 0, 0, 0);
    assert!(rig.env.cache_entries().is_empty());
    assert!(rig.kube.seen_tokens().is_empty());
}

// 7 ─────────────────────────────────────────────────────────────────────────

#[test]
fn heavy_32_parallel_plugins_on_a_due_token_make_one_refresh() {
    let rig = Rig::new();
    ok(&run(&mut rig.plugin_cmd(&[])));
    let old_token = rig.cached_token();
    age_tokens(&rig.entry(), 60);
    rig.reset();

    let children: Vec<_> = (0..32)
        .map(|_| {
            rig.plugin_cmd(&[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn dexcred")
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait for dexcred"))
        .collect();

    for out in &outputs {
        ok(out);
        assert!(stderr(out).is_empty(), "{}", stderr(out));
    }
    rig.assert_requests(0, 0, 0, 1);
    assert_eq!(rig.idp.counts().refresh_rejected, 0);
    let first = &outputs[0].stdout;
    assert!(
        outputs.iter().all(|o| &o.stdout == first),
        "all 32 ExecCredentials are byte-identical"
    );
    let token = printed_token(&outputs[0]);
    assert_ne!(token, old_token);
    assert_eq!(token, rig.cached_token());
    assert!(rig.idp.is_valid_token(&token));
}

// 8 ─────────────────────────────────────────────────────────────────────────

#[test]
fn unreachable_idp_serves_a_live_token_with_a_warning_and_fails_on_a_dead_one() {
    let rig = Rig::new();
    ok(&run(&mut rig.plugin_cmd(&[])));
    let old_token = rig.cached_token();

    // Inside the margin, alive for two more minutes; Dex drops the
    // connection without answering.
    age_tokens(&rig.entry(), 120);
    let before = std::fs::read(rig.entry()).expect("read entry");
    rig.idp.inject(Fault::new("/dex/token", 10, Reply::close()));
    rig.reset();
    let out = run(&mut rig.plugin_cmd(&[]));
    assert_eq!(printed_token(&out), old_token, "the old token is served");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one warning line:\n{err}");
    assert!(err.starts_with("dexcred: warning: "), "{err}");
    assert!(rig.idp.counts().faults >= 1, "the refresh was tried");
    assert_eq!(rig.idp.counts().password_grant, 0);
    assert_eq!(
        std::fs::read(rig.entry()).expect("read entry"),
        before,
        "a failed renewal leaves the entry untouched"
    );

    // Kubectl accepts the stale answer too.
    let out = rig.kubectl("1.33", &rig.kubeconfig(), &[]);
    assert_lists_pods(&out);
    assert_eq!(rig.kube.seen_tokens(), vec![old_token.clone()]);
    assert_eq!(std::fs::read(rig.entry()).expect("read entry"), before);

    // Fully expired: nothing to serve, exit 4.
    age_tokens(&rig.entry(), -5);
    let before = std::fs::read(rig.entry()).expect("read entry");
    rig.idp.clear_faults();
    rig.idp.inject(Fault::new("/dex/token", 10, Reply::close()));
    rig.reset();
    let out = run(&mut rig.plugin_cmd(&[]));
    fails_with(&out, 4);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert!(rig.idp.counts().faults >= 1, "the refresh was tried");
    assert_eq!(std::fs::read(rig.entry()).expect("read entry"), before);

    // Once Dex is back, the kept refresh token still works.
    rig.idp.clear_faults();
    rig.reset();
    let out = run(&mut rig.plugin_cmd(&[]));
    assert_ne!(printed_token(&out), old_token);
    rig.assert_requests(0, 0, 0, 1);
}

// 9 ─────────────────────────────────────────────────────────────────────────

#[test]
fn bad_password_exits_3_with_the_servers_reason_and_caches_nothing() {
    // Empty cache: Keystone refuses first.
    let rig = Rig::new();
    let out = run(rig.plugin_cmd(&[]).env("DEXCRED_PASSWORD", "wrong horse"));
    let line = fails_with(&out, 3);
    assert!(line.contains("Keystone"), "{line}");
    assert!(!line.contains("wrong horse"), "{line}");
    rig.assert_requests(1, 0, 0, 0);
    assert!(rig.env.cache_entries().is_empty(), "nothing cached");

    // With the client secret cached and the session revoked, Dex refuses.
    ok(&run(&mut rig.plugin_cmd(&[])));
    rig.idp.revoke_refresh_tokens(ALICE);
    age_tokens(&rig.entry(), -5);
    let before = std::fs::read(rig.entry()).expect("read entry");
    rig.reset();
    let out = run(rig.plugin_cmd(&[]).env("DEXCRED_PASSWORD", "wrong horse"));
    let line = fails_with(&out, 3);
    assert!(line.contains("Could not login user"), "{line}");
    assert!(!line.contains("wrong horse"), "{line}");
    rig.assert_requests(0, 0, 1, 1);
    assert_eq!(std::fs::read(rig.entry()).expect("read entry"), before);
}

#[test]
fn force_refresh_uses_the_refresh_token_first() {
    let rig = Rig::new();
    rig.get_pods();
    let old_token = rig.cached_token();
    rig.reset();
    let out = run(&mut rig.plugin_cmd(&["--force-refresh"]));
    let token = printed_token(&out);
    rig.assert_requests(0, 0, 0, 1);
    assert_ne!(token, old_token);
    assert_eq!(token, rig.cached_token());

    // Through kubectl as well (the exec args carry the flag).
    rig.reset();
    let kubeconfig = rig.write_kubeconfig("forced", &rig.plugin(&["--force-refresh"]));
    let out = rig.kubectl("1.33", &kubeconfig, &[]);
    assert_lists_pods(&out);
    rig.assert_requests(0, 0, 0, 1);
    assert_eq!(rig.kube.seen_tokens().last(), Some(&rig.cached_token()));
}

#[test]
fn held_lock_times_out_with_exit_5_then_works_once_released() {
    let rig = Rig::new();
    ok(&run(&mut rig.plugin_cmd(&[])));
    let entry = rig.entry();
    let stem = entry
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("entry stem");
    let lock_path = rig.env.cache_dir().join(format!("{stem}.lock"));
    let lock = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .expect("open lock file");
    lock.lock().expect("hold the entry's lock");
    rig.reset();

    // A cache hit takes no lock: a stuck renewer elsewhere does not block it.
    let out = run(&mut rig.plugin_cmd(&["--lock-timeout", "1"]));
    assert_eq!(printed_token(&out), rig.cached_token());

    // A renewal must wait for the lock, and gives up after --lock-timeout.
    age_tokens(&entry, -5);
    let out = run(&mut rig.plugin_cmd(&["--lock-timeout", "1"]));
    let line = fails_with(&out, 5);
    assert!(line.contains("--lock-timeout"), "{line}");
    rig.assert_requests(0, 0, 0, 0);

    drop(lock);
    let out = run(&mut rig.plugin_cmd(&["--lock-timeout", "1"]));
    assert_eq!(printed_token(&out), rig.cached_token());
    rig.assert_requests(0, 0, 0, 1);
}

// 10 ────────────────────────────────────────────────────────────────────────

#[test]
fn configuration_from_environment_only_and_flags_win_over_env() {
    // Only DEXCRED_* variables, set in the kubeconfig's exec env.
    let rig = Rig::new();
    let url = rig.idp.url();
    let mut plugin = ExecPlugin::new(&rig.dexcred_path(), &["kubectl"]);
    plugin.env = vec![
        ("DEXCRED_PCD".to_string(), url.clone()),
        ("DEXCRED_USERNAME".to_string(), ALICE.to_string()),
        ("DEXCRED_PASSWORD".to_string(), ALICE_PASSWORD.to_string()),
    ];
    let kubeconfig = rig.write_kubeconfig("env-only", &plugin);
    let out = rig.kubectl("1.33", &kubeconfig, &[]);
    assert_lists_pods(&out);
    rig.assert_requests(1, 1, 1, 0);
    let key = &read_entry(&rig.entry())["key"];
    assert_eq!(key["url"], url.as_str());
    assert_eq!(key["username"], ALICE);

    // Flags win: the environment points at a dead port and another user.
    let rig = Rig::new();
    let mut plugin = rig.plugin(&[]);
    plugin.env = vec![
        ("DEXCRED_PCD".to_string(), "http://127.0.0.1:9".to_string()),
        (
            "DEXCRED_USERNAME".to_string(),
            "mallory@example.com".to_string(),
        ),
    ];
    let kubeconfig = rig.write_kubeconfig("flags-win", &plugin);
    let out = rig.kubectl("1.33", &kubeconfig, &[("DEXCRED_PASSWORD", ALICE_PASSWORD)]);
    assert_lists_pods(&out);
    rig.assert_requests(1, 1, 1, 0);
    let key = &read_entry(&rig.entry())["key"];
    assert_eq!(key["url"], rig.idp.url().as_str());
    assert_eq!(key["username"], ALICE);
    let login = rig
        .idp
        .requests()
        .into_iter()
        .find(|r| r.form_value("grant_type") == Some("password"))
        .expect("a password grant");
    assert_eq!(login.form_value("username"), Some(ALICE));
}

// 11 ────────────────────────────────────────────────────────────────────────

#[test]
fn https_idp_needs_its_certificate_authority() {
    let ca = TestCa::new();
    let idp = FakeIdp::start_tls(
        IdpConfig::pcd(),
        ca.server_config(&["127.0.0.1", "localhost"]),
    );
    let rig = Rig::with_idp(idp, &ca);
    assert!(rig.idp.url().starts_with("https://"), "{}", rig.idp.url());

    let out = run(&mut rig.plugin_cmd(&[]));
    let line = fails_with(&out, 4);
    assert!(line.contains("--certificate-authority"), "{line}");
    rig.assert_requests(0, 0, 0, 0);
    assert!(rig.env.cache_entries().is_empty());

    let ca_path = rig.env.path().join("idp-ca.pem");
    ca.write_pem(&ca_path).expect("write CA");
    let ca_arg = ca_path.display().to_string();
    let kubeconfig = rig.write_kubeconfig(
        "tls",
        &rig.plugin(&["--certificate-authority", ca_arg.as_str()]),
    );
    let out = rig.kubectl("1.33", &kubeconfig, &[("DEXCRED_PASSWORD", ALICE_PASSWORD)]);
    assert_lists_pods(&out);
    rig.assert_requests(1, 1, 1, 0);
    assert_eq!(rig.kube.seen_tokens(), vec![rig.cached_token()]);
}

// The README's first command ────────────────────────────────────────────────

#[test]
fn demo_program_runs_end_to_end() {
    let mut transcript = Vec::new();
    let result = demo::run(&dexcred_bin(), &kubectl("1.33"), &mut transcript);
    let text = String::from_utf8_lossy(&transcript);
    if let Err(e) = result {
        panic!("demo failed: {e}\n{text}");
    }
    assert!(
        text.contains("demo "),
        "kubectl's pod list is shown:\n{text}"
    );
    for step in ["1.", "2.", "3."] {
        assert!(text.contains(step), "step {step} is narrated:\n{text}");
    }
    assert!(text.contains("password_grant"), "{text}");
}
