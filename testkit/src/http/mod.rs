//! A minimal threaded HTTP/1.1 server for test doubles.
//!
//! One thread per connection, keep-alive, `Content-Length` and chunked
//! request bodies, `Expect: 100-continue`, optional TLS (rustls, ALPN
//! `http/1.1` only). It is deliberately small: enough for Go's net/http
//! (kubectl), curl (git) and ureq, and able to misbehave on purpose through
//! [`Reply`] fault variants.

mod reply;
mod request;
mod wire;

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

pub use reply::{Reply, Response};
pub use request::Request;

use crate::util::lock;
use reply::Kind;
use wire::{Incoming, ReadError};

/// A request handler. It runs on the connection's thread; it must not block
/// for long (use [`Reply::delay`] for slowness, which the server can cut
/// short on shutdown).
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// How long an idle keep-alive connection is kept before closing it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long [`Reply::hang`] holds a connection at most.
const HANG_LIMIT: Duration = Duration::from_secs(120);

/// A running server; dropping it closes every connection and joins every
/// thread it started.
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    // Kept so the handler (and whatever it owns) is dropped by whoever drops
    // the server, after every worker thread has finished.
    _handler: Handler,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// State shared by the accept loop, the workers and `Drop`.
struct Shared {
    stop: Stop,
    conns: Mutex<HashMap<u64, TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    next_id: AtomicU64,
}

