//! The cache-hit fast path (src/fastpath.rs) against clap: for random argv
//! and random `DEXCRED_*` environments, the fast path's parser either
//! declines, or produces exactly the arguments clap produces. Flags and
//! variables it does not know (including ones added later) must make it
//! decline; the property test throws in unknown ones to check that.
//!
//! clap reads the process environment, so the property runs in one test
//! that owns it (`set_var`); the other tests here never read the
//! environment in-process.

use std::ffi::OsString;

use crate::common::*;
use clap::Parser;
use dexcred::cli::{Cli, Command as Sub};
use dexcred::fastpath::{self, Front};
use dexcred_testkit::idp::FakeIdp;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestRunner};

/// Flags to draw from: every one the fast path knows, the boolean ones it
/// leaves to clap, other subcommands' flags, and made-up ones.
const FLAGS: &[&str] = &[
    "--pcd",
    "--issuer",
    "--token-url",
    "--logout-url",
    "--revocation-url",
    "--grant",
    "--username",
    "--user-domain",
    "--project",
    "--password-file",
    "--password-command",
    "--otp-command",
    "--client-id",
    "--client-secret-file",
    "--client-auth",
    "--connector-id",
    "--scope",
    "--extra-param",
    "--token-field",
    "--certificate-authority",
    "--timeout",
    "--lock-timeout",
    "--login-timeout",
    "--listen-address",
    "--browser-command",
    "--header-name",
    "--cache-dir",
    "--format",
    "--verbose",
    "-v",
    "--force-refresh",
    "--insecure-skip-tls-verify",
    "--help",
    "-h",
    "--version",
    "--git-auth",
    "--tenant",
    "--all",
    "--json",
    "--added-later",
    "--pc",
    "--",
];

const VARS: &[&str] = &[
    "DEXCRED_PCD",
    "DEXCRED_ISSUER",
    "DEXCRED_TOKEN_URL",
    "DEXCRED_LOGOUT_URL",
    "DEXCRED_REVOCATION_URL",
    "DEXCRED_GRANT",
    "DEXCRED_USERNAME",
    "DEXCRED_USER_DOMAIN",
    "DEXCRED_PROJECT",
    "DEXCRED_PASSWORD_FILE",
    "DEXCRED_PASSWORD_COMMAND",
    "DEXCRED_OTP_COMMAND",
    "DEXCRED_CLIENT_ID",
    "DEXCRED_CLIENT_SECRET_FILE",
    "DEXCRED_CLIENT_AUTH",
    "DEXCRED_CONNECTOR_ID",
    "DEXCRED_SCOPE",
    "DEXCRED_EXTRA_PARAM",
    "DEXCRED_TOKEN_FIELD",
    "DEXCRED_CERTIFICATE_AUTHORITY",
    "DEXCRED_TIMEOUT",
    "DEXCRED_LOCK_TIMEOUT",
    "DEXCRED_LOGIN_TIMEOUT",
    "DEXCRED_LISTEN_ADDRESS",
    "DEXCRED_PAT",
    "DEXCRED_SUBJECT_TOKEN",
    "DEXCRED_CACHE_DIR",
    "DEXCRED_FORMAT",
    "DEXCRED_PASSWORD",
    "DEXCRED_OTP",
    "DEXCRED_CLIENT_SECRET",
    "DEXCRED_VERBOSE",
    "DEXCRED_FORCE_REFRESH",
    "DEXCRED_INSECURE_SKIP_TLS_VERIFY",
    "DEXCRED_GIT_AUTH",
    "DEXCRED_TENANT",
    "DEXCRED_ADDED_LATER",
];

const VALUES: &[&str] = &[
    "https://pcd.example.com",
    "https://pcd.example.com/",
    "http://127.0.0.1:5556",
    "http://pcd.example.com",
    "not a url",
    "alice@example.com",
    "Default",
    "",
    " ",
    "-x",
    "--pcd",
    "a=b",
    "b=2\na=1",
    "a=1\n\nb=2",
    "password",
    "client_credentials",
    "client-credentials",
    "authorization_code",
    "device-code",
    "token_exchange",
    "basic-raw",
    "127.0.0.1:8000",
    "Password",
    "id_token",
    "id-token",
    "access_token",
    "access-token",
    "post",
    "basic",
    "raw",
    "json",
    "header",
    "30",
    "2m",
    "0",
    "soon",
    "true",
    "false",
    "/tmp/dexcred-fastpath-cache",
    "kubectl",
];

fn arg_strategy() -> impl Strategy<Value = Vec<String>> {
    (0..FLAGS.len(), 0..VALUES.len(), 0..3usize).prop_map(|(f, v, form)| {
        let (flag, value) = (FLAGS[f], VALUES[v]);
        match form {
            0 => vec![flag.to_string(), value.to_string()],
            1 => vec![format!("{flag}={value}")],
            _ => vec![flag.to_string()],
        }
    })
}

fn case_strategy() -> impl Strategy<Value = (Vec<String>, Vec<(String, String)>)> {
    let program = prop::sample::select(vec![
        "dexcred",
        "/usr/bin/kubectl-dexcred",
        "git-credential-dexcred",
        "/opt/bin/dexcred",
    ]);
    let sub = prop::sample::select(vec![
        "kubectl", "kubectl", "kubectl", "token", "token", "status", "git", "-v", "--help",
    ]);
    // Mostly the plain shape a kubeconfig writes, so that many cases are
    // accepted; then random flags on top.
    let base = prop::sample::select(vec![0usize, 1, 2]).prop_map(|b| match b {
        0 => vec![
            "--pcd",
            "https://pcd.example.com",
            "--username",
            "alice@example.com",
        ],
        1 => vec![
            "--token-url",
            "https://kc.example.com/token",
            "--client-id",
            "svc",
        ],
        _ => vec![],
    });
    let args = prop::collection::vec(arg_strategy(), 0..4);
    let env = prop::collection::vec((0..VARS.len(), 0..VALUES.len()), 0..3);
    (program, sub, base, args, env).prop_map(|(program, sub, base, args, env)| {
        let mut argv = vec![program.to_string(), sub.to_string()];
        argv.extend(base.iter().map(|s| s.to_string()));
        argv.extend(args.into_iter().flatten());
        let env = env
            .into_iter()
            .map(|(k, v)| (VARS[k].to_string(), VALUES[v].to_string()))
            .collect();
        (argv, env)
    })
}

