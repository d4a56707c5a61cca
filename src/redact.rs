//! Blanking secrets that a server echoes back in an error body.
//!
//! A server may quote what it was sent in any spelling: as is, JSON-escaped
//! (`\/`, `\u00E9` or `\u00e9`, surrogate pairs), HTML-escaped (`&amp;`,
//! `&#39;`, `&#x27;`, `&apos;`), form- or percent-encoded (`+`, `%2F` or
//! `%2f`), or mixed. Listing spellings cannot keep up, so the body is read
//! the way each family of servers writes it — character by character,
//! decoding escapes — and a secret is blanked wherever the *decoded*
//! characters spell it, by replacing the original bytes that spelt it.
//!
//! Very short secrets (a 3-character password) would match inside ordinary
//! words, so they are blanked only where they stand as a whole token.

/// What a blanked secret becomes.
pub const MARK: &str = "[redacted]";

/// Secrets with fewer characters than this are matched as whole tokens only.
const SHORT_CHARS: usize = 4;

/// How a body may spell a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// Every character stands for itself.
    Literal,
    /// JSON string escapes and HTML character references.
    Escaped,
    /// Percent-encoding, with `+` for a space (form encoding).
    Url,
}

/// One decoded character and the byte range of `text` that spelt it.
#[derive(Debug, Clone, Copy)]
struct Unit {
    c: char,
    start: usize,
    end: usize,
}

/// Replaces every spelling of every secret in `text` with [`MARK`].
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    // Longest first, so a secret containing another is blanked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    let mut out = text.to_string();
    for secret in secrets {
        let wanted: Vec<char> = secret.chars().collect();
        for dialect in [Dialect::Literal, Dialect::Escaped, Dialect::Url] {
            out = blank(&out, &wanted, dialect);
        }
    }
    out
}

fn blank(text: &str, wanted: &[char], dialect: Dialect) -> String {
    let units = decode(text, dialect);
    let whole_token = wanted.len() < SHORT_CHARS;
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i + wanted.len() <= units.len() {
        let spelt = units[i..i + wanted.len()]
            .iter()
            .zip(wanted)
            .all(|(u, c)| u.c == *c);
        let bounded = !whole_token || {
            let before = i.checked_sub(1).map(|j| units[j].c);
            let after = units.get(i + wanted.len()).map(|u| u.c);
            !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
        };
        if spelt && bounded {
            out.push_str(&text[copied..units[i].start]);
            out.push_str(MARK);
            copied = units[i + wanted.len() - 1].end;
            i += wanted.len();
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn decode(text: &str, dialect: Dialect) -> Vec<Unit> {
    let mut units = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let decoded = match dialect {
            Dialect::Literal => None,
            Dialect::Escaped => json_escape(rest).or_else(|| html_reference(rest)),
            Dialect::Url => percent_escape(rest),
        };
        let (c, len) = decoded.unwrap_or_else(|| {
            let c = rest.chars().next().unwrap_or('\u{fffd}');
            let c = if dialect == Dialect::Url && c == '+' {
                ' '
            } else {
                c
            };
            (c, rest.chars().next().map_or(1, char::len_utf8))
        });
        units.push(Unit {
            c,
            start: i,
            end: i + len,
        });
        i += len;
    }
    units
}

fn hex_value(digits: &str) -> Option<u32> {
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(digits, 16).ok())
        .flatten()
}

/// `\uXXXX` (either case, surrogate pairs joined), `\/`, `\\`, `\"` and the
/// control-character escapes.
fn json_escape(rest: &str) -> Option<(char, usize)> {
    let after = rest.strip_prefix('\\')?;
    let simple = match after.chars().next()? {
        '/' => Some('/'),
        '\\' => Some('\\'),
        '"' => Some('"'),
        '\'' => Some('\''),
        'n' => Some('\n'),
        't' => Some('\t'),
        'r' => Some('\r'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        _ => None,
    };
    if let Some(c) = simple {
        return Some((c, 2));
    }
    let unit = |s: &str| s.strip_prefix("\\u").and_then(|h| hex_value(h.get(..4)?));
    let first = unit(rest)?;
    if (0xD800..0xDC00).contains(&first) {
        let second = unit(&rest[6..]).filter(|u| (0xDC00..0xE000).contains(u))?;
        let c = char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))?;
        return Some((c, 12));
    }
    Some((char::from_u32(first)?, 6))
}

