//! Fan-out of committed messages to live subscribers, and resumable subscriptions.
//!
//! Each room with subscribers has a bounded `broadcast` channel. A subscriber that falls
//! more than `subscriber_buffer` messages behind is not allowed to grow memory: its stream
//! ends with [`SubscribeError::Lagged`] naming the last `seq` it got, and the client
//! resumes from there (SSE `Last-Event-ID`, gRPC `from_seq`), losing nothing.
//!
//! A channel costs `subscriber_buffer` slots up front, so it exists only while an
//! *authorised* subscriber holds it: a [`Live`] is opened by the room's actor after it
//! checked the subscriber's token, and the last [`Live`] of a room to drop removes the
//! room's channel. A request with a bad token or for an unknown room allocates nothing here.
//!
//! Resumption without gap or duplicate: the room's actor is the only publisher of its
//! room, and it opens the [`Live`] and reads the room's `last_seq` in one step of its
//! mailbox, so every message after that `last_seq` reaches the [`Live`]. The log
//! `(after, last_seq]` is replayed from the store, then live messages are forwarded,
//! skipping any `seq` already sent.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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

/// What a room fans out after a commit, in the order of the commit's events.
#[derive(Clone, Debug)]
pub enum Fanout {
    Message(Arc<Message>),
    /// A member left or was kicked: its open streams end (it may no longer read the room),
    /// before any message committed after its departure reaches them.
    Left(MemberId),
}

/// The node's live channels, one per room with at least one open [`Live`].
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

    fn rooms(&self) -> MutexGuard<'_, HashMap<RoomId, broadcast::Sender<Fanout>>> {
        // The map stays consistent under every operation: a panic elsewhere while it was
        // held does not make it unusable (and `Live::drop` must never panic).
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a live feed of `room`, creating the room's channel if it has none.
    ///
    /// Only the room's actor calls this, for a subscriber it has just authorised, in the
    /// same step as it reads the room's `last_seq` (see the module doc).
    pub(crate) fn subscribe(self: &Arc<Self>, room: RoomId) -> Live {
        let rx = self
            .rooms()
            .entry(room)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe();
        Live {
            rx: Some(rx),
            hub: self.clone(),
            room,
        }
    }

    /// Sends a commit's messages and departures, in event order, to the room's live
    /// subscribers. A room nobody follows has no channel, and this does nothing.
    pub(crate) fn publish(&self, room: RoomId, fanout: &[Fanout]) {
        let rooms = self.rooms();
        if let Some(tx) = rooms.get(&room) {
            for item in fanout {
                // An error means no receiver: impossible while the entry exists, since
                // the last `Live` to drop removes it under this lock.
                let _ = tx.send(item.clone());
            }
        }
    }

    /// Rooms with a live channel on this node (each has at least one open [`Live`]).
    pub fn live_rooms(&self) -> usize {
        self.rooms().len()
    }
}

/// One subscriber's end of a room's channel; dropping the last one frees the channel.
pub struct Live {
    /// `None` only inside `drop`.
    rx: Option<broadcast::Receiver<Fanout>>,
    hub: Arc<Hub>,
    room: RoomId,
}

impl Live {
    async fn recv(&mut self) -> Result<Fanout, broadcast::error::RecvError> {
        match self.rx.as_mut() {
            Some(rx) => rx.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // Under the lock, so no `subscribe` can pick up the sender between our receiver
        // going and the channel being removed.
        let mut rooms = self.hub.rooms();
        drop(self.rx.take());
        if rooms
            .get(&self.room)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            rooms.remove(&self.room);
        }
    }
}

struct Cursor {
    store: Arc<dyn RoomStore>,
    room: RoomId,
    viewer: MemberId,
    live: Live,
    /// Last seq handed to the subscriber (or skipped as invisible).
    sent: Seq,
    /// End of the replay: the room's committed last seq when we subscribed.
    replay_until: Seq,
    buffered: VecDeque<Arc<Message>>,
    done: bool,
}

/// A stream of the messages `viewer` may see with `seq > after`: log first, then live.
/// `live` must have been opened in the same step as `last_seq` was read from the room.
pub fn stream(
    store: Arc<dyn RoomStore>,
    room: RoomId,
    viewer: MemberId,
    after: Seq,
    last_seq: Seq,
    live: Live,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_channel_goes_with_its_last_subscriber() {
        let hub = Arc::new(Hub::new(16));
        let (room, other) = (RoomId::new_random(), RoomId::new_random());
        let first = hub.subscribe(room);
        let second = hub.subscribe(room);
        let elsewhere = hub.subscribe(other);
        assert_eq!(hub.live_rooms(), 2);

        drop(first);
        assert_eq!(
            hub.live_rooms(),
            2,
            "one subscriber of the room is still there"
        );
        drop(second);
        assert_eq!(
            hub.live_rooms(),
            1,
            "the room's channel outlived its subscribers"
        );
        drop(elsewhere);
        assert_eq!(hub.live_rooms(), 0);

        // A publish to a room nobody follows allocates nothing.
        hub.publish(room, &[Fanout::Left(1)]);
        assert_eq!(hub.live_rooms(), 0);
    }
}
