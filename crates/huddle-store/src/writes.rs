//! The write queue in front of each backend's writer (for SQLite a task, or a thread
//! with `--fsync`; tasks for PostgreSQL): callers queue a write and wait for the answer,
//! sent only after the writer's transaction has committed; the writer takes everything
//! queued at once.
//!
//! A room never has two writes queued at once: its actor waits for each append before
//! it queues the next, and takes the room (`acquire`) before it appends. So when a backend
//! runs two commits at once (PostgreSQL, see its `turns`), their rooms are apart; where a
//! room's old owner still has an append waiting when a new owner takes it, the room's
//! epoch decides which one stands, whichever commits first.

use huddle_core::{Event, Room, RoomId};
use tokio::sync::{mpsc, oneshot};

use crate::{Epoch, StoreError};

/// Writes waiting for the writer: callers wait (backpressure) beyond this.
const QUEUE: usize = 8192;

pub(crate) enum Write {
    Create(Box<Room>),
    Acquire(RoomId),
    /// Commits nothing, through the writer like any write: the writer is alive and the
    /// store takes a write transaction now (readiness).
    Probe,
    Append {
        room: RoomId,
        epoch: Epoch,
        events: Vec<Event>,
    },
}

impl Write {
    /// The room written (none for a probe).
    pub(crate) fn room(&self) -> Option<RoomId> {
        match self {
            Write::Create(room) => Some(room.id),
            Write::Acquire(room) | Write::Append { room, .. } => Some(*room),
            Write::Probe => None,
        }
    }

    /// About how many rows the write inserts or changes: what its share of a commit costs.
    pub(crate) fn rows(&self) -> usize {
        match self {
            Write::Create(room) => 1 + room.agents.len(),
            Write::Acquire(_) | Write::Probe => 1,
            Write::Append { events, .. } => events.len(),
        }
    }
}

pub(crate) enum Written {
    Done,
    Acquired(Option<(Box<Room>, Epoch)>),
}

pub(crate) struct WriteOp {
    pub write: Write,
    pub done: oneshot::Sender<Result<Written, StoreError>>,
}

/// Adds to `batch` what is queued now, up to `max` in all (never waits).
pub(crate) fn fill(batch: &mut Vec<WriteOp>, rx: &mut mpsc::Receiver<WriteOp>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
}

/// The callers' side of the write queue: every backend's writes go through it (see
/// [`crate::RoomStore::writer`]).
#[derive(Clone)]
pub struct Writes(mpsc::Sender<WriteOp>);

impl Writes {
    /// The queue and its receiving end, for the backend's writer.
    pub(crate) fn channel() -> (Self, mpsc::Receiver<WriteOp>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self(tx), rx)
    }

    async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || StoreError::Backend("the store's writer stopped".into());
        self.0
            .send(WriteOp { write, done: tx })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// A probe through the writer, committing nothing: see
    /// [`crate::RoomStore::check_writable`].
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        self.write(Write::Probe).await.map(drop)
    }
    /// See [`crate::RoomStore::create_room`].
    pub async fn create_room(&self, room: &Room) -> Result<(), StoreError> {
        self.write(Write::Create(Box::new(room.clone()))).await?;
        Ok(())
    }

    /// See [`crate::RoomStore::acquire`].
    pub async fn acquire(&self, room: RoomId) -> Result<Option<(Room, Epoch)>, StoreError> {
        match self.write(Write::Acquire(room)).await? {
            Written::Acquired(found) => Ok(found.map(|(r, e)| (*r, e))),
            Written::Done => Err(StoreError::Backend("unexpected writer answer".into())),
        }
    }

    /// See [`crate::RoomStore::append`].
    pub async fn append(
        &self,
        room: RoomId,
        epoch: Epoch,
        events: Vec<Event>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let append = Write::Append {
            room,
            epoch,
            events,
        };
        self.write(append).await?;
        Ok(())
    }
}