/// `&#NN;`, `&#xHH;` and the named references servers actually use.
fn html_reference(rest: &str) -> Option<(char, usize)> {
    let after = rest.strip_prefix('&')?;
    let end = after.bytes().take(12).position(|b| b == b';')?;
    let name = &after[..end];
    let c = if let Some(num) = name.strip_prefix('#') {
        match num.strip_prefix(['x', 'X']) {
            Some(hex) => char::from_u32(hex_value(hex)?)?,
            None => char::from_u32(num.parse().ok()?)?,
        }
    } else {
        match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => '\u{a0}',
            "sol" => '/',
            "equals" => '=',
            "plus" => '+',
            "colon" => ':',
            "percnt" => '%',
            "num" => '#',
            "grave" => '`',
            _ => return None,
        }
    };
    Some((c, end + 2))
}

/// A percent-encoded character: one `%HH`, or the `%HH` run of one UTF-8
/// sequence.
fn percent_escape(rest: &str) -> Option<(char, usize)> {
    let byte = |at: usize| -> Option<u8> {
        let s = rest.get(at..at + 3)?;
        s.strip_prefix('%')
            .and_then(hex_value)
            .and_then(|v| u8::try_from(v).ok())
    };
    let lead = byte(0)?;
    let len = match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return None,
    };
    let bytes: Option<Vec<u8>> = (0..len).map(|k| byte(k * 3)).collect();
    let c = std::str::from_utf8(&bytes?).ok()?.chars().next()?;
    Some((c, len * 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn blanked(body: &str, secret: &str) -> String {
        let out = redact(body, &[secret]);
        assert!(out.contains(MARK), "{body} -> {out}");
        out
    }

    #[test]
    fn every_spelling_of_a_secret_is_blanked() {
        let secret = "p/w'é<&";
        for body in [
            r#"{"error":"bad p/w'é<&"}"#,
            r#"{"error":"bad p\/w'\u00E9<&"}"#,
            r#"{"error":"bad p\/w\u0027\u00e9\u003c\u0026"}"#,
            "<p>bad p/w&#x27;é&lt;&amp;</p>",
            "<p>bad p&#47;w&#39;é&#60;&#X26;</p>",
            "<p>bad p/w&apos;é&lt;&amp;</p>",
            "password=p%2Fw%27%C3%A9%3C%26",
            "password=p%2fw%27%c3%a9%3c%26",
        ] {
            let out = blanked(body, secret);
            assert!(!out.contains("p/w"), "{body} -> {out}");
            assert!(!out.contains("\\u00"), "{body} -> {out}");
        }
    }

    #[test]
    fn surrogate_pairs_and_form_spaces() {
        let out = blanked(r#"{"e":"x \ud83d\ude00 pw"}"#, "\u{1F600} pw");
        assert_eq!(out, r#"{"e":"x [redacted]"}"#);
        let out = blanked("password=a+b%2Bc", "a b+c");
        assert_eq!(out, "password=[redacted]");
    }

    #[test]
    fn short_secrets_only_as_whole_tokens() {
        let out = redact("invalid password: ab1 (user ab1x)", &["ab1"]);
        assert_eq!(out, "invalid password: [redacted] (user ab1x)");
        let out = redact(r#"{"pw":"a\/"}"#, &["a/"]);
        assert_eq!(out, r#"{"pw":"[redacted]"}"#);
        assert_eq!(redact("nothing here", &["x"]), "nothing here");
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let body = r#"{"error":"invalid_grant","error_description":"Invalid user credentials \u00e9 &amp; 100%"}"#;
        assert_eq!(redact(body, &["hunter2", ""]), body);
    }
}
