//! HTTP/1.1 framing: reading one request off a connection, rendering one
//! response. Everything a client sends is treated as hostile input: any
//! framing problem becomes an error value, never a panic.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;

use super::reply::Response;
use super::request::Request;

/// Longest request line or header line accepted.
const MAX_LINE: usize = 16 * 1024;
/// Most header fields accepted in one request.
const MAX_HEADERS: usize = 200;
/// Largest request body accepted (git pushes in tests are tiny).
pub(crate) const MAX_BODY: usize = 64 * 1024 * 1024;

/// Why a request could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The connection failed or timed out; nothing useful can be sent.
    Io,
    /// The bytes are not a valid HTTP/1.x request; answer 400 and close.
    Bad(&'static str),
    /// Headers or body exceed the limits above; answer 413/431 and close.
    TooLarge(u16),
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Io
    }
}

/// A request plus whether the connection may carry another one.
pub(crate) struct Incoming {
    pub request: Request,
    pub keep_alive: bool,
}

/// Reads one request. `Ok(None)` means the client closed the connection
/// cleanly between requests.
pub(crate) fn read_request<S: Read + Write>(
    conn: &mut BufReader<S>,
    peer: SocketAddr,
) -> Result<Option<Incoming>, ReadError> {
    let Some(line) = read_request_line(conn)? else {
        return Ok(None);
    };
    let (method, target, version) = parse_request_line(&line)?;
    let headers = read_headers(conn)?;
    let keep_alive = keep_alive(&version, &headers)?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target.clone(), String::new()),
    };
    let mut request = Request {
        method,
        path,
        query,
        headers,
        body: Vec::new(),
        peer,
    };
    request.body = read_body(conn, &request, &version)?;
    Ok(Some(Incoming {
        request,
        keep_alive,
    }))
}

/// Reads the request line, skipping the empty lines RFC 9112 §2.2 allows
/// before it.
fn read_request_line<S: Read>(conn: &mut BufReader<S>) -> Result<Option<String>, ReadError> {
    for _ in 0..4 {
        match read_line(conn)? {
            None => return Ok(None),
            Some(line) if line.is_empty() => continue,
            Some(line) => return Ok(Some(line)),
        }
    }
    Err(ReadError::Bad("no request line"))
}

/// Reads one CRLF- (or LF-) terminated line without the terminator.
/// `Ok(None)` at a clean end of stream.
fn read_line<S: Read>(conn: &mut BufReader<S>) -> Result<Option<String>, ReadError> {
    let mut buf = Vec::new();
    let n = conn
        .by_ref()
        .take(MAX_LINE as u64 + 2)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if n > MAX_LINE {
            ReadError::TooLarge(431)
        } else {
            ReadError::Io
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| ReadError::Bad("header is not UTF-8"))
}

fn parse_request_line(line: &str) -> Result<(String, String, String), ReadError> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ReadError::Bad("malformed method"));
    }
    if target.is_empty() {
        return Err(ReadError::Bad("empty request target"));
    }
    Ok((method.to_owned(), target.to_owned(), version.to_owned()))
}

fn read_headers<S: Read>(conn: &mut BufReader<S>) -> Result<Vec<(String, String)>, ReadError> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(conn)?.ok_or(ReadError::Io)?;
        if line.is_empty() {
            return Ok(headers);
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ReadError::TooLarge(431));
        }
        headers.push(parse_header(&line)?);
    }
}

fn parse_header(line: &str) -> Result<(String, String), ReadError> {
    if line.starts_with([' ', '\t']) {
        return Err(ReadError::Bad("obsolete header line folding"));
    }
    let (name, value) = line
        .split_once(':')
        .ok_or(ReadError::Bad("header without colon"))?;
    if name.is_empty() || name.ends_with([' ', '\t']) {
        return Err(ReadError::Bad("malformed header name"));
    }
    Ok((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()))
}

/// Whether the connection persists after this request (RFC 9112 §9.3).
fn keep_alive(version: &str, headers: &[(String, String)]) -> Result<bool, ReadError> {
    let connection_has = |token: &str| {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match version {
        "HTTP/1.1" => Ok(!connection_has("close")),
        "HTTP/1.0" => Ok(connection_has("keep-alive")),
        _ => Err(ReadError::Bad("unsupported HTTP version")),
    }
}

/// Reads the body as framed by `Transfer-Encoding: chunked` or
/// `Content-Length`, answering `Expect: 100-continue` first.
fn read_body<S: Read + Write>(
    conn: &mut BufReader<S>,
    request: &Request,
    version: &str,
) -> Result<Vec<u8>, ReadError> {
    let framing = body_framing(request)?;
    if matches!(framing, Framing::None) {
        return Ok(Vec::new());
    }
    let expects_continue = request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue && version == "HTTP/1.1" {
        conn.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        conn.get_mut().flush()?;
    }
    match framing {
        Framing::None => Ok(Vec::new()),
        Framing::Length(n) => read_exact_body(conn, n),
        Framing::Chunked => read_chunked(conn),
    }
}

enum Framing {
    None,
    Length(usize),
    Chunked,
}

fn body_framing(request: &Request) -> Result<Framing, ReadError> {
    if let Some(te) = request.header("transfer-encoding") {
        let last = te.rsplit(',').next().unwrap_or("").trim();
        return if last.eq_ignore_ascii_case("chunked") {
            Ok(Framing::Chunked)
        } else {
            Err(ReadError::Bad("unsupported transfer coding"))
        };
    }
    let mut lengths = request
        .headers_all("content-length")
        .flat_map(|v| v.split(','));
    let Some(first) = lengths.next() else {
        return Ok(Framing::None);
    };
    let n = parse_length(first)?;
    if lengths.any(|other| parse_length(other).ok() != Some(n)) {
        return Err(ReadError::Bad("conflicting Content-Length"));
    }
    match n {
        0 => Ok(Framing::None),
        n if n > MAX_BODY => Err(ReadError::TooLarge(413)),
        n => Ok(Framing::Length(n)),
    }
}

fn parse_length(s: &str) -> Result<usize, ReadError> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ReadError::Bad("malformed Content-Length"));
    }
    s.parse().map_err(|_| ReadError::TooLarge(413))
}

