//! The embedded backend: one SQLite file, `huddle.db`, under the data dir.
//!
//! Why SQLite (rusqlite, bundled) and not redb: the log is read by range with a per-viewer
//! filter (DM privacy) and counted (history `total`), and the room listing is a filtered,
//! sorted, paged query. SQL indexes do that directly; with a KV store we would be writing
//! those indexes by hand. SQLite's WAL mode gives concurrent readers next to one writer.
//!
//! Durability: every commit goes to the WAL before the reply is sent. With
//! [`Durability::Process`] (default, `synchronous=NORMAL`) an acknowledged write survives a
//! crash or `kill -9` of the process; the OS may still lose the last commits on power
//! loss. [`Durability::Power`] (`synchronous=FULL`, `--fsync`) fsyncs each group commit so
//! acknowledged writes survive power loss too; group commit keeps that affordable.
//!
//! Layout: `schema` (tables and pragmas), `writer` (the group-commit thread), `codec`
//! (rows ⇄ core types), `reads` (queries on the reader pool).

mod codec;
mod reads;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use huddle_core::{Event, MemberId, Message, Room, RoomId, Seq};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{Epoch, NamedRoom, RoomPage, RoomStore, StoreError};
use writer::{Write, WriteOp};

/// How far an acknowledged write is guaranteed to survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Survives a process crash (`synchronous=NORMAL` in WAL mode).
    Process,
    /// Survives power loss (`synchronous=FULL`: fsync per group commit).
    Power,
}

/// How many reader connections to keep: reads are short, the machine small.
const READERS: usize = 4;

pub struct EmbeddedStore {
    path: PathBuf,
    writes: mpsc::Sender<WriteOp>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) `<dir>/huddle.db` and starts the writer thread.
    pub fn open(dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let path = dir.join("huddle.db");
        let conn = schema::open(&path, durability)?;
        schema::migrate(&conn)?;
        let writes = writer::spawn(conn)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(schema::open(&path, durability)?);
        }
        Ok(Self {
            path,
            writes,
            readers: Arc::new(Mutex::new(readers)),
        })
    }

    async fn write(&self, write: Write) -> Result<writer::Written, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writes
            .send(WriteOp { write, done: tx })
            .await
            .map_err(|_| StoreError::Backend("writer thread stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("writer thread stopped".into()))?
    }

    /// Runs `f` on a reader connection off the async runtime.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.lock().expect("reader pool poisoned").pop();
            let conn = match conn {
                Some(c) => c,
                None => schema::open(&path, Durability::Process)?,
            };
            let out = f(&conn).map_err(codec::backend);
            let mut pool = readers.lock().expect("reader pool poisoned");
            if pool.len() < READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

#[async_trait]
impl RoomStore for EmbeddedStore {
    async fn create_room(&self, room: &Room) -> Result<(), StoreError> {
        self.write(Write::Create(Box::new(room.clone()))).await?;
        Ok(())
    }

    async fn acquire(&self, room: RoomId) -> Result<Option<(Room, Epoch)>, StoreError> {
        match self.write(Write::Acquire(room)).await? {
            writer::Written::Acquired(found) => Ok(found.map(|(r, e)| (*r, e))),
            writer::Written::Done => Err(StoreError::Backend("unexpected writer answer".into())),
        }
    }

    async fn append(
        &self,
        room: RoomId,
        epoch: Epoch,
        events: Vec<Event>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(Write::Append {
            room,
            epoch,
            events,
        })
        .await?;
        Ok(())
    }

    async fn rooms_named(&self, name: &str) -> Result<Vec<NamedRoom>, StoreError> {
        let name = name.to_string();
        self.read(move |c| reads::rooms_named(c, &name)).await
    }

    async fn list_rooms(
        &self,
        search: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<RoomPage, StoreError> {
        let search = search.map(str::to_string);
        self.read(move |c| reads::list_rooms(c, search.as_deref(), limit, offset))
            .await
    }

    async fn messages_after(
        &self,
        room: RoomId,
        viewer: Option<MemberId>,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(move |c| reads::messages_after(c, room, viewer, after, limit))
            .await
    }

    async fn history(
        &self,
        room: RoomId,
        viewer: MemberId,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Message>, u64), StoreError> {
        self.read(move |c| reads::history(c, room, viewer, limit, offset))
            .await
    }
}
