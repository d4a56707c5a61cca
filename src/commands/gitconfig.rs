//! `dexcred gitconfig --host HOST [provider flags] [--write]`: the safe git
//! setup, spelled out. Like `dexcred kubeconfig`, it turns the flags that
//! work for `dexcred token` into configuration, so the obvious setup is the
//! one that hands the token only to that host:
//!
//! ```text
//! git config --global --replace-all credential.https://HOST.helper ''
//! git config --global --add credential.https://HOST.helper 'dexcred --git-host HOST --pcd … --username …'
//! ```
//!
//! The helper is scoped twice: by git (the URL) and by dexcred itself
//! (`--git-host`), so even a copy of the line under a plain
//! `credential.helper` serves only HOST. The empty first entry clears
//! helpers configured elsewhere for that URL, so no other helper answers
//! first with an old password.

use std::io::Write;

use crate::cli::{GitAuthArg, GitconfigArgs};
use crate::config::{Config, check_text};
use crate::error::{Error, Result};
use crate::git_hosts::HostPattern;

use super::Runtime;

use super::kubeconfig::exec_args;

pub fn run(args: &GitconfigArgs, rt: &Runtime) -> Result<()> {
    // The same validation as `dexcred git`: no helper line is written for
    // flags that would fail when git runs it.
    HostPattern::parse_flag("--host", &args.host)?;
    if args.host.trim().contains([',', ' ']) {
        return Err(Error::usage(
            "--host takes one host; run dexcred gitconfig once per git server",
        ));
    }
    if let Some(name) = &args.git_username {
        check_text("--git-username", name)?;
    }
    let config = Config::from_args(&args.provider, &args.common, &rt.env)?;
    let host = args.host.trim().to_ascii_lowercase();
    let key = format!("credential.https://{host}.helper");
    let helper = helper_line(args, &host, &config)?;
    if !args.write {
        return rt.write_stdout(&format!(
            "git config --global --replace-all {key} ''\n\
             git config --global --add {key} {}\n",
            shell_quote(&helper)
        ));
    }
    git_config(&["--global", "--replace-all", &key, ""])?;
    git_config(&["--global", "--add", &key, &helper])?;
    let _ = writeln!(
        std::io::stderr(),
        "dexcred: git now asks dexcred for https://{host} only: {key} = {helper}"
    );
    Ok(())
}

/// `dexcred --git-host HOST <the flags of this run>`, each word quoted for
/// the shell git runs the line with.
fn helper_line(args: &GitconfigArgs, host: &str, config: &Config) -> Result<String> {
    let mut words = vec![
        "dexcred".to_string(),
        "--git-host".to_string(),
        host.to_string(),
    ];
    match args.git_auth {
        Some(GitAuthArg::Bearer) => words.extend(["--git-auth".into(), "bearer".into()]),
        Some(GitAuthArg::Basic) => words.extend(["--git-auth".into(), "basic".into()]),
        Some(GitAuthArg::Auto) | None => {}
    }
    if let Some(name) = &args.git_username {
        words.extend(["--git-username".to_string(), name.clone()]);
    }
    // exec_args starts with the `kubectl` subcommand; the helper runs as
    // `git-credential-dexcred`, which needs none.
    words.extend(
        exec_args(&args.provider, &args.common, config)?
            .into_iter()
            .skip(1),
    );
    Ok(words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" "))
}

/// Runs `git config …` without dexcred's secret variables.
fn git_config(args: &[&str]) -> Result<()> {
    let status = crate::child::command("git")
        .arg("config")
        .args(args)
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|e| Error::local(format!("cannot run `git config`: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::local(format!(
            "`git config {}` failed ({status}); run it by hand to see why",
            args.join(" ")
        )))
    }
}

/// A word as POSIX sh reads it back unchanged: bare when it has only safe
/// characters, else in single quotes (a `'` inside becomes `'\''`).
fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_quoting_round_trips_through_sh() {
        for word in [
            "plain",
            "a b",
            "it's",
            "$HOME",
            "",
            "x;rm -rf /",
            "openid groups",
        ] {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(word)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), word);
        }
    }
}
