//! Small helpers shared by the fakes: randomness, clocks, URL decoding, locks.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

/// Locks a mutex, ignoring poisoning.
///
/// A test that panics while holding a fake's lock must not turn every later
/// request into a second panic inside a server thread; the state is plain data
/// and stays usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `n` random bytes from the operating system.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // SystemRandom only fails when the OS has no entropy source at all; a
    // test double cannot do anything useful then, so zeros are acceptable.
    let _ = SystemRandom::new().fill(&mut buf);
    buf
}

/// A random base64url string carrying `n` bytes of entropy.
pub(crate) fn random_token(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(n))
}

/// A random RFC 4122 version-4 UUID, as Keycloak uses for session ids.
pub(crate) fn uuid_v4() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Dex's `storage.NewID()`: 16 random bytes in lowercase base32 without padding.
pub(crate) fn dex_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bytes = random_bytes(16);
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for byte in bytes {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Seconds since the Unix epoch, clamped to zero for clocks before 1970.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// RFC 3339 UTC timestamp with microseconds, the shape Keystone uses
/// (`2026-11-23T10:00:00.000000Z`).
pub(crate) fn rfc3339_micros(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Converts days since 1970-01-01 to a (year, month, day) civil date.
///
/// Howard Hinnant's algorithm; avoids pulling a date crate into the testkit.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Percent-decodes `s` the way Go's `url.QueryUnescape` does: `+` is a space,
/// `%XX` is a byte. Returns `None` for a malformed escape, which Dex answers
/// with 400 rather than guessing.
pub(crate) fn query_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_val(*bytes.get(i + 1)?)?;
                let lo = hex_val(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Lenient percent-decoding for form bodies: a malformed escape is kept as
/// literal text (what most form parsers do) instead of failing the request.
pub(crate) fn query_unescape_lenient(s: &str) -> String {
    query_unescape(s).unwrap_or_else(|| s.replace('+', " "))
}

/// Percent-encodes everything except RFC 3986 unreserved characters, so the
/// result is safe in a form body and inside HTTP Basic credentials.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An `Authorization` value for HTTP Basic client authentication as RFC 6749
/// §2.3.1 specifies it: `Basic base64(urlencode(id):urlencode(secret))`.
pub fn basic_auth_value(id: &str, secret: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    let pair = format!("{}:{}", url_encode(id), url_encode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// Encodes `pairs` as an `application/x-www-form-urlencoded` body.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_420), (2025, 11, 28));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn rfc3339_shape() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(rfc3339_micros(t), "2023-11-14T22:13:20.123456Z");
    }

    #[test]
    fn unescape() {
        assert_eq!(query_unescape("a+b%20c%2B").as_deref(), Some("a b c+"));
        assert_eq!(query_unescape("bad%zz"), None);
        assert_eq!(query_unescape("cut%2"), None);
        assert_eq!(query_unescape_lenient("bad%zz+x"), "bad%zz x");
    }

    #[test]
    fn encode_roundtrip() {
        let s = "m@chine:s3cret+/ %&";
        assert_eq!(query_unescape(&url_encode(s)).as_deref(), Some(s));
    }

    #[test]
    fn ids_have_expected_shapes() {
        assert_eq!(dex_id().len(), 26);
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
