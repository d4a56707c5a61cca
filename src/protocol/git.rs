//! git's credential helper protocol (see git-credential(1)). git 2.46 and
//! newer announce `capability[]=authtype` and accept a bearer token as
//! `authtype`/`credential`; older gits accept only `username`/`password`.
//!
//! Input is `key=value` lines up to a blank line or EOF. `key[]` keys build
//! lists (an empty `key[]=` clears the list); unknown keys are ignored; a
//! line without `=` is skipped (git itself would warn). Output is the same
//! format; no value we print may contain a newline or NUL, since that would
//! let a value inject protocol lines.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};

use crate::error::{Error, Result};

/// git keeps credential lines under 64 KiB; a longer line is not a
/// credential, and is skipped instead of being buffered further.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Bound on the whole request, so a runaway writer cannot exhaust memory.
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// One credential description from git.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    values: BTreeMap<String, String>,
    lists: BTreeMap<String, Vec<String>>,
}

impl Request {
    /// The last value of a plain key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The values of a `key[]` list (pass the name without `[]`).
    pub fn list(&self, key: &str) -> &[String] {
        self.lists.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether git advertised a capability (`capability[]=authtype`).
    pub fn has_capability(&self, name: &str) -> bool {
        self.list("capability").iter().any(|c| c == name)
    }

    /// The secret git presented back to us: `credential` (authtype mode)
    /// or `password`.
    pub fn presented_secret(&self) -> Option<&str> {
        self.get("credential")
            .or_else(|| self.get("password"))
            .filter(|s| !s.is_empty())
    }
}

/// Reads a request from `input` (stdin), stopping at a blank line or EOF.
pub fn read_request(input: impl Read) -> Result<Request> {
    let mut reader = std::io::BufReader::new(input.take(MAX_INPUT_BYTES));
    let mut request = Request::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = read_bounded_line(&mut reader, &mut line)
            .map_err(|e| Error::local(format!("cannot read git's request on stdin: {e}")))?;
        if n == 0 {
            break; // EOF
        }
        let Some(text) = line_text(&line) else {
            continue; // too long, or not UTF-8: not a credential line
        };
        if text.is_empty() {
            break;
        }
        apply_line(&mut request, text);
    }
    Ok(request)
}

/// Reads one line, keeping at most MAX_LINE_BYTES + 1 bytes of it (the rest
/// is consumed and dropped). Returns the bytes consumed.
fn read_bounded_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..=i], true),
            None => (chunk, false),
        };
        let room = (MAX_LINE_BYTES + 1).saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        let used = part.len();
        reader.consume(used);
        consumed += used;
        if done {
            return Ok(consumed);
        }
    }
}

fn line_text(line: &[u8]) -> Option<&str> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE_BYTES {
        return None;
    }
    std::str::from_utf8(line).ok()
}

fn apply_line(request: &mut Request, text: &str) {
    let Some((key, value)) = text.split_once('=') else {
        return;
    };
    if key.is_empty() || value.contains('\0') {
        return;
    }
    if let Some(list) = key.strip_suffix("[]") {
        let entry = request.lists.entry(list.to_string()).or_default();
        if value.is_empty() {
            entry.clear();
        } else {
            entry.push(value.to_string());
        }
    } else {
        request.values.insert(key.to_string(), value.to_string());
    }
}

/// How the token is given to git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<'a> {
    /// git ≥ 2.46 with `capability[]=authtype`: `Authorization: Bearer`.
    Bearer { token: &'a str, expiry: i64 },
    /// Any git: Basic with a fixed user name and the token as password.
    Basic {
        username: &'a str,
        token: &'a str,
        expiry: i64,
    },
}

