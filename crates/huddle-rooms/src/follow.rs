//! A node following a room this node owns: every event of the room (DMs included: the
//! follower filters per reader, as this node does for its own readers), the log first
//! and then live, for the one upstream feed another node keeps per room it has readers
//! of.
//!
//! The follow is attached like a reader (the room's actor attaches it to this node's
//! fan-out and reads `last_seq` in one step of its mailbox), so the log `(after,
//! last_seq]` from the store and the live feed after it meet without gap or duplicate.
//! It ends:
//! - with [`FollowEnd::Moved`] when the room's actor stops here (handover, a fenced
//!   append, shutdown), once everything the actor published is delivered: the room may
//!   be taken by another node next, and the follower finds its owner again;
//! - with [`FollowEnd::Lagged`] when the follower falls more than the fan-out's bound
//!   behind (the same rule as a reader's): it follows again from the seq named.
//!
//! While a room has a follower its actor does not passivate for idleness: an idle room
//! with readers elsewhere costs nothing, and a follow that ended every idle timeout
//! would cost a store acquisition each time.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use huddle_core::{MemberId, Seq, SharedMessage};
use thiserror::Error;
use tokio::sync::watch;

use crate::feed::{Cursor, SubscribeError};
use crate::hub::{Fanout, Live};

/// One event of a followed room.
#[derive(Clone, Debug)]
pub enum FollowEvent {
    /// A committed message, whoever may see it.
    Message(SharedMessage),
    /// A member left or was removed: its readers' streams end.
    Removed(MemberId),
}

/// Why a follow ended. The follower resumes from the last seq it received.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FollowEnd {
    /// The room's actor stopped on this node: find its owner again.
    #[error("the room moved: it is no longer active on this node")]
    Moved,
    /// The follower fell more than the fan-out's bound behind.
    #[error("follower fell too far behind after seq {0}; follow again from it")]
    Lagged(Seq),
    /// The log could not be read from the store.
    #[error("store failure during replay: {0}")]
    Store(String),
    /// (Follower side) the link to the owner broke or it refused the follow.
    #[error("the owner's feed was lost: {0}")]
    Lost(String),
}

pub type FollowStream = Pin<Box<dyn Stream<Item = Result<FollowEvent, FollowEnd>> + Send>>;

/// A follower's start, as the room's actor answered it.
pub struct Following {
    /// The room's committed last seq when `live` was attached.
    pub last_seq: Seq,
    /// Gets every item published after `last_seq`.
    pub live: Live,
    /// Changes (closes) when the actor stops.
    pub stopped: watch::Receiver<()>,
}

/// The follow stream: the log after `after` from `store`, then live, until the end.
pub(crate) fn stream(
    store: Arc<dyn huddle_store::RoomStore>,
    room: huddle_core::RoomId,
    after: Seq,
    following: Following,
) -> FollowStream {
    let after = after.min(following.last_seq);
    let (last_seq, live) = (following.last_seq, following.live);
    let follow = Follow {
        cursor: Cursor::new(store, room, None, after, last_seq, live),
        stopped: following.stopped,
        closed: false,
        done: false,
    };
    Box::pin(futures::stream::unfold(follow, |mut f| async move {
        let item = f.next().await?;
        Some((item, f))
    }))
}

struct Follow {
    cursor: Cursor,
    stopped: watch::Receiver<()>,
    /// The actor stopped: the cursor reads out what is published, then ends.
    closed: bool,
    done: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<Result<FollowEvent, FollowEnd>> {
        if self.done {
            return None;
        }
        loop {
            let item = if self.closed {
                self.cursor.next().await
            } else {
                tokio::select! {
                    biased;
                    item = self.cursor.next() => item,
                    // Everything the actor published is in the fan-out by the time it
                    // stops: read it out, then end.
                    _ = self.stopped.changed() => {
                        self.closed = true;
                        self.cursor.close();
                        continue;
                    }
                }
            };
            let end = match item {
                Ok(Fanout::Message(m)) => return Some(Ok(FollowEvent::Message(m))),
                Ok(Fanout::Left(member)) => return Some(Ok(FollowEvent::Removed(member))),
                // This node's own readers re-authorise; a follower does that on its side.
                Ok(Fanout::Reopen) => continue,
                Err(SubscribeError::Lagged(seq)) => FollowEnd::Lagged(seq),
                Err(SubscribeError::Store(e)) => FollowEnd::Store(e),
                // A cursor ends closed only once its publisher stopped; it is never
                // removed or resumed (those are a reader's).
                Err(
                    SubscribeError::Closed | SubscribeError::Removed | SubscribeError::Resume(_),
                ) => FollowEnd::Moved,
            };
            self.done = true;
            return Some(Err(end));
        }
    }
}
