//! `fake-idp`: the testkit's fake PCD identity provider (and optionally the
//! Kubernetes API stub) as a standalone process, for benchmarks and demos.
//!
//! ```text
//! fake-idp [--tls] [--kube] [--token-lifetime SECS] [--delay-ms N] [--state-file PATH]
//! ```
//!
//! Prints one JSON line on stdout, e.g.
//! `{"idp":"http://127.0.0.1:41234","kube":"https://127.0.0.1:41235","ca":"/tmp/…/ca.pem","username":"alice@example.com","password":"correct horse"}`
//! (`kube` only with `--kube`), then serves until stdin reaches EOF or the
//! process gets SIGTERM/SIGINT.
//!
//! Counters: `GET {idp}/_testkit/counts` answers the request counters as
//! JSON at any time. With `--state-file PATH` the final counters are also
//! written to PATH on a clean exit (stdin EOF or SIGTERM; not on SIGKILL).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use dexcred_testkit::idp::{ALICE, ALICE_PASSWORD, FakeIdp, IdpConfig};
use dexcred_testkit::kube::KubeApi;
use dexcred_testkit::tls::TestCa;

const USAGE: &str =
    "usage: fake-idp [--tls] [--kube] [--token-lifetime SECS] [--delay-ms N] [--state-file PATH]";

/// Command-line options.
#[derive(Debug, Default)]
struct Options {
    tls: bool,
    kube: bool,
    token_lifetime: Option<Duration>,
    delay: Duration,
    state_file: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--tls" => opts.tls = true,
            "--kube" => opts.kube = true,
            "--token-lifetime" => {
                let secs = parse_number(&value("--token-lifetime")?)?;
                opts.token_lifetime = Some(Duration::from_secs(secs));
            }
            "--delay-ms" => {
                opts.delay = Duration::from_millis(parse_number(&value("--delay-ms")?)?)
            }
            "--state-file" => opts.state_file = Some(PathBuf::from(value("--state-file")?)),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(opts)
}

fn parse_number(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a number: {text:?}"))
}

/// Blocks SIGTERM and SIGINT in this thread (and so in every thread started
/// later), so that one dedicated thread can receive them with `sigwait`
/// and the process can shut down cleanly instead of dying mid-write.
fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: plain libc calls on a local, zero-initialised sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Sends `()` on `done` when a termination signal arrives.
fn watch_signals(set: libc::sigset_t, done: mpsc::Sender<()>) {
    std::thread::spawn(move || {
        let mut signal = 0;
        // SAFETY: `set` is a valid sigset_t; `signal` is a valid out pointer.
        unsafe { libc::sigwait(&set, &mut signal) };
        let _ = done.send(());
    });
}

/// Sends `()` on `done` when stdin reaches EOF (the parent went away).
fn watch_stdin(done: mpsc::Sender<()>) {
    std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = done.send(());
    });
}

fn start_idp(opts: &Options, ca: &TestCa) -> FakeIdp {
    let config = IdpConfig {
        delay: opts.delay,
        ..IdpConfig::pcd()
    };
    let idp = if opts.tls {
        FakeIdp::start_tls(config, ca.server_config(&["127.0.0.1", "localhost"]))
    } else {
        FakeIdp::start(config)
    };
    if let Some(lifetime) = opts.token_lifetime {
        idp.set_token_lifetime(lifetime);
    }
    idp
}

fn announce(
    idp: &FakeIdp,
    kube: Option<&KubeApi>,
    ca_path: &std::path::Path,
) -> std::io::Result<()> {
    let mut line = serde_json::json!({
        "idp": idp.url(),
        "ca": ca_path,
        "username": ALICE,
        "password": ALICE_PASSWORD,
    });
    if let Some(kube) = kube {
        line["kube"] = kube.url().into();
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

fn run(opts: &Options, signals: libc::sigset_t) -> Result<(), String> {
    let ca = TestCa::new();
    let dir = tempfile::Builder::new()
        .prefix("fake-idp")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let ca_path = dir.path().join("ca.pem");
    ca.write_pem(&ca_path)
        .map_err(|e| format!("write CA: {e}"))?;
    let idp = start_idp(opts, &ca);
    let kube = opts.kube.then(|| KubeApi::start(idp.clone(), &ca));
    announce(&idp, kube.as_ref(), &ca_path).map_err(|e| format!("stdout: {e}"))?;

    let (tx, rx) = mpsc::channel();
    watch_signals(signals, tx.clone());
    watch_stdin(tx);
    let _ = rx.recv();

    if let Some(path) = &opts.state_file {
        let counts = serde_json::to_string(&idp.counts()).map_err(|e| e.to_string())?;
        std::fs::write(path, counts).map_err(|e| format!("state file: {e}"))?;
    }
    Ok(())
}

fn main() {
    let signals = block_termination_signals();
    let result = parse_args(std::env::args().skip(1)).and_then(|opts| run(&opts, signals));
    if let Err(message) = result {
        eprintln!("fake-idp: {message}");
        std::process::exit(2);
    }
}
