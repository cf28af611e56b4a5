//! The write queue in front of each backend's writer (a thread for SQLite, a task for
//! PostgreSQL): callers queue a write and wait for the answer, sent only after the
//! writer's transaction has committed; the writer takes everything queued at once.
//!
//! The queue may have several lanes, each drained by its own writer (PostgreSQL commits
//! several transactions at once): a room's writes always take the same lane, chosen by
//! its id, so they reach the store in the order they were queued.

use huddle_core::{Event, Room, RoomId};
use tokio::sync::{mpsc, oneshot};

use crate::{Epoch, StoreError};

/// Writes waiting for the writers (all lanes together): callers wait (backpressure)
/// beyond this.
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

/// The callers' side of the write queue, one sender per lane: every backend's writes go
/// through it (see [`crate::RoomStore::writer`]).
#[derive(Clone)]
pub struct Writes(std::sync::Arc<[mpsc::Sender<WriteOp>]>);

impl Writes {
    /// One lane, for a single writer.
    pub(crate) fn channel() -> (Self, mpsc::Receiver<WriteOp>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self(std::sync::Arc::new([tx])), rx)
    }

    /// `lanes` lanes (at least one), sharing the queue's bound: one receiver per writer.
    pub(crate) fn lanes(lanes: usize) -> (Self, Vec<mpsc::Receiver<WriteOp>>) {
        let lanes = lanes.max(1);
        let (txs, rxs) = (0..lanes)
            .map(|_| mpsc::channel(QUEUE.div_ceil(lanes)))
            .unzip::<_, _, Vec<_>, Vec<_>>();
        (Self(txs.into()), rxs)
    }

    /// The lane of `room`'s writes: fixed for the room (its id is random, so rooms
    /// spread evenly).
    fn lane(&self, room: RoomId) -> &mpsc::Sender<WriteOp> {
        let i = room.0.as_u128() % self.0.len() as u128;
        &self.0[i as usize]
    }

    async fn write(&self, write: Write) -> Result<Written, StoreError> {
        match write.room() {
            Some(room) => Self::write_to(self.lane(room), write).await,
            None => Self::write_to(&self.0[0], write).await,
        }
    }

    async fn write_to(lane: &mpsc::Sender<WriteOp>, write: Write) -> Result<Written, StoreError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || StoreError::Backend("the store's writer stopped".into());
        lane.send(WriteOp { write, done: tx })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// A probe through every lane's writer, committing nothing: see
    /// [`crate::RoomStore::check_writable`].
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        let probes = self.0.iter().map(|lane| Self::write_to(lane, Write::Probe));
        futures::future::try_join_all(probes).await.map(drop)
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
