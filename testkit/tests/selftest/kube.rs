//! The Kubernetes stub against the real kubectl binaries on this machine.
//! (That real kubectl 1.27, 1.33 and the dispatcher list the stub's pods
//! through dexcred is tested in tests/e2e/kubectl.rs.)

use std::path::Path;
use std::process::{Command, Output};

use dexcred_testkit::idp::{ALICE, FakeIdp};
use dexcred_testkit::kube::{ExecPlugin, KubeApi};
use dexcred_testkit::tls::TestCa;

const KUBECTL_133: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
const KUBECTL_DISPATCHER: &str = "/usr/bin/kubectl";

/// Runs `kubectl get pods` with an isolated HOME and the given kubeconfig.
fn kubectl_get_pods(kubectl: &str, kubeconfig: &str) -> Output {
    assert!(
        Path::new(kubectl).exists(),
        "{kubectl} is missing: these tests need the real kubectl"
    );
    let home = tempfile::tempdir().expect("temp HOME");
    let config_path = home.path().join("kubeconfig");
    std::fs::write(&config_path, kubeconfig).expect("write kubeconfig");
    Command::new(kubectl)
        .args(["--kubeconfig"])
        .arg(&config_path)
        .args(["get", "pods", "--request-timeout=20s"])
        .env("HOME", home.path())
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl")
}

fn setup() -> (FakeIdp, KubeApi, String) {
    let idp = FakeIdp::pcd();
    let ca = TestCa::new();
    let kube = KubeApi::start(idp.clone(), &ca);
    let token = idp.mint_id_token(ALICE).expect("alice exists");
    (idp, kube, token)
}

#[test]
fn invalid_token_is_refused_with_a_status_body() {
    let (idp, kube, token) = setup();
    idp.revoke_token(&token);
    let out = kubectl_get_pods(KUBECTL_133, &kube.kubeconfig_with_token(&token));
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!out.status.success());
    assert!(
        stderr.contains("Unauthorized") || stderr.contains("provide credentials"),
        "{stderr}"
    );
    assert!(kube.requests().iter().all(|r| r.status == 401));
}

/// An exec plugin (a shell script printing a fixed token) goes through the
/// HTTPS stub; the dispatcher runs it twice (once for its own /version call,
/// once in the kubectl it re-executes), a versioned kubectl once.
#[test]
fn exec_plugin_runs_once_per_kubectl_process_and_twice_via_the_dispatcher() {
    for (kubectl, runs) in [(KUBECTL_133, 1), (KUBECTL_DISPATCHER, 2)] {
        let (_idp, kube, token) = setup();
        let dir = tempfile::tempdir().expect("temp dir");
        let counter = dir.path().join("runs");
        let script = dir.path().join("plugin.sh");
        let body = format!(
            "#!/bin/sh\necho run >> '{}'\nprintf '%s' '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'\n",
            counter.display()
        );
        std::fs::write(&script, body).expect("write plugin");
        let chmod = Command::new("chmod").arg("+x").arg(&script).status();
        assert!(chmod.is_ok_and(|s| s.success()));
        let plugin = ExecPlugin::new(&script.display().to_string(), &[]);
        let out = kubectl_get_pods(kubectl, &kube.kubeconfig_with_exec(&plugin));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{kubectl}: {stderr}");
        let count = std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .lines()
            .count();
        assert_eq!(count, runs, "{kubectl}");
        assert_eq!(kube.seen_tokens(), vec![token]);
    }
}
