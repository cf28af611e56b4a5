//! The POST path: with no GET stream open, the messages owed to a session go on its POST
//! responses, ahead of the tool result, drained from per-room feeds the session holds.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use huddle_cluster::{CatchUp, MessageStream, Router};
use huddle_core::{RoomError, Seq};

use super::Delivery;
use super::note;
use crate::mcp::joined::JoinedRoom;

/// How long a POST flush waits for a feed's replay from the store before answering
/// anyway (it only waits when messages visible to the agent are still to come from the
/// log; the rest is delivered by the next flush).
const REPLAY_WAIT: Duration = Duration::from_millis(250);

/// A feed a session without GET stream holds for one room.
pub struct FlushFeed {
    /// The room generation (see `JoinedRoom::generation`) it was made for.
    generation: u64,
    feed: MessageStream,
    /// How far the feed knows the log goes: up to there it replays the log (store reads),
    /// so a flush waits for it rather than taking only what is at hand.
    catch_up: CatchUp,
    /// A catch-up point a flush already waited for in vain (what is left up to there is
    /// not for this agent: DMs to others); not waited for again.
    gave_up: Seq,
}

impl FlushFeed {
    async fn open(router: &dyn Router, room: &JoinedRoom, after: Seq) -> Result<Self, RoomError> {
        let subscribed = router.subscribe(room.feed_after(after)).await?;
        Ok(Self {
            generation: room.generation,
            feed: subscribed.stream,
            catch_up: subscribed.catch_up,
            gave_up: Seq::ZERO,
        })
    }
}

/// Notifications taken for a POST response; they count as delivered once the response
/// is known to carry them ([`Flushed::commit`]).
#[derive(Default)]
pub struct Flushed {
    pub notes: Vec<String>,
    /// `(slot, from, to)`: the seqs of each room these notes cover.
    ranges: Vec<(usize, Seq, Seq)>,
}

impl Flushed {
    pub fn is_empty(&self) -> bool {
        self.notes.is_empty()
    }

    /// The response carries the notes: the session's positions move past them.
    pub fn commit(&self, delivery: &Delivery) {
        for &(slot, from, to) in &self.ranges {
            delivery.rooms.posted(slot, from, to);
        }
    }

    /// The response could not carry them: the next flush reads them again from the log.
    pub async fn abandon(self, delivery: &Delivery) {
        if !self.ranges.is_empty() {
            delivery.flush.lock().await.clear();
        }
    }
}

impl Delivery {
    /// Prepares a freshly joined room for POST-path delivery (when no GET stream is open;
    /// the GET stream takes it from there otherwise). Everything committed up to now that
    /// follows the join (e.g. missed messages beyond the join result's page) comes from
    /// the log: the next flush waits for that replay.
    pub async fn start_room(&self, router: &dyn Router, slot: usize) {
        if self.live_open() {
            return;
        }
        let Some(room) = self.rooms.room(slot) else {
            return;
        };
        if let Ok(feed) = FlushFeed::open(router, &room, room.delivered).await {
            self.flush.lock().await.insert(slot, feed);
        }
    }

    /// The room of `slot` was left: its POST-path feed goes (the GET stream drops its own).
    pub async fn forget_room(&self, slot: usize) {
        self.flush.lock().await.remove(&slot);
    }

    /// The notifications owed to a session without a GET stream, in seq order per room;
    /// at most `max` (the rest go with the next responses: a session that was away long
    /// does not get one unbounded response).
    pub async fn flush(&self, router: &dyn Router, max: usize) -> Flushed {
        let mut flushed = Flushed::default();
        if self.live_open() {
            return flushed;
        }
        let out = &mut flushed.notes;
        let mut feeds = self.flush.lock().await;
        for room in self.rooms.rooms() {
            if out.len() >= max {
                break;
            }
            let from = room.delivered;
            let mut last = from;
            let current = feeds
                .get(&room.slot)
                .is_some_and(|f| f.generation == room.generation);
            if !current {
                feeds.remove(&room.slot);
                let Ok(feed) = FlushFeed::open(router, &room, last).await else {
                    continue;
                };
                feeds.insert(room.slot, feed);
            }
            let feed = feeds.get_mut(&room.slot).expect("inserted above");
            if let Drained::Ended = drain(feed, &mut last, out, max).await {
                // The agent is gone, or resuming was refused: made again next time.
                feeds.remove(&room.slot);
            }
            if last > from {
                flushed.ranges.push((room.slot, from, last));
            }
        }
        flushed
    }
}

enum Drained {
    /// Everything available now was taken.
    Caught,
    /// The feed ended (the agent is gone, or it could not resume).
    Ended,
}

/// Takes what `feed` has now, waiting for its replay of the log first.
async fn drain(feed: &mut FlushFeed, last: &mut Seq, out: &mut Vec<String>, max: usize) -> Drained {
    loop {
        if out.len() >= max {
            return Drained::Caught;
        }
        let until = feed.catch_up.until();
        let catching_up = |until: Seq| *last < until && until != feed.gave_up;
        let item = if catching_up(until) {
            match tokio::time::timeout(REPLAY_WAIT, feed.feed.next()).await {
                Ok(item) => item,
                Err(_) => {
                    feed.gave_up = until;
                    return Drained::Caught;
                }
            }
        } else {
            match feed.feed.next().now_or_never() {
                Some(item) => item,
                // Polling it may have found it behind and set it resuming: wait for that.
                None if catching_up(feed.catch_up.until()) => continue,
                None => return Drained::Caught,
            }
        };
        match item {
            Some(Ok(m)) => {
                if m.seq > *last {
                    *last = m.seq;
                    out.push(note::shared(&m).to_string());
                }
            }
            Some(Err(_)) | None => return Drained::Ended,
        }
    }
}
