//! The binary users get is linked statically against glibc (`make static`).
//! These tests build that binary and check what static glibc changes:
//! host names through /etc/hosts and through a real DNS server (dnsmasq),
//! the system certificate store and `--certificate-authority`, the home
//! directory when HOME is unset, and that no locale changes its messages.
//!
//! The binary is built with `make static PROFILE=dev`: the same static
//! glibc, the same `-C target-feature=+crt-static` and `--target` as the
//! release build, without the minutes that LTO takes on a small machine.
//! Name resolution and user lookup are glibc code, identical in both.
//!
//! Every name lookup happens inside a network namespace the test creates
//! (`ip netns add`), with only its loopback interface: `ip netns exec`
//! gives the commands run in it their own /etc/hosts, /etc/resolv.conf,
//! /etc/nsswitch.conf, /etc/passwd and /etc/ssl by bind-mounting the files
//! of /etc/netns/NAME/, so no query can leave the machine and nothing of
//! the host's configuration changes. The fake identity provider listens on
//! the namespace's loopback. This needs root (as CI runs), `ip`
//! (iproute2), `dnsmasq` and `strace`; a missing one fails the test.
//!
//! The nsswitch.conf of the namespace names services that static glibc
//! would have to `dlopen` (Debian's `mdns4_minimal`, `systemd`); strace
//! shows that the static binary never tries to load a shared object.

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::common::*;
use dexcred_testkit::idp::{FakeIdp, IdpConfig};
use dexcred_testkit::tls::TestCa;

const IDP_HOST: &str = "idp.dexcred.test";
/// What a Debian desktop has: services static glibc cannot load itself.
const NSSWITCH: &str = "passwd: systemd files\n\
                        group: files systemd\n\
                        hosts: files mdns4_minimal [NOTFOUND=return] dns\n";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `make static PROFILE=dev`, once per test process; its last line is the
/// binary's path.
fn static_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("make")
            .current_dir(repo())
            .args(["--no-print-directory", "-s", "static", "PROFILE=dev"])
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .stderr(Stdio::inherit())
            .output()
            .expect("run make");
        let text = ok(&out);
        let last = text.lines().last().expect("make static prints the path");
        repo().join(last.trim())
    })
}

/// A network namespace with only `lo`, and its own files under
/// /etc/netns/NAME/ for `ip netns exec` to mount over /etc. Deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "dexcred-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        ok(&run(Command::new("ip").args(["netns", "add", &name])));
        let ns = Netns { name };
        ok(&run(
            Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"])
        ));
        std::fs::create_dir_all(ns.etc()).expect("create /etc/netns/NAME");
        ns.write("nsswitch.conf", NSSWITCH);
        ns
    }

    fn etc(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }

    /// Puts `contents` at /etc/`name` for commands run in the namespace.
    fn write(&self, name: &str, contents: &str) {
        let path = self.etc().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).expect("create dir");
        std::fs::write(path, contents).expect("write namespace file");
    }

    /// `program` run inside the namespace (with its /etc files).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `f` on a thread that has joined the namespace's network.
    fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        enter(&self.name, f)
    }

    /// The fake PCD on the namespace's 127.0.0.1, with a certificate for
    /// [`IDP_HOST`] from `ca`, and its URL by host name.
    fn idp(&self, ca: &TestCa) -> (Idp, String) {
        let idp = self.enter(|| {
            FakeIdp::start_tls(IdpConfig::pcd(), ca.server_config(&[IDP_HOST, "127.0.0.1"]))
        });
        let url = format!("https://{IDP_HOST}:{}", idp.addr().port());
        let idp = Idp {
            idp: Some(idp),
            netns: self.name.clone(),
        };
        (idp, url)
    }
}

/// A fake IdP listening in a namespace. It is stopped from inside the
/// namespace, where its shutdown can reach its own listener.
struct Idp {
    idp: Option<FakeIdp>,
    netns: String,
}

impl std::ops::Deref for Idp {
    type Target = FakeIdp;
    fn deref(&self) -> &FakeIdp {
        self.idp.as_ref().expect("running")
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let idp = self.idp.take();
        enter(&self.netns, move || drop(idp));
    }
}

