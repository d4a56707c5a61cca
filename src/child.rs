//! Child processes dexcred starts (`--password-command`, `--otp-command`,
//! `git config` for the credential helper's scope, and any future helper
//! such as a browser) get an environment without dexcred's secrets.
//!
//! A secret given in the environment is meant for dexcred alone. Without
//! this, `--password-command` would see `DEXCRED_CLIENT_SECRET`, an OTP
//! command `DEXCRED_PASSWORD`, and either could log or forward them.

use std::ffi::OsStr;
use std::process::Command;

/// Every environment variable whose value is itself a secret. This is the
/// one list: [`command`] removes all of them from every child, and
/// `config` reads the secret values from these names.
pub const SECRET_ENV_VARS: &[&str] = &[
    ENV_PASSWORD,
    ENV_OTP,
    ENV_CLIENT_SECRET,
    "DEXCRED_PAT",
    "DEXCRED_SUBJECT_TOKEN",
    // The GitHub Actions runner's bearer for minting identity tokens: a
    // secret of the CI system's, which no helper command needs.
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
];

/// The password (read directly, never through a flag).
pub const ENV_PASSWORD: &str = "DEXCRED_PASSWORD";
/// A one-time code.
pub const ENV_OTP: &str = "DEXCRED_OTP";
/// An OAuth client secret.
pub const ENV_CLIENT_SECRET: &str = "DEXCRED_CLIENT_SECRET";

/// A [`Command`] for `program` whose environment is ours minus
/// [`SECRET_ENV_VARS`]. Everything else (PATH, HOME, GIT_*, the terminal,
/// a GPG agent's socket) is kept: helpers need it.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for name in SECRET_ENV_VARS {
        cmd.env_remove(name);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_variable_is_removed() {
        let cmd = command("/usr/bin/env");
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for name in SECRET_ENV_VARS {
            assert!(removed.iter().any(|k| k == name), "{name} is not removed");
        }
    }
}
