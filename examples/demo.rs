//! `cargo run --example demo`: dexcred doing its whole job for kubectl, on
//! this machine, without a PCD account.
//!
//! It starts a fake Platform9 PCD identity provider (Keystone, the Dex
//! client-secret endpoint and Dex, from the `dexcred-testkit` crate) and an
//! HTTPS Kubernetes API stub that accepts only tokens that IdP issued and
//! that are still valid, both on 127.0.0.1. Then it writes a kubeconfig
//! whose user runs `dexcred kubectl …` as its exec credential plugin and
//! runs the real `kubectl get pods` three times:
//!
//! 1. first login: Keystone → Dex client secret → Dex password grant;
//! 2. cache hit: no request to the IdP at all, and no password needed;
//! 3. forced renewal: one refresh-token grant, still no password.
//!
//! After each step it prints what kubectl printed and the IdP's request
//! counters, and checks them; it exits non-zero if anything is off.
//!
//! Needs `kubectl` on PATH (or its path in `$KUBECTL`). Everything it
//! writes lives in a temporary directory that is removed at the end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dexcred_testkit::idp::{ALICE, ALICE_PASSWORD, FakeIdp};
use dexcred_testkit::kube::{ExecPlugin, KubeApi};
use dexcred_testkit::tls::TestCa;

fn main() {
    let kubectl = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("kubectl"));
    let result =
        build_dexcred().and_then(|dexcred| run(&dexcred, &kubectl, &mut std::io::stdout().lock()));
    if let Err(e) = result {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

/// Builds the `dexcred` binary and returns its path.
///
/// `cargo run --example demo` builds the example and the library, but not
/// the package's binaries, and an example cannot depend on them. So the demo
/// asks the cargo that started it (`$CARGO`) to build `dexcred` with the same
/// profile into the same target directory — a no-op when it is up to date —
/// and takes it from beside its own directory:
/// `<target>/<profile>/examples/demo` → `<target>/<profile>/dexcred`.
/// Running the real binary (rather than re-executing this program as the
/// plugin) shows exactly what a user installs.
fn build_dexcred() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected location {}", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("unexpected location {}", exe.display()))?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => return Err(format!("unexpected location {}", exe.display())),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(&cargo);
    // `cargo run` sets CARGO_MANIFEST_DIR, CARGO_PKG_*, OUT_DIR and friends
    // for the example; inherited, they change the environment that build
    // scripts watch (ring's watches OUT_DIR), and cargo would rebuild them
    // and everything above them on every demo run, both ways.
    for (name, _) in std::env::vars_os() {
        let set_by_cargo_run = name.to_str().is_some_and(|n| {
            n.starts_with("CARGO_PKG_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_BIN_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_RUSTC_CURRENT_DIR",
                    "OUT_DIR",
                ]
                .contains(&n)
        });
        if set_by_cargo_run {
            build.env_remove(name);
        }
    }
    let status = build
        .args(["build", "--quiet", "--bin", "dexcred", "--profile", profile])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
    if !status.success() {
        return Err(format!("`cargo build --bin dexcred` failed ({status})"));
    }
    let bin = profile_dir.join("dexcred");
    if !bin.is_file() {
        return Err(format!("{} was not built", bin.display()));
    }
    Ok(bin)
}

/// The IdP's counters of the requests that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    keystone: u64,
    dexclients: u64,
    password_grant: u64,
    refresh_grant: u64,
    total: u64,
}

impl Seen {
    fn of(idp: &FakeIdp) -> Seen {
        let c = idp.counts();
        Seen {
            keystone: c.keystone,
            dexclients: c.dexclients,
            password_grant: c.password_grant,
            refresh_grant: c.refresh_grant,
            total: c.total,
        }
    }
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "keystone={} dexclients={} password_grant={} refresh_grant={} (total {})",
            self.keystone, self.dexclients, self.password_grant, self.refresh_grant, self.total
        )
    }
}

