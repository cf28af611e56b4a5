//! The writes, each run by the writer inside its batch transaction: create a room, take
//! a room over (a new epoch), and append under an epoch.
//!
//! Fencing: an append first locks its room's row (`FOR UPDATE`) and compares epochs,
//! then moves the row's counts with `... WHERE id = $1 AND epoch = $2`, both in the
//! transaction that inserts the rows. A node that takes the room over bumps the epoch
//! on that same row, so it either waits for the append's commit (which then came first)
//! or makes the append see the newer epoch and be refused whole.

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

/// The room row's counts during one append (see the embedded backend's `counts`).
struct Counts {
    agents: i64,
    messages: i64,
    dms: i64,
    /// The last `dm_views.rank` of each member touched by this append.
    dm_ranks: HashMap<MemberId, i64>,
}

pub(super) async fn append(
    c: &impl GenericClient,
    room: RoomId,
    epoch: Epoch,
    events: &[Event],
) -> Result<(), StoreError> {
    let key = room.to_string();
    let st = c
        .prepare_cached(
            "SELECT epoch, agent_count, message_count, dm_count FROM rooms
             WHERE id = $1 FOR UPDATE",
        )
        .await
        .map_err(backend)?;
    let row = c.query_opt(&st, &[&key]).await.map_err(backend)?;
    let Some(row) = row else {
        return Err(StoreError::NoSuchRoom(room));
    };
    if row.get::<_, i64>(0) as u64 != epoch {
        return Err(StoreError::Fenced(room, epoch));
    }
    let mut counts = Counts {
        agents: row.get(1),
        messages: row.get(2),
        dms: row.get(3),
        dm_ranks: HashMap::new(),
    };
    // Cursor moves are frequent (every send moves its sender's): keep the last per member.
    let mut cursors: HashMap<MemberId, Seq> = HashMap::new();
    let mut last_seq: Option<Seq> = None;
    let mut last_member: Option<MemberId> = None;
    let mut posted = Vec::new();
    for event in events {
        match event {
            Event::Joined(a) => {
                insert_agent(c, &key, a).await?;
                counts.agents += 1;
                last_member = last_member.max(Some(a.member));
            }
            Event::Reconnected { member, endpoint } => {
                let sql = "UPDATE agents SET endpoint = $3 WHERE room_id = $1 AND member = $2";
                exec(c, sql, &[&key, &sql_int(*member), &codec::bytes(endpoint)]).await?;
            }
            Event::Left { member } => {
                cursors.remove(member);
                let sql = "DELETE FROM agents WHERE room_id = $1 AND member = $2";
                counts.agents -= exec(c, sql, &[&key, &sql_int(*member)]).await? as i64;
            }
            Event::RoleChanged { member, role } => {
                let sql = "UPDATE agents SET role = $3 WHERE room_id = $1 AND member = $2";
                exec(c, sql, &[&key, &sql_int(*member), &role.as_str()]).await?;
            }
            Event::Updated { description, kind } => {
                let sql = "UPDATE rooms SET description = coalesce($2, description),
                                            kind = coalesce($3, kind)
                           WHERE id = $1";
                let description = codec::bytes(description);
                exec(c, sql, &[&key, &description, &kind.map(|k| k.as_str())]).await?;
            }
            Event::Posted(m) => {
                posted.push(counts.post(c, &key, m).await?);
                last_seq = last_seq.max(Some(m.seq));
            }
            Event::CursorMoved { member, seq } => {
                let c = cursors.entry(*member).or_default();
                *c = (*c).max(*seq);
            }
        }
    }
    insert_messages(c, &key, &posted).await?;
    for (member, seq) in cursors {
        let sql = "UPDATE agents SET cursor = GREATEST(cursor, $3)
                   WHERE room_id = $1 AND member = $2";
        exec(c, sql, &[&key, &sql_int(member), &sql_int(seq)]).await?;
    }
    let sql = "UPDATE rooms SET agent_count = $3, message_count = $4, dm_count = $5,
                                last_seq = GREATEST(last_seq, $6),
                                last_member = GREATEST(last_member, $7)
               WHERE id = $1 AND epoch = $2";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &key,
        &sql_int(epoch),
        &counts.agents,
        &counts.messages,
        &counts.dms,
        &sql_int(last_seq.unwrap_or(Seq::ZERO)),
        &sql_int(last_member.unwrap_or(MemberId::BOT)),
    ];
    if exec(c, sql, &params).await? != 1 {
        return Err(StoreError::Fenced(room, epoch));
    }
    Ok(())
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
        self.messages += 1;
        if let Some(to) = m.to_member {
            self.dms += 1;
            self.add_view(c, room, m.from_member, m.seq).await?;
            if to != m.from_member {
                self.add_view(c, room, to, m.seq).await?;
            }
        }
        Ok(Posted {
            message: m,
            broadcast_rank: self.messages - self.dms,
        })
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

/// Inserts the messages of one append in one statement (arrays unnested server-side):
/// one round trip however many messages a batch holds.
async fn insert_messages(
    c: &impl GenericClient,
    room: &str,
    posted: &[Posted<'_>],
) -> Result<(), StoreError> {
    if posted.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&Message) -> i64| posted.iter().map(|p| f(p.message)).collect::<Vec<_>>();
    let seqs = col(|m| sql_int(m.seq));
    let from_members = col(|m| sql_int(m.from_member));
    let ts = col(|m| m.timestamp.0);
    let ranks: Vec<i64> = posted.iter().map(|p| p.broadcast_rank).collect();
    let ids: Vec<&[u8]> = posted.iter().map(|p| p.message.id.as_bytes()).collect();
    let froms: Vec<&str> = posted.iter().map(|p| p.message.from.as_str()).collect();
    let tos: Vec<Option<&str>> = posted.iter().map(|p| p.message.to.as_deref()).collect();
    let to_members: Vec<Option<i64>> = posted
        .iter()
        .map(|p| p.message.to_member.map(sql_int))
        .collect();
    let bodies: Vec<&[u8]> = posted.iter().map(|p| p.message.body.as_bytes()).collect();
    let keys: Vec<Option<&[u8]>> = posted
        .iter()
        .map(|p| codec::bytes(&p.message.key))
        .collect();
    let sql = "INSERT INTO messages (room_id, seq, id, from_name, from_member, to_name,
                                     to_member, body, ts, broadcast_rank, key)
               SELECT $1, * FROM unnest($2::bigint[], $3::bytea[], $4::text[], $5::bigint[],
                                        $6::text[], $7::bigint[], $8::bytea[], $9::bigint[],
                                        $10::bigint[], $11::bytea[])";
    exec(
        c,
        sql,
        &[
            &room,
            &seqs,
            &ids,
            &froms,
            &from_members,
            &tos,
            &to_members,
            &bodies,
            &ts,
            &ranks,
            &keys,
        ],
    )
    .await?;
    Ok(())
}
