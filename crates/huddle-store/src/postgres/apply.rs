//! The writes, each run by a writer inside its batch transaction: create a room, take
//! a room over (a new epoch), and append under an epoch — alone, or the appends of many
//! rooms at once ([`lock`], [`RoomWrite`], [`finish`]).
//!
//! Fencing: an append first locks its room's row (`FOR UPDATE`) and compares epochs,
//! then moves the row's counts with `... WHERE id = v.id AND epoch = v.epoch`, both in
//! the transaction that inserts the rows. A node that takes the room over bumps the
//! epoch on that same row, so it either waits for the append's commit (which then came
//! first) or makes the append see the newer epoch and be refused whole.
//!
//! Every other row an append writes (members, messages, DM views) belongs to a room
//! whose row the transaction holds locked, so only the order of the room rows' locks
//! matters between nodes: [`lock`] takes them in id order.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use huddle_core::{Agent, Event, MemberId, Message, Room, RoomId, Seq, Timestamp};

use super::codec::{self, sql_int};
use super::conn::backend;
use crate::{Epoch, StoreError};

pub(super) async fn create(c: &impl GenericClient, room: &Room) -> Result<(), StoreError> {
    let st = c
        .prepare_cached(
            "INSERT INTO rooms (id, name, password_hash, description, kind, created_at,
                                last_seq, last_member, epoch, agent_count)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)",
        )
        .await
        .map_err(backend)?;
    c.execute(
        &st,
        &[
            &room.id.to_string(),
            &room.name,
            &room.password_hash,
            &room.description.as_bytes(),
            &room.kind.as_str(),
            &room.created_at.0,
            &sql_int(room.last_seq),
            &sql_int(room.last_member),
            &sql_int(room.agents.len()),
        ],
    )
    .await
    .map_err(backend)?;
    for a in &room.agents {
        insert_agent(c, &room.id.to_string(), a).await?;
    }
    Ok(())
}

