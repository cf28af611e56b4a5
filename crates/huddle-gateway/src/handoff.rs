//! Handing an idle stream's body over to the connection that carries it.
//!
//! An HTTP/1.1 connection served by hyper holds an 8 kB read buffer and an 8 kB write
//! buffer for as long as it lives, and an SSE stream keeps its connection for hours while
//! sending a ping now and then: most of an idle stream's memory is those buffers. So the
//! server that drives the connection (`huddle-node`) puts a [`Handoff`] in each HTTP/1.1
//! request's extensions; the SSE handler offers its frames there instead of giving them
//! to hyper ([`Handoff::body`]), and once hyper has written the response head, the
//! server takes the socket back from hyper, drops hyper's state and writes the frames
//! itself, in the same chunked encoding; when the stream ends it ends the body as hyper
//! would and serves the connection's next requests with hyper again.
//!
//! Without a `Handoff` in the request (an app driven in-process, HTTP/2) the handler
//! gives its body to hyper as before.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Version, header};
use futures::stream::BoxStream;

/// The frames of a body to be written by the connection rather than by hyper; each one
/// a chunk (empty ones are skipped, as hyper does); the body ends when the stream does.
pub type Frames = BoxStream<'static, Bytes>;

/// One connection's slot for a handed-over body (a request extension; see the module
/// docs). Clones share the slot.
#[derive(Clone, Default)]
pub struct Handoff(Arc<Mutex<Option<Frames>>>);

impl Handoff {
    /// Whether a response to this request may be handed over: only where hyper would
    /// send it chunked on a connection kept alive, so that the bytes on the wire are the
    /// same (an HTTP/1.1 `GET` whose client did not ask to close).
    pub fn fits(method: &Method, version: Version, headers: &HeaderMap) -> bool {
        let closing = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("close"));
        method == Method::GET && version == Version::HTTP_11 && !closing
    }

    /// A response body that offers `frames` to the connection the first time hyper asks
    /// it for data (after the response head is buffered), then never yields: the
    /// connection takes the frames from the slot and hyper's body with it.
    pub fn body(&self, frames: Frames) -> Body {
        let slot = self.clone();
        let mut frames = Some(frames);
        Body::from_stream(futures::stream::poll_fn(move |_| {
            if let Some(frames) = frames.take() {
                *slot.lock() = Some(frames);
            }
            Poll::<Option<Result<Bytes, std::convert::Infallible>>>::Pending
        }))
    }

    /// Whether a body was offered and not yet taken.
    pub fn offered(&self) -> bool {
        self.lock().is_some()
    }

    /// The offered frames, once.
    pub fn take(&self) -> Option<Frames> {
        self.lock().take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Frames>> {
        // The slot holds no invariant a panic could break half-way.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_kept_alive_http11_gets_are_handed_over() {
        let none = HeaderMap::new();
        assert!(Handoff::fits(&Method::GET, Version::HTTP_11, &none));
        assert!(!Handoff::fits(&Method::HEAD, Version::HTTP_11, &none));
        assert!(!Handoff::fits(&Method::GET, Version::HTTP_10, &none));
        assert!(!Handoff::fits(&Method::GET, Version::HTTP_2, &none));
        let mut closing = HeaderMap::new();
        closing.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Close"),
        );
        assert!(!Handoff::fits(&Method::GET, Version::HTTP_11, &closing));
    }
}
