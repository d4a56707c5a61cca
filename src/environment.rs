//! The process environment, read in one place.
//!
//! [`Environment`] is the only reader of environment variables in dexcred:
//! `lib.rs` creates one per run and passes it down to the commands, the
//! configuration and the credential sources. Two exceptions, on purpose:
//! clap reads the `DEXCRED_*` flag variables itself (its `env = …`
//! attributes in `cli.rs`), and tests set up their own processes.
//!
//! Nothing is read up front: each variable is read from the process when it
//! is asked for, so the cache-hit path pays only for the few variables it
//! uses. [`Environment::from_vars`] builds one from a list instead, for
//! tests that run commands in-process without touching the real one.
//! Child processes (`--password-command`, `git config`) still inherit this
//! process's environment, minus the secrets (see `crate::child`).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where variables come from: this process, or a fixed list.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `None`: the process environment, read on each lookup.
    vars: Option<Arc<BTreeMap<String, OsString>>>,
}

impl Environment {
    /// The environment this process was started with.
    pub fn process() -> Environment {
        Environment { vars: None }
    }

    /// A fixed environment (for in-process tests): exactly these variables.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Environment
    where
        K: Into<String>,
        V: Into<OsString>,
    {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Environment {
            vars: Some(Arc::new(vars)),
        }
    }

    /// The variable's value as the OS gave it, if set.
    pub fn var_os(&self, name: &str) -> Option<OsString> {
        match &self.vars {
            None => std::env::var_os(name),
            Some(vars) => vars.get(name).cloned(),
        }
    }

    /// The variable's value when it is set and valid UTF-8 (as
    /// `std::env::var`).
    pub fn var(&self, name: &str) -> Option<String> {
        self.var_os(name).and_then(|v| v.into_string().ok())
    }

    /// [`Environment::var`], with an empty value read as unset: what every
    /// variable that holds a secret or a setting means by empty.
    pub fn non_empty(&self, name: &str) -> Option<String> {
        self.var(name).filter(|v| !v.is_empty())
    }

    /// Every variable whose name starts with `prefix` (the fast path's
    /// `DEXCRED_*`: it must know them all to decide like clap).
    pub fn with_prefix(&self, prefix: &str) -> Vec<(OsString, OsString)> {
        match &self.vars {
            None => process_vars_with_prefix(prefix),
            Some(vars) => vars
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (OsString::from(k), v.clone()))
                .collect(),
        }
    }

    /// Whether a CI system says this run is unattended (`CI=true`, as GitHub
    /// Actions, GitLab CI and most others set it).
    pub fn ci(&self) -> bool {
        self.non_empty("CI")
            .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    }

    /// The home directory: `$HOME`, else (for the process environment) the
    /// user database's entry for the effective user, as every Unix program
    /// does: std's `home_dir`, after [`crate::nss::builtin_services_only`]
    /// so that a static build never loads the system's NSS modules.
    pub fn home_dir(&self) -> Option<PathBuf> {
        match self.var_os("HOME").filter(|h| !h.is_empty()) {
            Some(home) => Some(PathBuf::from(home)),
            None if self.vars.is_none() => {
                crate::nss::builtin_services_only();
                std::env::home_dir()
            }
            None => None,
        }
    }

    /// The user's cache directory: `$XDG_CACHE_HOME` when it is an absolute
    /// path (the XDG rule: a relative one is ignored), else `~/.cache`
    /// (`~/Library/Caches` on macOS).
    pub fn cache_home(&self) -> Option<PathBuf> {
        if cfg!(target_os = "macos") {
            return self.home_dir().map(|h| h.join("Library/Caches"));
        }
        self.var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| self.home_dir().map(|h| h.join(".cache")))
    }
}

/// The process's variables whose names start with `prefix`, copied from one
/// pass over `environ`; nothing else is copied (`std::env::vars_os` would
/// allocate two strings for every variable of the environment).
fn process_vars_with_prefix(prefix: &str) -> Vec<(OsString, OsString)> {
    use std::os::unix::ffi::OsStrExt;
    unsafe extern "C" {
        static environ: *const *const std::ffi::c_char;
    }
    let mut found = Vec::new();
    // SAFETY: `environ` is the NULL-terminated array of NUL-terminated
    // strings the C library keeps; dexcred is single-threaded here and
    // does not change its environment, so nothing moves it meanwhile.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let bytes = std::ffi::CStr::from_ptr(*entry).to_bytes();
            if bytes.starts_with(prefix.as_bytes())
                && let Some(eq) = bytes.iter().position(|&b| b == b'=')
            {
                found.push((
                    OsStr::from_bytes(&bytes[..eq]).to_os_string(),
                    OsStr::from_bytes(&bytes[eq + 1..]).to_os_string(),
                ));
            }
            entry = entry.add(1);
        }
    }
    found
}

/// Names only: values may be secrets (`DEXCRED_PASSWORD`).
impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.vars {
            None => f.write_str("Environment(process)"),
            Some(vars) => f.debug_set().entries(vars.keys()).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_variables_read_as_unset_when_asked() {
        let env = Environment::from_vars([("A", "x"), ("EMPTY", "")]);
        assert_eq!(env.non_empty("A").as_deref(), Some("x"));
        assert_eq!(env.non_empty("EMPTY"), None);
        assert_eq!(env.var("EMPTY").as_deref(), Some(""));
        assert_eq!(env.var("MISSING"), None);
    }

    #[test]
    fn ci_is_set_unless_false_or_zero() {
        for (value, ci) in [("true", true), ("1", true), ("0", false), ("False", false)] {
            assert_eq!(Environment::from_vars([("CI", value)]).ci(), ci, "{value}");
        }
        assert!(!Environment::from_vars([("CI", "")]).ci());
        assert!(!Environment::from_vars(Vec::<(String, String)>::new()).ci());
    }

    #[test]
    fn cache_home_follows_xdg_then_home() {
        let env = Environment::from_vars([("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(env.cache_home(), Some(PathBuf::from("/x")));
        let env = Environment::from_vars([("HOME", "/h"), ("XDG_CACHE_HOME", "rel")]);
        assert_eq!(env.cache_home(), Some(PathBuf::from("/h/.cache")));
        let env = Environment::from_vars([("XDG_CACHE_HOME", "")]);
        assert_eq!(env.cache_home(), None);
    }

    #[test]
    fn prefixed_variables_come_from_the_given_list() {
        let env = Environment::from_vars([("DEXCRED_A", "1"), ("OTHER", "2")]);
        assert_eq!(
            env.with_prefix("DEXCRED_"),
            [(OsString::from("DEXCRED_A"), OsString::from("1"))]
        );
    }

    #[test]
    fn debug_shows_names_not_values() {
        let env = Environment::from_vars([("DEXCRED_PASSWORD", "hunter2")]);
        let shown = format!("{env:?}");
        assert!(shown.contains("DEXCRED_PASSWORD") && !shown.contains("hunter2"));
    }
}