/// Renders a `get` answer. Fails rather than print a value that could break
/// the line protocol.
pub fn render_get(answer: &Answer<'_>) -> Result<String> {
    let mut out = String::new();
    let mut line = |key: &str, value: &str| -> Result<()> {
        if value.contains(['\n', '\r', '\0']) {
            return Err(Error::provider(format!(
                "refusing to pass a {key} containing a line break to git"
            )));
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push('\n');
        Ok(())
    };
    match answer {
        Answer::Bearer { token, expiry } => {
            line("capability[]", "authtype")?;
            line("authtype", "Bearer")?;
            line("credential", token)?;
            // git must not hand the token to storage helpers such as
            // credential-cache: dexcred owns its cache and its renewal.
            line("ephemeral", "1")?;
            line("password_expiry_utc", &expiry.to_string())?;
        }
        Answer::Basic {
            username,
            token,
            expiry,
        } => {
            line("username", username)?;
            line("password", token)?;
            line("password_expiry_utc", &expiry.to_string())?;
        }
    }
    Ok(out)
}

/// The answer to `capability`.
pub const CAPABILITIES: &str = "version 0\ncapability authtype\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> Request {
        read_request(input.as_bytes()).unwrap()
    }

    #[test]
    fn reads_what_git_2_47_sends() {
        let r = parse(
            "capability[]=authtype\ncapability[]=state\nprotocol=https\nhost=git.example.com:8443\n\
             wwwauth[]=Basic realm=\"git\"\nwwwauth[]=Bearer realm=\"x\"\n\n",
        );
        assert!(r.has_capability("authtype"));
        assert_eq!(r.get("protocol"), Some("https"));
        assert_eq!(r.get("host"), Some("git.example.com:8443"));
        assert_eq!(r.list("wwwauth").len(), 2);
    }

    #[test]
    fn stops_at_blank_line_and_handles_crlf() {
        let r = parse("protocol=https\r\n\r\nhost=ignored\n");
        assert_eq!(r.get("protocol"), Some("https"));
        assert_eq!(r.get("host"), None);
    }

    #[test]
    fn empty_list_item_clears_and_last_plain_value_wins() {
        let r = parse("capability[]=authtype\ncapability[]=\ncapability[]=state\nhost=a\nhost=b\n");
        assert_eq!(r.list("capability"), ["state"]);
        assert!(!r.has_capability("authtype"));
        assert_eq!(r.get("host"), Some("b"));
    }

    #[test]
    fn garbage_is_ignored() {
        let r = parse("no equals sign\n=novalue\nkey=val=ue\n\u{0}=x\npassword=a\u{0}b\n");
        assert_eq!(r.get("key"), Some("val=ue"));
        assert_eq!(r.get("password"), None);
        let r = read_request(&[0xff, 0xfe, b'\n', b'a', b'=', b'b', b'\n'][..]).unwrap();
        assert_eq!(r.get("a"), Some("b"));
    }

    #[test]
    fn huge_lines_are_skipped_without_buffering_them() {
        let mut input = format!("host={}\n", "x".repeat(5 * MAX_LINE_BYTES));
        input.push_str("protocol=https\n");
        let r = parse(&input);
        assert_eq!(r.get("host"), None);
        assert_eq!(r.get("protocol"), Some("https"));
    }

    #[test]
    fn input_is_bounded() {
        let input = "a=b\n".repeat((MAX_INPUT_BYTES as usize / 4) + 1000) + "late=1\n";
        let r = parse(&input);
        assert_eq!(r.get("late"), None);
    }

    #[test]
    fn presented_secret_prefers_credential() {
        assert_eq!(
            parse("password=p\ncredential=c\n").presented_secret(),
            Some("c")
        );
        assert_eq!(parse("password=p\n").presented_secret(), Some("p"));
        assert_eq!(parse("password=\n").presented_secret(), None);
    }

    #[test]
    fn renders_bearer_and_basic() {
        let bearer = render_get(&Answer::Bearer {
            token: "t",
            expiry: 42,
        })
        .unwrap();
        assert_eq!(
            bearer,
            "capability[]=authtype\nauthtype=Bearer\ncredential=t\nephemeral=1\npassword_expiry_utc=42\n"
        );
        let basic = render_get(&Answer::Basic {
            username: "oauth2",
            token: "t",
            expiry: 42,
        })
        .unwrap();
        assert_eq!(
            basic,
            "username=oauth2\npassword=t\npassword_expiry_utc=42\n"
        );
        assert!(
            render_get(&Answer::Basic {
                username: "a\nb",
                token: "t",
                expiry: 1
            })
            .is_err()
        );
    }
}
