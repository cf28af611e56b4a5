//! Fan-out of committed messages to live subscribers, and resumable subscriptions.
//!
//! Each room with subscribers has a bounded `broadcast` channel. A subscriber that falls
//! more than `subscriber_buffer` messages behind is not allowed to grow memory: its stream
//! ends with [`SubscribeError::Lagged`] naming the last `seq` it got, and the client
//! resumes from there (SSE `Last-Event-ID`, gRPC `from_seq`), losing nothing.
//!
//! Resumption without gap or duplicate: the broadcast receiver is opened *before* the
//! room tells us its committed `last_seq`; the log `(after, last_seq]` is replayed from
//! the store, then live messages are forwarded, skipping any `seq` already sent.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use huddle_core::{MemberId, Message, RoomId, Seq};
use huddle_store::RoomStore;
use thiserror::Error;
use tokio::sync::broadcast;

/// Messages replayed from the store per read.
const REPLAY_PAGE: usize = 500;

#[derive(Debug, Error, Clone)]
pub enum SubscribeError {
    #[error("subscriber fell too far behind after seq {0}; resume from it")]
    Lagged(Seq),
    #[error("room closed")]
    Closed,
    /// The subscriber's agent left or was kicked: its stream ends.
    #[error("the agent is no longer a member of the room")]
    Removed,
    #[error("store failure during replay: {0}")]
    Store(String),
}

pub type MessageStream = Pin<Box<dyn Stream<Item = Result<Arc<Message>, SubscribeError>> + Send>>;

/// What a room fans out after a commit.
#[derive(Clone, Debug)]
pub enum Fanout {
    Message(Arc<Message>),
    /// A member left or was kicked: its open streams end (it may no longer read the room).
    Left(MemberId),
}

pub struct Hub {
    rooms: Mutex<HashMap<RoomId, broadcast::Sender<Fanout>>>,
    capacity: usize,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn receiver(&self, room: RoomId) -> broadcast::Receiver<Fanout> {
        let mut rooms = self.rooms.lock().expect("hub poisoned");
        rooms
            .entry(room)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// Sends committed messages (in `seq` order), then departures, to the room's live
    /// subscribers.
    pub fn publish(&self, room: RoomId, messages: &[Arc<Message>], left: &[MemberId]) {
        let mut rooms = self.rooms.lock().expect("hub poisoned");
        if let Some(tx) = rooms.get(&room) {
            if tx.receiver_count() == 0 {
                rooms.remove(&room);
                return;
            }
            for m in messages {
                let _ = tx.send(Fanout::Message(m.clone()));
            }
            for member in left {
                let _ = tx.send(Fanout::Left(*member));
            }
        }
    }
}

struct Cursor {
    store: Arc<dyn RoomStore>,
    room: RoomId,
    viewer: MemberId,
    live: broadcast::Receiver<Fanout>,
    /// Last seq handed to the subscriber (or skipped as invisible).
    sent: Seq,
    /// End of the replay: the room's committed last seq when we subscribed.
    replay_until: Seq,
    buffered: VecDeque<Arc<Message>>,
    done: bool,
}

/// A stream of the messages `viewer` may see with `seq > after`: log first, then live.
/// `live` must have been opened before `last_seq` was read from the room.
pub fn stream(
    store: Arc<dyn RoomStore>,
    room: RoomId,
    viewer: MemberId,
    after: Seq,
    last_seq: Seq,
    live: broadcast::Receiver<Fanout>,
) -> MessageStream {
    let cursor = Cursor {
        store,
        room,
        viewer,
        live,
        sent: after,
        replay_until: last_seq,
        buffered: VecDeque::new(),
        done: false,
    };
    Box::pin(futures::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        let item = c.next().await;
        if item.is_err() {
            c.done = true;
        }
        Some((item, c))
    }))
}

impl Cursor {
    async fn next(&mut self) -> Result<Arc<Message>, SubscribeError> {
        loop {
            if let Some(m) = self.buffered.pop_front() {
                self.sent = m.seq;
                return Ok(m);
            }
            if self.sent < self.replay_until {
                let page = self
                    .store
                    .messages_after(self.room, Some(self.viewer), self.sent, REPLAY_PAGE)
                    .await
                    .map_err(|e| SubscribeError::Store(e.to_string()))?;
                self.buffered.extend(
                    page.into_iter()
                        .filter(|m| m.seq <= self.replay_until)
                        .map(Arc::new),
                );
                if self.buffered.is_empty() {
                    // Nothing left up to replay_until is visible to this viewer.
                    self.sent = self.replay_until;
                }
                continue;
            }
            match self.live.recv().await {
                Ok(Fanout::Left(member)) if member == self.viewer => {
                    return Err(SubscribeError::Removed);
                }
                Ok(Fanout::Left(_)) => continue,
                Ok(Fanout::Message(m)) if m.seq <= self.sent => continue,
                Ok(Fanout::Message(m)) if !m.visible_to(self.viewer) => {
                    self.sent = m.seq;
                    continue;
                }
                Ok(Fanout::Message(m)) => {
                    self.sent = m.seq;
                    return Ok(m);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(SubscribeError::Lagged(self.sent));
                }
                Err(broadcast::error::RecvError::Closed) => return Err(SubscribeError::Closed),
            }
        }
    }
}
