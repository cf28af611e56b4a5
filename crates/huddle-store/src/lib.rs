//! Persistence of rooms.
//!
//! Layout:
//! - [`RoomStore`] (this file) — the trait every backend implements: acquire a room for
//!   writing (which fences out the previous writer), append a batch of events under that
//!   epoch, the name index, the public listing, and reads of the message log.
//! - [`embedded`] — the default backend: SQLite in WAL mode under the data dir, one
//!   writer thread that commits everything queued in one transaction (group commit
//!   across rooms), and a small pool of reader connections.
//!
//! Nothing here knows a wire protocol, and nothing above knows SQL.

pub mod embedded;

use async_trait::async_trait;
use huddle_core::{Event, MemberId, Message, Room, RoomId, RoomSummary, Seq};
use thiserror::Error;

pub use embedded::{Durability, EmbeddedStore};

/// The fencing token of a room's writer: grows on every acquisition, and every append
/// names the epoch it was acquired under. An append under an older epoch is refused, so a
/// writer that lost the room can never write to it again.
pub type Epoch = u64;

#[derive(Debug, Error)]
pub enum StoreError {
    /// Another writer acquired the room after this one: stop writing, reload.
    #[error("room {0} is owned by a newer writer (epoch {1} is stale)")]
    Fenced(RoomId, Epoch),
    #[error("room {0} does not exist")]
    NoSuchRoom(RoomId),
    #[error("store failure: {0}")]
    Backend(String),
}

/// A room of a given name, for resolving `name` / `name:password` and for the uniqueness
/// rules of `room.create`.
#[derive(Clone, Debug)]
pub struct NamedRoom {
    pub id: RoomId,
    pub password_hash: Option<String>,
}

/// A page of the public room listing.
#[derive(Clone, Debug)]
pub struct RoomPage {
    pub rooms: Vec<RoomSummary>,
    pub total: u64,
}

#[async_trait]
pub trait RoomStore: Send + Sync + 'static {
    /// Stores a new room (with its creator) under epoch 0.
    async fn create_room(&self, room: &Room) -> Result<(), StoreError>;

    /// Takes over writing `room`: bumps its epoch and returns the state and the new epoch,
    /// or `None` when there is no such room.
    async fn acquire(&self, room: RoomId) -> Result<Option<(Room, Epoch)>, StoreError>;

    /// Appends `events` atomically, only if `epoch` is still the room's current one.
    async fn append(
        &self,
        room: RoomId,
        epoch: Epoch,
        events: Vec<Event>,
    ) -> Result<(), StoreError>;

    /// Every room called `name` (already lower-cased).
    async fn rooms_named(&self, name: &str) -> Result<Vec<NamedRoom>, StoreError>;

    /// Password-less rooms whose name contains `search`, sorted by name.
    async fn list_rooms(
        &self,
        search: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<RoomPage, StoreError>;

    /// Messages with `seq > after` visible to `viewer` (all when `None`), oldest first.
    async fn messages_after(
        &self,
        room: RoomId,
        viewer: Option<MemberId>,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError>;

    /// The `limit` most recent messages visible to `viewer` after skipping the `offset`
    /// most recent, oldest first; and how many visible messages there are in all.
    async fn history(
        &self,
        room: RoomId,
        viewer: MemberId,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Message>, u64), StoreError>;
}
