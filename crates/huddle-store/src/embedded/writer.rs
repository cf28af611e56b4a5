//! The writer thread: SQLite allows one writer, so all writes go through one thread that
//! takes everything queued, runs it in one transaction (one savepoint per operation so
//! one refused append does not fail its neighbours) and commits once: group commit across
//! rooms. Each operation is answered only after the commit, so an acknowledgement means
//! the data is in the WAL.

use std::collections::HashMap;

use huddle_core::{Event, MemberId, Room, RoomId, Seq};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use super::codec::{self, backend};
use super::counts::Counts;
use crate::{Epoch, StoreError};

/// Most operations one transaction takes: bounds the latency of the last one in a burst.
const MAX_BATCH: usize = 2048;
/// Writes waiting for the thread: callers wait (backpressure) beyond this.
const QUEUE: usize = 8192;

pub(super) enum Write {
    Create(Box<Room>),
    Acquire(RoomId),
    /// Takes the database's write lock and commits nothing: the writer thread is alive
    /// and the file writable (readiness).
    Probe,
    Append {
        room: RoomId,
        epoch: Epoch,
        events: Vec<Event>,
    },
}

pub(super) enum Written {
    Done,
    Acquired(Option<(Box<Room>, Epoch)>),
}

pub(super) struct WriteOp {
    pub write: Write,
    pub done: oneshot::Sender<Result<Written, StoreError>>,
}

pub(super) fn spawn(conn: Connection) -> Result<mpsc::Sender<WriteOp>, StoreError> {
    let (tx, rx) = mpsc::channel(QUEUE);
    std::thread::Builder::new()
        .name("huddle-store-writer".into())
        .spawn(move || run(conn, rx))
        .map_err(backend)?;
    Ok(tx)
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<WriteOp>) {
    let mut batch = Vec::with_capacity(64);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let results = commit(&mut conn, &batch);
        huddle_metrics::store::commit(batch.len(), started.elapsed());
        for (op, result) in batch.drain(..).zip(results) {
            let _ = op.done.send(result);
        }
    }
    tracing::debug!("store writer stopped: all senders dropped");
}

fn commit(conn: &mut Connection, batch: &[WriteOp]) -> Vec<Result<Written, StoreError>> {
    let fail_all = |e: rusqlite::Error| {
        batch
            .iter()
            .map(|_| Err(StoreError::Backend(e.to_string())))
            .collect()
    };
    let mut tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => return fail_all(e),
    };
    let mut results = Vec::with_capacity(batch.len());
    for op in batch {
        results.push(apply_in_savepoint(&mut tx, &op.write));
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => fail_all(e),
    }
}

fn apply_in_savepoint(tx: &mut Transaction<'_>, write: &Write) -> Result<Written, StoreError> {
    let mut sp = tx.savepoint().map_err(backend)?;
    let result = apply(&sp, write);
    match &result {
        Ok(_) => sp.commit().map_err(backend)?,
        Err(_) => sp.rollback().map_err(backend)?,
    }
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
        room.last_seq as i64,
        room.last_member as i64,
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
        a.member as i64,
        a.name,
        codec::role_str(a.role),
        a.joined_at.0,
        &a.token.0[..],
        a.endpoint,
        a.cursor as i64,
    ])?;
    Ok(())
}

fn acquire(c: &Connection, id: RoomId) -> Result<Option<(Box<Room>, Epoch)>, StoreError> {
    let key = id.to_string();
    let epoch: Option<i64> = c
        .prepare_cached("UPDATE rooms SET epoch = epoch + 1 WHERE id = ?1 RETURNING epoch")
        .and_then(|mut st| st.query_row([&key], |r| r.get(0)).optional())
        .map_err(backend)?;
    let Some(epoch) = epoch else {
        return Ok(None);
    };
    let room = c
        .prepare_cached(
            "SELECT name, password_hash, description, kind, created_at, last_seq, last_member
             FROM rooms WHERE id = ?1",
        )
        .and_then(|mut st| {
            st.query_row([&key], |r| {
                Ok(Room {
                    id,
                    name: r.get(0)?,
                    password_hash: r.get(1)?,
                    description: r.get(2)?,
                    kind: codec::kind_from(&r.get::<_, String>(3)?),
                    created_at: huddle_core::Timestamp(r.get(4)?),
                    last_seq: r.get::<_, i64>(5)? as u64,
                    last_member: r.get::<_, i64>(6)? as u64,
                    agents: Vec::new(),
                })
            })
        })
        .map_err(backend)?;
    let agents = c
        .prepare_cached(
            "SELECT member, name, role, joined_at, token, endpoint, cursor
             FROM agents WHERE room_id = ?1 ORDER BY joined_at, member",
        )
        .and_then(|mut st| {
            st.query_map([&key], codec::agent)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(backend)?;
    Ok(Some((Box::new(Room { agents, ..room }), epoch as u64)))
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
                .and_then(|mut st| st.execute(params![key, a.member as i64]))
                .map_err(backend)?;
            }
            Event::Reconnected { member, endpoint } => {
                c.prepare_cached(
                    "UPDATE agents SET endpoint = ?3 WHERE room_id = ?1 AND member = ?2",
                )
                .and_then(|mut st| st.execute(params![key, *member as i64, endpoint]))
                .map_err(backend)?;
            }
            Event::Left { member } => {
                cursors.remove(member);
                let removed = c
                    .prepare_cached("DELETE FROM agents WHERE room_id = ?1 AND member = ?2")
                    .and_then(|mut st| st.execute(params![key, *member as i64]))
                    .map_err(backend)?;
                counts.members(-(removed as i64));
            }
            Event::RoleChanged { member, role } => {
                c.prepare_cached("UPDATE agents SET role = ?3 WHERE room_id = ?1 AND member = ?2")
                    .and_then(|mut st| {
                        st.execute(params![key, *member as i64, codec::role_str(*role)])
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
        .and_then(|mut st| st.execute(params![key, member as i64, seq as i64]))
        .map_err(backend)?;
    }
    counts.save(c, &key).map_err(backend)?;
    if let Some(seq) = last_seq {
        c.prepare_cached("UPDATE rooms SET last_seq = max(last_seq, ?2) WHERE id = ?1")
            .and_then(|mut st| st.execute(params![key, seq as i64]))
            .map_err(backend)?;
    }
    Ok(())
}