/// Runs `f` on a thread that has joined the network namespace `name`, so
/// the sockets it creates (a server's listener) live there.
fn enter<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = Path::new("/run/netns").join(name);
    std::thread::scope(|s| {
        s.spawn(|| {
            let ns = std::fs::File::open(&path).expect("open the namespace");
            // SAFETY: a valid namespace fd; setns changes only this
            // thread's network namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(self.etc());
    }
}

/// dnsmasq on the namespace's 127.0.0.1:53 answering `IDP_HOST` with
/// 127.0.0.1 and every other name under dexcred.test with NXDOMAIN; it
/// forwards nothing. Its query log is kept for the test to read.
struct Dns {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Dns {
    fn start(ns: &Netns) -> Dns {
        let mut child = ns
            .command("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--port=53",
                "--pid-file=",
                "--log-queries",
                "--log-facility=-",
                &format!("--address=/{IDP_HOST}/127.0.0.1"),
                "--address=/dexcred.test/",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dnsmasq must be installed (Debian package dnsmasq)");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("dnsmasq stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let dns = Dns { child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !dns.log().contains("started") {
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not start:\n{}",
                dns.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        dns
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory with the CA's PEM file and a home.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(ca: &TestCa) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("dexcred-static-")
            .tempdir()
            .expect("temp dir");
        ca.write_pem(&dir.path().join("ca.pem")).expect("write CA");
        std::fs::create_dir_all(dir.path().join("home")).expect("home");
        Scratch { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// `dexcred token --pcd URL --username alice …` with the static binary,
/// inside `ns`, under strace (syscalls that open files and load code go
/// to `trace`), in a clean environment: HOME from `home` (None: unset).
fn token(ns: &Netns, trace: &Path, home: Option<&Path>, url: &str, extra: &[&str]) -> Output {
    let mut cmd = ns.command("strace");
    cmd.args(["-f", "-qq", "-e", "trace=open,openat,execve", "-o"])
        .arg(trace)
        .arg(static_bin())
        .args(["token", "--pcd", url, "--username", ALICE, "--timeout", "5"])
        .args(extra)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
        .stdin(Stdio::null());
    if let Some(home) = home {
        cmd.env("HOME", home);
    }
    run(&mut cmd)
}

/// The shared objects the traced process tried to open: none, for a static
/// binary that keeps out of NSS modules.
fn shared_objects_opened(trace: &Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .expect("strace output (is strace installed?)")
        .lines()
        .filter(|l| l.contains(".so") || l.contains("ld.so.cache"))
        .map(str::to_string)
        .collect()
}

#[test]
fn make_static_builds_a_static_pie_executable() {
    let bin = static_bin();
    let ldd = run(Command::new("ldd").arg(bin).env("LC_ALL", "C"));
    let said = format!("{}{}", stdout(&ldd), stderr(&ldd));
    assert!(said.contains("statically linked"), "ldd: {said}");
    let header = ok(&run(Command::new("readelf")
        .args(["-h", "-l"])
        .arg(bin)
        .env("LC_ALL", "C")));
    // Position-independent (ASLR still applies) and no program interpreter.
    assert!(
        header.contains("DYN (Position-Independent Executable"),
        "{header}"
    );
    assert!(!header.contains("INTERP"), "{header}");
    let version = ok(&run(Command::new(bin).arg("--version")));
    assert!(version.starts_with("dexcred "), "{version}");
}

#[test]
fn host_names_resolve_through_etc_hosts() {
    let ns = Netns::new();
    // The name is only in the namespace's /etc/hosts; the DNS server named
    // in resolv.conf does not exist.
    ns.write(
        "hosts",
        &format!("127.0.0.1 localhost\n127.0.0.1 {IDP_HOST}\n"),
    );
    ns.write(
        "resolv.conf",
        "nameserver 127.0.0.9\noptions timeout:1 attempts:1\n",
    );
    let ca = TestCa::new();
    let (idp, url) = ns.idp(&ca);
    let scratch = Scratch::new(&ca);
    let ca_pem = scratch.path("ca.pem");
    let trace = scratch.path("trace");
    let out = token(
        &ns,
        &trace,
        Some(&scratch.path("home")),
        &url,
        &["--certificate-authority", ca_pem.to_str().unwrap()],
    );
    let printed = ok(&out);
    assert!(printed.trim().len() > 20, "a token: {printed}");
    assert_eq!(idp.counts().password_grant, 1);
    assert_eq!(shared_objects_opened(&trace), Vec::<String>::new());
}

#[test]
fn host_names_resolve_through_a_dns_server() {
    let ns = Netns::new();
    ns.write("hosts", "127.0.0.1 localhost\n");
    ns.write(
        "resolv.conf",
        "nameserver 127.0.0.1\noptions timeout:2 attempts:2\n",
    );
    let dns = Dns::start(&ns);
    let ca = TestCa::new();
    let (idp, url) = ns.idp(&ca);
    let scratch = Scratch::new(&ca);
    let ca_pem = scratch.path("ca.pem");
    let ca_arg = ["--certificate-authority", ca_pem.to_str().unwrap()];
    let home = scratch.path("home");

    let trace = scratch.path("trace");
    let printed = ok(&token(&ns, &trace, Some(&home), &url, &ca_arg));
    assert!(printed.trim().len() > 20, "a token: {printed}");
    assert_eq!(idp.counts().password_grant, 1);
    assert!(
        dns.log().contains(&format!("query[A] {IDP_HOST}")),
        "the DNS server was asked:\n{}",
        dns.log()
    );
    // Past /etc/hosts and the mdns4_minimal entry of nsswitch.conf without
    // loading any NSS module.
    assert_eq!(shared_objects_opened(&trace), Vec::<String>::new());

    // A name the DNS server does not know: exit 4, one line naming the host.
    let unknown = url.replace(IDP_HOST, "nowhere.dexcred.test");
    let out = token(&ns, &scratch.path("trace2"), Some(&home), &unknown, &ca_arg);
    let line = fails_with(&out, 4);
    assert!(line.contains("nowhere.dexcred.test"), "{line}");
    assert!(dns.log().contains("nowhere.dexcred.test"), "{}", dns.log());
}

#[test]
fn the_system_certificate_store_and_certificate_authority_are_trusted() {
    let ns = Netns::new();
    ns.write(
        "hosts",
        &format!("127.0.0.1 localhost\n127.0.0.1 {IDP_HOST}\n"),
    );
    let ca = TestCa::new();
    let (idp, url) = ns.idp(&ca);
    let scratch = Scratch::new(&ca);
    let ca_pem = scratch.path("ca.pem");
    let home = scratch.path("home");
    let force = ["--force-refresh"];

    // The namespace's /etc/ssl holds only an unrelated CA: not trusted.
    ns.write("ssl/certs/ca-certificates.crt", &TestCa::new().pem());
    let line = fails_with(&token(&ns, &scratch.path("t1"), Some(&home), &url, &[]), 4);
    assert!(line.to_lowercase().contains("certificate"), "{line}");
    assert_eq!(idp.counts().password_grant, 0);

    // --certificate-authority adds the test CA to that store.
    let ca_arg = ["--certificate-authority", ca_pem.to_str().unwrap()];
    ok(&token(&ns, &scratch.path("t2"), Some(&home), &url, &ca_arg));
    assert_eq!(idp.counts().password_grant, 1);

    // The test CA in the system store (Debian's bundle path) is trusted
    // without the flag.
    ns.write("ssl/certs/ca-certificates.crt", &ca.pem());
    ok(&token(&ns, &scratch.path("t3"), Some(&home), &url, &force));
    assert_eq!(idp.counts().refresh_grant, 1);
}

#[test]
fn without_home_the_cache_is_under_the_users_passwd_home() {
    let ns = Netns::new();
    ns.write(
        "hosts",
        &format!("127.0.0.1 localhost\n127.0.0.1 {IDP_HOST}\n"),
    );
    let ca = TestCa::new();
    let (_idp, url) = ns.idp(&ca);
    let scratch = Scratch::new(&ca);
    let ca_pem = scratch.path("ca.pem");
    let ca_arg = ["--certificate-authority", ca_pem.to_str().unwrap()];
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let home = scratch.path("home");
    ns.write(
        "passwd",
        &format!("tester:x:{uid}:{uid}:tester:{}:/bin/sh\n", home.display()),
    );

    let trace = scratch.path("trace");
    ok(&token(&ns, &trace, None, &url, &ca_arg));
    let cache = home.join(".cache/dexcred");
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .expect("the cache is under the passwd entry's home")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(entries.len(), 1, "{cache:?}");
    // nsswitch.conf lists `systemd` before `files` for passwd.
    assert_eq!(shared_objects_opened(&trace), Vec::<String>::new());

    // A user the user database does not know, and no HOME: a usage error
    // that says what to do.
    ns.write("passwd", "somebody:x:4242:4242::/nonexistent:/bin/sh\n");
    let out = token(&ns, &scratch.path("trace2"), None, &url, &ca_arg);
    let line = fails_with(&out, 2);
    assert!(line.contains("--cache-dir"), "{line}");
}

#[test]
fn messages_do_not_depend_on_the_locale() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such-password-file");
    let run_in = |locale: &str| {
        let out = run(Command::new(static_bin())
            .args(["token", "--pcd", "https://127.0.0.1:9", "--username", ALICE])
            .arg("--password-file")
            .arg(&missing)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .env_remove("DEXCRED_PASSWORD")
            .env("LANG", locale)
            .env("LC_ALL", locale)
            .env("LANGUAGE", "de")
            .stdin(Stdio::null()));
        stderr(&out)
    };
    let c = run_in("C");
    assert!(c.contains("No such file or directory"), "{c}");
    assert_eq!(run_in("de_DE.UTF-8"), c);
    assert_eq!(run_in("tr_TR.UTF-8"), c);
}