async fn insert_agent(c: &impl GenericClient, room: &str, a: &Agent) -> Result<(), StoreError> {
    let st = c
        .prepare_cached(
            "INSERT INTO agents (room_id, member, name, role, joined_at, token, endpoint, cursor)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await
        .map_err(backend)?;
    c.execute(
        &st,
        &[
            &room,
            &sql_int(a.member),
            &a.name,
            &a.role.as_str(),
            &a.joined_at.0,
            &&a.token.0[..],
            &codec::bytes(&a.endpoint),
            &sql_int(a.cursor),
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

pub(super) async fn acquire(
    c: &impl GenericClient,
    id: RoomId,
) -> Result<Option<(Room, Epoch)>, StoreError> {
    let key = id.to_string();
    let st = c
        .prepare_cached(
            "UPDATE rooms SET epoch = epoch + 1 WHERE id = $1
             RETURNING epoch, name, password_hash, description, kind, created_at, last_seq,
                       last_member",
        )
        .await
        .map_err(backend)?;
    let Some(r) = c.query_opt(&st, &[&key]).await.map_err(backend)? else {
        return Ok(None);
    };
    let st = c
        .prepare_cached(
            "SELECT member, name, role, joined_at, token, endpoint, cursor
             FROM agents WHERE room_id = $1 ORDER BY joined_at, member",
        )
        .await
        .map_err(backend)?;
    let agents = c
        .query(&st, &[&key])
        .await
        .map_err(backend)?
        .iter()
        .map(codec::agent)
        .collect::<Result<Vec<_>, _>>()?;
    let room = Room {
        id,
        name: r.get(1),
        password_hash: r.get(2),
        description: codec::text(&r, 3)?,
        kind: codec::kind_from(r.get(4)),
        created_at: Timestamp(r.get(5)),
        agents,
        last_seq: codec::seq_from(r.get(6)),
        last_member: codec::member_from(r.get(7)),
    };
    Ok(Some((room, r.get::<_, i64>(0) as u64)))
}

/// A room row as a batch locked it (or as the lane's last commit left it, see
/// `pipelined`): its epoch and kept counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Locked {
    pub(super) epoch: Epoch,
    pub(super) agents: i64,
    pub(super) messages: i64,
    pub(super) dms: i64,
}

pub(super) const LOCK: &str = r#"SELECT id, epoch, agent_count, message_count, dm_count
    FROM rooms WHERE id = ANY($1) ORDER BY id COLLATE "C" FOR UPDATE"#;

/// Locks the rows of `rooms` in one statement, in id order (bytewise, whatever the
/// database's locale: every node's batches lock in that order, so two nodes writing
/// overlapping rooms cannot deadlock), and returns the rows found.
pub(super) async fn lock(
    c: &impl GenericClient,
    rooms: &[RoomId],
) -> Result<HashMap<RoomId, Locked>, StoreError> {
    let st = c.prepare_cached(LOCK).await.map_err(backend)?;
    let keys: Vec<String> = rooms.iter().map(RoomId::to_string).collect();
    let rows = c.query(&st, &[&keys]).await.map_err(backend)?;
    rows.iter()
        .map(|row| {
            let locked = Locked {
                epoch: row.get::<_, i64>(1) as u64,
                agents: row.get(2),
                messages: row.get(3),
                dms: row.get(4),
            };
            Ok((codec::room_id(row.get(0))?, locked))
        })
        .collect()
}

/// The row of `room` if an append under `epoch` may write it: the refusal otherwise.
pub(super) fn check(
    locked: &HashMap<RoomId, Locked>,
    room: RoomId,
    epoch: Epoch,
) -> Result<&Locked, StoreError> {
    match locked.get(&room) {
        None => Err(StoreError::NoSuchRoom(room)),
        Some(row) if row.epoch != epoch => Err(StoreError::Fenced(room, epoch)),
        Some(row) => Ok(row),
    }
}

/// Appends `events` to `room` under `epoch`, alone: lock, apply, [`finish`].
pub(super) async fn append(
    c: &impl GenericClient,
    room: RoomId,
    epoch: Epoch,
    events: &[Event],
) -> Result<(), StoreError> {
    let locked = lock(c, &[room]).await?;
    let mut write = RoomWrite::new(room, check(&locked, room, epoch)?);
    write.apply(c, events).await?;
    finish(c, &[write]).await
}

/// One room's accepted appends of a batch, applied in order on its locked row. The
/// rare events (joins, leaves, role and endpoint changes, DM views) run their statements
/// as they come; messages, cursors and the row's counts are gathered for [`finish`],
/// which writes those of every room of the batch in three statements.
pub(super) struct RoomWrite<'a> {
    room: RoomId,
    key: String,
    epoch: Epoch,
    /// The row's counts when this write began.
    before: Locked,
    counts: Counts,
    /// Cursor moves are frequent (every send moves its sender's): the last per member.
    cursors: HashMap<MemberId, Seq>,
    last_seq: Option<Seq>,
    last_member: Option<MemberId>,
    posted: Vec<Posted<'a>>,
}

/// The room row's counts during one room's appends (see the embedded backend's `counts`).
struct Counts {
    agents: i64,
    messages: i64,
    dms: i64,
    /// The last `dm_views.rank` of each member touched by these appends.
    dm_ranks: HashMap<MemberId, i64>,
}

impl<'a> RoomWrite<'a> {
    pub(super) fn new(room: RoomId, row: &Locked) -> Self {
        Self {
            room,
            key: room.to_string(),
            epoch: row.epoch,
            before: *row,
            counts: Counts {
                agents: row.agents,
                messages: row.messages,
                dms: row.dms,
                dm_ranks: HashMap::new(),
            },
            cursors: HashMap::new(),
            last_seq: None,
            last_member: None,
            posted: Vec::new(),
        }
    }

    pub(super) fn room(&self) -> RoomId {
        self.room
    }

    /// The row as it was when this write began.
    pub(super) fn before(&self) -> &Locked {
        &self.before
    }

    /// The row as it is once this write commits.
    pub(super) fn after(&self) -> Locked {
        Locked {
            epoch: self.epoch,
            agents: self.counts.agents,
            messages: self.counts.messages,
            dms: self.counts.dms,
        }
    }

    /// The highest `seq` posted by this write, if any.
    pub(super) fn last_seq(&self) -> Option<Seq> {
        self.last_seq
    }

    pub(super) fn key(&self) -> &str {
        &self.key
    }

    /// Applies `events` if they are plain (see [`plain`]), which needs no statement;
    /// returns whether it did (if not, nothing was applied).
    pub(super) fn apply_plain(&mut self, events: &'a [Event]) -> bool {
        if !plain(events) {
            return false;
        }
        for event in events {
            match event {
                Event::Posted(m) => {
                    self.posted.push(self.counts.count(m));
                    self.last_seq = self.last_seq.max(Some(m.seq));
                }
                Event::CursorMoved { member, seq } => {
                    let c = self.cursors.entry(*member).or_default();
                    *c = (*c).max(*seq);
                }
                Event::Joined(_)
                | Event::Reconnected { .. }
                | Event::Left { .. }
                | Event::RoleChanged { .. }
                | Event::Updated { .. } => unreachable!("checked by `plain`"),
            }
        }
        true
    }

    /// Applies one append's `events` after those applied before.
    pub(super) async fn apply(
        &mut self,
        c: &impl GenericClient,
        events: &'a [Event],
    ) -> Result<(), StoreError> {
        let key = &self.key;
        for event in events {
            match event {
                Event::Joined(a) => {
                    insert_agent(c, key, a).await?;
                    self.counts.agents += 1;
                    self.last_member = self.last_member.max(Some(a.member));
                }
                Event::Reconnected { member, endpoint } => {
                    let sql = "UPDATE agents SET endpoint = $3 WHERE room_id = $1 AND member = $2";
                    exec(c, sql, &[key, &sql_int(*member), &codec::bytes(endpoint)]).await?;
                }
                Event::Left { member } => {
                    self.cursors.remove(member);
                    let sql = "DELETE FROM agents WHERE room_id = $1 AND member = $2";
                    self.counts.agents -= exec(c, sql, &[key, &sql_int(*member)]).await? as i64;
                }
                Event::RoleChanged { member, role } => {
                    let sql = "UPDATE agents SET role = $3 WHERE room_id = $1 AND member = $2";
                    exec(c, sql, &[key, &sql_int(*member), &role.as_str()]).await?;
                }
                Event::Updated { description, kind } => {
                    let sql = "UPDATE rooms SET description = coalesce($2, description),
                                                kind = coalesce($3, kind)
                               WHERE id = $1";
                    let description = codec::bytes(description);
                    exec(c, sql, &[key, &description, &kind.map(|k| k.as_str())]).await?;
                }
                Event::Posted(m) => {
                    self.posted.push(self.counts.post(c, key, m).await?);
                    self.last_seq = self.last_seq.max(Some(m.seq));
                }
                Event::CursorMoved { member, seq } => {
                    let c = self.cursors.entry(*member).or_default();
                    *c = (*c).max(*seq);
                }
            }
        }
        Ok(())
    }
}

/// Whether `events` are only broadcasts and cursor moves: nothing that runs a statement
/// of its own or needs more of the row than its counts.
pub(super) fn plain(events: &[Event]) -> bool {
    events.iter().all(|e| match e {
        Event::Posted(m) => m.to_member.is_none(),
        Event::CursorMoved { .. } => true,
        Event::Joined(_)
        | Event::Reconnected { .. }
        | Event::Left { .. }
        | Event::RoleChanged { .. }
        | Event::Updated { .. } => false,
    })
}

/// Writes what `rooms` gathered, in three statements sent at once (pipelined on the
/// connection, run by the server in this order): every message, every cursor moved,
/// every room row's counts. A room whose row no longer has its epoch is refused.
pub(super) async fn finish(
    c: &impl GenericClient,
    rooms: &[RoomWrite<'_>],
) -> Result<(), StoreError> {
    let (updated, (), ()) = futures::try_join!(
        update_rooms(c, rooms),
        insert_messages(c, rooms),
        move_cursors(c, rooms),
    )?;
    match rooms.iter().find(|w| !updated.contains(&w.key)) {
        Some(w) => Err(StoreError::Fenced(w.room, w.epoch)),
        None => Ok(()),
    }
}

/// Moves the rows' counts (absolute: the rows are locked), `WHERE epoch = ...` as the
/// fence; returns the ids of the rows written.
async fn update_rooms(
    c: &impl GenericClient,
    rooms: &[RoomWrite<'_>],
) -> Result<Vec<String>, StoreError> {
    let col = |f: fn(&RoomWrite<'_>) -> i64| rooms.iter().map(f).collect::<Vec<_>>();
    let keys: Vec<&str> = rooms.iter().map(|w| w.key.as_str()).collect();
    let sql = "UPDATE rooms r SET agent_count = v.agents, message_count = v.messages,
                                  dm_count = v.dms,
                                  last_seq = GREATEST(r.last_seq, v.last_seq),
                                  last_member = GREATEST(r.last_member, v.last_member)
               FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[],
                           $5::bigint[], $6::bigint[], $7::bigint[])
                    AS v(id, epoch, agents, messages, dms, last_seq, last_member)
               WHERE r.id = v.id AND r.epoch = v.epoch
               RETURNING r.id";
    let st = c.prepare_cached(sql).await.map_err(backend)?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &keys,
        &col(|w| sql_int(w.epoch)),
        &col(|w| w.counts.agents),
        &col(|w| w.counts.messages),
        &col(|w| w.counts.dms),
        &col(|w| sql_int(w.last_seq.unwrap_or(Seq::ZERO))),
        &col(|w| sql_int(w.last_member.unwrap_or(MemberId::BOT))),
    ];
    let rows = c.query(&st, &params).await.map_err(backend)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(super) const MOVE_CURSORS: &str = "UPDATE agents a SET cursor = GREATEST(a.cursor, v.seq)
    FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(room_id, member, seq)
    WHERE a.room_id = v.room_id AND a.member = v.member";

/// Moves every gathered cursor forward (never back) in one statement.
pub(super) async fn move_cursors(
    c: &impl GenericClient,
    rooms: &[RoomWrite<'_>],
) -> Result<(), StoreError> {
    let moves = rooms
        .iter()
        .flat_map(|w| w.cursors.iter().map(move |(m, s)| (w.key.as_str(), *m, *s)));
    let (mut keys, mut members, mut seqs) = (Vec::new(), Vec::new(), Vec::new());
    for (key, member, seq) in moves {
        keys.push(key);
        members.push(sql_int(member));
        seqs.push(sql_int(seq));
    }
    if keys.is_empty() {
        return Ok(());
    }
    exec(c, MOVE_CURSORS, &[&keys, &members, &seqs])
        .await
        .map(drop)
}

async fn exec(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, StoreError> {
    let st = c.prepare_cached(sql).await.map_err(backend)?;
    c.execute(&st, params).await.map_err(backend)
}

/// A message ready to insert, with its broadcast rank.
struct Posted<'a> {
    message: &'a Message,
    broadcast_rank: i64,
}

impl Counts {
    /// Counts `m` and inserts its `dm_views` rows if it is a DM; the message row itself
    /// is inserted with the others by [`insert_messages`].
    async fn post<'a>(
        &mut self,
        c: &impl GenericClient,
        room: &str,
        m: &'a Message,
    ) -> Result<Posted<'a>, StoreError> {
        let posted = self.count(m);
        if let Some(to) = m.to_member {
            self.add_view(c, room, m.from_member, m.seq).await?;
            if to != m.from_member {
                self.add_view(c, room, to, m.seq).await?;
            }
        }
        Ok(posted)
    }

    /// Counts `m` (no statement).
    fn count<'a>(&mut self, m: &'a Message) -> Posted<'a> {
        self.messages += 1;
        if m.to_member.is_some() {
            self.dms += 1;
        }
        Posted {
            message: m,
            broadcast_rank: self.messages - self.dms,
        }
    }

    async fn add_view(
        &mut self,
        c: &impl GenericClient,
        room: &str,
        member: MemberId,
        seq: Seq,
    ) -> Result<(), StoreError> {
        let rank = match self.dm_ranks.get(&member) {
            Some(r) => *r,
            None => {
                let st = c
                    .prepare_cached(
                        "SELECT rank FROM dm_views WHERE room_id = $1 AND member = $2
                         ORDER BY seq DESC LIMIT 1",
                    )
                    .await
                    .map_err(backend)?;
                c.query_opt(&st, &[&room, &sql_int(member)])
                    .await
                    .map_err(backend)?
                    .map_or(0, |r| r.get::<_, i64>(0))
            }
        } + 1;
        self.dm_ranks.insert(member, rank);
        let sql = "INSERT INTO dm_views (room_id, member, seq, rank) VALUES ($1, $2, $3, $4)";
        exec(c, sql, &[&room, &sql_int(member), &sql_int(seq), &rank]).await?;
        Ok(())
    }
}

pub(super) const INSERT_MESSAGES: &str =
    "INSERT INTO messages (room_id, seq, id, from_name, from_member, to_name, to_member, body,
                           ts, broadcast_rank, key)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::text[], $5::bigint[],
                          $6::text[], $7::bigint[], $8::bytea[], $9::bigint[], $10::bigint[],
                          $11::bytea[])";