/// What clap makes of `argv` with the process environment.
fn clap_view(argv: &[OsString]) -> Option<(Front, String)> {
    let cli = Cli::try_parse_from(dexcred::cli::normalize_args(argv.to_vec())).ok()?;
    match cli.command {
        Sub::Kubectl(a) => Some((Front::Kubectl, format!("{:?} {:?}", a.provider, a.common))),
        Sub::Token(a) => Some((
            Front::Token(a.format),
            format!("{:?} {:?}", a.provider, a.common),
        )),
        _ => None,
    }
}

#[test]
fn fast_path_parses_exactly_like_clap_or_declines() {
    let mut runner = TestRunner::new(PtConfig {
        cases: 4000,
        failure_persistence: None,
        ..PtConfig::default()
    });
    let accepted = std::cell::Cell::new(0usize);
    let result = runner.run(&case_strategy(), |(argv, env)| {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DEXCRED_") {
                // SAFETY: this is the only test in this binary that runs
                // in-process code reading the environment.
                unsafe { std::env::remove_var(&key) };
            }
        }
        // Later duplicates win, as in a real environment.
        let mut pairs: Vec<(OsString, OsString)> = Vec::new();
        for (k, v) in &env {
            pairs.retain(|(pk, _)| pk != k.as_str());
            pairs.push((k.into(), v.into()));
            // SAFETY: as above.
            unsafe { std::env::set_var(k, v) };
        }
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        if let Some(inv) = fastpath::parse(&argv, &pairs) {
            accepted.set(accepted.get() + 1);
            let fast = (inv.command, format!("{:?} {:?}", inv.provider, inv.common));
            let clap = clap_view(&argv);
            prop_assert_eq!(Some(fast), clap, "argv {:?} env {:?}", argv, pairs);
        }
        Ok(())
    });
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DEXCRED_") {
            // SAFETY: as above.
            unsafe { std::env::remove_var(&key) };
        }
    }
    result.unwrap();
    // Not a vacuous property: a good share of the cases took the fast path.
    let accepted = accepted.get();
    assert!(accepted > 100, "only {accepted} cases took the fast path");
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[test]
fn plain_kubeconfig_invocations_take_the_fast_path() {
    let env = [(OsString::from("DEXCRED_PASSWORD"), OsString::from("secret"))];
    for argv in [
        os(&[
            "dexcred",
            "kubectl",
            "--pcd",
            "https://pcd.example.com",
            "--username",
            "alice",
        ]),
        os(&[
            "kubectl-dexcred",
            "kubectl",
            "--pcd=https://pcd.example.com",
            "--username=alice",
            "--certificate-authority",
            "/etc/ca.pem",
        ]),
        os(&[
            "dexcred",
            "token",
            "--format",
            "header",
            "--pcd",
            "https://p",
            "--username",
            "a",
        ]),
    ] {
        assert!(fastpath::parse(&argv, &env).is_some(), "{argv:?}");
    }
}

#[test]
fn anything_unknown_falls_back_to_clap() {
    let base = [
        "dexcred",
        "kubectl",
        "--pcd",
        "https://p",
        "--username",
        "a",
    ];
    for extra in [
        &["-v"][..],
        &["--verbose"],
        &["--force-refresh"],
        &["--help"],
        &["--flag-added-later", "x"],
        &["--username", "again"],
        &["--format", "json"],
        &["--timeout", "soon"],
    ] {
        let mut argv = os(&base);
        argv.extend(os(extra));
        assert!(fastpath::parse(&argv, &[]).is_none(), "{extra:?}");
    }
    let unknown_var = [(OsString::from("DEXCRED_ADDED_LATER"), OsString::from("1"))];
    assert!(fastpath::parse(&os(&base), &unknown_var).is_none());
    let verbose = [(OsString::from("DEXCRED_VERBOSE"), OsString::from("0"))];
    assert!(fastpath::parse(&os(&base), &verbose).is_none());
}

/// The binary's hit: the fast path (plain invocation) and the full path
/// (the same with -v, which the fast path leaves to clap) print the same
/// bytes, and neither contacts the identity provider.
#[test]
fn fast_and_full_path_print_the_same_credential() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let url = idp.url();
    let args = ["kubectl", "--pcd", url.as_str(), "--username", ALICE];
    ok(&run(env
        .dexcred(args)
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD)));
    let before = idp.counts();
    let fast = run(&mut env.dexcred(args));
    let full = run(env.dexcred(args).arg("-v"));
    assert_eq!(ok(&fast), ok(&full));
    assert!(stderr(&full).contains("cache hit"), "{}", stderr(&full));
    assert!(fast.stderr.is_empty());
    assert_eq!(idp.counts(), before);
    // The token front end too, in every format.
    for format in ["raw", "header", "json"] {
        let t = [
            "token",
            "--format",
            format,
            "--pcd",
            url.as_str(),
            "--username",
            ALICE,
        ];
        let fast = run(&mut env.dexcred(t));
        let full = run(env.dexcred(t).arg("-v"));
        assert_eq!(ok(&fast), ok(&full), "{format}");
    }
}
