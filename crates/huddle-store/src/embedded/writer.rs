//! The writer: SQLite allows one writer, so all writes go through one task that takes
//! everything queued, runs it in one transaction (one savepoint per operation, so one
//! refused append does not fail its neighbours; a lone operation needs none) and commits
//! once: group commit across rooms. Copying the log back into the file is left to
//! `checkpoint`. Each operation is answered only after the commit, so an acknowledgement means
//! the data is in the WAL.
//!
//! Where it runs: with [`Durability::Process`] (the default) a commit writes to the page
//! cache and never waits for the disk, ~0.1 ms of CPU for a typical batch, so the writer
//! is a task on the runtime the store was opened on. On a thread of its own, each commit
//! cost three thread hand-offs (wake the writer, wake a runtime worker with the answer,
//! the writer back to sleep), and on a VM those cost more than the commit: one sender's
//! send took 0.29 ms instead of 0.21 ms at the median (see BENCHMARKS.md). With [`Durability::Power`]
//! a commit waits for an fsync, which must not hold a runtime worker: the writer gets a
//! thread (with a small runtime of its own for its timer), as it does when the store is
//! opened outside any runtime.
//!
//! A commit on a runtime worker holds that worker while it runs. A typical one takes
//! ~0.1 ms, but a burst over many rooms can queue a batch far larger: 2,048 appends of
//! 16 messages queued at once took ~100 ms to commit. A batch of more than
//! [`INLINE_ROWS`] rows runs in `block_in_place`, which hands the worker's other tasks
//! to another thread meanwhile, so the node's requests and streams do not wait behind
//! it (on a multi-threaded runtime; a single-threaded one, as in tests, has no other
//! worker to hand them to).
//!
//! Either way the writer never sleeps inside SQLite: its connection has no busy timeout,
//! and a transaction that finds the write lock taken by another connection (an
//! operator's `sqlite3`, a `huddle store copy`) waits for it on the runtime's timer
//! ([`begin`]), up to [`LOCK_WAIT`], as `busy_timeout` did before. Only the start of a
//! transaction waits: once `BEGIN IMMEDIATE` holds the write lock, nothing else in WAL
//! mode makes the writer wait for another connection (readers and the passive
//! checkpoint never block it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use huddle_core::{Event, MemberId, Room, RoomId, Seq};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use tokio::runtime::RuntimeFlavor;
use tokio::sync::mpsc;

use super::Durability;
use super::codec::{self, backend};
use super::counts::Counts;
use super::reads::{sql_member, sql_seq};
use crate::writes::{self, Write, WriteOp, Writes, Written};
use crate::{Epoch, StoreError};

/// Most operations one transaction takes: bounds the latency of the last one in a burst.
const MAX_BATCH: usize = 2048;

/// Rows a batch may write on the runtime worker it runs on; a larger batch is handed off
/// (see the module doc). A row costs ~3 µs, so this is about a millisecond of commit, and
/// a batch that large pays the hand-off (a thread wake-up) many times over.
const INLINE_ROWS: usize = 256;

/// How long a transaction waits for another connection's write lock before its writes
/// fail (the busy timeout of every other connection, `schema::open`).
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The longest pause between two tries for the write lock.
const LOCK_RETRY_MAX: Duration = Duration::from_millis(50);

pub(super) fn spawn(conn: Connection, durability: Durability) -> Result<Writes, StoreError> {
    // Every statement the writer runs stays prepared (rusqlite keeps 16 by default, fewer
    // than the writer has).
    conn.set_prepared_statement_cache_capacity(64);
    // Waits for the lock happen in `begin`, off SQLite.
    conn.busy_timeout(Duration::ZERO).map_err(backend)?;
    let (tx, rx) = Writes::channel();
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if durability == Durability::Process => {
            let hand_off = runtime.runtime_flavor() == RuntimeFlavor::MultiThread;
            runtime.spawn(serve(conn, rx, hand_off));
        }
        _ => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .map_err(backend)?;
            std::thread::Builder::new()
                .name("huddle-store-writer".into())
                .spawn(move || runtime.block_on(serve(conn, rx, false)))
                .map_err(backend)?;
        }
    }
    Ok(tx)
}