/// Inserts the messages of every room in one statement (arrays unnested server-side):
/// one round trip however many messages a batch holds.
pub(super) async fn insert_messages(
    c: &impl GenericClient,
    rooms: &[RoomWrite<'_>],
) -> Result<(), StoreError> {
    let posted: Vec<(&str, &Posted<'_>)> = rooms
        .iter()
        .flat_map(|w| w.posted.iter().map(move |p| (w.key.as_str(), p)))
        .collect();
    if posted.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&Message) -> i64| posted.iter().map(|p| f(p.1.message)).collect::<Vec<_>>();
    let keys: Vec<&str> = posted.iter().map(|p| p.0).collect();
    let seqs = col(|m| sql_int(m.seq));
    let from_members = col(|m| sql_int(m.from_member));
    let ts = col(|m| m.timestamp.0);
    let ranks: Vec<i64> = posted.iter().map(|p| p.1.broadcast_rank).collect();
    let ids: Vec<&[u8]> = posted.iter().map(|p| p.1.message.id.as_bytes()).collect();
    let froms: Vec<&str> = posted.iter().map(|p| p.1.message.from.as_str()).collect();
    let tos: Vec<Option<&str>> = posted.iter().map(|p| p.1.message.to.as_deref()).collect();
    let to_members: Vec<Option<i64>> = posted
        .iter()
        .map(|p| p.1.message.to_member.map(sql_int))
        .collect();
    let bodies: Vec<&[u8]> = posted.iter().map(|p| p.1.message.body.as_bytes()).collect();
    let msg_keys: Vec<Option<&[u8]>> = posted
        .iter()
        .map(|p| codec::bytes(&p.1.message.key))
        .collect();
    exec(
        c,
        INSERT_MESSAGES,
        &[
            &keys,
            &seqs,
            &ids,
            &froms,
            &from_members,
            &tos,
            &to_members,
            &bodies,
            &ts,
            &ranks,
            &msg_keys,
        ],
    )
    .await?;
    Ok(())
}
