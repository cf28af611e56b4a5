//! The node-local fan-out: each room's committed messages distributed to this node's
//! subscribers of that room, and the node's limit on open streams.
//!
//! The fan-out does not know where a room's messages come from: a *feed source* (see
//! [`crate::feed`]) publishes into it — the room's own actor when the room lives on this
//! node, an upstream feed from the owner node otherwise. A publisher publishes one room's
//! items in order. While a room changes hands (its upstream still drains the old owner
//! as the new owner's actor starts here), two publishers may briefly overlap: readers
//! skip what they already have by `seq` and fill a `seq` gap from the store, so an
//! overlap costs a store read, never a message; a change of publisher is announced with
//! [`Fanout::Reopen`].
//!
//! Memory: a room with subscribers has one shared log of pending items (`Arc`s shared with
//! every subscriber, the actor's tail and push) and each subscriber is a position in it.
//! The log holds only what some subscriber has not read yet: an item goes as soon as the
//! slowest subscriber has read it, and the log's storage shrinks with it. So an idle
//! stream costs a position, not a buffer. A subscriber more than `capacity`
//! (`subscriber_buffer`) items behind is not allowed to grow the log: the oldest item
//! goes anyway and that subscriber gets [`Lagged`] (its stream ends, or resumes from the
//! store; see [`crate::feed`]). The last subscriber of a room to go removes the room's
//! log; a refused subscriber never creates one.
//!
//! The node also bounds what all its rooms' logs hold together (`max_stream_backlog_bytes`):
//! a stream whose client stops reading keeps its room's items pending, and anyone may
//! open one and fill its room with large messages (4,096 of 64 KiB is 256 MiB a room).
//! Past the budget, the rooms whose logs hold most drop their oldest items, down to
//! nine tenths of it: their slowest subscribers lag (and resume from the store), while
//! rooms whose readers keep up hold little and lose nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use huddle_core::{MemberId, RoomError, RoomId, SharedMessage};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::budget::Budget;

/// Storage of a room's log is given back when it holds at most a quarter of its capacity
/// (and more than this many slots): a burst's buffer does not outlive the burst.
const SHRINK_ABOVE: usize = 8;

/// What a room fans out after a commit, in the order of the commit's events.
#[derive(Clone, Debug)]
pub enum Fanout {
    Message(SharedMessage),
    /// A member left or was kicked: its open streams end (it may no longer read the room),
    /// before any message committed after its departure reaches them.
    Left(MemberId),
    /// This node's source of the room changed (its upstream resumed on another owner, or
    /// the room's own actor took over here): a departure may have happened where this
    /// node could not see it. Every reader asks its source again — which re-authorises
    /// it, so a member that left meanwhile is refused — and replays from the store what
    /// it has not read.
    Reopen,
}

/// The subscriber fell more than the log's capacity behind: items it had not read are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged;

/// What one room's log holds now (see [`Hub::buffer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferStats {
    /// Items some subscriber has not read yet.
    pub pending: usize,
    /// Slots the log's storage holds (allocated, filled or not).
    pub allocated: usize,
    /// Subscribers attached to the room on this node.
    pub subscribers: usize,
}

/// The node's fan-out: one shared log per room with at least one subscriber here.
pub struct Hub {
    rooms: Mutex<HashMap<RoomId, Arc<RoomLog>>>,
    /// Most items a room's log holds (`subscriber_buffer`).
    capacity: usize,
    /// What all the rooms' logs hold together ([`weight`] of their items), and its
    /// bound (`max_stream_backlog_bytes`).
    budget: Arc<Budget>,
    /// One permit per open stream of this node (all protocols), `max_streams` in all.
    streams: Arc<Semaphore>,
    max_streams: usize,
}

struct RoomLog {
    log: Mutex<Log>,
    /// Woken on every publish: subscribers waiting for the next item.
    published: Notify,
}

struct Log {
    slots: VecDeque<Slot>,
    /// Position (counted since the log was made) of `slots[0]`.
    head: u64,
    subscribers: usize,
    /// What `slots` hold ([`weight`]), also counted in the hub's budget.
    bytes: usize,
    budget: Arc<Budget>,
}

