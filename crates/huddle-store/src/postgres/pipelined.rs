//! The one-round-trip commit of a lane's batch of plain appends (broadcasts and cursor
//! moves, see `apply::plain`): `BEGIN`, the lock of the batch's room rows, one update of
//! those rows, the messages, the cursors and `COMMIT` are sent at once and answered
//! together, instead of waiting for the locked rows' counts before writing (four round
//! trips to the server, each a wake-up of its process: on a busy host they cost about
//! as much as the WAL flush). The rows are locked in id order, as the locking way does,
//! so two nodes writing overlapping rooms still cannot deadlock. A batch of one room
//! skips that lock: its update is the first statement to touch the row and locks it,
//! and one row has no order to keep (a node with one busy room saves a statement per
//! commit).
//!
//! What makes it possible is what the lanes remember ([`Known`]): a room has one write
//! at a time in the queue and only the holder of the room's epoch appends to it, so the
//! row's epoch and counts after the last commit to it are still the row's when the next
//! batch comes. That is checked, never assumed: the update matches a row only where its
//! epoch and counts are still the remembered ones, and when it matches fewer rows than
//! the batch names, the statement fails on purpose (a division by zero), which aborts the
//! transaction; the `COMMIT` sent behind it then rolls back, nothing is written, and the
//! writer redoes the batch the locking way, which tells a fenced or missing room from a
//! stale memory.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use huddle_core::{RoomId, Seq};

use super::apply::{self, Locked, RoomWrite};
use super::codec::sql_int;
use super::conn::backend;
use crate::writes::{Write, WriteOp};
use crate::{Epoch, StoreError};

/// Rooms the lanes remember at most; past it, they start afresh (the next batch of each
/// forgotten room goes the locking way once).
const KNOWN: usize = 4096;

/// Room rows as the lanes' own last commit to each left them, shared by the lanes: a
/// room's next batch may run on any of them.
#[derive(Default)]
pub(super) struct Known(std::sync::Mutex<HashMap<RoomId, Locked>>);

impl Known {
    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, Locked>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, room: RoomId, epoch: Epoch) -> Option<Locked> {
        self.rows()
            .get(&room)
            .filter(|row| row.epoch == epoch)
            .copied()
    }

    /// The rooms' rows are as given, as of a commit of a lane.
    pub(super) fn learn(&self, rows: impl IntoIterator<Item = (RoomId, Locked)>) {
        let mut known = self.rows();
        for (room, row) in rows {
            if known.len() >= KNOWN && !known.contains_key(&room) {
                known.clear();
            }
            known.insert(room, row);
        }
    }

    /// Forgets every room `batch` writes: what became of their rows is not known here.
    pub(super) fn forget(&self, batch: &[WriteOp]) {
        let mut known = self.rows();
        for op in batch {
            if let Some(room) = op.write.room() {
                known.remove(&room);
            }
        }
    }
}

/// What became of a batch offered to [`commit`].
pub(super) enum Pipelined {
    /// Not a batch for this path (a write other than a plain append, or a room not
    /// remembered under the append's epoch): nothing was sent.
    NotPlain,
    /// Every write of the batch is committed.
    Committed,
    /// The server refused something, so the transaction rolled back: nothing was
    /// written; redo the batch the locking way.
    RolledBack(StoreError),
    /// The connection failed: whether the transaction committed is not known.
    Lost(StoreError),
}

