//! Diagnostics on stderr. No global logger: a `Log` value is passed to the
//! code that has something to say, so the cache-hit path pays for nothing.
//!
//! Callers never format a secret into a message; tokens appear only as
//! [`crate::secret::fingerprint`]s.

use std::io::Write;

#[derive(Debug, Clone, Copy, Default)]
pub struct Log {
    verbose: bool,
}

impl Log {
    pub fn new(verbose: bool) -> Log {
        Log { verbose }
    }

    pub fn is_verbose(&self) -> bool {
        self.verbose
    }

    /// A `-v` line: what dexcred is doing and why. The message is built
    /// only when verbose, so the cache-hit path never pays for formatting
    /// (or for hashing a token into a fingerprint).
    pub fn debug(&self, message: impl FnOnce() -> String) {
        if self.verbose {
            let _ = writeln!(std::io::stderr(), "dexcred: {}", message());
        }
    }

    /// Always shown: something the user should know although the run
    /// succeeds (a stale token served, an insecure option in use).
    pub fn warn(&self, message: &str) {
        let _ = writeln!(
            std::io::stderr(),
            "dexcred: warning: {}",
            crate::error::one_line(message)
        );
    }
}
