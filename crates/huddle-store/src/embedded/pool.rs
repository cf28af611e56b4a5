//! The reader pool: a fixed set of connections, and a bounded queue in front of them.
//!
//! Each read holds one connection on a blocking thread for as long as it runs. Opening
//! connections on demand (as an earlier version did past a few) lets a burst of reads
//! take as many threads, connections and page caches as it likes; here a burst waits
//! for one of `readers` connections, at most `queue` reads wait, and the next one is
//! refused at once with [`StoreError::Busy`] naming the limit (`readers + queue`).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::codec::backend;
use super::{Durability, schema};
use crate::StoreError;

pub(super) struct ReadPool {
    /// The idle connections. A `free` permit is a claim on one of them.
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection: a read waits here (in FIFO order) for its turn.
    free: Arc<Semaphore>,
    /// Reads running or waiting. Taken without waiting: when none is left the read is
    /// refused, so the queue in front of `free` never exceeds `queue`.
    admitted: Arc<Semaphore>,
    limit: usize,
}

/// A connection out of the pool. Dropping it (also when a read panics) puts the
/// connection back before the permits go, so a permit always finds a connection.
struct Lease {
    pool: Arc<ReadPool>,
    conn: Option<Connection>,
    _free: OwnedSemaphorePermit,
    _admitted: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
    }
}

impl ReadPool {
    /// Opens `readers` connections to `path` (at least one).
    pub(super) fn open(
        path: &Path,
        durability: Durability,
        readers: usize,
        queue: usize,
    ) -> Result<Arc<Self>, StoreError> {
        let readers = readers.max(1);
        let idle = (0..readers)
            .map(|_| schema::open(path, durability))
            .collect::<Result<Vec<_>, _>>()?;
        let limit = readers.saturating_add(queue);
        Ok(Arc::new(Self {
            idle: Mutex::new(idle),
            free: Arc::new(Semaphore::new(readers)),
            admitted: Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))),
            limit,
        }))
    }

    /// Runs `f` on a pooled connection off the async runtime, waiting for one if all
    /// are busy, or refusing when the queue is full.
    pub(super) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| StoreError::Busy(self.limit))?;
        let free = self
            .free
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("reader pool closed".into()))?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .ok_or_else(|| StoreError::Backend("reader pool lost a connection".into()))?;
            let lease = Lease {
                pool,
                conn: Some(conn),
                _free: free,
                _admitted: admitted,
            };
            f(lease
                .conn
                .as_ref()
                .expect("a lease holds its connection until dropped"))
            .map_err(backend)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}
