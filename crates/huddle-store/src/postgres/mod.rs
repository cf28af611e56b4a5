//! The PostgreSQL backend: the store shared by the nodes of a cluster, so that any node
//! can take a room over from the log all of them write to.
//!
//! Same promises as the embedded backend, over one database:
//! - writes go through up to `--store-writers` writer tasks (lanes) per node, each with
//!   its own connection, taking turns on one queue: the first lane commits everything
//!   queued (of all rooms) in one transaction at a time, and a spare lane starts beside
//!   a commit that stalls (`turns`, `writer`); appends are fenced by the room's
//!   epoch in that transaction (`apply`);
//! - reads and name locks take a connection of a pool of `--store-pool` connections,
//!   behind a bounded queue; past it a request is refused with [`StoreError::Busy`];
//! - creations of one name are serialised across nodes by a transaction-scoped advisory
//!   lock on the name (`names`);
//! - the schema is versioned and migrated at start under an advisory lock (`schema`);
//! - a lost server gives errors, not a dead node: connections are reopened on demand
//!   (`conn`).
//!
//! Durability: a write is acknowledged after its transaction commits; with PostgreSQL's
//! default `synchronous_commit=on` that means flushed to the server's WAL.

mod apply;
mod codec;
mod conn;
mod history;
mod names;
mod pipelined;
mod reads;
mod schema;
mod turns;
mod writer;

use async_trait::async_trait;
use deadpool_postgres::Object;
use huddle_core::{Message, Page, RoomId};
use tokio_postgres::IsolationLevel;

use crate::writes::Writes;
use crate::{
    DEFAULT_READ_QUEUE, Epoch, HistoryRead, LogRange, NameLock, NamedRoom, RoomPage, RoomStore,
    SentKey, StoreError,
};
use conn::{Bounded, backend};

/// The schema version this huddle reads and writes in PostgreSQL.
pub const SCHEMA_VERSION: usize = schema::VERSION;

/// Default pooled connections (`--store-pool`).
pub const DEFAULT_POOL: usize = 16;

/// Default writer lanes (`--store-writers`): most commits in flight at once per node.
/// Normally one runs at a time; the spares start beside commits that stall (on a row
/// lock, a slow flush), so that those hold up only the writes they carry.
pub const DEFAULT_WRITERS: usize = 4;

/// How the PostgreSQL store connects.
#[derive(Clone, Copy, Debug)]
pub struct PostgresOptions {
    /// Pooled connections for reads and name locks (at least 1). Each writer lane has
    /// one more of its own.
    pub pool: usize,
    /// Requests that may wait for a pooled connection; the next one is refused
    /// (`StoreError::Busy`, naming `pool + read_queue`).
    pub read_queue: usize,
    /// Writer lanes, each with its own connection and transaction (at least 1, at most
    /// `pool`): the most commits in flight at once (see `turns`).
    pub writers: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool: DEFAULT_POOL,
            read_queue: DEFAULT_READ_QUEUE,
            writers: DEFAULT_WRITERS,
        }
    }
}

/// Cloning gives another handle on the same pool and writer.
#[derive(Clone)]
pub struct PostgresStore {
    writes: Writes,
    reads: std::sync::Arc<Bounded>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`), brings the schema up to date and starts the
    /// writer. Fails when the server cannot be reached now or its schema is newer.
    /// Must be called inside a tokio runtime.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let config = conn::config(url)?;
        let lanes = options.writers.clamp(1, options.pool.max(1));
        let writer_pools = (0..lanes)
            .map(|_| conn::pool(&config, 1, conn::LANE_IDLE_IN_TRANSACTION))
            .collect::<Result<Vec<_>, _>>()?;
        let mut first = writer_pools[0].get().await.map_err(conn::unavailable)?;
        schema::migrate(&mut first).await?;
        drop(first);
        let reads = Bounded::new(
            conn::pool(&config, options.pool, conn::POOL_IDLE_IN_TRANSACTION)?,
            options.read_queue,
        );
        Ok(Self {
            writes: writer::spawn(writer_pools),
            reads: std::sync::Arc::new(reads),
        })
    }

    /// A pooled connection inside a read-only repeatable-read transaction, for reads
    /// whose parts must come from one snapshot; `f` runs in it.
    async fn snapshot<T>(
        &self,
        f: impl AsyncFnOnce(&deadpool_postgres::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut lease = self.reads.get().await?;
        let conn: &mut Object = &mut lease.conn;
        let tx = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(backend)?;
        let result = f(&tx).await?;
        tx.commit().await.map_err(backend)?;
        Ok(result)
    }
}

#[async_trait]
impl RoomStore for PostgresStore {
    fn writer(&self) -> &Writes {
        &self.writes
    }

    async fn epoch(&self, room: RoomId) -> Result<Option<Epoch>, StoreError> {
        let lease = self.reads.get().await?;
        reads::epoch(&lease.conn, room).await
    }

    async fn rooms_named(&self, name: &str) -> Result<Vec<NamedRoom>, StoreError> {
        let lease = self.reads.get().await?;
        reads::rooms_named(&lease.conn, name).await
    }

    async fn lock_name(&self, name: &str) -> Result<Box<dyn NameLock>, StoreError> {
        let lease = self.reads.get().await?;
        Ok(Box::new(names::PgNameLock::take(lease, name).await?))
    }

    async fn sent_with_key(&self, sent: SentKey<'_>) -> Result<Option<Message>, StoreError> {
        let lease = self.reads.get().await?;
        reads::sent_with_key(&lease.conn, sent).await
    }

    async fn list_rooms(&self, search: Option<&str>, page: Page) -> Result<RoomPage, StoreError> {
        self.snapshot(async |tx| reads::list_rooms(tx, search, page).await)
            .await
    }

    async fn messages_after(&self, read: LogRange) -> Result<Vec<Message>, StoreError> {
        let lease = self.reads.get().await?;
        reads::messages_after(&lease.conn, read).await
    }

    async fn history(&self, read: HistoryRead) -> Result<(Vec<Message>, u64), StoreError> {
        self.snapshot(async |tx| history::history(tx, read).await)
            .await
    }
}
