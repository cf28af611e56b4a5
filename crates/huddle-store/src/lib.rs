//! Persistence of rooms.
//!
//! Layout:
//! - [`RoomStore`] (this file) — the trait every backend implements: acquire a room for
//!   writing (which fences out the previous writer), append a batch of events under that
//!   epoch, the name index, the public listing, and reads of the message log.
//! - [`embedded`] — the default backend: SQLite in WAL mode under the data dir, one
//!   writer that commits everything queued in one transaction (group commit
//!   across rooms), and a fixed pool of reader connections behind a bounded queue.
//! - [`postgres`] — the backend several nodes share: writer lanes taking turns,
//!   pipelined appends, reads in repeatable-read snapshots.
//! - [`Writes`] (`writes`) — the write queue in front of either backend's writer(s).
//! - [`copy`] — a node's data from one store into another, resumable and verified.
//!
//! Nothing here knows a wire protocol, and nothing above knows SQL.

pub mod copy;
pub mod embedded;
pub mod postgres;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;
mod writes;

pub use writes::Writes;

use async_trait::async_trait;
use huddle_core::{Event, MemberId, Message, Page, Room, RoomId, RoomSummary, Seq};
use thiserror::Error;

pub use embedded::{DEFAULT_READ_QUEUE, Durability, EmbeddedOptions, EmbeddedStore};
pub use postgres::{PostgresOptions, PostgresStore};

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
    /// Every read slot and every place in the read queue is taken: nothing was read.
    /// Carries the limit (reads running plus waiting) so the refusal can name it.
    #[error("too many reads in flight (limit {0})")]
    Busy(usize),
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

/// The identity of a send made with an idempotency key: unique in a room's log (see
/// [`RoomStore::sent_with_key`]).
#[derive(Clone, Copy, Debug)]
pub struct SentKey<'a> {
    pub room: RoomId,
    pub sender: MemberId,
    pub key: &'a str,
}

/// A run of a room's log: the first `limit` messages with `seq > after` that `viewer`
/// may see (every message when `None`), oldest first.
#[derive(Clone, Copy, Debug)]
pub struct LogRange {
    pub room: RoomId,
    pub viewer: Option<MemberId>,
    pub after: Seq,
    pub limit: usize,
}

impl LogRange {
    /// Every message of `room` with `seq > after`, at most `limit`.
    pub fn all(room: RoomId, after: Seq, limit: usize) -> LogRange {
        LogRange {
            room,
            viewer: None,
            after,
            limit,
        }
    }
}

/// A page of a room's history as `viewer` sees it (see [`RoomStore::history`]).
#[derive(Clone, Copy, Debug)]
pub struct HistoryRead {
    pub room: RoomId,
    pub viewer: MemberId,
    pub page: Page,
}

/// The right to create a room of one name: while it is held, no other holder of a lock
/// on that name (in this process or, with a shared store, on any node) can create one,
/// so the rooms it sees in [`NameLock::rooms_named`] stay the rooms of that name until
/// it creates or is dropped. Dropping it without creating releases it.
#[async_trait]
pub trait NameLock: Send {
    /// Every room called the locked name, as of now.
    async fn rooms_named(&mut self) -> Result<Vec<NamedRoom>, StoreError>;

    /// Stores `room` (its name is the locked one) and releases the lock.
    async fn create_room(self: Box<Self>, room: &Room) -> Result<(), StoreError>;
}

/// What every backend promises, beyond the signatures:
///
/// - **Snapshots.** A read sees one committed state: a page and the `total` next to it
///   come from the same snapshot, and nothing uncommitted is ever returned.
/// - **Privacy.** A read for a `viewer` returns only messages visible to that member
///   (`Message::visible_to`: broadcasts, and DMs the member sent or received). Identity
///   is the member id, not the name.
/// - **Bounded cost.** No read costs time proportional to `offset` or to the size of the
///   room's log: counts are kept as the log is appended, not counted per call, and pages
///   are found by `seq`. A backend keeps what it needs for that up to date in `append`.
/// - **Admission.** A backend bounds the reads it runs at once and the reads waiting for
///   them; past that it refuses at once with [`StoreError::Busy`] naming the limit,
///   instead of queueing without bound.
/// - **One log per room.** `(room, seq)` is unique and so is `(room, sender, key)` for a
///   message with an idempotency key: an append that would repeat either is refused as a
///   whole, however the writers got there.
///
/// Every backend queues its writes for a writer of its own, through the one [`Writes`]
/// queue: the write methods here pass them to it (a wrapper, such as a test's, may step
/// in front of one of them).
#[async_trait]
pub trait RoomStore: Send + Sync + 'static {
    /// Where this store's writes go.
    fn writer(&self) -> &Writes;

    /// Whether a write would be accepted now (readiness): the writer alive and the
    /// backend able to commit.
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.writer().check_writable().await
    }

    /// Stores a new room (with its creator) under epoch 0.
    async fn create_room(&self, room: &Room) -> Result<(), StoreError> {
        self.writer().create_room(room).await
    }

    /// Takes over writing `room`: bumps its epoch and returns the state and the new epoch,
    /// or `None` when there is no such room.
    async fn acquire(&self, room: RoomId) -> Result<Option<(Room, Epoch)>, StoreError> {
        self.writer().acquire(room).await
    }

    /// Appends `events` atomically, only if `epoch` is still the room's current one.
    async fn append(
        &self,
        room: RoomId,
        epoch: Epoch,
        events: Vec<Event>,
    ) -> Result<(), StoreError> {
        self.writer().append(room, epoch, events).await
    }

    /// The room's current epoch (`None`: no such room): a cheap read with which a writer
    /// whose lease may have lapsed confirms that nobody acquired the room since it did.
    async fn epoch(&self, room: RoomId) -> Result<Option<Epoch>, StoreError>;

    /// Every room called `name` (already lower-cased).
    async fn rooms_named(&self, name: &str) -> Result<Vec<NamedRoom>, StoreError>;

    /// Serialises the creations of rooms called `name` (already lower-cased): see
    /// [`NameLock`]. Holders of one name wait for each other; other names do not.
    async fn lock_name(&self, name: &str) -> Result<Box<dyn NameLock>, StoreError>;

    /// The message its sender sent in the room under the idempotency key, if any. Keys
    /// are kept with their message for as long as the message is.
    async fn sent_with_key(&self, sent: SentKey<'_>) -> Result<Option<Message>, StoreError>;

    /// Password-less rooms whose (lower-case) name contains `search` lower-cased (a
    /// literal substring: `%`, `_` and `\` match only themselves), sorted by name
    /// and then by creation time, the given page of them; `total` is how many rooms
    /// match. `RoomSummary::agents` is the room's current member count. Callers clamp
    /// `page.limit`; a backend must not rely on it being small.
    async fn list_rooms(&self, search: Option<&str>, page: Page) -> Result<RoomPage, StoreError>;

    /// The messages of a run of the log (see [`LogRange`]).
    async fn messages_after(&self, read: LogRange) -> Result<Vec<Message>, StoreError>;

    /// A page of a room's history as the viewer sees it: number the messages visible to
    /// the viewer from the most recent (0) backwards, skip the first `page.offset` and
    /// return the next `page.limit`, oldest first; and `total`, how many messages are
    /// visible to the viewer in all. An offset at or past `total` gives an empty page (and
    /// the `total`); an unknown room gives an empty page and 0. Exact for any member id,
    /// including one that has left the room.
    async fn history(&self, read: HistoryRead) -> Result<(Vec<Message>, u64), StoreError>;
}
