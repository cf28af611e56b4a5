//! Serving a listener: accepting connections, telling HTTP/2 (gRPC over h2c) from
//! HTTP/1.1 on the same port, and keeping an idle SSE stream cheap.
//!
//! This is what `axum::serve` did, with two differences that matter for memory, since a
//! node may hold many thousands of idle streams:
//! - a connection's hyper state is boxed and dropped when it is not in use, so the task
//!   of an idle stream is small rather than the size of the largest protocol's state;
//! - an SSE body offered through a [`Handoff`] is written here rather than by hyper:
//!   once hyper has sent the response head, the socket is taken back from it (with any
//!   bytes it read ahead) and hyper's buffers are freed; the frames go out in the same
//!   chunked encoding; when the stream ends, the body is ended as hyper would end it and
//!   hyper serves the connection's next requests.
//!
//! Graceful shutdown as before: when `stop` fires, the listener stops accepting, each
//! connection finishes its requests in flight (a handed-over stream ends, since its
//! body watches the same trigger) and closes; [`listener`] resolves once all are closed.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use futures::StreamExt;
use huddle_gateway::handoff::{Frames, Handoff};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::Service;

/// What an HTTP/2 client sends first (RFC 9113, section 3.4); anything else is HTTP/1.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long to wait after an accept error that is not the peer's (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `stop` fires and every connection has closed.
pub(crate) async fn listener(
    listener: TcpListener,
    app: axum::Router,
    stop: CancellationToken,
) -> io::Result<()> {
    // Every connection task holds a sender; the receiver sees the end when all are gone.
    let (open, mut all_closed) = mpsc::channel::<Infallible>(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_peer_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "accept failed; retrying in a second");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        no_delay(&tcp);
        let service = PerConnection {
            app: app.clone(),
            peer,
            handoff: None,
        };
        let (open, stop) = (open.clone(), stop.clone());
        tokio::spawn(async move {
            connection(tcp, service, stop).await;
            drop(open);
        });
    }
    drop(listener);
    drop(open);
    let _ = all_closed.recv().await;
    Ok(())
}

/// Errors of one connection that was already gone when accepted: not the listener's.
fn is_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Small writes go out at once: an HTTP/2 answer is several frames (a gRPC reply ends
/// with a trailers frame), and Nagle's algorithm would hold the last one back until the
/// peer's delayed ACK (~40 ms).
fn no_delay(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
}

/// One connection, from its first bytes to its close.
///
/// When the shutdown begins before its first bytes were read, a connection whose request
/// is already waiting in the socket is still served (hyper's graceful shutdown then lets
/// that request finish); one that sent nothing is closed, as hyper closes an idle one.
async fn connection(mut tcp: TcpStream, service: PerConnection, stop: CancellationToken) {
    let mut sniff = Sniff::default();
    let sniffed = tokio::select! {
        sniffed = sniff.more(&mut tcp) => Some(sniffed),
        () = stop.cancelled() => None,
    };
    let sniffed = match sniffed {
        Some(sniffed) => sniffed,
        None if sniff.read > 0 || request_waiting(&tcp) => sniff.more(&mut tcp).await,
        None => return,
    };
    if let Err(e) = sniffed {
        return tracing::trace!(error = %e, "connection ended before a request");
    }
    let io = ConnIo::new(tcp, &sniff);
    if io.is_h2 {
        http2_connection(io, service, stop).await;
    } else {
        http1_connection(io, service, stop).await;
    }
}

/// Whether the client has sent bytes not read yet (a non-blocking peek: the runtime's
/// readiness flags may not have caught up with a request sent just before a shutdown).
fn request_waiting(tcp: &TcpStream) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    matches!(socket2::SockRef::from(tcp).peek(&mut byte), Ok(n) if n > 0)
}

/// The first bytes of a connection, read as far as they can be the HTTP/2 preface. Kept
/// outside the reading future, so that stopping it loses nothing already read.
#[derive(Default)]
struct Sniff {
    first: [u8; H2_PREFACE.len()],
    read: usize,
}

impl Sniff {
    async fn more(&mut self, tcp: &mut TcpStream) -> io::Result<()> {
        use tokio::io::AsyncReadExt;
        while self.read < self.first.len() && H2_PREFACE.starts_with(&self.first[..self.read]) {
            match tcp.read(&mut self.first[self.read..]).await? {
                0 => break,
                n => self.read += n,
            }
        }
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        &self.first[..self.read]
    }
}

async fn http2_connection(io: ConnIo, service: PerConnection, stop: CancellationToken) {
    let mut conn = Box::pin(
        http2::Builder::new(TokioExecutor::new())
            // As `axum::serve` had it (HTTP/2 extended CONNECT).
            .enable_connect_protocol()
            .serve_connection(TokioIo::new(io), service),
    );
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::trace!(error = %e, "HTTP/2 connection ended");
    }
}

/// HTTP/1.1 with hyper, but a handed-over stream without it (see the module docs).
async fn http1_connection(mut io: ConnIo, mut service: PerConnection, stop: CancellationToken) {
    let handoff = Handoff::default();
    loop {
        service.handoff = Some(handoff.clone());
        let flushed = io.flushed.clone();
        let conn = Box::new(http1::Builder::new().serve_connection(TokioIo::new(io), service));
        let Some(parts) = until_handed_over(conn, &handoff, &flushed, &stop).await else {
            return;
        };
        let Some(frames) = handoff.take() else {
            return;
        };
        io = parts.io.into_inner();
        io.unread(parts.read_buf);
        service = parts.service;
        match relay(&mut io, frames).await {
            Ok(Relayed::Ended) if !stop.is_cancelled() => continue,
            Ok(Relayed::Ended) => {
                // Hyper ends a connection this way when shutting down between requests.
                let _ = io.tcp.shutdown().await;
                return;
            }
            Ok(Relayed::PeerGone) => return,
            Err(e) => return tracing::trace!(error = %e, "SSE connection ended"),
        }
    }
}