/// About the memory an item holds while it is pending.
fn weight(item: &Fanout) -> usize {
    match item {
        Fanout::Message(m) => m.held_bytes(),
        Fanout::Left(_) | Fanout::Reopen => 64,
    }
}

struct Slot {
    item: Fanout,
    /// Subscribers attached when it was published that have not read it yet.
    unread: usize,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every operation leaves the state consistent: a panic elsewhere while it was held does
    // not make it unusable (and `Live::drop` must never panic).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Log {
    fn tail(&self) -> u64 {
        self.head + self.slots.len() as u64
    }

    fn push_back(&mut self, item: Fanout, unread: usize) {
        let w = weight(&item);
        self.bytes += w;
        self.budget.take(w);
        self.slots.push_back(Slot { item, unread });
    }

    /// Drops the oldest item, read or not (subscribers that had not read it lag);
    /// `false` when there is none.
    fn pop_front(&mut self) -> bool {
        let Some(slot) = self.slots.pop_front() else {
            return false;
        };
        let w = weight(&slot.item);
        self.bytes -= w;
        self.budget.give_back(w);
        self.head += 1;
        true
    }

    /// Drops the items every subscriber has read, and storage the log no longer needs.
    fn trim(&mut self) {
        while self.slots.front().is_some_and(|s| s.unread == 0) {
            self.pop_front();
        }
        let allocated = self.slots.capacity();
        if allocated > SHRINK_ABOVE && self.slots.len() <= allocated / 4 {
            self.slots.shrink_to(self.slots.len() * 2);
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

impl Hub {
    /// A fan-out whose rooms hold at most `capacity` pending items each and
    /// `budget_bytes` together, and that lets at most `max_streams` streams be open at
    /// once.
    pub fn new(capacity: usize, budget_bytes: usize, max_streams: usize) -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            budget: Arc::new(Budget::new(budget_bytes)),
            streams: Arc::new(Semaphore::new(max_streams)),
            max_streams,
        }
    }

    /// A place among the node's open streams, held as long as the stream; refused (naming
    /// the limit) when `max_streams` are open.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, RoomError> {
        self.streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| RoomError::TooManyStreams(self.max_streams))
    }

    /// Attaches a subscriber to `room` at the log's end: it gets every item published from
    /// now on. Only a room's publisher calls this (or a source that orders it before what
    /// it publishes next), for a subscriber already authorised or about to be.
    pub fn attach(self: &Arc<Self>, room: RoomId) -> Live {
        let mut rooms = locked(&self.rooms);
        let shared = rooms
            .entry(room)
            .or_insert_with(|| {
                Arc::new(RoomLog {
                    log: Mutex::new(Log {
                        slots: VecDeque::new(),
                        head: 0,
                        subscribers: 0,
                        bytes: 0,
                        budget: self.budget.clone(),
                    }),
                    published: Notify::new(),
                })
            })
            .clone();
        drop(rooms);
        let next = {
            let mut log = locked(&shared.log);
            log.subscribers += 1;
            log.tail()
        };
        Live {
            hub: self.clone(),
            room,
            shared,
            next,
        }
    }

    /// Appends a commit's messages and departures, in event order, to the room's log. A
    /// room nobody follows here has no log, and this does nothing.
    pub fn publish(&self, room: RoomId, items: &[Fanout]) {
        let Some(shared) = locked(&self.rooms).get(&room).cloned() else {
            return;
        };
        {
            let mut log = locked(&shared.log);
            if log.subscribers == 0 {
                return;
            }
            for item in items {
                if log.slots.len() >= self.capacity {
                    // The slowest subscriber is more than `capacity` behind: it lags.
                    log.pop_front();
                }
                let unread = log.subscribers;
                log.push_back(item.clone(), unread);
            }
        }
        shared.published.notify_waiters();
        if self.budget.over() {
            self.relieve();
        }
    }

    /// Bytes the rooms' logs hold now (an estimate: [`SharedMessage::held_bytes`]).
    pub fn backlog_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Past the budget: the rooms whose logs hold most drop their oldest items until the
    /// logs hold nine tenths of it (see the module doc). Their subscribers that had not
    /// read them lag; a room whose readers keep up has little to drop.
    fn relieve(&self) {
        let target = self.budget.max() - self.budget.max() / 10;
        let logs: Vec<Arc<RoomLog>> = locked(&self.rooms).values().cloned().collect();
        let mut largest: Vec<(usize, Arc<RoomLog>)> = logs
            .into_iter()
            .map(|shared| {
                let bytes = locked(&shared.log).bytes;
                (bytes, shared)
            })
            .collect();
        largest.sort_unstable_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        let mut dropped = 0;
        for (_, shared) in largest {
            if self.backlog_bytes() <= target {
                break;
            }
            {
                let mut log = locked(&shared.log);
                while self.backlog_bytes() > target && log.pop_front() {
                    dropped += 1;
                }
            }
            // Readers waiting learn at once that they lag.
            shared.published.notify_waiters();
        }
        tracing::debug!(
            items = dropped,
            budget = self.budget.max(),
            "streams' backlog over its budget: the largest rooms' slowest readers lag"
        );
    }

    /// Subscribers of `room` on this node (0: it has no log here).
    pub fn subscribers(&self, room: RoomId) -> usize {
        self.buffer(room).map_or(0, |b| b.subscribers)
    }

    /// Rooms with a log on this node (each has at least one subscriber here).
    pub fn live_rooms(&self) -> usize {
        locked(&self.rooms).len()
    }

    /// What `room`'s log holds now; `None` when it has none (no subscriber here).
    pub fn buffer(&self, room: RoomId) -> Option<BufferStats> {
        let shared = locked(&self.rooms).get(&room).cloned()?;
        let log = locked(&shared.log);
        Some(BufferStats {
            pending: log.slots.len(),
            allocated: log.slots.capacity(),
            subscribers: log.subscribers,
        })
    }
}