/// The demo itself: `dexcred` and `kubectl` are the binaries to run, the
/// narration goes to `out`. Returns an error as soon as a step does not do
/// what it should.
pub fn run(dexcred: &Path, kubectl: &Path, out: &mut dyn Write) -> Result<(), String> {
    let idp = FakeIdp::pcd();
    let ca = TestCa::new();
    let kube = KubeApi::start(idp.clone(), &ca);
    let dir = tempfile::Builder::new()
        .prefix("dexcred-demo-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let cache = dir.path().join("cache");
    let url = idp.url();
    let args = [
        "kubectl",
        "--pcd",
        url.as_str(),
        "--username",
        ALICE,
        "--cache-dir",
        &cache.display().to_string(),
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let plugin = ExecPlugin::new(&dexcred.display().to_string(), &args);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kube.kubeconfig_with_exec(&plugin))
        .map_err(|e| format!("cannot write {}: {e}", kubeconfig.display()))?;

    let w = |out: &mut dyn Write, text: String| {
        writeln!(out, "{text}").map_err(|e| format!("cannot write the transcript: {e}"))
    };
    w(out, format!("Fake PCD (Keystone + Dex) on {url}"))?;
    w(
        out,
        format!(
            "Kubernetes API stub on {} (HTTPS; accepts only valid tokens from that PCD)",
            kube.url()
        ),
    )?;
    w(
        out,
        format!(
            "kubeconfig user: exec {} {}",
            dexcred.display(),
            args.join(" ")
        ),
    )?;
    w(
        out,
        "The password reaches dexcred only through DEXCRED_PASSWORD in kubectl's environment.\n"
            .to_string(),
    )?;

    let get_pods = |env: &[(&str, &str)]| -> Result<Output, String> {
        let mut cmd = Command::new(kubectl);
        // A clean environment: no DEXCRED_* settings or proxies of the
        // user's leak in, and kubectl's discovery cache goes to the temp dir.
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .envs(env.iter().copied())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "pods", "--request-timeout=30s"]);
        let output = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", kubectl.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || !stdout.contains("demo") {
            return Err(format!(
                "kubectl get pods failed ({}):\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(output)
    };
    let show = |out: &mut dyn Write, output: &Output, seen: Seen| -> Result<(), String> {
        w(out, "   $ kubectl get pods".to_string())?;
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            w(out, format!("   {line}"))?;
        }
        for line in String::from_utf8_lossy(&output.stderr).lines() {
            w(out, format!("   (stderr) {line}"))?;
        }
        w(out, format!("   IdP requests so far: {seen}\n"))
    };

    // 1. First login.
    w(out, "1. First login: the cache is empty.".to_string())?;
    let output = get_pods(&[("DEXCRED_PASSWORD", ALICE_PASSWORD)])?;
    let after_login = Seen::of(&idp);
    show(out, &output, after_login)?;
    // kubectl may run the plugin more than once (a version dispatcher does),
    // but only the first run logs in.
    let want = Seen {
        keystone: 1,
        dexclients: 1,
        password_grant: 1,
        refresh_grant: 0,
        total: 3,
    };
    if after_login != want {
        return Err(format!(
            "step 1 should log in exactly once ({want}), the IdP saw {after_login}"
        ));
    }

    // 2. Cache hit.
    w(
        out,
        "2. Cache hit: run kubectl again, this time without any password.".to_string(),
    )?;
    let output = get_pods(&[])?;
    let after_hit = Seen::of(&idp);
    show(out, &output, after_hit)?;
    if after_hit != after_login {
        return Err(format!(
            "step 2 should not contact the IdP, but the counters moved to {after_hit}"
        ));
    }
    if kube.seen_tokens().len() != 1 {
        return Err("step 2 should present the same token as step 1".to_string());
    }

    // 3. Forced renewal.
    w(
        out,
        "3. Forced renewal (DEXCRED_FORCE_REFRESH=1, as a token near expiry would be): \
         the refresh token is used, still no password."
            .to_string(),
    )?;
    let output = get_pods(&[("DEXCRED_FORCE_REFRESH", "1")])?;
    let after_refresh = Seen::of(&idp);
    show(out, &output, after_refresh)?;
    let refreshed = after_refresh.refresh_grant > 0
        && after_refresh.keystone == after_hit.keystone
        && after_refresh.dexclients == after_hit.dexclients
        && after_refresh.password_grant == after_hit.password_grant;
    if after_refresh.refresh_grant > 1 {
        w(
            out,
            format!(
                "   ({} refreshes for one command: this kubectl is a version dispatcher that runs \
                 the credential plugin once itself and once more in the kubectl it starts, and \
                 --force-refresh renews on every run.)",
                after_refresh.refresh_grant
            ),
        )?;
    }
    let tokens = kube.seen_tokens();
    if !refreshed || tokens.len() < 2 {
        return Err(format!(
            "step 3 should renew with the refresh token only (the IdP saw {after_refresh}) and \
             present a new token ({} distinct tokens seen)",
            tokens.len()
        ));
    }
    w(
        out,
        format!(
            "The API server saw {} distinct tokens, all issued by the IdP; the cache is in {} \
             (mode 0700, entries 0600).",
            tokens.len(),
            cache.display()
        ),
    )?;
    w(
        out,
        "Demo finished: every step did what it should.".to_string(),
    )
}
