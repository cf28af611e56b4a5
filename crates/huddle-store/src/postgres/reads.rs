//! Queries on the read pool (history paging is in `history`). The same queries as the
//! embedded backend's, in PostgreSQL's dialect.

use deadpool_postgres::GenericClient;
use huddle_core::{MemberId, Message, Page, RoomId, RoomSummary, Seq, Timestamp};

use super::codec::{self, MESSAGE_COLUMNS, sql_int};
use super::conn::backend;
use crate::sql::like_pattern;
use crate::{LogRange, NamedRoom, RoomPage, SentKey, StoreError};

pub(super) async fn rooms_named(
    c: &impl GenericClient,
    name: &str,
) -> Result<Vec<NamedRoom>, StoreError> {
    let st = c
        .prepare_cached("SELECT id, password_hash FROM rooms WHERE name = $1 ORDER BY created_at")
        .await
        .map_err(backend)?;
    c.query(&st, &[&name])
        .await
        .map_err(backend)?
        .iter()
        .map(|r| {
            Ok(NamedRoom {
                id: codec::room_id(r.get(0))?,
                password_hash: r.get(1),
            })
        })
        .collect()
}

pub(super) async fn epoch(c: &impl GenericClient, room: RoomId) -> Result<Option<u64>, StoreError> {
    let st = c
        .prepare_cached("SELECT epoch FROM rooms WHERE id = $1")
        .await
        .map_err(backend)?;
    let row = c
        .query_opt(&st, &[&room.to_string()])
        .await
        .map_err(backend)?;
    Ok(row.map(|r| r.get::<_, i64>(0) as u64))
}

/// Runs in a repeatable-read transaction (see `PostgresStore::list_rooms`): the page
/// and its total come from one snapshot.
pub(super) async fn list_rooms(
    c: &impl GenericClient,
    search: Option<&str>,
    page: Page,
) -> Result<RoomPage, StoreError> {
    let Page { limit, offset } = page;
    let pattern = like_pattern(search.unwrap_or(""));
    let st = c
        .prepare_cached(
            "SELECT count(*) FROM rooms
             WHERE password_hash IS NULL AND name LIKE $1 ESCAPE '\\'",
        )
        .await
        .map_err(backend)?;
    let total: i64 = c.query_one(&st, &[&pattern]).await.map_err(backend)?.get(0);
    let total = total.max(0) as u64;
    if limit == 0 || offset as u64 >= total {
        return Ok(RoomPage {
            rooms: Vec::new(),
            total,
        });
    }
    let st = c
        .prepare_cached(
            "SELECT name, description, kind, created_at, agent_count FROM rooms
             WHERE password_hash IS NULL AND name LIKE $1 ESCAPE '\\'
             ORDER BY name, created_at LIMIT $2 OFFSET $3",
        )
        .await
        .map_err(backend)?;
    let rows = c
        .query(&st, &[&pattern, &sql_int(limit), &sql_int(offset)])
        .await
        .map_err(backend)?;
    let rooms = rows
        .iter()
        .map(|r| {
            Ok(RoomSummary {
                name: r.get(0),
                description: codec::text(r, 1)?,
                kind: codec::kind_from(r.get(2)),
                created_at: Timestamp(r.get(3)),
                agents: r.get::<_, i64>(4).max(0) as u64,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(RoomPage { rooms, total })
}

pub(super) async fn messages_after(
    c: &impl GenericClient,
    read: LogRange,
) -> Result<Vec<Message>, StoreError> {
    let room = read.room.to_string();
    match read.viewer {
        Some(v) => visible_page(c, &room, v, Bound::After(read.after), read.limit).await,
        None => {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            );
            let st = c.prepare_cached(&sql).await.map_err(backend)?;
            let rows = c
                .query(&st, &[&room, &sql_int(read.after), &sql_int(read.limit)])
                .await
                .map_err(backend)?;
            codec::messages(&rows)
        }
    }
}

pub(super) async fn sent_with_key(
    c: &impl GenericClient,
    sent: SentKey<'_>,
) -> Result<Option<Message>, StoreError> {
    let SentKey { room, sender, key } = sent;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE room_id = $1 AND from_member = $2 AND key = $3"
    );
    let st = c.prepare_cached(&sql).await.map_err(backend)?;
    c.query_opt(&st, &[&room.to_string(), &sql_int(sender), &key.as_bytes()])
        .await
        .map_err(backend)?
        .as_ref()
        .map(codec::message)
        .transpose()
}

/// Where a page of visible messages starts.
#[derive(Clone, Copy)]
pub(super) enum Bound {
    /// Oldest first, from just after this `seq`.
    After(Seq),
    /// Most recent first, from this `seq` down.
    UpTo(Seq),
}

/// The first `limit` messages visible to `viewer` from `bound` on, in the bound's
/// order: the merge of two index ranges holding only what the viewer sees (the
/// broadcasts, a partial index, and the viewer's own `dm_views`), each at most `limit`.
pub(super) async fn visible_page(
    c: &impl GenericClient,
    room: &str,
    viewer: MemberId,
    bound: Bound,
    limit: usize,
) -> Result<Vec<Message>, StoreError> {
    let (from, order, cmp) = match bound {
        Bound::After(s) => (s, "", ">"),
        Bound::UpTo(s) => (s, "DESC", "<="),
    };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND seq IN (
            (SELECT seq FROM messages
             WHERE room_id = $1 AND to_member IS NULL AND seq {cmp} $3
             ORDER BY seq {order} LIMIT $4)
            UNION ALL
            (SELECT seq FROM dm_views
             WHERE room_id = $1 AND member = $2 AND seq {cmp} $3
             ORDER BY seq {order} LIMIT $4))
         ORDER BY seq {order} LIMIT $4"
    );
    let st = c.prepare_cached(&sql).await.map_err(backend)?;
    let rows = c
        .query(
            &st,
            &[&room, &sql_int(viewer), &sql_int(from), &sql_int(limit)],
        )
        .await
        .map_err(backend)?;
    codec::messages(&rows)
}
