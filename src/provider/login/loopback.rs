//! The loopback HTTP listener that receives the browser's redirect.
//!
//! Deliberately tiny: std's `TcpListener`, one connection at a time, the
//! request head read with a size cap and a read timeout, one answer, then
//! the connection is closed. A browser sends one GET here (plus, perhaps,
//! a `/favicon.ico` or a speculative connection that sends nothing), so a
//! server crate would add far more code than it saves.
//!
//! The socket is close-on-exec (std's default), so a browser started while
//! we listen never inherits it, and it is closed when the [`Listener`] is
//! dropped: the listener never outlives the login.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::log::Log;

/// Where we listen without `--listen-address`: IPv4 loopback (RFC 8252
/// §7.3 prefers the literal to `localhost`), any free port.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:0";

/// Largest request head we read; a redirect with a code and state is well
/// under 2 KiB, and anything larger is not for us.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// How long one connection may take to send its request. Short, because
/// connections are served one at a time and a browser's speculative
/// connection that sends nothing must not hold up the real redirect long.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// A bound listener and the redirect URI that points at it.
pub struct Listener {
    socket: TcpListener,
    redirect_uri: String,
}

/// One HTTP request received on the listener, with the connection to
/// answer it on. No `Debug`: the query holds the authorization code.
pub struct Incoming {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    stream: TcpStream,
}

impl Listener {
    /// Binds the first address of `addresses` that is free (the default
    /// when empty). All busy is one error naming each address and why.
    pub fn bind(addresses: &[String], log: Log) -> Result<Listener> {
        let default = [DEFAULT_ADDRESS.to_string()];
        let addresses = if addresses.is_empty() {
            &default[..]
        } else {
            addresses
        };
        let mut failures = Vec::new();
        for address in addresses {
            match TcpListener::bind(address.as_str()) {
                Ok(socket) => {
                    let port = socket
                        .local_addr()
                        .map_err(|e| Error::local(format!("cannot listen on {address}: {e}")))?
                        .port();
                    let host = address.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
                    let redirect_uri = format!("http://{host}:{port}");
                    log.debug(|| format!("listening for the login redirect at {redirect_uri}"));
                    return Ok(Listener {
                        socket,
                        redirect_uri,
                    });
                }
                Err(e) => {
                    log.debug(|| format!("cannot listen on {address}: {e}"));
                    failures.push(format!("{address} ({e})"));
                }
            }
        }
        Err(Error::local(format!(
            "cannot listen for the login redirect on {}; stop what uses the port or pass another --listen-address",
            failures.join(", ")
        )))
    }

    /// `http://HOST:PORT`, the `redirect_uri` of the authorization request.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The next request, or `None` when `deadline` passes first.
    /// Connections that send nothing usable in time are dropped silently.
    pub fn next(&self, deadline: Instant) -> Result<Option<Incoming>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            if !readable(&self.socket, left)? {
                continue;
            }
            let stream = match self.socket.accept() {
                Ok((stream, _)) => stream,
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {
                    continue;
                }
                // The client gave up between connect and accept.
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    return Err(Error::local(format!(
                        "the login redirect listener failed: {e}"
                    )));
                }
            };
            if let Some(incoming) = read_request(stream, deadline) {
                return Ok(Some(incoming));
            }
        }
    }
}

/// Waits until the listening socket has a connection to accept, at most
/// `timeout`. False on timeout or interruption (the caller re-checks its
/// deadline).
fn readable(socket: &TcpListener, timeout: Duration) -> Result<bool> {
    let mut fds = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis().max(1)).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd for a descriptor we own, for the call only.
    let n = unsafe { libc::poll(&mut fds, 1, ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(Error::local(format!(
            "the login redirect listener failed: {e}"
        )));
    }
    Ok(n > 0)
}

/// Reads one request head (bounded in size and time) and parses its
/// request line. `None` for anything that is not an HTTP request in time.
fn read_request(mut stream: TcpStream, deadline: Instant) -> Option<Incoming> {
    let left = deadline.saturating_duration_since(Instant::now());
    let timeout = READ_TIMEOUT.min(left).max(Duration::from_millis(1));
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(READ_TIMEOUT)).ok()?;
    let started = Instant::now();
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD_BYTES || started.elapsed() > timeout {
            return None;
        }
        match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    let text = std::str::from_utf8(&head).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some(Incoming {
        method: method.to_string(),
        path: path.to_string(),
        query: form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        stream,
    })
}