/// One subscriber's position in a room's log; dropping the last one frees the log.
pub struct Live {
    hub: Arc<Hub>,
    room: RoomId,
    shared: Arc<RoomLog>,
    /// Position of the next item to read.
    next: u64,
}

impl Live {
    /// The next item, without waiting: `None` when nothing new was published.
    pub fn try_recv(&mut self) -> Option<Result<Fanout, Lagged>> {
        let mut log = locked(&self.shared.log);
        if self.next < log.head {
            return Some(Err(Lagged));
        }
        let index = (self.next - log.head) as usize;
        let slot = log.slots.get_mut(index)?;
        slot.unread -= 1;
        let item = slot.item.clone();
        self.next += 1;
        if index == 0 {
            log.trim();
        }
        Some(Ok(item))
    }

    /// The next item, waiting for it if needed.
    pub async fn recv(&mut self) -> Result<Fanout, Lagged> {
        let shared = self.shared.clone();
        loop {
            // Registered before looking, so a publish in between is not missed.
            let published = shared.published.notified();
            tokio::pin!(published);
            published.as_mut().enable();
            if let Some(item) = self.try_recv() {
                return item;
            }
            published.await;
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // The room map first (the same order as `attach`), so no `attach` picks up the log
        // between its last subscriber going and its removal.
        let mut rooms = locked(&self.hub.rooms);
        let mut log = locked(&self.shared.log);
        let from = self.next.saturating_sub(log.head) as usize;
        for slot in log.slots.iter_mut().skip(from) {
            slot.unread -= 1;
        }
        log.subscribers -= 1;
        log.trim();
        let last = log.subscribers == 0;
        drop(log);
        if last
            && rooms
                .get(&self.room)
                .is_some_and(|r| Arc::ptr_eq(r, &self.shared))
        {
            rooms.remove(&self.room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_log_goes_with_its_last_subscriber() {
        let hub = Arc::new(Hub::new(16, usize::MAX, 100));
        let (room, other) = (RoomId::new_random(), RoomId::new_random());
        let first = hub.attach(room);
        let second = hub.attach(room);
        let elsewhere = hub.attach(other);
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
            "the room's log outlived its subscribers"
        );
        drop(elsewhere);
        assert_eq!(hub.live_rooms(), 0);

        // A publish to a room nobody follows allocates nothing.
        hub.publish(room, &[Fanout::Left(MemberId::new(1))]);
        assert_eq!(hub.live_rooms(), 0);
    }

    #[test]
    fn an_item_goes_once_every_subscriber_has_read_it() {
        let hub = Arc::new(Hub::new(16, usize::MAX, 100));
        let room = RoomId::new_random();
        let mut fast = hub.attach(room);
        let mut slow = hub.attach(room);
        hub.publish(
            room,
            &[
                Fanout::Left(MemberId::new(1)),
                Fanout::Left(MemberId::new(2)),
            ],
        );
        assert_eq!(hub.buffer(room).unwrap().pending, 2);
        assert!(matches!(fast.try_recv(), Some(Ok(Fanout::Left(m))) if m == 1));
        assert!(matches!(fast.try_recv(), Some(Ok(Fanout::Left(m))) if m == 2));
        assert!(fast.try_recv().is_none());
        assert_eq!(
            hub.buffer(room).unwrap().pending,
            2,
            "slow has read nothing"
        );
        assert!(matches!(slow.try_recv(), Some(Ok(Fanout::Left(m))) if m == 1));
        assert_eq!(hub.buffer(room).unwrap().pending, 1);
        // A subscriber that goes gives up its claim on what it did not read.
        drop(slow);
        assert_eq!(hub.buffer(room).unwrap().pending, 0);
        // One attached later starts at the end.
        let mut late = hub.attach(room);
        assert!(late.try_recv().is_none());
    }

    fn message(room: RoomId, seq: u64, body_bytes: usize) -> Fanout {
        Fanout::Message(SharedMessage::new(huddle_core::Message {
            seq: huddle_core::Seq::new(seq),
            // Ids of one length: every message here weighs the same.
            id: format!("m{seq:03}"),
            room_id: room,
            from: "a".into(),
            from_member: MemberId::new(1),
            to: None,
            to_member: None,
            body: "x".repeat(body_bytes),
            timestamp: huddle_core::Timestamp(0),
            key: None,
        }))
    }

    #[test]
    fn past_the_budget_the_room_holding_most_drops_its_oldest_items() {
        let (stalled, reading) = (RoomId::new_random(), RoomId::new_random());
        let w = weight(&message(stalled, 1, 1000));
        let hub = Arc::new(Hub::new(4096, 10 * w, 100));
        let mut asleep = hub.attach(stalled);
        let mut awake = hub.attach(reading);
        for seq in 1..=8 {
            hub.publish(stalled, &[message(stalled, seq, 1000)]);
        }
        hub.publish(reading, &[message(reading, 1, 1000)]);
        assert!(matches!(awake.try_recv(), Some(Ok(_))));
        assert_eq!(hub.backlog_bytes(), 8 * w, "under the budget nothing goes");

        for seq in 9..=11 {
            hub.publish(stalled, &[message(stalled, seq, 1000)]);
            assert!(
                hub.backlog_bytes() <= 10 * w,
                "{} over {}",
                hub.backlog_bytes(),
                10 * w
            );
        }
        assert_eq!(
            hub.backlog_bytes(),
            9 * w,
            "down to nine tenths of the budget"
        );
        assert_eq!(hub.buffer(stalled).unwrap().pending, 9);
        assert!(
            matches!(asleep.try_recv(), Some(Err(Lagged))),
            "the stalled reader lags"
        );

        // The room whose reader keeps up lost nothing.
        hub.publish(reading, &[message(reading, 2, 1000)]);
        assert!(matches!(awake.try_recv(), Some(Ok(Fanout::Message(m))) if m.seq.get() == 2));
        drop(asleep);
        assert_eq!(hub.backlog_bytes(), 0, "a log gone gives its share back");
    }
}