type Http1 = http1::Connection<TokioIo<ConnIo>, PerConnection>;

/// Drives `conn` until it closes (`None`) or a body was offered and hyper has written
/// everything it buffered, the response head included: then hyper gives the socket back.
async fn until_handed_over(
    mut conn: Box<Http1>,
    handoff: &Handoff,
    flushed: &AtomicBool,
    stop: &CancellationToken,
) -> Option<http1::Parts<TokioIo<ConnIo>, PerConnection>> {
    let mut stopping = std::pin::pin!(stop.cancelled());
    let mut asked_to_stop = false;
    // Hyper is polled before the shutdown is passed on: a request whose bytes are
    // already here is read first, and then finished rather than dropped as idle.
    let handed = std::future::poll_fn(|cx| {
        loop {
            match Pin::new(&mut *conn).poll(cx) {
                Poll::Ready(result) => {
                    if let Err(e) = result {
                        tracing::trace!(error = %e, "HTTP/1 connection ended");
                    }
                    return Poll::Ready(false);
                }
                Poll::Pending if handoff.offered() && flushed.load(Ordering::Acquire) => {
                    return Poll::Ready(true);
                }
                Poll::Pending => {}
            }
            if asked_to_stop || stopping.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            asked_to_stop = true;
            Pin::new(&mut *conn).graceful_shutdown();
        }
    })
    .await;
    handed.then(|| conn.into_parts())
}

/// How a handed-over stream ended.
enum Relayed {
    /// The body ended and its end was written: the connection goes on.
    Ended,
    /// The client closed the connection.
    PeerGone,
}

/// Writes `frames` as chunks of a chunked body until they end (then the last chunk) or
/// the client goes away. Meanwhile a read tells a closed connection; bytes the client
/// sends ahead (its next request) are kept for hyper.
async fn relay(io: &mut ConnIo, mut frames: Frames) -> io::Result<Relayed> {
    loop {
        let frame = tokio::select! {
            frame = frames.next() => frame,
            gone = io.peer_closed(), if io.unread.is_empty() => {
                if gone? {
                    return Ok(Relayed::PeerGone);
                }
                continue;
            }
        };
        let Some(frame) = frame else {
            io.tcp.write_all(b"0\r\n\r\n").await?;
            return Ok(Relayed::Ended);
        };
        if frame.is_empty() {
            continue;
        }
        let size = format!("{:X}\r\n", frame.len());
        let mut chunk = Vec::with_capacity(size.len() + frame.len() + 2);
        chunk.extend_from_slice(size.as_bytes());
        chunk.extend_from_slice(&frame);
        chunk.extend_from_slice(b"\r\n");
        io.tcp.write_all(&chunk).await?;
    }
}

/// The socket of a connection, as hyper sees it: bytes already read (sniffed, or read
/// ahead) come first, and it notes whether everything hyper wrote went out.
struct ConnIo {
    tcp: TcpStream,
    /// Read but not yet given to hyper.
    unread: Bytes,
    /// Whether the first bytes were the HTTP/2 preface.
    is_h2: bool,
    /// Whether hyper's last write went out whole: hyper offers all it has buffered in
    /// each write, so then nothing is left in its buffers.
    flushed: Arc<AtomicBool>,
}

impl ConnIo {
    /// The connection after its first bytes, which go to hyper first.
    fn new(tcp: TcpStream, sniff: &Sniff) -> Self {
        Self {
            tcp,
            unread: Bytes::copy_from_slice(sniff.bytes()),
            is_h2: sniff.bytes() == H2_PREFACE,
            flushed: Arc::new(AtomicBool::new(true)),
        }
    }

    /// `bytes` go to hyper before anything else is read.
    fn unread(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            let mut joined = Vec::with_capacity(self.unread.len() + bytes.len());
            joined.extend_from_slice(&self.unread);
            joined.extend_from_slice(&bytes);
            self.unread = joined.into();
        }
    }

    /// Waits until the client sends something: `true` when it closed; what it sent
    /// otherwise is kept for hyper.
    async fn peer_closed(&mut self) -> io::Result<bool> {
        loop {
            self.tcp.readable().await?;
            let mut buf = [0u8; 512];
            match self.tcp.try_read(&mut buf) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    self.unread(Bytes::copy_from_slice(&buf[..n]));
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn wrote(&self, offered: usize, written: &Poll<io::Result<usize>>) {
        let whole = matches!(written, Poll::Ready(Ok(n)) if *n == offered);
        self.flushed.store(whole, Ordering::Release);
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.unread.is_empty() {
            return Pin::new(&mut self.tcp).poll_read(cx, buf);
        }
        let n = self.unread.len().min(buf.remaining());
        buf.put_slice(&self.unread.split_to(n));
        if self.unread.is_empty() {
            // Give the allocation back now rather than with the connection.
            self.unread = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.wrote(buf.len(), &written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.wrote(bufs.iter().map(|b| b.len()).sum(), &written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// The app as one connection's service: each request learns the client's address
/// (failed password attempts are throttled by it) and, on HTTP/1.1, the connection's
/// [`Handoff`].
#[derive(Clone)]
struct PerConnection {
    app: axum::Router,
    peer: SocketAddr,
    handoff: Option<Handoff>,
}

impl hyper::service::Service<Request<Incoming>> for PerConnection {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(self.peer));
        if let Some(handoff) = &self.handoff {
            extensions.insert(handoff.clone());
        }
        // The router is always ready (axum's `Router::poll_ready`).
        self.app.clone().call(request.map(Body::new))
    }
}
