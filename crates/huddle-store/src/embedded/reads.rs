//! Queries served from the reader pool.

use huddle_core::{MemberId, Message, RoomId, RoomSummary, Seq, Timestamp};
use rusqlite::{Connection, params};

use super::codec::{self, MESSAGE_COLUMNS};
use crate::{NamedRoom, RoomPage};

/// DM privacy in SQL: the same rule as `Message::visible_to` (checked again by callers).
const VISIBLE: &str = "(to_member IS NULL OR to_member = ?2 OR from_member = ?2)";

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

/// `LIKE` pattern for a substring search, with the wildcards in `s` escaped.
fn like_pattern(s: &str) -> String {
    let escaped = s
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

pub(super) fn list_rooms(
    c: &Connection,
    search: Option<&str>,
    limit: usize,
    offset: usize,
) -> rusqlite::Result<RoomPage> {
    let pattern = like_pattern(search.unwrap_or(""));
    let total: i64 = c
        .prepare_cached(
            "SELECT count(*) FROM rooms WHERE password_hash IS NULL AND name LIKE ?1 ESCAPE '\\'",
        )?
        .query_row([&pattern], |r| r.get(0))?;
    let mut st = c.prepare_cached(
        "SELECT r.name, r.description, r.kind, r.created_at,
                (SELECT count(*) FROM agents a WHERE a.room_id = r.id)
         FROM rooms r
         WHERE r.password_hash IS NULL AND r.name LIKE ?1 ESCAPE '\\'
         ORDER BY r.name, r.created_at LIMIT ?2 OFFSET ?3",
    )?;
    let rooms = st
        .query_map(params![pattern, limit as i64, offset as i64], |r| {
            Ok(RoomSummary {
                name: r.get(0)?,
                description: r.get(1)?,
                kind: codec::kind_from(&r.get::<_, String>(2)?),
                created_at: Timestamp(r.get(3)?),
                agents: r.get::<_, i64>(4)? as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(RoomPage {
        rooms,
        total: total as u64,
    })
}

pub(super) fn messages_after(
    c: &Connection,
    room: RoomId,
    viewer: Option<MemberId>,
    after: Seq,
    limit: usize,
) -> rusqlite::Result<Vec<Message>> {
    let room = room.to_string();
    let messages = match viewer {
        Some(v) => {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE room_id = ?1 AND seq > ?3 AND {VISIBLE} ORDER BY seq LIMIT ?4"
            );
            let mut st = c.prepare_cached(&sql)?;
            st.query_map(
                params![room, v as i64, after as i64, limit as i64],
                codec::message,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?
        }
        None => {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE room_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            );
            let mut st = c.prepare_cached(&sql)?;
            st.query_map(params![room, after as i64, limit as i64], codec::message)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    Ok(messages)
}

pub(super) fn history(
    c: &Connection,
    room: RoomId,
    viewer: MemberId,
    limit: usize,
    offset: usize,
) -> rusqlite::Result<(Vec<Message>, u64)> {
    let room = room.to_string();
    let total: i64 = c
        .prepare_cached(&format!(
            "SELECT count(*) FROM messages WHERE room_id = ?1 AND {VISIBLE}"
        ))?
        .query_row(params![room, viewer as i64], |r| r.get(0))?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE room_id = ?1 AND {VISIBLE} ORDER BY seq DESC LIMIT ?3 OFFSET ?4"
    );
    let mut st = c.prepare_cached(&sql)?;
    let mut page = st
        .query_map(
            params![room, viewer as i64, limit as i64, offset as i64],
            codec::message,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    page.reverse();
    Ok((page, total as u64))
}