/// Commits what is queued, batch after batch, until every sender is gone. `hand_off`:
/// the writer runs on a worker of a multi-threaded runtime, which a batch of more than
/// [`INLINE_ROWS`] rows hands to another thread while it commits.
async fn serve(mut conn: Connection, mut rx: mpsc::Receiver<WriteOp>, hand_off: bool) {
    let mut batch = Vec::with_capacity(64);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        writes::fill(&mut batch, &mut rx, MAX_BATCH);
        let started = Instant::now();
        let long = || batch.iter().map(|op| op.write.rows()).sum::<usize>() > INLINE_ROWS;
        let results = match begin(&mut conn).await {
            Ok(()) if hand_off && long() => {
                tokio::task::block_in_place(|| commit(&mut conn, &batch))
            }
            Ok(()) => commit(&mut conn, &batch),
            Err(e) => fail_all(&batch, e),
        };
        huddle_metrics::store::commit(batch.len(), started.elapsed());
        for (op, result) in batch.drain(..).zip(results) {
            let _ = op.done.send(result);
        }
    }
    tracing::debug!("store writer stopped: all senders dropped");
}

/// Starts the batch's transaction. IMMEDIATE: the write lock is taken first. A deferred
/// transaction reads (the room's counts) before it writes, and SQLite refuses such an
/// upgrade at once, without waiting, when another connection holds the lock for a
/// moment. While another connection holds it, tries again after a pause that doubles up
/// to [`LOCK_RETRY_MAX`], for up to [`LOCK_WAIT`], so the runtime's worker is free
/// meanwhile.
async fn begin(conn: &mut Connection) -> rusqlite::Result<()> {
    let deadline = Instant::now() + LOCK_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        match run(conn, "BEGIN IMMEDIATE") {
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LOCK_RETRY_MAX);
            }
            result => return result,
        }
    }
}

fn fail_all(batch: &[WriteOp], e: rusqlite::Error) -> Vec<Result<Written, StoreError>> {
    batch
        .iter()
        .map(|_| Err(StoreError::Backend(e.to_string())))
        .collect()
}

/// Runs the batch in the transaction [`begin`] started, and commits it.
fn commit(conn: &mut Connection, batch: &[WriteOp]) -> Vec<Result<Written, StoreError>> {
    let results = match batch {
        // One operation: the transaction is its savepoint.
        [op] => vec![apply(conn, &op.write)],
        _ => batch
            .iter()
            .map(|op| apply_in_savepoint(conn, &op.write))
            .collect(),
    };
    let outcome = match &results[..] {
        [Err(_)] => run(conn, "ROLLBACK"),
        _ => run(conn, "COMMIT"),
    };
    if let Err(e) = outcome {
        if !conn.is_autocommit() {
            let _ = run(conn, "ROLLBACK");
        }
        return fail_all(batch, e);
    }
    results
}

/// Runs a statement without parameters, prepared once: the transaction and savepoint
/// statements run on every commit, and parsing them each time cost more than running them.
fn run(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([]).map(drop)
}

fn apply_in_savepoint(c: &Connection, write: &Write) -> Result<Written, StoreError> {
    run(c, "SAVEPOINT op").map_err(backend)?;
    let result = apply(c, write);
    if result.is_err() {
        run(c, "ROLLBACK TO op").map_err(backend)?;
    }
    run(c, "RELEASE op").map_err(backend)?;
    result
}

fn apply(c: &Connection, write: &Write) -> Result<Written, StoreError> {
    match write {
        Write::Create(room) => {
            create(c, room).map_err(backend)?;
            Ok(Written::Done)
        }
        Write::Acquire(room) => acquire(c, *room).map(Written::Acquired),
        Write::Probe => {
            // A write statement takes the write lock even when it changes no row.
            c.execute("UPDATE rooms SET id = id WHERE 0", [])
                .map_err(backend)?;
            Ok(Written::Done)
        }
        Write::Append {
            room,
            epoch,
            events,
        } => {
            append(c, *room, *epoch, events)?;
            Ok(Written::Done)
        }
    }
}

fn create(c: &Connection, room: &Room) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO rooms (id, name, password_hash, description, kind, created_at, last_seq,
                            last_member, epoch, agent_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
    )?
    .execute(params![
        room.id.to_string(),
        room.name,
        room.password_hash,
        room.description,
        room.kind.as_str(),
        room.created_at.0,
        sql_seq(room.last_seq),
        sql_member(room.last_member),
        room.agents.len() as i64,
    ])?;
    for a in &room.agents {
        insert_agent(c, room.id, a)?;
    }
    Ok(())
}

fn insert_agent(c: &Connection, room: RoomId, a: &huddle_core::Agent) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO agents (room_id, member, name, role, joined_at, token, endpoint, cursor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        room.to_string(),
        sql_member(a.member),
        a.name,
        codec::role_str(a.role),
        a.joined_at.0,
        &a.token.0[..],
        a.endpoint,
        sql_seq(a.cursor),
    ])?;
    Ok(())
}

