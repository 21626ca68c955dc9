//! The HTTP side of `serve`: hyper's HTTP/1 server on a one-thread tokio
//! runtime. It reads requests, hands each to a [`Handler`] and writes the
//! reply; the model never runs here, so a slow computation never holds up
//! reading or writing, and a slow client never holds up the model.
//!
//! Clients are kept on a leash: the request head must arrive within
//! `header_timeout` (hyper's own timer, which also ends idle keep-alive
//! connections), the body within `body_timeout` and at most `max_body`
//! bytes, and a reply that the client stops reading for `write_stall`
//! closes its connection ([`StallGuard`]). At most `max_connections` are
//! open at once; further ones wait to be accepted.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper::{header, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, Notify, Semaphore};

/// One request, its body read in full.
#[derive(Debug)]
pub(super) struct Incoming {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any (`seed=3`).
    pub query: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// One reply.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, body: String) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }

    /// An error: `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        let body = serde_json::json!({ "error": message.into() }).to_string();
        Self::json(status, body)
    }
}

/// What a [`Handler`] makes of a request: a reply now, or one that will come
/// (from the thread that runs the model).
pub(super) enum Outcome {
    /// The reply.
    Now(Reply),
    /// Where the reply will come from; a dropped sender means the server is stopping.
    Later(oneshot::Receiver<Reply>),
}

/// Routes requests. It runs on the I/O thread, so it must not block.
pub(super) trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Incoming) -> Outcome;
}

/// Limits on clients.
#[derive(Debug, Clone)]
pub(super) struct HttpLimits {
    /// Time for a request's head to arrive (and for an idle connection to send its next).
    pub header_timeout: Duration,
    /// Time for a request's body to arrive.
    pub body_timeout: Duration,
    /// Time a reply may wait for the client to read it.
    pub write_stall: Duration,
    /// Largest body, in bytes.
    pub max_body: usize,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// Serves `listener` until `stop` is notified.
pub(super) fn run(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    limits: HttpLimits,
    stop: Arc<Notify>,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(accept(listener, handler, limits));
        // Dropping the runtime then ends the accept loop and every connection.
        stop.notified().await;
        Ok(())
    })
}

/// Accepts connections for ever, each served by its own task.
async fn accept(listener: tokio::net::TcpListener, handler: Arc<dyn Handler>, limits: HttpLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, or a connection reset before it
                // was accepted: try again shortly rather than stop.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (handler, limits) = (handler.clone(), limits.clone());
        tokio::spawn(async move {
            let io = TokioIo::new(StallGuard::new(stream, limits.write_stall));
            let header_timeout = limits.header_timeout;
            let service = hyper::service::service_fn(move |request| {
                let (handler, limits) = (handler.clone(), limits.clone());
                async move { Ok::<_, Infallible>(respond(request, &*handler, &limits).await) }
            });
            // A connection's errors (a client gone, a timeout) end that
            // connection only.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 << 10)
                .serve_connection(io, service)
                .await;
            drop(slot);
        });
    }
}

/// Reads the body within the limits, asks the handler, and shapes the reply.
async fn respond(
    request: hyper::Request<hyper::body::Incoming>,
    handler: &dyn Handler,
    limits: &HttpLimits,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let too_large = || {
        Reply::error(
            413,
            format!(
                "the request body is larger than the {} bytes a request may send (it grows \
                 with --max-queries and --max-observations)",
                limits.max_body
            ),
        )
    };
    let reply = if declared.is_some_and(|n| n > limits.max_body as u64) {
        too_large()
    } else {
        let read = tokio::time::timeout(
            limits.body_timeout,
            Limited::new(body, limits.max_body).collect(),
        );
        match read.await {
            Err(_) => Reply::error(
                408,
                format!(
                    "the request body did not arrive within {} s",
                    limits.body_timeout.as_secs_f32()
                ),
            ),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => too_large(),
            Ok(Err(e)) => Reply::error(400, format!("cannot read the request body: {e}")),
            Ok(Ok(body)) => {
                let incoming = Incoming {
                    method: parts.method.as_str().to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().map(str::to_string),
                    body: body.to_bytes(),
                };
                match handler.handle(incoming) {
                    Outcome::Now(reply) => reply,
                    Outcome::Later(pending) => pending
                        .await
                        .unwrap_or_else(|_| Reply::error(503, "the server is stopping")),
                }
            }
        }
    };
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() =
        hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(reply.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// A TCP stream whose writes fail once they have made no progress for a
/// while: a client that stops reading its reply loses its connection
/// instead of holding it, and its slot, for ever.
struct StallGuard {
    stream: tokio::net::TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl StallGuard {
    fn new(stream: tokio::net::TcpStream, limit: Duration) -> Self {
        Self {
            stream,
            limit,
            stalled: None,
        }
    }

    /// Passes on a write's outcome, failing one that has been pending too long.
    fn watch<T>(
        &mut self,
        outcome: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading its reply",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(outcome, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch(outcome, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.stream).poll_flush(cx);
        this.watch(outcome, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.watch(outcome, cx)
    }
}
