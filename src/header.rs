//! Header lines for scripts: `--format header` prints one, `--format curl`
//! wraps it in a curl config line so `dexcred token --format curl | curl -K -`
//! keeps the token off every command line (argv is world-readable through
//! `/proc`; a pipe is not).

use crate::error::{Error, Result};

/// Checks `--header-name` against RFC 7230's `token` (the characters a
/// field name may have), so nothing a user typed can split the header line
/// or the curl config line.
pub fn validate_name(name: &str) -> Result<()> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(Error::usage(format!(
            "--header-name {name:?} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only), e.g. X-OCP-PERSONAL-ACCESS-TOKEN"
        )));
    }
    Ok(())
}

/// `Authorization: Bearer <token>`, or `<name>: <token>` with `--header-name`
/// (a personal access token goes bare in its own header).
pub fn line(name: Option<&str>, token: &str) -> String {
    match name {
        Some(name) => format!("{name}: {token}"),
        None => format!("Authorization: Bearer {token}"),
    }
}

/// `header = "<line>"` in curl's config-file syntax: inside double quotes a
/// backslash and a double quote are escaped with a backslash.
pub fn curl_config(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    out.push_str("header = \"");
    for c in line.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push_str("\"\n");
    out
}

/// Tokens and personal access tokens go into header lines and JSON: only
/// visible ASCII may, so no value can inject a second header or line.
pub fn check_value(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::usage(format!(
            "the {what} is empty or contains spaces or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_rfc7230_tokens() {
        assert!(validate_name("X-OCP-PERSONAL-ACCESS-TOKEN").is_ok());
        assert!(validate_name("Authorization").is_ok());
        for bad in ["", "X Y", "X:Y", "X\r\nY", "Ä", "X\"", "(x)"] {
            let e = validate_name(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn curl_lines_escape_backslash_and_quote() {
        assert_eq!(
            curl_config("Authorization: Bearer a.b"),
            "header = \"Authorization: Bearer a.b\"\n"
        );
        assert_eq!(curl_config(r#"X: a\b"c"#), "header = \"X: a\\\\b\\\"c\"\n");
    }

    #[test]
    fn pat_header_is_bare() {
        assert_eq!(
            line(Some("X-OCP-PERSONAL-ACCESS-TOKEN"), "pat1"),
            "X-OCP-PERSONAL-ACCESS-TOKEN: pat1"
        );
        assert_eq!(line(None, "t"), "Authorization: Bearer t");
    }
}