fn acquire(c: &Connection, id: RoomId) -> Result<Option<(Box<Room>, Epoch)>, StoreError> {
    let bumped = c
        .prepare_cached("UPDATE rooms SET epoch = epoch + 1 WHERE id = ?1")
        .and_then(|mut st| st.execute([id.to_string()]))
        .map_err(backend)?;
    if bumped == 0 {
        return Ok(None);
    }
    load(c, id)
        .map_err(backend)
        .map(|found| found.map(|(room, epoch)| (Box::new(room), epoch)))
}

/// A room's state and epoch, as stored.
pub(super) fn load(c: &Connection, id: RoomId) -> rusqlite::Result<Option<(Room, Epoch)>> {
    let key = id.to_string();
    let found = c
        .prepare_cached(
            "SELECT name, password_hash, description, kind, created_at, last_seq, last_member,
                    epoch
             FROM rooms WHERE id = ?1",
        )?
        .query_row([&key], |r| {
            let room = Room {
                id,
                name: r.get(0)?,
                password_hash: r.get(1)?,
                description: r.get(2)?,
                kind: codec::kind_from(&r.get::<_, String>(3)?),
                created_at: huddle_core::Timestamp(r.get(4)?),
                last_seq: codec::seq_from(r.get(5)?),
                last_member: codec::member_from(r.get(6)?),
                agents: Vec::new(),
            };
            Ok((room, r.get::<_, i64>(7)? as u64))
        })
        .optional()?;
    let Some((room, epoch)) = found else {
        return Ok(None);
    };
    let agents = c
        .prepare_cached(
            "SELECT member, name, role, joined_at, token, endpoint, cursor
             FROM agents WHERE room_id = ?1 ORDER BY joined_at, member",
        )?
        .query_map([&key], codec::agent)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some((Room { agents, ..room }, epoch)))
}

fn append(c: &Connection, room: RoomId, epoch: Epoch, events: &[Event]) -> Result<(), StoreError> {
    let key = room.to_string();
    let mut counts = match Counts::load(c, &key).map_err(backend)? {
        None => return Err(StoreError::NoSuchRoom(room)),
        Some((e, _)) if e as u64 != epoch => return Err(StoreError::Fenced(room, epoch)),
        Some((_, counts)) => counts,
    };
    // Cursor moves are frequent (every send moves its sender's): keep the last per member.
    let mut cursors: HashMap<MemberId, Seq> = HashMap::new();
    let mut last_seq = None;
    for event in events {
        match event {
            Event::Joined(a) => {
                insert_agent(c, room, a).map_err(backend)?;
                counts.members(1);
                c.prepare_cached(
                    "UPDATE rooms SET last_member = max(last_member, ?2) WHERE id = ?1",
                )
                .and_then(|mut st| st.execute(params![key, sql_member(a.member)]))
                .map_err(backend)?;
            }
            Event::Reconnected { member, endpoint } => {
                c.prepare_cached(
                    "UPDATE agents SET endpoint = ?3 WHERE room_id = ?1 AND member = ?2",
                )
                .and_then(|mut st| st.execute(params![key, sql_member(*member), endpoint]))
                .map_err(backend)?;
            }
            Event::Left { member } => {
                cursors.remove(member);
                let removed = c
                    .prepare_cached("DELETE FROM agents WHERE room_id = ?1 AND member = ?2")
                    .and_then(|mut st| st.execute(params![key, sql_member(*member)]))
                    .map_err(backend)?;
                counts.members(-(removed as i64));
            }
            Event::RoleChanged { member, role } => {
                c.prepare_cached("UPDATE agents SET role = ?3 WHERE room_id = ?1 AND member = ?2")
                    .and_then(|mut st| {
                        st.execute(params![key, sql_member(*member), codec::role_str(*role)])
                    })
                    .map_err(backend)?;
            }
            Event::Updated { description, kind } => {
                c.prepare_cached(
                    "UPDATE rooms SET description = coalesce(?2, description), kind = coalesce(?3, kind)
                     WHERE id = ?1",
                )
                .and_then(|mut st| {
                    st.execute(params![key, description, kind.map(|k| k.as_str())])
                })
                .map_err(backend)?;
            }
            Event::Posted(m) => {
                counts.post(c, &key, m).map_err(backend)?;
                last_seq = Some(m.seq);
            }
            Event::CursorMoved { member, seq } => {
                let c = cursors.entry(*member).or_default();
                *c = (*c).max(*seq);
            }
        }
    }
    for (member, seq) in cursors {
        c.prepare_cached(
            "UPDATE agents SET cursor = max(cursor, ?3) WHERE room_id = ?1 AND member = ?2",
        )
        .and_then(|mut st| st.execute(params![key, sql_member(member), sql_seq(seq)]))
        .map_err(backend)?;
    }
    counts.save(c, &key, last_seq).map_err(backend)?;
    Ok(())
}
