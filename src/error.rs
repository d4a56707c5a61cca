//! Errors as values, and the one place that turns them into an exit code.
//!
//! Every failure the user can see is an [`Error`]: a category (which picks the
//! exit code) and one line of text that says what failed and what to do about
//! it. Errors travel up to `main`, which prints `dexcred: <message>` on stderr
//! and exits with [`Error::exit_code`]. Nothing else in the program prints an
//! error or calls `exit`, so stdout stays clean for kubectl and git.
//!
//! Messages are built where the context is known and must never contain a
//! token, password or secret: they are written for a terminal that kubectl and
//! git copy straight to the user, and for CI logs that others read.

use std::fmt;

/// What went wrong, in the terms a pipeline needs to react to it.
///
/// The exit codes are part of the interface (scripts branch on them) and are
/// documented in `docs/troubleshooting.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The command line or environment is wrong: fix the invocation. Exit 2.
    Usage,
    /// The identity provider answered and refused (bad password, revoked
    /// session, unknown client), or logging in needs input that this
    /// non-interactive run cannot get. Exit 3.
    Auth,
    /// The identity provider could not be reached or answered with something
    /// unusable (timeout, TLS failure, 5xx, malformed body). Exit 4.
    Provider,
    /// A local problem: the cache directory, a lock, a password file or
    /// command. Exit 5.
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: Kind,
    message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(Kind::Usage, message)
    }

    pub fn auth(message: impl Into<String>) -> Error {
        Error::new(Kind::Auth, message)
    }

    pub fn provider(message: impl Into<String>) -> Error {
        Error::new(Kind::Provider, message)
    }

    pub fn local(message: impl Into<String>) -> Error {
        Error::new(Kind::Local, message)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Adds context in front of the message, keeping the category.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error {
            kind: self.kind,
            message: format!("{what}: {}", self.message),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Usage => 2,
            Kind::Auth => 3,
            Kind::Provider => 4,
            Kind::Local => 5,
        }
    }

    /// The message as the single line `main` prints: control characters
    /// (including newlines a server may have put in an error description)
    /// become spaces, so one failure is always one line.
    pub fn one_line(&self) -> String {
        one_line(&self.message)
    }
}

/// Collapses any text to one printable line.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_space = false;
    for c in text.chars() {
        let c = if c.is_control() || is_invisible_format(c) {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
    }
    out.trim().to_string()
}

/// Text a server or a token controls, made safe to print on a terminal
/// without changing its meaning: control characters (ESC, CR, newline, DEL,
/// C1 controls) and the invisible characters that reorder or hide text
/// (bidirectional overrides, zero-width marks) are written as `\u{…}`
/// escapes, and a backslash as `\\` so an escape cannot be faked. A claim
/// like `"Alice\r\x1b[2KLogged in as root"` then prints as one visible,
/// honest line instead of rewriting the terminal.
pub fn escape_for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() || is_invisible_format(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Unicode format characters that change how surrounding text is shown
/// (Trojan Source): bidi embeddings, overrides and isolates, directional and
/// zero-width marks, and the byte-order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2069}'
        | '\u{061c}'
        | '\u{feff}'
    )
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.one_line())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_per_kind() {
        let codes = [
            Error::usage("x").exit_code(),
            Error::auth("x").exit_code(),
            Error::provider("x").exit_code(),
            Error::local("x").exit_code(),
        ];
        assert_eq!(codes, [2, 3, 4, 5]);
    }

    #[test]
    fn one_line_removes_newlines_and_collapses_space() {
        let e = Error::provider("server said:\n  bad\r\n\tthing  ");
        assert_eq!(e.one_line(), "server said: bad thing");
    }

    #[test]
    fn terminal_escapes_controls_and_bidi_but_keeps_text() {
        assert_eq!(escape_for_terminal("Ålice <a@b>"), "Ålice <a@b>");
        assert_eq!(
            escape_for_terminal("a\r\x1b[2Kb\nc\u{202e}d\\e"),
            "a\\u{d}\\u{1b}[2Kb\\u{a}c\\u{202e}d\\\\e"
        );
        assert_eq!(one_line("x\u{202e}y"), "x y");
    }

    #[test]
    fn context_keeps_kind() {
        let e = Error::local("denied").context("cannot write /x");
        assert_eq!(e.kind(), Kind::Local);
        assert_eq!(e.message(), "cannot write /x: denied");
    }
}
