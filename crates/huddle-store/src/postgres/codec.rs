//! Rows ⇄ core types.

use huddle_core::{Agent, Message, RoomId, Timestamp, TokenDigest};
use tokio_postgres::Row;

use crate::StoreError;
pub(super) use crate::sql::{kind_from, member_from, role_from, seq_from};

pub(super) const MESSAGE_COLUMNS: &str =
    "room_id, seq, id, from_name, from_member, to_name, to_member, body, ts, key";

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("PostgreSQL: a stored {what} cannot be read"))
}

pub(super) fn room_id(s: &str) -> Result<RoomId, StoreError> {
    s.parse().map_err(|_| corrupt("room id"))
}

/// Client text, stored as BYTEA holding its UTF-8 (see `schema`).
pub(super) fn text(row: &Row, i: usize) -> Result<String, StoreError> {
    String::from_utf8(row.get(i)).map_err(|_| corrupt("text"))
}

pub(super) fn opt_text(row: &Row, i: usize) -> Result<Option<String>, StoreError> {
    row.get::<_, Option<Vec<u8>>>(i)
        .map(|b| String::from_utf8(b).map_err(|_| corrupt("text")))
        .transpose()
}

/// Client text as stored.
pub(super) fn bytes(s: &Option<String>) -> Option<&[u8]> {
    s.as_deref().map(str::as_bytes)
}

/// Columns: [`MESSAGE_COLUMNS`].
pub(super) fn message(row: &Row) -> Result<Message, StoreError> {
    Ok(Message {
        room_id: room_id(row.get(0))?,
        seq: seq_from(row.get(1)),
        id: text(row, 2)?,
        from: row.get(3),
        from_member: member_from(row.get(4)),
        to: row.get(5),
        to_member: row.get::<_, Option<i64>>(6).map(member_from),
        body: text(row, 7)?,
        timestamp: Timestamp(row.get(8)),
        key: opt_text(row, 9)?,
    })
}

pub(super) fn messages(rows: &[Row]) -> Result<Vec<Message>, StoreError> {
    rows.iter().map(message).collect()
}

/// Columns: member, name, role, joined_at, token, endpoint, cursor.
pub(super) fn agent(row: &Row) -> Result<Agent, StoreError> {
    let token: Vec<u8> = row.get(4);
    let token: [u8; 32] = token.try_into().map_err(|_| corrupt("token digest"))?;
    Ok(Agent {
        member: member_from(row.get(0)),
        name: row.get(1),
        role: role_from(row.get(2)),
        joined_at: Timestamp(row.get(3)),
        token: TokenDigest(token),
        endpoint: opt_text(row, 5)?,
        cursor: seq_from(row.get(6)),
    })
}

/// A count or `seq` as a PostgreSQL BIGINT, saturating (`Seq::MAX` means "the end").
pub(super) fn sql_int<T: TryInto<i64>>(n: T) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}
