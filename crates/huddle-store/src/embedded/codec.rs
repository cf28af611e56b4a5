//! Rows ⇄ core types.

use huddle_core::{Agent, Message, Role, RoomId, Timestamp, TokenDigest};
use rusqlite::Row;

use crate::StoreError;
pub(super) use crate::sql::{kind_from, member_from, role_from, seq_from};

pub(super) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(super) fn role_str(r: Role) -> &'static str {
    r.as_str()
}

fn bad_column(i: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
}

pub(super) fn room_id(row: &Row<'_>, i: usize) -> rusqlite::Result<RoomId> {
    let s: String = row.get(i)?;
    s.parse().map_err(|e| bad_column(i, e))
}

/// Columns: member, name, role, joined_at, token, endpoint, cursor.
pub(super) fn agent(row: &Row<'_>) -> rusqlite::Result<Agent> {
    let token: Vec<u8> = row.get(4)?;
    let token: [u8; 32] = token.try_into().map_err(|_| {
        bad_column(
            4,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "token digest is not 32 bytes",
            ),
        )
    })?;
    Ok(Agent {
        member: member_from(row.get(0)?),
        name: row.get(1)?,
        role: role_from(&row.get::<_, String>(2)?),
        joined_at: Timestamp(row.get(3)?),
        token: TokenDigest(token),
        endpoint: row.get(5)?,
        cursor: seq_from(row.get(6)?),
    })
}

pub(super) const MESSAGE_COLUMNS: &str =
    "room_id, seq, id, from_name, from_member, to_name, to_member, body, ts, key";

pub(super) fn message(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        room_id: room_id(row, 0)?,
        seq: seq_from(row.get(1)?),
        id: row.get(2)?,
        from: row.get(3)?,
        from_member: member_from(row.get(4)?),
        to: row.get(5)?,
        to_member: row.get::<_, Option<i64>>(6)?.map(member_from),
        body: row.get(7)?,
        timestamp: Timestamp(row.get(8)?),
        key: row.get(9)?,
    })
}
