//! Starting the browser for a login URL.
//!
//! The URL is always printed on stderr first, so a failed or missing opener
//! only costs the user a copy and paste. The opener is run without a shell
//! (the URL is one argv element), with nothing on stdin, its stdout thrown
//! away (ours is kubectl's or git's protocol), and without the secret
//! environment variables dexcred reads.

use std::process::Stdio;

use crate::environment::Environment;
use crate::log::Log;

/// The opener when no `--browser-command` is given.
fn platform_default(env: &Environment) -> Vec<String> {
    // $BROWSER: a colon-separated list of commands, `%s` standing for the
    // URL (the convention xdg-utils and Python's webbrowser follow); the
    // first one is used.
    if let Some(value) = env.var("BROWSER").filter(|v| !v.trim().is_empty()) {
        let first = value.split(':').next().unwrap_or_default();
        if let Some(argv) = shlex::split(first).filter(|a| !a.is_empty()) {
            return argv;
        }
    }
    vec![
        if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        }
        .to_string(),
    ]
}

/// The argv that opens `url`: `command` (from `--browser-command`) or the
/// platform default, with the URL in place of `%s` or appended last.
pub fn argv(command: Option<&[String]>, url: &str, env: &Environment) -> Vec<String> {
    let mut argv = match command {
        Some(c) => c.to_vec(),
        None => platform_default(env),
    };
    if argv.iter().any(|a| a.contains("%s")) {
        for a in &mut argv {
            *a = a.replace("%s", url);
        }
    } else {
        argv.push(url.to_string());
    }
    argv
}

/// Starts the browser on `url` and does not wait for it (a browser may run
/// for hours). A command that cannot start is a warning, not a failure: the
/// URL is on the screen.
pub fn open(command: Option<&[String]>, url: &str, env: &Environment, log: Log) {
    let argv = argv(command, url, env);
    let Some((program, args)) = argv.split_first() else {
        return;
    };
    log.debug(|| format!("starting the browser: {program}"));
    // No secret variable of ours reaches the browser (see `child`).
    let started = crate::child::command(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn();
    match started {
        // Reaped in the background so a quick opener (xdg-open) leaves no
        // zombie while we wait for the redirect; a browser that keeps
        // running is simply left alone when dexcred exits.
        Ok(mut child) => {
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
        Err(e) => log.warn(&format!(
            "could not start the browser ({program}: {e}); open the URL above by hand"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_appended_or_substituted() {
        let env = Environment::default();
        let cmd = vec!["my-browser".to_string(), "--new".to_string()];
        assert_eq!(
            argv(Some(&cmd), "http://x/?a=1&b=2", &env),
            ["my-browser", "--new", "http://x/?a=1&b=2"]
        );
        let cmd = vec!["b".to_string(), "--url=%s".to_string(), "-q".to_string()];
        assert_eq!(
            argv(Some(&cmd), "http://x", &env),
            ["b", "--url=http://x", "-q"]
        );
    }

    #[test]
    fn browser_variable_first_command_else_the_platform_opener() {
        let env = Environment::from_vars([("BROWSER", "'my b' --new %s:firefox")]);
        assert_eq!(argv(None, "http://x", &env), ["my b", "--new", "http://x"]);
        for unset in [vec![], vec![("BROWSER", " ")]] {
            let env = Environment::from_vars(unset);
            assert_eq!(argv(None, "http://x", &env), ["xdg-open", "http://x"]);
        }
    }
}
