//! An MCP session: what it remembers between requests (its rooms, see `joined`), how long
//! it has been idle, and its delivery state (owned by `delivery`).
//!
//! A session in no room (an *anonymous* one: it never joined a room, or left every room
//! it joined) costs a client nothing to lose: any POST without a session makes one, and a
//! POST with a lost id is run in a fresh one (docs/protocol.md, section 'Sessions and
//! recovery'). So anonymous sessions are cheap to end: they expire after a short idle
//! time and give way first when the table is full (see `sessions`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use huddle_core::RoomId;
// tokio's clock, so that idle times can be tested with paused time.
use tokio::time::Instant;

use super::delivery::Delivery;
pub use super::delivery::LiveRegistration;
pub use super::joined::{JoinedRoom, Joining, NoRoom, RoomList, too_many_rooms};
pub use super::sessions::{Place, Sessions};

pub struct Session {
    pub id: String,
    last_active: Mutex<Instant>,
    rooms: Arc<RoomList>,
    delivery: Arc<Delivery>,
}

impl Session {
    pub(super) fn new(id: String, max_rooms: usize) -> Self {
        let rooms = Arc::new(RoomList::new(max_rooms));
        Self {
            id,
            last_active: Mutex::new(Instant::now()),
            delivery: Arc::new(Delivery::new(rooms.clone())),
            rooms,
        }
    }

    pub fn touch(&self) {
        *self.last_active.lock().expect("session poisoned") = Instant::now();
    }

    /// How long the session has been idle; an open GET stream is activity.
    pub(super) fn idle_for(&self) -> Duration {
        let idle = self.last_active.lock().expect("session poisoned").elapsed();
        match self.delivery.quiet_for() {
            Some(quiet) => quiet.min(idle),
            None => idle,
        }
    }

    /// The session's delivery state (GET stream, POST-path feeds).
    pub fn delivery(&self) -> &Arc<Delivery> {
        &self.delivery
    }

    /// In no room: it never joined one, or it left every room it joined (see the module
    /// docs).
    pub fn is_anonymous(&self) -> bool {
        self.rooms.is_anonymous()
    }

    /// Most rooms the session remembers (rooms it left keep their slot, and count).
    pub fn room_limit(&self) -> usize {
        self.rooms.limit()
    }

    /// Whether joining the room `reference` names stays within [`Session::room_limit`]
    /// (see [`RoomList::may_join`]).
    pub fn may_join(&self, reference: Option<&str>) -> bool {
        self.rooms.may_join(reference)
    }

    /// Records a joined (or re-joined) room, delivering from `baseline` on; returns its
    /// slot, or `Err` with the limit when it would be a room beyond [`Session::room_limit`].
    /// An open GET stream (re)opens the room.
    pub fn join(&self, joining: Joining) -> Result<usize, usize> {
        let slot = self.rooms.join(joining)?;
        self.delivery.joined(slot);
        Ok(slot)
    }

    /// The room was left; returns its slot.
    pub fn leave(&self, room_id: RoomId) -> Option<usize> {
        self.rooms.leave(room_id)
    }

    /// The room a tool acts on: the one `reference` names, or the most recently joined.
    pub fn choose(&self, reference: Option<&str>) -> Result<JoinedRoom, NoRoom> {
        self.rooms.choose(reference)
    }

    /// The session's joined rooms (not those it left), in slot order.
    pub fn rooms(&self) -> Vec<JoinedRoom> {
        self.rooms.rooms()
    }

    /// Registers a new GET stream; an older one of this session ends.
    pub fn open_live(&self) -> LiveRegistration {
        self.touch();
        self.delivery.open_live()
    }

    /// The GET stream of `generation` ended (if it is still the current one).
    pub fn close_live(&self, generation: u64) {
        self.delivery.close_live(generation);
    }

    pub fn live_open(&self) -> bool {
        self.delivery.live_open()
    }

    /// Ends the session's streams and feeds.
    pub(super) fn end(&self) {
        self.delivery.end();
        self.rooms.leave_all();
    }
}
