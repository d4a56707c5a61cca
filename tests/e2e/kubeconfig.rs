//! `dexcred kubeconfig` end to end: the built binary generates or merges the
//! kubeconfig, and real kubectl reads it back.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use serde_json::Value;

const DEXCRED: &str = env!("CARGO_BIN_EXE_dexcred");

/// The kubectl these tests are written against; a missing kubectl is a
/// failure, not a skip, so the round trip is never silently untested.
const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

const PASSWORD: &str = "hunter2-password-value";
const OTP: &str = "otp-424242-value";
const CLIENT_SECRET: &str = "client-secret-value-xyz";

const CLUSTER_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUCTH6/d3myoC+TBDrjKsNeMamnuowCgYIKoZIzj0EAwIw
IjEgMB4GA1UEAwwXZGV4Y3JlZCB0ZXN0IGNsdXN0ZXIgQ0EwIBcNMjYxMTIyMjM0
NzEwWhgPMjEyNjEwMjkyMzQ3MTBaMCIxIDAeBgNVBAMMF2RleGNyZWQgdGVzdCBj
bHVzdGVyIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEK+eakJmpINhGpbxe
DTSGmtQn+6wje/PLAOVTV8nt5/1iB3sL0QVe8vJpIhMsl53Dhz5jSb+4bVgC9OIw
DbB8iKNTMFEwHQYDVR0OBBYEFCoc9N/NAOqGzMHYMXYFbG1006qAMB8GA1UdIwQY
MBaAFCoc9N/NAOqGzMHYMXYFbG1006qAMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZI
zj0EAwIDSAAwRQIhAJOa8Ko7AP/tTiJ5GwLnkn82sZGGibeKZqodcBOIx+NyAiA/
4EvWzh5r3aG+y5l34StyzPm9fM44zhJ5GeCxbbBZQw==
-----END CERTIFICATE-----
";

/// The identity and cluster most tests use.
const BASE: &[&str] = &[
    "kubeconfig",
    "--pcd",
    "https://pcd.example.com",
    "--username",
    "alice@example.com",
    "--tenant",
    "service",
    "--region",
    "RegionOne",
];
const NAME: &str = "pcd.example.com-service-regionone";

