//! A `subscriptions/listen` response held back until its feeds are open.
//!
//! rmcp sends the acknowledgement (`notifications/subscriptions/acknowledged`) before it
//! hands the subscription to [`ServerHandler::listen`](rmcp::ServerHandler::listen),
//! where the rooms' feeds are opened. A listen without `after=` follows a room from the
//! moment its feed opens, so a client that sends a message as soon as it reads the
//! acknowledgement raced the feed, and under load lost: the message never came. The
//! transport gives the request a [`ListenGate`] and holds the response's bytes (the
//! acknowledgement first) until `listen` opens the gate, once every feed is open, or the
//! request is over without it (an error answered before `listen` ran).

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use tokio::sync::watch;

/// The `listen` side, in the HTTP request's extensions: `listen` opens it once its feeds
/// are open, or on its way out ([`OpenOnDrop`]).
#[derive(Clone)]
pub struct ListenGate(watch::Sender<bool>);

/// The transport side: holds a response until the gate opens.
pub struct Held(watch::Receiver<bool>);

/// A closed gate, and what waits for it.
pub fn gate() -> (ListenGate, Held) {
    let (open, opened) = watch::channel(false);
    (ListenGate(open), Held(opened))
}

impl ListenGate {
    pub fn open(&self) {
        self.0.send_replace(true);
    }
}

impl Held {
    /// `response` with its body's first bytes after the gate opened, or after every
    /// [`ListenGate`] was dropped.
    pub fn hold(self, response: Response) -> Response {
        let Self(mut opened) = self;
        let (parts, body) = response.into_parts();
        let wait = async move {
            // Err: every gate is gone, so nothing will open it: let the bytes go.
            let _ = opened.wait_for(|open| *open).await;
            body.into_data_stream()
        };
        Response::from_parts(
            parts,
            Body::from_stream(futures::stream::once(wait).flatten()),
        )
    }
}

/// Opens the gate when dropped: `listen` returns early on an error.
pub struct OpenOnDrop(pub Option<ListenGate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        if let Some(gate) = &self.0 {
            gate.open();
        }
    }
}
