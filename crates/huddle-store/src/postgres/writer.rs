//! The writer task: takes every write queued (of every room), runs them in one
//! transaction on its own connection, one savepoint per write so a refused append (a
//! fenced writer, a duplicate `seq`) does not fail its neighbours, and commits once:
//! group commit across rooms. Each write is answered only after the commit.
//!
//! Writes are applied in room order (stable, so a room's writes keep theirs): two
//! nodes writing overlapping rooms lock their rows in one order and cannot deadlock.

use deadpool_postgres::{GenericClient, Pool, Transaction};
use tokio::sync::mpsc;

use super::apply;
use super::conn::{backend, unavailable};
use crate::StoreError;
use crate::writes::{self, Write, WriteOp, Writes, Written};

/// Most writes one transaction takes: bounds the latency of the last one in a burst.
const MAX_BATCH: usize = 1024;
/// Starts the task on `pool` (its own pool of one connection, reopened when lost).
pub(super) fn spawn(pool: Pool) -> Writes {
    let (tx, rx) = Writes::channel();
    tokio::spawn(run(pool, rx));
    tx
}

async fn run(pool: Pool, mut rx: mpsc::Receiver<WriteOp>) {
    let mut batch = Vec::with_capacity(64);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        writes::fill(&mut batch, &mut rx, MAX_BATCH);
        let started = std::time::Instant::now();
        let results = commit(&pool, &batch).await;
        huddle_metrics::store::commit(batch.len(), started.elapsed());
        for (op, result) in batch.drain(..).zip(results) {
            let _ = op.done.send(result);
        }
    }
    tracing::debug!("store writer stopped: all senders dropped");
}

async fn commit(pool: &Pool, batch: &[WriteOp]) -> Vec<Result<Written, StoreError>> {
    let fail_all = |e: StoreError| {
        let message = e.to_string();
        batch
            .iter()
            .map(|_| Err(StoreError::Backend(message.clone())))
            .collect()
    };
    let mut conn = match pool.get().await {
        Ok(conn) => conn,
        Err(e) => return fail_all(unavailable(e)),
    };
    let mut tx = match conn.transaction().await {
        Ok(tx) => tx,
        Err(e) => return fail_all(backend(e)),
    };
    if let [op] = batch {
        return vec![commit_one(tx, &op.write).await];
    }
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_cached_key(|&i| batch[i].write.room().map(|r| r.to_string()));
    let mut results: Vec<Option<Result<Written, StoreError>>> =
        batch.iter().map(|_| None).collect();
    for i in order {
        results[i] = Some(apply_in_savepoint(&mut tx, &batch[i].write).await);
    }
    match tx.commit().await {
        Ok(()) => results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Backend("write not applied".into()))))
            .collect(),
        Err(e) => fail_all(backend(e)),
    }
}

async fn apply_in_savepoint(
    tx: &mut Transaction<'_>,
    write: &Write,
) -> Result<Written, StoreError> {
    let sp = tx.savepoint("write").await.map_err(backend)?;
    let result = apply(&sp, write).await;
    match &result {
        Ok(_) => sp.commit().await.map_err(backend)?,
        Err(_) => sp.rollback().await.map_err(backend)?,
    }
    result
}

/// A batch of one write needs no savepoint: if it fails, nothing else is lost by
/// rolling the whole transaction back (two round trips fewer when load is light).
async fn commit_one(tx: Transaction<'_>, write: &Write) -> Result<Written, StoreError> {
    match apply(&tx, write).await {
        Ok(written) => {
            tx.commit().await.map_err(backend)?;
            Ok(written)
        }
        Err(e) => {
            // A failed rollback means a lost connection: the pool drops it; the write's
            // own error says more.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

async fn apply(c: &impl GenericClient, write: &Write) -> Result<Written, StoreError> {
    match write {
        Write::Create(room) => apply::create(c, room).await.map(|()| Written::Done),
        Write::Acquire(room) => apply::acquire(c, *room)
            .await
            .map(|found| Written::Acquired(found.map(|(r, e)| (Box::new(r), e)))),
        // The batch's transaction commits: the server takes writes.
        Write::Probe => Ok(Written::Done),
        Write::Append {
            room,
            epoch,
            events,
        } => apply::append(c, *room, *epoch, events)
            .await
            .map(|()| Written::Done),
    }
}
