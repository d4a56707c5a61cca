//! What a handler answers: a plain response or a fault behaviour.

use std::time::Duration;

/// A complete HTTP response. The server adds `Content-Length` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Header fields, in order. `Content-Length` and `Transfer-Encoding` set
    /// here are ignored: the server always frames the body itself.
    pub headers: Vec<(String, String)>,
    /// Body bytes (not sent for HEAD, 1xx, 204 and 304).
    pub body: Vec<u8>,
}

/// What the server does with one request.
///
/// Besides plain responses, a `Reply` can describe the network faults that
/// token clients must survive: slow answers, no answer, a dropped connection,
/// a response trickling in or cut short.
#[derive(Debug, Clone)]
pub struct Reply(pub(crate) Kind);

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Plain(Response),
    Delay(Duration, Box<Reply>),
    Hang,
    Close,
    Drip {
        inner: Box<Reply>,
        chunk: usize,
        interval: Duration,
    },
    Cut {
        inner: Box<Reply>,
        after: usize,
    },
    Passthrough,
}

impl Reply {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Reply {
        Reply(Kind::Plain(Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }))
    }

    /// A JSON response (`Content-Type: application/json`).
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::text(status, "application/json", value.to_string())
    }

    /// A response with the given content type and body.
    pub fn text(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(status)
            .with_header("Content-Type", content_type)
            .with_body(body)
    }

    /// Adds a header to every plain response inside this reply.
    pub fn with_header(self, name: &str, value: &str) -> Reply {
        self.map_plain(&mut |mut r| {
            r.headers.push((name.to_owned(), value.to_owned()));
            r
        })
    }

    /// Replaces the body of every plain response inside this reply.
    pub fn with_body(self, body: impl Into<Vec<u8>>) -> Reply {
        let body = body.into();
        self.map_plain(&mut |mut r| {
            r.body.clone_from(&body);
            r
        })
    }

    /// Waits `d`, then behaves like `inner`. The wait ends early (closing the
    /// connection) when the server is dropped.
    pub fn delay(d: Duration, inner: Reply) -> Reply {
        Reply(Kind::Delay(d, Box::new(inner)))
    }

    /// Reads the request and never answers: the connection is held open
    /// until the server is dropped or 120 s pass, then closed.
    pub fn hang() -> Reply {
        Reply(Kind::Hang)
    }

    /// Closes the connection without sending a single byte.
    pub fn close() -> Reply {
        Reply(Kind::Close)
    }

    /// Sends `inner` (status line, headers and body) `bytes_per_chunk` bytes
    /// at a time, pausing `interval` between chunks: a server that answers,
    /// but too slowly for a client's total timeout.
    pub fn drip(inner: Reply, bytes_per_chunk: usize, interval: Duration) -> Reply {
        Reply(Kind::Drip {
            inner: Box::new(inner),
            chunk: bytes_per_chunk.max(1),
            interval,
        })
    }

    /// Sends only the first `after_bytes` bytes of `inner`, then closes: a
    /// response truncated mid-headers or mid-body.
    pub fn cut(inner: Reply, after_bytes: usize) -> Reply {
        Reply(Kind::Cut {
            inner: Box::new(inner),
            after: after_bytes,
        })
    }

    /// A placeholder for "the answer the server would normally give". Only
    /// meaningful inside an injected fault (see `FakeIdp::inject`), e.g.
    /// `Reply::delay(d, Reply::passthrough())` for a slow but correct answer.
    pub fn passthrough() -> Reply {
        Reply(Kind::Passthrough)
    }

    /// Replaces every passthrough placeholder with `normal()`, calling it at
    /// most once.
    pub fn resolve_passthrough(self, normal: impl FnOnce() -> Reply) -> Reply {
        let mut normal = Some(normal);
        self.resolve_with(&mut || normal.take().map_or_else(|| Reply::new(500), |f| f()))
    }

    /// Status of the outermost plain response, if this reply has one.
    pub fn status(&self) -> Option<u16> {
        self.plain().map(|r| r.status)
    }

    /// The plain response this reply eventually sends, if any.
    pub fn plain(&self) -> Option<&Response> {
        match &self.0 {
            Kind::Plain(r) => Some(r),
            Kind::Delay(_, inner) | Kind::Drip { inner, .. } | Kind::Cut { inner, .. } => {
                inner.plain()
            }
            Kind::Hang | Kind::Close | Kind::Passthrough => None,
        }
    }

    fn resolve_with(self, normal: &mut dyn FnMut() -> Reply) -> Reply {
        let kind = match self.0 {
            Kind::Passthrough => return normal(),
            Kind::Delay(d, inner) => Kind::Delay(d, Box::new(inner.resolve_with(normal))),
            Kind::Drip {
                inner,
                chunk,
                interval,
            } => Kind::Drip {
                inner: Box::new(inner.resolve_with(normal)),
                chunk,
                interval,
            },
            Kind::Cut { inner, after } => Kind::Cut {
                inner: Box::new(inner.resolve_with(normal)),
                after,
            },
            other => other,
        };
        Reply(kind)
    }

    fn map_plain(self, f: &mut dyn FnMut(Response) -> Response) -> Reply {
        let kind = match self.0 {
            Kind::Plain(r) => Kind::Plain(f(r)),
            Kind::Delay(d, inner) => Kind::Delay(d, Box::new(inner.map_plain(f))),
            Kind::Drip {
                inner,
                chunk,
                interval,
            } => Kind::Drip {
                inner: Box::new(inner.map_plain(f)),
                chunk,
                interval,
            },
            Kind::Cut { inner, after } => Kind::Cut {
                inner: Box::new(inner.map_plain(f)),
                after,
            },
            other => other,
        };
        Reply(kind)
    }
}

impl Response {
    /// First value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_is_resolved_inside_wrappers() {
        let fault = Reply::delay(Duration::from_millis(5), Reply::passthrough());
        let resolved = fault.resolve_passthrough(|| Reply::new(201));
        assert_eq!(resolved.status(), Some(201));
        assert!(matches!(resolved.0, Kind::Delay(..)));
    }

    #[test]
    fn headers_reach_inner_responses() {
        let r = Reply::drip(Reply::new(200), 0, Duration::ZERO).with_header("X-A", "1");
        assert_eq!(r.plain().and_then(|p| p.header("x-a")), Some("1"));
    }
}
