//! dexcred: bearer tokens from Dex/OIDC identity providers for kubectl (exec
//! credential plugin), git (credential helper) and scripts, from a locked,
//! crash-safe local cache.
//!
//! Layers, from the outside in:
//! - [`fastpath`] serves a cache hit for plain invocations before clap;
//! - [`cli`] parses the command line; [`commands`] runs one subcommand;
//! - [`protocol`] speaks kubectl's and git's wire formats;
//! - [`session`] is the use case: cache hit, or lock → re-read → renew;
//! - [`cache`] stores entries atomically and holds the per-entry lock;
//! - [`provider`] talks to PCD/Dex, Keycloak and other OAuth servers over
//!   [`http`]; [`provider::login`] runs the browser and device-code logins;
//! - [`environment`] is the only reader of environment variables and
//!   [`prompt`] the only code that asks a person; both are passed down;
//! - [`jwt`], [`secret`], [`fs`], [`url`], [`child`], [`log`] and
//!   [`error`] support all of them.
//!
//! `scripts/module-graph.sh` checks that modules import only lower layers
//! (docs/architecture.md lists them).

pub mod cache;
pub mod child;
pub mod cli;
pub mod commands;
pub mod config;
pub mod environment;
pub mod error;
pub mod fastpath;
pub mod fs;
pub mod git_hosts;
pub mod header;
pub mod http;
pub mod jwt;
pub mod kubeconfig;
pub mod log;
pub mod nss;
pub mod prompt;
pub mod protocol;
pub mod provider;
pub mod proxy;
pub mod redact;
pub mod secret;
pub mod session;
pub mod subject;
pub mod url;

use std::ffi::OsString;

/// Runs dexcred with `args` (argv including the program name) and returns
/// the process exit code. Errors are printed here, once, as one line.
pub fn main_with_args(args: Vec<OsString>) -> i32 {
    run(args, &commands::Runtime::process())
}

/// Runs dexcred with `args` in `rt`: the process's environment, terminal
/// and stdout, or (in tests) a fixed environment, scripted answers and
/// captured output. Returns the exit code.
pub fn run(args: Vec<OsString>, rt: &commands::Runtime) -> i32 {
    use clap::Parser;
    // A cache hit for a plain invocation, without building clap's parser;
    // anything else falls through to clap below (see fastpath.rs).
    if let Some(out) = fastpath::serve(&args, &rt.env)
        && rt.write_stdout(&out).is_ok()
    {
        return 0;
    }
    let args = cli::normalize_args(args);
    let command = args.get(1).cloned();
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // Help and version: on stdout, exit 0.
            let _ = e.print();
            return e.exit_code();
        }
        Err(e) => {
            eprintln!("dexcred: {}", cli::usage_error(&e, command.as_deref()));
            return 2;
        }
    };
    match commands::run(cli, rt) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("dexcred: {}", e.one_line());
            e.exit_code()
        }
    }
}