/// Commits `batch` in one round trip if it is a batch of plain appends to remembered
/// rows (see the module doc), and remembers the rows it leaves.
pub(super) async fn commit(c: &impl GenericClient, batch: &[WriteOp], known: &Known) -> Pipelined {
    let mut rooms: Vec<RoomWrite<'_>> = Vec::new();
    let mut index = HashMap::new();
    for op in batch {
        match &op.write {
            Write::Probe => {}
            Write::Append {
                room,
                epoch,
                events,
            } => {
                let Some(row) = known.get(*room, *epoch) else {
                    return Pipelined::NotPlain;
                };
                let k = *index.entry(*room).or_insert_with(|| {
                    rooms.push(RoomWrite::new(*room, &row));
                    rooms.len() - 1
                });
                if !rooms[k].apply_plain(events) {
                    return Pipelined::NotPlain;
                }
            }
            Write::Create(_) | Write::Acquire(_) => return Pipelined::NotPlain,
        }
    }
    if rooms.is_empty() {
        return Pipelined::NotPlain;
    }
    // Prepared (cached after the lane's first such batch) before anything is sent, so
    // that each statement below goes out as soon as it is polled, in order: nothing may
    // overtake the `COMMIT`.
    for sql in [
        apply::LOCK,
        UPDATE_UNCHANGED,
        apply::INSERT_MESSAGES,
        apply::MOVE_CURSORS,
    ] {
        if let Err(e) = c.prepare_cached(sql).await {
            return Pipelined::RolledBack(backend(e));
        }
    }
    let ids: Vec<RoomId> = rooms.iter().map(RoomWrite::room).collect();
    let lock = async {
        match ids.len() {
            1 => Ok(()),
            _ => apply::lock(c, &ids).await.map(drop),
        }
    };
    // `join!` polls its futures in order: the requests leave in this order, and the
    // server runs them in that order.
    let (begin, locked, rows, messages, cursors, commit) = futures::join!(
        c.batch_execute("BEGIN"),
        lock,
        update_unchanged(c, &rooms),
        apply::insert_messages(c, &rooms),
        apply::move_cursors(c, &rooms),
        c.batch_execute("COMMIT"),
    );
    // `BEGIN` fails only with the connection, and then nothing behind it ran either.
    if let Err(e) = begin.and(commit) {
        return Pipelined::Lost(backend(e));
    }
    // The `COMMIT` was answered: it committed unless a statement before it failed (then
    // the transaction was aborted and the `COMMIT` rolled it back).
    match locked.and(rows).and(messages).and(cursors) {
        Ok(()) => {
            known.learn(rooms.iter().map(|w| (w.room(), w.after())));
            Pipelined::Committed
        }
        Err(e) => Pipelined::RolledBack(e),
    }
}

/// Moves the rows' message counts and `last_seq` where the epoch and counts are still
/// those remembered, and fails (a division by zero) if any row was not: see the module
/// doc. Plain appends change no other column of the row.
const UPDATE_UNCHANGED: &str = "WITH moved AS (
        UPDATE rooms r SET message_count = v.messages,
                           last_seq = GREATEST(r.last_seq, v.last_seq)
        FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
                    $6::bigint[], $7::bigint[])
             AS v(id, epoch, agents, dms, was_messages, messages, last_seq)
        WHERE r.id = v.id AND r.epoch = v.epoch AND r.agent_count = v.agents
              AND r.dm_count = v.dms AND r.message_count = v.was_messages
        RETURNING 1)
    SELECT 1 / ((SELECT count(*) FROM moved) = cardinality($1::text[]))::int";

async fn update_unchanged(
    c: &impl GenericClient,
    rooms: &[RoomWrite<'_>],
) -> Result<(), StoreError> {
    let col = |f: &dyn Fn(&RoomWrite<'_>) -> i64| rooms.iter().map(f).collect::<Vec<_>>();
    let keys: Vec<&str> = rooms.iter().map(RoomWrite::key).collect();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &keys,
        &col(&|w| sql_int(w.before().epoch)),
        &col(&|w| w.before().agents),
        &col(&|w| w.before().dms),
        &col(&|w| w.before().messages),
        &col(&|w| w.after().messages),
        &col(&|w| sql_int(w.last_seq().unwrap_or(Seq::ZERO))),
    ];
    let st = c.prepare_cached(UPDATE_UNCHANGED).await.map_err(backend)?;
    c.query_one(&st, &params).await.map(drop).map_err(backend)
}