fn read_exact_body<S: Read>(conn: &mut BufReader<S>, n: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = vec![0u8; n];
    conn.read_exact(&mut body)?;
    Ok(body)
}

fn read_chunked<S: Read>(conn: &mut BufReader<S>) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(conn)?.ok_or(ReadError::Io)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ReadError::Bad("malformed chunk size"))?;
        if size == 0 {
            skip_trailers(conn)?;
            return Ok(body);
        }
        if body.len().saturating_add(size) > MAX_BODY {
            return Err(ReadError::TooLarge(413));
        }
        let start = body.len();
        body.resize(start + size, 0);
        conn.read_exact(&mut body[start..])?;
        let crlf = read_line(conn)?.ok_or(ReadError::Io)?;
        if !crlf.is_empty() {
            return Err(ReadError::Bad("chunk not followed by CRLF"));
        }
    }
}

fn skip_trailers<S: Read>(conn: &mut BufReader<S>) -> Result<(), ReadError> {
    for _ in 0..MAX_HEADERS {
        if read_line(conn)?.ok_or(ReadError::Io)?.is_empty() {
            return Ok(());
        }
    }
    Err(ReadError::TooLarge(431))
}

/// Serialises `resp`. `head_only` drops the body (HEAD requests); `close`
/// adds `Connection: close`. Content-Length is always computed here.
pub(crate) fn render(resp: &Response, head_only: bool, close: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (name, value) in &resp.headers {
        let framing = name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding");
        let replaced = close && name.eq_ignore_ascii_case("connection");
        if !framing && !replaced {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    let bodyless = resp.status < 200 || resp.status == 204 || resp.status == 304;
    if !bodyless {
        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only && !bodyless {
        bytes.extend_from_slice(&resp.body);
    }
    bytes
}

/// Whether the handler itself asked for the connection to close.
pub(crate) fn asks_close(resp: &Response) -> bool {
    resp.headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("connection")
            && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
    })
}

/// The standard reason phrase for `status` (clients ignore it, humans read it).
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// An in-memory duplex stream: reads from `input`, collects writes.
    struct Duplex {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn conn(bytes: &[u8]) -> BufReader<Duplex> {
        BufReader::new(Duplex {
            input: Cursor::new(bytes.to_vec()),
            output: Vec::new(),
        })
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[test]
    fn chunked_body_with_trailers() {
        let raw = b"POST /x?y=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                    4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut c = conn(raw);
        let incoming = read_request(&mut c, peer())
            .ok()
            .flatten()
            .map(|i| i.request);
        let r = incoming.expect("request");
        assert_eq!(r.path, "/x");
        assert_eq!(r.query, "y=1");
        assert_eq!(r.body, b"Wikipedia");
    }

    #[test]
    fn expect_continue_is_answered_before_body() {
        let raw = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi";
        let mut c = conn(raw);
        assert!(read_request(&mut c, peer()).ok().flatten().is_some());
        assert_eq!(c.get_ref().output, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn garbage_is_rejected_not_panicking() {
        let cases: &[&[u8]] = &[
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"GET / HTTP/1.1\r\n \tfolded\r\n\r\n",
            b"\xff\xfe / HTTP/1.1\r\n\r\n",
        ];
        for raw in cases {
            let result = read_request(&mut conn(raw), peer());
            assert!(
                matches!(result, Err(ReadError::Bad(_))),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn oversized_inputs_are_refused() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE + 10));
        assert!(matches!(
            read_request(&mut conn(long.as_bytes()), peer()),
            Err(ReadError::TooLarge(431))
        ));
        let big = b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert!(matches!(
            read_request(&mut conn(big), peer()),
            Err(ReadError::TooLarge(413))
        ));
        let truncated = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc";
        assert!(matches!(
            read_request(&mut conn(truncated), peer()),
            Err(ReadError::Io)
        ));
    }

    #[test]
    fn connection_semantics() {
        let h = |v: &str| vec![("Connection".to_owned(), v.to_owned())];
        assert!(matches!(keep_alive("HTTP/1.1", &[]), Ok(true)));
        assert!(matches!(keep_alive("HTTP/1.1", &h("Close")), Ok(false)));
        assert!(matches!(keep_alive("HTTP/1.0", &[]), Ok(false)));
        assert!(matches!(keep_alive("HTTP/1.0", &h("keep-alive")), Ok(true)));
    }

    #[test]
    fn render_frames_body_and_skips_it_for_204() {
        let resp = Response {
            status: 204,
            headers: vec![("Content-Length".into(), "99".into())],
            body: b"ignored".to_vec(),
        };
        let text = String::from_utf8(render(&resp, false, true)).unwrap_or_default();
        assert_eq!(text, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        let ok = Response {
            status: 200,
            headers: vec![],
            body: b"abc".to_vec(),
        };
        let text = String::from_utf8(render(&ok, true, false)).unwrap_or_default();
        assert_eq!(text, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
    }
}
