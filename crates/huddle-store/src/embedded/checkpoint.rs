//! Checkpoints off the writer's path.
//!
//! In WAL mode SQLite copies the log back into the database file (a checkpoint) once the
//! log passes 1,000 pages, and by default the connection whose commit crossed that line
//! does it inside the commit: the copy and its fsyncs took 10–25 ms here, during which the
//! writer committed nothing, so every room's sends waited (scenario 2 saw a p99 of
//! 20 ms against a p50 of 1.5 ms). Here the writer only notices the log's size (a WAL
//! hook, which replaces SQLite's automatic checkpoint on that connection) and wakes a
//! thread of its own that runs a `PASSIVE` checkpoint on its own connection. A passive
//! checkpoint never blocks the writer or the readers; it copies what no reader still
//! needs, and the writer starts the log from the top again once all of it was copied.
//!
//! The log stays as bounded as with SQLite's own setting: a checkpoint starts whenever a
//! commit leaves the log at [`CHECKPOINT_PAGES`] or more, and the wake-up is a one-slot
//! channel, so a burst of commits queues at most one more checkpoint.

use std::ffi::c_int;
use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

use super::codec::backend;
use super::{Durability, schema};
use crate::StoreError;

/// The log size, in pages, from which a commit asks for a checkpoint: SQLite's default
/// for its automatic checkpoint.
pub(super) const CHECKPOINT_PAGES: c_int = 1000;

/// Hooks the writer's connection and starts the checkpoint thread on a connection of its
/// own. The thread ends when the writer's connection is dropped (the hook holds the only
/// sender).
pub(super) fn start(
    writer: &mut Connection,
    path: &Path,
    durability: Durability,
) -> Result<(), StoreError> {
    let conn = schema::open(path, durability)?;
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    writer
        .wal_hook(Some(move |_: &mut Wal, pages: c_int| {
            if pages >= CHECKPOINT_PAGES {
                // Full means a checkpoint is already asked for: this commit's pages go
                // with it.
                let _ = wake.try_send(());
            }
            Ok(())
        }))
        .map_err(backend)?;
    std::thread::Builder::new()
        .name("huddle-store-checkpoint".into())
        .spawn(move || run(conn, woken))
        .map_err(backend)?;
    Ok(())
}

fn run(conn: Connection, woken: mpsc::Receiver<()>) {
    while woken.recv().is_ok() {
        let started = std::time::Instant::now();
        // (busy, pages in the log, pages copied): busy is 1 only when another checkpoint
        // ran at the same time, which nothing else here starts.
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match result {
            Ok((log, copied)) => tracing::trace!(
                log,
                copied,
                took_ms = started.elapsed().as_secs_f64() * 1e3,
                "store checkpoint"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "store checkpoint failed; the log grows until the next one succeeds"
            ),
        }
    }
}
