//! The counts kept next to the log (schema version 2), updated by every append in the
//! same transaction as the rows they count, so reads never count rows themselves.
//!
//! An append loads its room's counts once, moves them event by event, and writes them
//! back once at the end; per-member DM ranks are looked up once per member per append.

use std::collections::HashMap;

use huddle_core::{MemberId, Message, Seq};
use rusqlite::{Connection, OptionalExtension, params};

use super::reads::{sql_member, sql_seq};

/// The room row's counts during one append.
pub(super) struct Counts {
    agents: i64,
    messages: i64,
    dms: i64,
    /// The last `dm_views.rank` of each member touched by this append.
    dm_ranks: HashMap<MemberId, i64>,
    changed: bool,
}

impl Counts {
    /// The room's epoch and counts, or `None` when there is no such room.
    pub(super) fn load(c: &Connection, room: &str) -> rusqlite::Result<Option<(i64, Self)>> {
        c.prepare_cached(
            "SELECT epoch, agent_count, message_count, dm_count FROM rooms WHERE id = ?1",
        )?
        .query_row([room], |r| {
            Ok((
                r.get(0)?,
                Self {
                    agents: r.get(1)?,
                    messages: r.get(2)?,
                    dms: r.get(3)?,
                    dm_ranks: HashMap::new(),
                    changed: false,
                },
            ))
        })
        .optional()
    }

    /// `n` members joined (`n` rows inserted) or, negative, left.
    pub(super) fn members(&mut self, n: i64) {
        self.agents += n;
        self.changed |= n != 0;
    }

    /// Inserts `m` into the log with its broadcast rank, and its `dm_views` rows if it
    /// is a DM.
    pub(super) fn post(&mut self, c: &Connection, room: &str, m: &Message) -> rusqlite::Result<()> {
        self.messages += 1;
        self.changed = true;
        if let Some(to) = m.to_member {
            self.dms += 1;
            self.add_view(c, room, m.from_member, m.seq)?;
            if to != m.from_member {
                self.add_view(c, room, to, m.seq)?;
            }
        }
        c.prepare_cached(
            "INSERT INTO messages (room_id, seq, id, from_name, from_member, to_name, to_member,
                                   body, ts, broadcast_rank, key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            room,
            sql_seq(m.seq),
            m.id,
            m.from,
            sql_member(m.from_member),
            m.to,
            m.to_member.map(sql_member),
            m.body,
            m.timestamp.0,
            self.messages - self.dms,
            m.key,
        ])?;
        Ok(())
    }

    fn add_view(
        &mut self,
        c: &Connection,
        room: &str,
        member: MemberId,
        seq: Seq,
    ) -> rusqlite::Result<()> {
        let rank = match self.dm_ranks.get(&member) {
            Some(r) => *r,
            None => c
                .prepare_cached(
                    "SELECT rank FROM dm_views WHERE room_id = ?1 AND member = ?2
                     ORDER BY seq DESC LIMIT 1",
                )?
                .query_row(params![room, sql_member(member)], |r| r.get(0))
                .optional()?
                .unwrap_or(0),
        } + 1;
        self.dm_ranks.insert(member, rank);
        c.prepare_cached(
            "INSERT INTO dm_views (room_id, member, seq, rank) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![room, sql_member(member), sql_seq(seq), rank])?;
        Ok(())
    }

    /// Writes the counts back to the room row, if the append moved any, with the room's
    /// `last_seq` when it posted messages (one statement for both).
    pub(super) fn save(
        &self,
        c: &Connection,
        room: &str,
        last_seq: Option<Seq>,
    ) -> rusqlite::Result<()> {
        if self.changed {
            c.prepare_cached(
                "UPDATE rooms SET agent_count = ?2, message_count = ?3, dm_count = ?4,
                                  last_seq = max(last_seq, coalesce(?5, 0))
                 WHERE id = ?1",
            )?
            .execute(params![
                room,
                self.agents,
                self.messages,
                self.dms,
                last_seq.map(sql_seq)
            ])?;
        }
        Ok(())
    }
}
