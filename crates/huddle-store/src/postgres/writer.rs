//! The writer lanes: tasks that each commit on a connection of their own, taking turns
//! on one queue (`turns`: the first lane commits one batch at a time, each taking
//! everything queued while the one before it ran; a spare lane starts beside a commit
//! that stalls). A batch is many rooms' writes in one transaction, committed once: group
//! commit across rooms. Each write is answered only after its commit.
//!
//! A batch of plain appends (broadcasts and cursor moves) to rooms whose rows the lanes
//! know from their own last commit to them is sent in one burst and committed in one
//! round trip (`pipelined`). Other batches of appends take the locking path
//! ([`appends`]), which then lets the lanes know the rows: one statement locks every
//! room row of the batch, the appends of missing rooms or older epochs are refused
//! right there (not applied), and the others are written by three statements for the
//! whole batch, sent at once (`apply`). If anything fails there (a `seq` or key already
//! in the log), the transaction is rolled back and the batch redone the careful way:
//! one savepoint per write, in room order (stable, so a room's writes keep theirs), so
//! that a refused write does not fail its neighbours. Batches with a creation or a
//! takeover go the careful way directly. Both ways lock room rows in id order: two
//! nodes writing overlapping rooms cannot deadlock.

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Object, Pool, Transaction};
use huddle_core::{Event, RoomId};

use super::apply::{self, Locked, RoomWrite};
use super::conn::{backend, unavailable};
use super::pipelined::{self, Known, Pipelined};
use super::turns::Turns;
use crate::StoreError;
use crate::writes::{Write, WriteOp, Writes, Written};

/// Most writes one transaction takes: bounds the latency of the last one in a burst.
const MAX_BATCH: usize = 1024;
/// Starts one lane per pool (each a pool of one connection, reopened when lost), all
/// taking their writes from the returned queue.
pub(super) fn spawn(pools: Vec<Pool>) -> Writes {
    let (tx, rx) = Writes::channel();
    let turns = Arc::new(Turns::new(rx));
    let known = Arc::new(Known::default());
    for (lane, pool) in pools.into_iter().enumerate() {
        tokio::spawn(run(lane, pool, turns.clone(), known.clone()));
    }
    tx
}
async fn run(lane: usize, pool: Pool, turns: Arc<Turns>, known: Arc<Known>) {
    let mut batch = Vec::with_capacity(64);
    while let Some(mut turn) = turns.next(lane, &mut batch, MAX_BATCH).await {
        let started = std::time::Instant::now();
        let results = turn.watch(commit(&pool, &batch, &known)).await;
        drop(turn);
        huddle_metrics::store::commit(batch.len(), started.elapsed());
        for (op, result) in batch.drain(..).zip(results) {
            let _ = op.done.send(result);
        }
    }
    tracing::debug!("store writer lane stopped: all senders dropped");
}

type Results = Vec<Result<Written, StoreError>>;

/// Every write of `batch` failed by `e` (a failure of the connection or the commit).
fn fail_all(batch: &[WriteOp], e: StoreError) -> Results {
    let message = e.to_string();
    batch
        .iter()
        .map(|_| Err(StoreError::Backend(message.clone())))
        .collect()
}

/// Commits `batch` the quickest way it allows; `known` follows the rows it writes.
async fn commit(pool: &Pool, batch: &[WriteOp], known: &Known) -> Results {
    let fail_all = |e: StoreError| fail_all(batch, e);
    let mut conn = match pool.get().await {
        Ok(conn) => conn,
        Err(e) => return fail_all(unavailable(e)),
    };
    match pipelined::commit(&conn, batch, known).await {
        Pipelined::Committed => return batch.iter().map(|_| Ok(Written::Done)).collect(),
        Pipelined::Lost(e) => {
            known.forget(batch);
            return fail_all(e);
        }
        Pipelined::RolledBack(e) => {
            tracing::debug!("pipelined batch of {} redone with locks: {e}", batch.len());
            known.forget(batch);
        }
        Pipelined::NotPlain => {}
    }
    let only_appends = batch
        .iter()
        .all(|op| matches!(op.write, Write::Append { .. } | Write::Probe));
    if only_appends {
        let tx = match conn.transaction().await {
            Ok(tx) => tx,
            Err(e) => return fail_all(backend(e)),
        };
        match appends(&tx, batch).await {
            Ok((results, rows)) => {
                return match tx.commit().await {
                    Ok(()) => {
                        known.learn(rows);
                        results
                    }
                    Err(e) => {
                        known.forget(batch);
                        fail_all(backend(e))
                    }
                };
            }
            Err(e) => {
                tracing::debug!("batch of {} redone with savepoints: {e}", batch.len());
                if tx.rollback().await.is_err() {
                    return fail_all(e);
                }
            }
        }
    }
    known.forget(batch);
    careful(&mut conn, batch).await
}

/// The locking path (see the module doc): the answers of the batch's writes and the rows
/// as they are once it commits, or the failure that makes the caller roll back and redo
/// it with savepoints.
async fn appends(
    tx: &Transaction<'_>,
    batch: &[WriteOp],
) -> Result<(Results, Vec<(RoomId, Locked)>), StoreError> {
    let mut results: Results = batch.iter().map(|_| Ok(Written::Done)).collect();
    let appends: Vec<_> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match &op.write {
            Write::Append {
                room,
                epoch,
                events,
            } => Some((i, *room, *epoch, &events[..])),
            Write::Create(_) | Write::Acquire(_) | Write::Probe => None,
        })
        .collect();
    if appends.is_empty() {
        return Ok((results, Vec::new()));
    }
    let mut ids: Vec<_> = appends.iter().map(|a| a.1).collect();
    ids.sort_unstable();
    ids.dedup();
    let locked = apply::lock(tx, &ids).await?;
    // Each room's accepted appends, in batch order.
    let mut rooms: Vec<(RoomWrite<'_>, Vec<&[Event]>)> = Vec::new();
    let mut index = HashMap::new();
    for (i, room, epoch, events) in appends {
        match apply::check(&locked, room, epoch) {
            Err(refused) => results[i] = Err(refused),
            Ok(row) => {
                let k = *index.entry(room).or_insert_with(|| {
                    rooms.push((RoomWrite::new(room, row), Vec::new()));
                    rooms.len() - 1
                });
                rooms[k].1.push(events);
            }
        }
    }
    // Rooms apart run at once (their rare events' statements pipelined); each room's
    // appends in order.
    let applying = rooms.iter_mut().map(|(write, appends)| async move {
        for events in appends.iter() {
            write.apply(tx, events).await?;
        }
        Ok::<_, StoreError>(())
    });
    futures::future::try_join_all(applying).await?;
    let writes: Vec<RoomWrite<'_>> = rooms.into_iter().map(|(w, _)| w).collect();
    if !writes.is_empty() {
        apply::finish(tx, &writes).await?;
    }
    let rows = writes.iter().map(|w| (w.room(), w.after())).collect();
    Ok((results, rows))
}

/// The careful way: one savepoint per write (none for a batch of one).
async fn careful(conn: &mut Object, batch: &[WriteOp]) -> Results {
    let fail_all = |e: StoreError| fail_all(batch, e);
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