/// A stop flag that sleeping threads can wait on.
pub(crate) struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    fn new() -> Stop {
        Stop {
            stopped: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    fn trigger(&self) {
        *lock(&self.stopped) = true;
        self.cv.notify_all();
    }

    fn is_stopped(&self) -> bool {
        *lock(&self.stopped)
    }

    /// Sleeps for `d`; returns false if the server stopped meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut stopped = lock(&self.stopped);
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            stopped = match self.cv.wait_timeout(stopped, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        false
    }
}

impl Server {
    /// Binds `127.0.0.1:0` and serves `handler` on background threads; with
    /// `tls`, every connection is TLS.
    ///
    /// # Panics
    /// If the loopback port cannot be bound (the test cannot run anyway).
    pub fn start(handler: Handler, tls: Option<Arc<ServerConfig>>) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound address");
        let shared = Arc::new(Shared {
            stop: Stop::new(),
            conns: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
        });
        let is_tls = tls.is_some();
        let accept = {
            let shared = Arc::clone(&shared);
            let handler = Arc::clone(&handler);
            thread::Builder::new()
                .name(format!("testkit-accept-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &shared, &handler, tls.as_ref()))
                .expect("spawn accept thread")
        };
        Server {
            addr,
            tls: is_tls,
            shared,
            accept: Some(accept),
            _handler: handler,
        }
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.trigger();
        // Wake the blocking accept() so the loop sees the stop flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // Every connection is registered by the (now finished) accept loop,
        // so this reaches all of them, unblocking reads and writes.
        for conn in lock(&self.shared.conns).values() {
            let _ = conn.shutdown(Shutdown::Both);
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        let me = thread::current().id();
        for worker in workers {
            // A handler that drops its own server must not join itself.
            if worker.thread().id() != me {
                let _ = worker.join();
            }
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    handler: &Handler,
    tls: Option<&Arc<ServerConfig>>,
) {
    for stream in listener.incoming() {
        if shared.stop.is_stopped() {
            return;
        }
        let Ok(stream) = stream else {
            // e.g. EMFILE: back off instead of spinning.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        spawn_worker(stream, shared, handler, tls);
    }
}

fn spawn_worker(
    stream: TcpStream,
    shared: &Arc<Shared>,
    handler: &Handler,
    tls: Option<&Arc<ServerConfig>>,
) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if let Ok(clone) = stream.try_clone() {
        lock(&shared.conns).insert(id, clone);
    }
    let worker = {
        let shared = Arc::clone(shared);
        let handler = Arc::clone(handler);
        let tls = tls.cloned();
        thread::Builder::new()
            .name(format!("testkit-conn-{id}"))
            .spawn(move || {
                run_connection(stream, &handler, tls, &shared.stop);
                lock(&shared.conns).remove(&id);
            })
    };
    let mut workers = lock(&shared.workers);
    workers.retain(|w| !w.is_finished());
    if let Ok(worker) = worker {
        workers.push(worker);
    }
}

/// Something a connection can be served over: plain TCP or TLS.
trait Duplex: Read + Write + Send {}
impl<T: Read + Write + Send> Duplex for T {}

fn run_connection(tcp: TcpStream, handler: &Handler, tls: Option<Arc<ServerConfig>>, stop: &Stop) {
    let Ok(peer) = tcp.peer_addr() else { return };
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(IDLE_TIMEOUT));
    let io: Box<dyn Duplex> = match tls {
        Some(config) => match ServerConnection::new(config) {
            Ok(conn) => Box::new(StreamOwned::new(conn, tcp)),
            Err(_) => return,
        },
        None => Box::new(tcp),
    };
    serve(BufReader::new(io), peer, handler, stop);
}

/// Serves requests on one connection until either side closes it.
fn serve(mut conn: BufReader<Box<dyn Duplex>>, peer: SocketAddr, handler: &Handler, stop: &Stop) {
    loop {
        let incoming = match wire::read_request(&mut conn, peer) {
            Ok(Some(incoming)) => incoming,
            Ok(None) | Err(ReadError::Io) => return,
            Err(ReadError::Bad(why)) => return refuse(conn.get_mut(), 400, why),
            Err(ReadError::TooLarge(status)) => return refuse(conn.get_mut(), status, "too large"),
        };
        let Incoming {
            request,
            keep_alive,
        } = incoming;
        let reply = catch_unwind(AssertUnwindSafe(|| handler(&request)))
            .unwrap_or_else(|_| Reply::text(500, "text/plain", "testkit handler panicked\n"));
        let head_only = request.method.eq_ignore_ascii_case("HEAD");
        let out = Out {
            head_only,
            keep_alive,
            stop,
        };
        if !execute(conn.get_mut(), reply, &out) {
            return;
        }
    }
}

/// Answers a request that could not be parsed, then the caller closes.
fn refuse(w: &mut dyn Duplex, status: u16, why: &str) {
    let resp = Response {
        status,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: format!("{why}\n").into_bytes(),
    };
    let _ = w.write_all(&wire::render(&resp, false, true));
    let _ = w.flush();
}

/// Per-request facts the reply executor needs.
struct Out<'a> {
    head_only: bool,
    keep_alive: bool,
    stop: &'a Stop,
}

/// Carries out `reply`. Returns whether the connection stays open.
fn execute(w: &mut dyn Duplex, reply: Reply, out: &Out<'_>) -> bool {
    match reply.0 {
        Kind::Plain(resp) => {
            let close = !out.keep_alive || wire::asks_close(&resp);
            let bytes = wire::render(&resp, out.head_only, close);
            w.write_all(&bytes).and_then(|()| w.flush()).is_ok() && !close
        }
        Kind::Delay(d, inner) => out.stop.sleep(d) && execute(w, *inner, out),
        Kind::Hang => {
            out.stop.sleep(HANG_LIMIT);
            false
        }
        Kind::Close => false,
        Kind::Drip {
            inner,
            chunk,
            interval,
        } => drip(w, *inner, chunk, interval, out),
        Kind::Cut { inner, after } => {
            if let Some(bytes) = rendered(&inner, out) {
                let _ = w.write_all(&bytes[..after.min(bytes.len())]);
                let _ = w.flush();
            }
            false
        }
        Kind::Passthrough => execute(
            w,
            Reply::text(500, "text/plain", "testkit: passthrough outside a fault\n"),
            out,
        ),
    }
}

/// Renders the plain response inside `reply` (for drip and cut).
fn rendered(reply: &Reply, out: &Out<'_>) -> Option<Vec<u8>> {
    let resp = reply.plain()?;
    let close = !out.keep_alive || wire::asks_close(resp);
    Some(wire::render(resp, out.head_only, close))
}

fn drip(w: &mut dyn Duplex, inner: Reply, chunk: usize, interval: Duration, out: &Out<'_>) -> bool {
    let Some(bytes) = rendered(&inner, out) else {
        return execute(w, inner, out);
    };
    let close = inner.plain().is_some_and(wire::asks_close) || !out.keep_alive;
    for (i, piece) in bytes.chunks(chunk).enumerate() {
        if i > 0 && !out.stop.sleep(interval) {
            return false;
        }
        if w.write_all(piece).and_then(|()| w.flush()).is_err() {
            return false;
        }
    }
    !close
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    fn echo_server() -> Server {
        let handler: Handler = Arc::new(|req: &Request| {
            let body = format!(
                "{} {} {} {}",
                req.method,
                req.path,
                req.query,
                req.body.len()
            );
            Reply::text(200, "text/plain", body)
        });
        Server::start(handler, None)
    }

    fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        s.write_all(raw).expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn keep_alive_serves_two_requests_on_one_connection() {
        let server = echo_server();
        let out = exchange(
            server.addr(),
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b?q HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz",
        );
        assert!(out.contains("GET /a  0"), "{out}");
        assert!(out.contains("POST /b q 3"), "{out}");
        assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2);
    }

    #[test]
    fn malformed_request_gets_400() {
        let server = echo_server();
        let out = exchange(server.addr(), b"NOT HTTP\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    }

    #[test]
    fn drop_releases_hanging_connections() {
        let handler: Handler = Arc::new(|_: &Request| Reply::hang());
        let server = Server::start(handler, None);
        let mut s = TcpStream::connect(server.addr()).expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
        thread::sleep(Duration::from_millis(50));
        // Returns (does not wait for the hanging handler) and closes the
        // connection: the client reads EOF.
        drop(server);
        let mut reader = std::io::BufReader::new(s);
        let mut line = String::new();
        assert_eq!(reader.read_line(&mut line).unwrap_or(0), 0);
    }
}