impl Incoming {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Answers with a small HTML page and closes the connection. Failures
    /// to write are ignored: the browser may already be gone, and the
    /// login's outcome does not depend on the page.
    pub fn reply(mut self, status: u16, title: &str, message: &str) {
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Error",
        };
        let body = page(title, message);
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\n\
             Content-Type: text/html; charset=utf-8\r\n\
             Content-Length: {}\r\n\
             Cache-Control: no-store\r\n\
             Referrer-Policy: no-referrer\r\n\
             X-Content-Type-Options: nosniff\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        let _ = self
            .stream
            .write_all(head.as_bytes())
            .and_then(|()| self.stream.write_all(body.as_bytes()))
            .and_then(|()| self.stream.flush());
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A minimal page. Both texts are escaped: `message` may quote the
/// server's `error_description`, which came in through the URL.
fn page(title: &str, message: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{t}</h1><p>{m}</p></body></html>\n",
        t = escape(title),
        m = escape(message)
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(addr: &str, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(raw).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn bound() -> (Listener, String) {
        let l = Listener::bind(&[], Log::default()).unwrap();
        let addr = l.redirect_uri().trim_start_matches("http://").to_string();
        (l, addr)
    }

    #[test]
    fn default_is_an_ephemeral_port_on_ipv4_loopback() {
        let (l, addr) = bound();
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        assert_ne!(addr, "127.0.0.1:0");
        assert!(l.redirect_uri().starts_with("http://127.0.0.1:"));
    }

    #[test]
    fn parses_the_redirect_and_answers_with_a_page() {
        let (l, addr) = bound();
        let client = std::thread::spawn(move || {
            send(
                &addr,
                b"GET /?code=abc%2F1&state=xyz HTTP/1.1\r\nHost: x\r\n\r\n",
            )
        });
        let got = l
            .next(Instant::now() + Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!((got.method.as_str(), got.path.as_str()), ("GET", "/"));
        assert_eq!(got.param("code"), Some("abc/1"));
        assert_eq!(got.param("state"), Some("xyz"));
        got.reply(200, "Logged in", "You may close <this> tab.");
        let answer = client.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("Connection: close"));
        assert!(
            answer.contains("You may close &lt;this&gt; tab."),
            "{answer}"
        );
    }

    #[test]
    fn silent_and_garbage_connections_do_not_block_the_real_request() {
        let (l, addr) = bound();
        let client = std::thread::spawn(move || {
            // A connection that never sends anything, then garbage, then
            // the real request.
            let _silent = TcpStream::connect(&addr).unwrap();
            let _ = send(&addr, b"\x16\x03\x01 not http\r\n\r\n");
            send(&addr, b"GET /?state=s HTTP/1.1\r\n\r\n")
        });
        let got = l
            .next(Instant::now() + Duration::from_secs(20))
            .unwrap()
            .unwrap();
        assert_eq!(got.param("state"), Some("s"));
        got.reply(404, "Not found", "");
        assert!(client.join().unwrap().starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn deadline_ends_the_wait() {
        let (l, _) = bound();
        assert!(
            l.next(Instant::now() + Duration::from_millis(50))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn busy_addresses_are_skipped_in_order_and_all_busy_is_one_error() {
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy_addr = busy.local_addr().unwrap().to_string();
        let l = Listener::bind(
            &[busy_addr.clone(), "127.0.0.1:0".to_string()],
            Log::default(),
        )
        .unwrap();
        assert_ne!(l.redirect_uri(), format!("http://{busy_addr}"));
        let e = Listener::bind(&[busy_addr.clone(), busy_addr.clone()], Log::default())
            .err()
            .unwrap();
        assert_eq!(e.exit_code(), 5);
        assert_eq!(e.message().matches(&busy_addr).count(), 2, "{e}");
        assert!(e.message().contains("--listen-address"), "{e}");
    }

    #[test]
    fn the_port_is_free_again_once_the_listener_is_dropped() {
        let (l, addr) = bound();
        drop(l);
        TcpListener::bind(addr.as_str()).unwrap();
    }
}
