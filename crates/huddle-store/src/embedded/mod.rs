//! The embedded backend: one SQLite file, `huddle.db`, under the data dir.
//!
//! Why SQLite (rusqlite, bundled) and not redb: the log is read by range with a per-viewer
//! filter (DM privacy) and paged by rank (history), and the room listing is a filtered,
//! sorted, paged query. SQL indexes do that directly; with a KV store we would be writing
//! those indexes by hand. SQLite's WAL mode gives concurrent readers next to one writer.
//!
//! Durability: every commit goes to the WAL before the reply is sent. With
//! [`Durability::Process`] (default, `synchronous=NORMAL`) an acknowledged write survives a
//! crash or `kill -9` of the process; the OS may still lose the last commits on power
//! loss. [`Durability::Power`] (`synchronous=FULL`, `--fsync`) fsyncs each group commit so
//! acknowledged writes survive power loss too; group commit keeps that affordable.
//!
//! Reads run on a fixed pool of connections behind a bounded queue ([`EmbeddedOptions`]):
//! past it a read is refused with [`StoreError::Busy`] rather than queued without bound.
//!
//! Layout: `schema` (tables, pragmas and versioned migrations), `writer` (the
//! group commit), `checkpoint` (the thread that copies the log back into the
//! file, off the writer's path), `counts` (the counts kept next to the log, updated by appends),
//! `codec` (rows ⇄ core types), `pool` (the reader pool), `reads` (queries on it),
//! `visible` (a page of what one viewer may see, and the ranks that number it) and
//! `history` (history pages found by rank).

mod checkpoint;
mod codec;
mod counts;
mod history;
mod names;
mod pool;
mod reads;
mod schema;
mod visible;
mod writer;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use huddle_core::{Message, Page, Room, RoomId};
use rusqlite::Connection;

use crate::writes::Writes;
use crate::{
    Epoch, HistoryRead, LogRange, NameLock, NamedRoom, RoomPage, RoomStore, SentKey, StoreError,
};
use names::{EmbeddedNameLock, NameLocks};
use pool::ReadPool;

/// How far an acknowledged write is guaranteed to survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Survives a process crash (`synchronous=NORMAL` in WAL mode).
    Process,
    /// Survives power loss (`synchronous=FULL`: fsync per group commit).
    Power,
}

/// How the embedded store is opened.
#[derive(Clone, Copy, Debug)]
pub struct EmbeddedOptions {
    pub durability: Durability,
    /// Reader connections, each read holding one on a blocking thread while it runs
    /// (at least 1). Default: the number of cores, at least 2.
    pub readers: usize,
    /// Reads that may wait for a reader; the next one is refused (`StoreError::Busy`,
    /// naming `readers + read_queue`). Default: [`DEFAULT_READ_QUEUE`].
    pub read_queue: usize,
}

/// Reads waiting for a reader before new ones are refused: room for a burst of
/// activations and replays, small enough that waiting stays short (reads take well
/// under a millisecond each).
pub const DEFAULT_READ_QUEUE: usize = 4096;

impl EmbeddedOptions {
    pub fn new(durability: Durability) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            durability,
            readers: cores.max(2),
            read_queue: DEFAULT_READ_QUEUE,
        }
    }
}

/// Cloning gives another handle on the same file, writer and pool.
#[derive(Clone)]
pub struct EmbeddedStore {
    writes: Writes,
    reads: Arc<ReadPool>,
    names: Arc<NameLocks>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) `<dir>/huddle.db` with the default reader pool.
    pub fn open(dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        Self::open_with(dir, EmbeddedOptions::new(durability))
    }

    /// Opens (creating or migrating if needed) `<dir>/huddle.db` and starts the writer
    /// (see `writer` for where it runs).
    pub fn open_with(dir: &Path, options: EmbeddedOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let path = dir.join("huddle.db");
        let mut conn = schema::open(&path, options.durability)?;
        schema::migrate(&mut conn)?;
        checkpoint::start(&mut conn, &path, options.durability)?;
        let writes = writer::spawn(conn, options.durability)?;
        let reads = ReadPool::open(
            &path,
            options.durability,
            options.readers,
            options.read_queue,
        )?;
        Ok(Self {
            writes,
            reads,
            names: Arc::new(NameLocks::new()),
        })
    }

    /// Every room's id, protected ones too (for copying the store).
    pub async fn room_ids(&self) -> Result<Vec<RoomId>, StoreError> {
        self.read(reads::room_ids).await
    }

    /// A room's state and epoch as stored, without taking it over (for copying the
    /// store: unlike [`RoomStore::acquire`] it writes nothing).
    pub async fn load(&self, room: RoomId) -> Result<Option<(Room, Epoch)>, StoreError> {
        self.read(move |c| writer::load(c, room)).await
    }

    /// Runs `f` on a reader connection off the async runtime (see `pool`).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.reads.read(f).await
    }
}

#[async_trait]
impl RoomStore for EmbeddedStore {
    fn writer(&self) -> &Writes {
        &self.writes
    }

    async fn epoch(&self, room: RoomId) -> Result<Option<Epoch>, StoreError> {
        self.read(move |c| reads::epoch(c, room)).await
    }

    async fn rooms_named(&self, name: &str) -> Result<Vec<NamedRoom>, StoreError> {
        let name = name.to_string();
        self.read(move |c| reads::rooms_named(c, &name)).await
    }

    async fn lock_name(&self, name: &str) -> Result<Box<dyn NameLock>, StoreError> {
        let held = self.names.lock(name).await;
        Ok(Box::new(EmbeddedNameLock {
            store: self.clone(),
            name: name.to_string(),
            _held: held,
        }))
    }

    async fn sent_with_key(&self, sent: SentKey<'_>) -> Result<Option<Message>, StoreError> {
        let (room, sender, key) = (sent.room, sent.sender, sent.key.to_string());
        self.read(move |c| {
            reads::sent_with_key(
                c,
                SentKey {
                    room,
                    sender,
                    key: &key,
                },
            )
        })
        .await
    }

    async fn list_rooms(&self, search: Option<&str>, page: Page) -> Result<RoomPage, StoreError> {
        let search = search.map(str::to_string);
        self.read(move |c| reads::list_rooms(c, search.as_deref(), page))
            .await
    }

    async fn messages_after(&self, read: LogRange) -> Result<Vec<Message>, StoreError> {
        self.read(move |c| reads::messages_after(c, read)).await
    }

    async fn history(&self, read: HistoryRead) -> Result<(Vec<Message>, u64), StoreError> {
        self.read(move |c| history::history(c, read)).await
    }
}