/// A private directory (with a HOME inside) removed at the end of the test.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(tag: &str) -> Sandbox {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dexcred-it-kubeconfig-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("home")).unwrap();
        Sandbox { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// The user's default kubeconfig.
    fn default_config(&self) -> PathBuf {
        self.path("home/.kube/config")
    }

    /// Runs dexcred with a clean environment: only HOME, PATH and `env`.
    fn dexcred(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(DEXCRED);
        cmd.args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&self.dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Runs dexcred and expects success.
    fn dexcred_ok(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = self.dexcred(args, env);
        assert!(
            out.status.success(),
            "dexcred {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn kubectl(&self, args: &[&str], path_env: &str) -> Output {
        assert!(
            Path::new(KUBECTL).is_file(),
            "these tests need real kubectl at {KUBECTL}"
        );
        Command::new(KUBECTL)
            .args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", path_env)
            .output()
            .unwrap()
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args, "/usr/bin:/bin");
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl config view --raw -o json` of one file.
    fn view(&self, file: &Path) -> Value {
        let text = self.kubectl_ok(&[
            "config",
            "view",
            "--raw",
            "-o",
            "json",
            "--kubeconfig",
            file.to_str().unwrap(),
        ]);
        serde_json::from_str(&text).unwrap()
    }

    /// A kubeconfig made by kubectl itself, with entries dexcred must keep.
    fn kubectl_made_config(&self, file: &Path) {
        let f = file.to_str().unwrap();
        for args in [
            &[
                "config",
                "set-cluster",
                "other",
                "--server=https://other.example:6443",
            ][..],
            &[
                "config",
                "set-cluster",
                "zeta",
                "--server=https://zeta.example",
            ],
            &[
                "config",
                "set-credentials",
                "bob",
                "--token=bobs-static-token",
            ],
            &[
                "config",
                "set-context",
                "other",
                "--cluster=other",
                "--user=bob",
            ],
            &["config", "use-context", "other"],
        ] {
            self.kubectl_ok(&[args, &["--kubeconfig", f]].concat());
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The entry names of one list, sorted (kubectl keeps them in a map).
fn names(config: &Value, list: &str) -> Vec<String> {
    let mut names: Vec<String> = config[list]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

fn entry<'a>(config: &'a Value, list: &str, name: &str) -> &'a Value {
    config[list]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("no {list} entry {name:?} in {config:#}"))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn printed_kubeconfig_is_read_by_kubectl_and_holds_no_secret() {
    let sb = Sandbox::new("print");
    fs::write(sb.path("cluster-ca.pem"), CLUSTER_CA).unwrap();
    fs::write(sb.path("pw"), "x\n").unwrap();
    let args = [
        BASE,
        &[
            "--cluster-certificate-authority",
            "cluster-ca.pem",
            "--password-file",
            "pw",
            "--certificate-authority",
            "idp-ca.pem",
            "--otp-command",
            "totp-tool show pcd",
            "--timeout",
            "45",
        ],
    ]
    .concat();
    let out = sb.dexcred_ok(
        &args,
        &[
            ("DEXCRED_PASSWORD", PASSWORD),
            ("DEXCRED_OTP", OTP),
            ("DEXCRED_CLIENT_SECRET", CLIENT_SECRET),
            ("DEXCRED_PROJECT", "proj-from-env"),
        ],
    );
    let printed = stdout(&out);
    let file = sb.path("printed.yaml");
    fs::write(&file, &printed).unwrap();
    let view = sb.view(&file);
    for secret in [PASSWORD, OTP, CLIENT_SECRET] {
        assert!(!printed.contains(secret), "secret in output:\n{printed}");
        assert!(!view.to_string().contains(secret));
    }

    assert_eq!(view["current-context"], NAME);
    assert_eq!(names(&view, "clusters"), [NAME]);
    assert_eq!(names(&view, "contexts"), [NAME]);
    assert_eq!(names(&view, "users"), [NAME]);
    let cluster = &entry(&view, "clusters", NAME)["cluster"];
    assert_eq!(
        cluster["server"],
        "https://pcd.example.com/oidc-proxy/service/RegionOne"
    );
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster["certificate-authority-data"].as_str().unwrap())
        .unwrap();
    assert_eq!(ca, CLUSTER_CA.as_bytes());
    let context = &entry(&view, "contexts", NAME)["context"];
    assert_eq!(context["cluster"], NAME);
    assert_eq!(context["user"], NAME);

    let exec = &entry(&view, "users", NAME)["user"]["exec"];
    assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(exec["command"], "dexcred");
    assert_eq!(exec["interactiveMode"], "IfAvailable");
    assert_eq!(exec["provideClusterInfo"], false);
    let hint = exec["installHint"].as_str().unwrap();
    assert!(
        hint.contains("README") && hint.lines().count() > 1,
        "{hint}"
    );
    let dir = sb.dir.display().to_string();
    let expected = [
        "kubectl",
        "--pcd",
        "https://pcd.example.com",
        "--username",
        "alice@example.com",
        "--project",
        "proj-from-env",
        "--password-file",
        &format!("{dir}/pw"),
        "--otp-command",
        "totp-tool show pcd",
        "--certificate-authority",
        &format!("{dir}/idp-ca.pem"),
        "--timeout",
        "45",
    ];
    assert_eq!(exec["args"], serde_json::json!(expected));
}

#[test]
fn kubectl_runs_dexcred_from_path_with_the_args_or_shows_the_install_hint() {
    let sb = Sandbox::new("exec");
    let args = [BASE, &["--server", "https://127.0.0.1:9"]].concat();
    let file = sb.path("config");
    fs::write(&file, stdout(&sb.dexcred_ok(&args, &[]))).unwrap();
    let f = file.to_str().unwrap();
    let get = ["get", "--raw", "/version", "--kubeconfig", f];

    // No dexcred on PATH: kubectl accepted the exec stanza and shows the hint.
    let out = sb.kubectl(&get, "/usr/bin:/bin");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("was not found on your PATH"),
        "{}",
        stderr(&out)
    );

    // A stand-in dexcred records what kubectl runs it with.
    let bin = sb.path("bin");
    fs::create_dir(&bin).unwrap();
    let recorded = sb.path("recorded-args");
    fs::write(
        bin.join("dexcred"),
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nexit 1\n",
            recorded.display()
        ),
    )
    .unwrap();
    fs::set_permissions(bin.join("dexcred"), fs::Permissions::from_mode(0o755)).unwrap();
    let out = sb.kubectl(&get, &format!("{}:/usr/bin:/bin", bin.display()));
    assert!(!out.status.success());
    assert_eq!(
        fs::read_to_string(&recorded).unwrap(),
        "kubectl\n--pcd\nhttps://pcd.example.com\n--username\nalice@example.com\n"
    );
}

/// kubectl itself does not keep comments or formatting when it changes a
/// kubeconfig, and neither does dexcred: what must survive are the values.
#[test]
fn write_keeps_every_value_of_a_kubectl_made_kubeconfig() {
    let sb = Sandbox::new("merge");
    let config = sb.default_config();
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    sb.kubectl_made_config(&config);
    let before = sb.view(&config);

    let out = sb.dexcred_ok(&[BASE, &["--write"]].concat(), &[]);
    assert!(stdout(&out).is_empty());
    let report = stderr(&out);
    assert!(
        report.contains(&format!("current context is now {NAME:?} (was \"other\")")),
        "{report}"
    );
    assert_eq!(mode(&config), 0o600);

    // Every entry kubectl made is still there with the same value.
    let after = sb.view(&config);
    for list in ["clusters", "contexts", "users"] {
        for name in names(&before, list) {
            assert_eq!(
                entry(&after, list, &name),
                entry(&before, list, &name),
                "{list} {name}"
            );
        }
    }
    assert_eq!(after["preferences"], before["preferences"]);
    assert_eq!(names(&after, "clusters"), ["other", NAME, "zeta"]);
    assert_eq!(names(&after, "contexts"), ["other", NAME]);
    assert_eq!(names(&after, "users"), ["bob", NAME]);
    assert_eq!(after["current-context"], NAME);
    assert_eq!(
        entry(&after, "users", "bob")["user"]["token"],
        "bobs-static-token"
    );
    assert_eq!(
        entry(&after, "clusters", "other")["cluster"]["server"],
        "https://other.example:6443"
    );
    // kubectl can still edit the merged file, and dexcred can merge again.
    sb.kubectl_ok(&[
        "config",
        "use-context",
        "other",
        "--kubeconfig",
        config.to_str().unwrap(),
    ]);
    sb.dexcred_ok(&[BASE, &["--write"]].concat(), &[]);
    assert_eq!(sb.view(&config)["current-context"], NAME);
}

#[test]
fn write_again_replaces_instead_of_duplicating() {
    let sb = Sandbox::new("rewrite");
    let config = sb.default_config();
    let first = sb.dexcred_ok(&[BASE, &["--write"]].concat(), &[]);
    assert!(stderr(&first).contains("created"), "{}", stderr(&first));
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(config.parent().unwrap()), 0o700);
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        stdout(&sb.dexcred_ok(BASE, &[]))
    );

    sb.dexcred_ok(&[BASE, &["--write", "--project", "p2"]].concat(), &[]);
    let second = fs::read_to_string(&config).unwrap();
    let view = sb.view(&config);
    assert_eq!(names(&view, "clusters"), [NAME]);
    assert_eq!(names(&view, "contexts"), [NAME]);
    assert_eq!(names(&view, "users"), [NAME]);
    let args = entry(&view, "users", NAME)["user"]["exec"]["args"].to_string();
    assert!(args.contains(r#""--project","p2""#), "{args}");

    sb.dexcred_ok(&[BASE, &["--write", "--project", "p2"]].concat(), &[]);
    assert_eq!(fs::read_to_string(&config).unwrap(), second);
}

#[test]
fn write_goes_to_the_first_kubeconfig_file() {
    let sb = Sandbox::new("env");
    let a = sb.path("new/dir/a");
    let b = sb.path("b");
    sb.kubectl_made_config(&b);
    let b_before = fs::read(&b).unwrap();
    let kubeconfig = format!("{}:{}", a.display(), b.display());
    sb.dexcred_ok(
        &[BASE, &["--write"]].concat(),
        &[("KUBECONFIG", kubeconfig.as_str())],
    );
    assert_eq!(fs::read(&b).unwrap(), b_before);
    assert!(!sb.default_config().exists());
    assert_eq!(mode(&a), 0o600);
    assert_eq!(mode(&sb.path("new")), 0o700);
    assert_eq!(names(&sb.view(&a), "users"), [NAME]);
}

#[test]
fn write_follows_a_symlinked_kubeconfig() {
    let sb = Sandbox::new("symlink");
    let real = sb.path("dotfiles/kubeconfig");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    sb.kubectl_made_config(&real);
    fs::create_dir_all(sb.path("home/.kube")).unwrap();
    std::os::unix::fs::symlink(&real, sb.default_config()).unwrap();
    sb.dexcred_ok(&[BASE, &["--write"]].concat(), &[]);
    assert!(
        fs::symlink_metadata(sb.default_config())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(names(&sb.view(&real), "clusters"), ["other", NAME, "zeta"]);
}

#[test]
fn an_unmergeable_kubeconfig_is_left_alone() {
    let sb = Sandbox::new("refuse");
    let config = sb.default_config();
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    // Not a kubeconfig: a Kubernetes object saved to the wrong file.
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web # a comment\n";
    fs::write(&config, text).unwrap();
    let out = sb.dexcred(&[BASE, &["--write"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("by hand"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(fs::read_to_string(&config).unwrap(), text);
    assert_eq!(fs::read_dir(config.parent().unwrap()).unwrap().count(), 1);
}

#[test]
fn invalid_invocations_exit_2_and_write_nothing() {
    let sb = Sandbox::new("usage");
    let not_pem = sb.path("not-a-cert");
    fs::write(&not_pem, "hello").unwrap();
    let not_pem = not_pem.to_str().unwrap();
    for args in [
        &BASE[..7],
        &[BASE, &["--server", "http://api.example.com"]].concat(),
        &["kubeconfig", "--tenant", "t", "--region", "r"],
        &[
            BASE,
            &["--cluster-certificate-authority", not_pem, "--write"],
        ]
        .concat(),
    ] {
        let out = sb.dexcred(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    assert!(!sb.path("home/.kube").exists());
}

/// The issue's round trip: a kubeconfig written by `dexcred kubeconfig
/// --write` (plain, and run as the kubectl plugin `kubectl dexcred
/// kubeconfig`, as krew installs it) is used by real kubectl for
/// `get --raw` against the HTTPS API stub, which accepts only tokens the
/// fake PCD issued.
#[test]
fn generated_kubeconfig_authenticates_real_kubectl_against_the_api_stub() {
    use dexcred_testkit::idp::{ALICE, ALICE_PASSWORD, FakeIdp};
    use dexcred_testkit::kube::KubeApi;
    use dexcred_testkit::tls::TestCa;

    for via_plugin in [false, true] {
        let env = crate::common::Env::new();
        let idp = FakeIdp::pcd();
        let kube = KubeApi::start(idp.clone(), &TestCa::new());
        let kubeconfig = env.path().join("kubeconfig");
        let kubectl = crate::common::kubectl("1.33");
        let flags = [
            "kubeconfig",
            "--pcd",
            &idp.url(),
            "--username",
            ALICE,
            "--server",
            &kube.url(),
            "--cluster-certificate-authority",
            &kube.ca_pem_path().display().to_string(),
            "--name",
            "stub",
            "--write",
        ]
        .map(str::to_owned);
        let mut write = if via_plugin {
            let mut cmd = Command::new(&kubectl);
            env.apply(&mut cmd);
            cmd.arg("dexcred").args(&flags);
            cmd
        } else {
            env.dexcred(&flags)
        };
        let out = write.env("KUBECONFIG", &kubeconfig).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = fs::read_to_string(&kubeconfig).unwrap();
        let command = if via_plugin {
            "kubectl-dexcred"
        } else {
            "dexcred"
        };
        assert!(
            text.contains(&format!("command: {command}\n")),
            "exec command {command} expected:\n{text}"
        );

        let mut get = Command::new(&kubectl);
        env.apply(&mut get);
        let out = get
            .env("KUBECONFIG", &kubeconfig)
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
            .args(["get", "--raw", "/api/v1/namespaces/default/pods"])
            .output()
            .unwrap();
        assert!(out.status.success(), "kubectl get --raw: {}", stderr(&out));
        let pods: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(pods["kind"], "PodList", "{pods}");
        let seen = kube.seen_tokens();
        assert_eq!(seen.len(), 1, "one token presented: {seen:?}");
        assert!(idp.is_valid_token(&seen[0]));
        assert_eq!(idp.counts().password_grant, 1);
        assert_eq!(
            env.cache_entries().len(),
            1,
            "the plugin cached its session"
        );
    }
}
