//! Cluster mode's say in which rooms this node may hold, and for how long it may trust
//! its memory of them.
//!
//! A single node has none of this: the directory and its actors carry an `Option` of it
//! and skip every check when it is `None`, so one node pays nothing for cluster mode.
//!
//! In a cluster, placement (who *should* own a room) is advice read from the membership,
//! and the store's epoch is the truth (who *may* write it). Three rules follow:
//! - a room is activated here only while this node is its owner in its view of the
//!   cluster and has not ceded it;
//! - an actor whose append is fenced (another node took the room by bumping its epoch)
//!   stops and the room is *ceded*: not taken back by this node until the view changes or
//!   one renewal period (a third of the lease TTL) has passed — by then every node has
//!   read the membership again — so two nodes that disagree on the view do not take a
//!   room from each other in turn;
//! - an actor answers a read from memory only while this node's lease has held without a
//!   gap since the actor last knew its epoch to be the room's (when it loaded the room,
//!   or confirmed it in the store); past a deadline, even one a later renewal moved (a
//!   paused process, Redis away and back), it first confirms its epoch in the store
//!   (another node may hold the room already), else it steps down as if fenced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use huddle_core::RoomId;

/// What the cluster tells the rooms of this node.
pub trait Ownership: Send + Sync + 'static {
    /// Whether this node owns `room` in its current view of the cluster.
    fn owns(&self, room: RoomId) -> bool;

    /// Until when this node's lease surely holds (monotonic); `None`: not registered.
    fn lease_deadline(&self) -> Option<Instant>;

    /// How long a ceded room is not taken back (one renewal period).
    fn cede_for(&self) -> Duration;

    /// How long to wait before taking a room this node does not hold: until its view has
    /// stood for one renewal period. A view that just changed may not be the others' yet
    /// — a node that has not seen a newcomer still holds, and answers reads for, the
    /// rooms the newcomer now owns — and every node with a live lease has read the
    /// membership within a renewal period and handed over what it no longer owns.
    fn settle(&self) -> Duration {
        Duration::ZERO
    }
}

/// The operation was not applied because this node does not own the room (it is not
/// the owner in its view, it ceded the room, or a newer owner fenced it meanwhile): ask
/// the owner instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("this node does not own room {0}")]
pub struct NotOwner(pub RoomId);

impl From<NotOwner> for huddle_core::RoomError {
    fn from(e: NotOwner) -> Self {
        huddle_core::RoomError::Unavailable(e.to_string())
    }
}

/// One directory's cluster hooks: the ownership, and the rooms it ceded (each one was
/// active here, and a cede drops the expired entries first, so the map holds at most
/// the rooms this node lost within one renewal period).
pub(crate) struct Cluster {
    ownership: Arc<dyn Ownership>,
    /// Ceded rooms and until when.
    ceded: Mutex<HashMap<RoomId, Instant>>,
}

impl Cluster {
    pub(crate) fn new(ownership: Arc<dyn Ownership>) -> Self {
        Self {
            ownership,
            ceded: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this node may hold `room` now: its owner in the view, not ceded.
    pub(crate) fn may_hold(&self, room: RoomId) -> bool {
        self.ownership.owns(room) && !self.is_ceded(room)
    }

    /// This node's lease deadline now (`None`: not registered).
    /// How long activations wait for the view to settle (see [`Ownership::settle`]).
    pub(crate) fn settle(&self) -> Duration {
        self.ownership.settle()
    }

    pub(crate) fn lease_deadline(&self) -> Option<Instant> {
        self.ownership.lease_deadline()
    }

    pub(crate) fn cede(&self, room: RoomId) {
        let now = Instant::now();
        let mut ceded = self.ceded.lock().expect("ceded rooms poisoned");
        ceded.retain(|_, until| *until > now);
        ceded.insert(room, now + self.ownership.cede_for());
    }

    pub(crate) fn is_ceded(&self, room: RoomId) -> bool {
        let ceded = self.ceded.lock().expect("ceded rooms poisoned");
        ceded
            .get(&room)
            .is_some_and(|until| *until > Instant::now())
    }

    /// A new view: rooms ceded under the old one may be taken again if the new view
    /// says so.
    pub(crate) fn forget_ceded(&self) {
        self.ceded.lock().expect("ceded rooms poisoned").clear();
    }

    /// Takes `room` off the ceded rooms.
    pub(crate) fn reclaim(&self, room: RoomId) {
        self.ceded
            .lock()
            .expect("ceded rooms poisoned")
            .remove(&room);
    }
}
