//! Queries served from the reader pool (history paging is in `history`).

use huddle_core::{MemberId, Message, Page, RoomId, RoomSummary, Seq, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

use super::codec::{self, MESSAGE_COLUMNS};
use super::visible::{Bound, visible_page};
use crate::sql::like_pattern;
use crate::{LogRange, NamedRoom, RoomPage, SentKey};

pub(super) fn rooms_named(c: &Connection, name: &str) -> rusqlite::Result<Vec<NamedRoom>> {
    let mut st = c.prepare_cached(
        "SELECT id, password_hash FROM rooms WHERE name = ?1 ORDER BY created_at",
    )?;
    let rows = st.query_map([name], |r| {
        Ok(NamedRoom {
            id: codec::room_id(r, 0)?,
            password_hash: r.get(1)?,
        })
    })?;
    rows.collect()
}

pub(super) fn epoch(c: &Connection, room: RoomId) -> rusqlite::Result<Option<u64>> {
    c.prepare_cached("SELECT epoch FROM rooms WHERE id = ?1")?
        .query_row([room.to_string()], |r| r.get::<_, i64>(0))
        .optional()
        .map(|e| e.map(|e| e as u64))
}

pub(super) fn room_ids(c: &Connection) -> rusqlite::Result<Vec<RoomId>> {
    let mut st = c.prepare_cached("SELECT id FROM rooms ORDER BY created_at, id")?;
    let rows = st.query_map([], |r| codec::room_id(r, 0))?;
    rows.collect()
}

pub(super) fn list_rooms(
    c: &Connection,
    search: Option<&str>,
    page: Page,
) -> rusqlite::Result<RoomPage> {
    let Page { limit, offset } = page;
    let pattern = like_pattern(search.unwrap_or(""));
    // Both queries walk the partial index of password-less rooms, already in page order.
    let total: i64 = c
        .prepare_cached(
            "SELECT count(*) FROM rooms INDEXED BY rooms_public
             WHERE password_hash IS NULL AND name LIKE ?1 ESCAPE '\\'",
        )?
        .query_row([&pattern], |r| r.get(0))?;
    let total = total.max(0) as u64;
    if limit == 0 || offset as u64 >= total {
        return Ok(RoomPage {
            rooms: Vec::new(),
            total,
        });
    }
    let mut st = c.prepare_cached(
        "SELECT name, description, kind, created_at, agent_count
         FROM rooms INDEXED BY rooms_public
         WHERE password_hash IS NULL AND name LIKE ?1 ESCAPE '\\'
         ORDER BY name, created_at LIMIT ?2 OFFSET ?3",
    )?;
    let rooms = st
        .query_map(params![pattern, sql_count(limit), sql_count(offset)], |r| {
            Ok(RoomSummary {
                name: r.get(0)?,
                description: r.get(1)?,
                kind: codec::kind_from(&r.get::<_, String>(2)?),
                created_at: Timestamp(r.get(3)?),
                agents: r.get::<_, i64>(4)?.max(0) as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(RoomPage { rooms, total })
}

/// A count as an SQL integer. `LIMIT -1` means "no limit" to SQLite, so a count past
/// `i64::MAX` must not wrap to a negative.
pub(super) fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `seq` as an SQL integer, saturating: `Seq::MAX` means "the end of the log", and a
/// bound past `i64::MAX` must not wrap to a negative one.
pub(super) fn sql_seq(s: Seq) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

/// A member id as an SQL integer (saturating, like [`sql_seq`]).
pub(super) fn sql_member(m: MemberId) -> i64 {
    i64::try_from(m).unwrap_or(i64::MAX)
}

pub(super) fn messages_after(c: &Connection, read: LogRange) -> rusqlite::Result<Vec<Message>> {
    let room = read.room.to_string();
    match read.viewer {
        Some(v) => visible_page(c, &room, v, Bound::After(read.after), read.limit),
        None => {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE room_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            );
            c.prepare_cached(&sql)?
                .query_map(
                    params![room, sql_seq(read.after), sql_count(read.limit)],
                    codec::message,
                )?
                .collect()
        }
    }
}

/// The message sent under an idempotency key (one index lookup).
pub(super) fn sent_with_key(c: &Connection, sent: SentKey) -> rusqlite::Result<Option<Message>> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE room_id = ?1 AND from_member = ?2 AND key = ?3"
    );
    c.prepare_cached(&sql)?
        .query_row(
            params![sent.room.to_string(), sql_member(sent.sender), sent.key],
            codec::message,
        )
        .optional()
}
