//! The session's GET stream: one resuming room feed per joined room, merged, each event
//! carrying the session's whole cursor as its id.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures::{Stream, StreamExt};
use huddle_cluster::{MessageStream, Router};
use huddle_core::Seq;
use tokio_stream::StreamMap;

use super::note::{self, sse_message};
use super::{Delivery, LiveRegistration};
use crate::mcp::cursor::Cursor;
use crate::mcp::joined::JoinedRoom;

/// Marks the session's GET stream closed when the stream is dropped (client gone,
/// replaced by a newer GET, or session ended).
struct LiveGuard {
    delivery: Arc<Delivery>,
    generation: u64,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.delivery.close_live(self.generation);
    }
}

struct Live {
    router: Arc<dyn Router>,
    delivery: Arc<Delivery>,
    /// The session's id, for logs.
    session: String,
    registration: LiveRegistration,
    feeds: StreamMap<usize, MessageStream>,
    /// What this stream has delivered (or skipped), per slot: its event ids.
    cursor: Cursor,
    /// Where the client said it was (`Last-Event-ID`), per slot, for rooms not yet opened.
    resume: Option<Cursor>,
    /// Rooms opened by this stream, with the POST-delivered ranges to skip.
    open: Vec<Option<JoinedRoom>>,
    /// Slots to (re)subscribe before waiting again.
    pending: Vec<usize>,
    /// A comment line this often keeps proxies and clients from timing the stream out.
    keep_alive: Duration,
    _guard: LiveGuard,
}

impl Live {
    async fn open_room(&mut self, slot: usize) {
        let Some(room) = self.delivery.rooms.room(slot) else {
            self.feeds.remove(&slot);
            return;
        };
        let known = self.open.get(slot).is_some_and(Option::is_some);
        let after = if known {
            self.cursor.get(slot).unwrap_or(room.delivered)
        } else {
            match self.resume.as_ref().and_then(|r| r.get(slot)) {
                // A client cannot have seen more than was delivered.
                Some(seq) => seq.min(room.delivered),
                None => room.delivered,
            }
        };
        let stale = self
            .open
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|r| r.generation != room.generation);
        let after = if stale {
            after.max(room.delivered)
        } else {
            after
        };
        if self.open.len() <= slot {
            self.open.resize(slot + 1, None);
        }
        self.cursor.set(slot, after);
        let opened = self.router.subscribe(room.feed_after(after)).await;
        match opened {
            Ok(subscribed) => {
                self.feeds.insert(slot, subscribed.stream);
                self.open[slot] = Some(room);
            }
            Err(e) => {
                tracing::debug!(session = %self.session, slot, error = %e, "room dropped from the GET stream");
                self.feeds.remove(&slot);
            }
        }
    }

    async fn next_event(&mut self) -> Option<Bytes> {
        let ping = tokio::time::sleep(self.keep_alive);
        tokio::pin!(ping);
        loop {
            while let Some(slot) = self.pending.pop() {
                self.open_room(slot).await;
            }
            tokio::select! {
                _ = &mut self.registration.stop => return None,
                _ = &mut ping => return Some(Bytes::from_static(b": ping\n\n")),
                slots = self.registration.joined.next() => self.pending.extend(slots),
                Some((slot, item)) = self.feeds.next(), if !self.feeds.is_empty() => match item {
                    Ok(m) => {
                        if m.seq <= self.cursor.get(slot).unwrap_or(Seq::ZERO) {
                            continue;
                        }
                        self.cursor.set(slot, m.seq);
                        let posted = self.open[slot].as_ref().is_some_and(|r| r.was_posted(m.seq));
                        if posted {
                            continue;
                        }
                        self.delivery.rooms.delivered(slot, m.seq);
                        return Some(sse_message(Some(&self.cursor.encode()), &note::shared(&m)));
                    }
                    Err(e) => {
                        // Lags resume inside the feed; this one ended (the agent left, or
                        // resuming was refused): opened once more, dropped if refused.
                        tracing::debug!(session = %self.session, slot, error = %e, "reopening");
                        self.pending.push(slot);
                    }
                },
            }
        }
    }
}

/// The session's GET stream, as SSE bytes: a priming event carrying the starting cursor,
/// then one event per room message (and a comment every `keep_alive`). Opening it ends
/// an older GET stream of the same session.
pub fn live(
    router: Arc<dyn Router>,
    delivery: Arc<Delivery>,
    session: &str,
    resume: Option<Cursor>,
    keep_alive: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let registration = delivery.open_live();
    let guard = LiveGuard {
        delivery: delivery.clone(),
        generation: registration.generation,
    };
    let rooms = delivery.rooms.rooms();
    let mut live = Live {
        router,
        delivery,
        session: session.to_string(),
        registration,
        feeds: StreamMap::new(),
        cursor: Cursor::default(),
        resume,
        open: Vec::new(),
        pending: rooms.iter().rev().map(|r| r.slot).collect(),
        keep_alive,
        _guard: guard,
    };
    let start = async move {
        // The POST-path subscriptions would only fall behind while this stream is open.
        live.delivery.flush.lock().await.clear();
        while let Some(slot) = live.pending.pop() {
            live.open_room(slot).await;
        }
        // With an empty `data:` line, or SSE parsers would not dispatch it (and clients
        // would not learn the id); clients skip events without data.
        let priming = match live.cursor.encode() {
            id if id.is_empty() => Bytes::from_static(b"retry: 3000\ndata:\n\n"),
            id => Bytes::from(format!("id: {id}\nretry: 3000\ndata:\n\n")),
        };
        (priming, live)
    };
    futures::stream::once(start).flat_map(|(priming, live)| {
        let rest = futures::stream::unfold(live, |mut live| async move {
            live.next_event().await.map(|e| (e, live))
        });
        futures::stream::once(async move { priming })
            .chain(rest)
            .map(Ok::<_, Infallible>)
    })
}
