//! `history`: a page counted from the most recent message a viewer may see, found by
//! `seq` rather than by skipping rows — the embedded backend's method (see its
//! `history`): the rank of a `seq` for a viewer is the broadcast rank there plus the
//! viewer's DM rank there, and a binary search over `seq` finds the page's newest
//! message. Runs in one repeatable-read transaction so the total and the page agree.

use deadpool_postgres::GenericClient;
use huddle_core::{MemberId, Message, Page, Seq};

use super::codec::{self, sql_int};
use super::conn::backend;
use super::reads::{Bound, visible_page};
use crate::{HistoryRead, StoreError};

pub(super) async fn history(
    c: &impl GenericClient,
    read: HistoryRead,
) -> Result<(Vec<Message>, u64), StoreError> {
    let HistoryRead {
        room,
        viewer,
        page: Page { limit, offset },
    } = read;
    let room = room.to_string();
    let st = c
        .prepare_cached("SELECT last_seq, message_count, dm_count FROM rooms WHERE id = $1")
        .await
        .map_err(backend)?;
    let Some(row) = c.query_opt(&st, &[&room]).await.map_err(backend)? else {
        return Ok((Vec::new(), 0));
    };
    let (last_seq, messages, dms): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let broadcasts = (messages - dms).max(0) as u64;
    let ranks = Ranks {
        c,
        room: &room,
        viewer,
    };
    let total = broadcasts + ranks.dms_up_to(Seq::MAX).await?;
    let offset = offset as u64;
    if limit == 0 || offset >= total {
        return Ok((Vec::new(), total));
    }
    let newest = total - offset;
    // Its seq is at least its rank (seqs are distinct from 1), and `offset` visible
    // messages follow it, so it is at most `last_seq - offset`.
    let (mut lo, mut hi) = (
        Seq::new(newest),
        codec::seq_from(last_seq.max(0)).minus(offset),
    );
    while lo < hi {
        let mid = lo.plus(hi.since(lo) / 2);
        if ranks.at(mid).await? >= newest {
            hi = mid;
        } else {
            lo = mid.next();
        }
    }
    let mut page = visible_page(c, &room, viewer, Bound::UpTo(lo), limit).await?;
    page.reverse();
    Ok((page, total))
}

/// The ranks of one viewer in one room.
struct Ranks<'a, C> {
    c: &'a C,
    room: &'a str,
    viewer: MemberId,
}

impl<C: GenericClient> Ranks<'_, C> {
    /// How many messages the viewer may see have `seq <= s` (one statement).
    async fn at(&self, s: Seq) -> Result<u64, StoreError> {
        let st = self
            .c
            .prepare_cached(
                "SELECT coalesce((SELECT broadcast_rank FROM messages
                                  WHERE room_id = $1 AND seq <= $3
                                  ORDER BY seq DESC LIMIT 1), 0)
                      + coalesce((SELECT rank FROM dm_views
                                  WHERE room_id = $1 AND member = $2 AND seq <= $3
                                  ORDER BY seq DESC LIMIT 1), 0)",
            )
            .await
            .map_err(backend)?;
        self.one(&st, s).await
    }

    /// How many DMs the viewer may see have `seq <= s`.
    async fn dms_up_to(&self, s: Seq) -> Result<u64, StoreError> {
        let st = self
            .c
            .prepare_cached(
                "SELECT coalesce((SELECT rank FROM dm_views
                                  WHERE room_id = $1 AND member = $2 AND seq <= $3
                                  ORDER BY seq DESC LIMIT 1), 0)",
            )
            .await
            .map_err(backend)?;
        self.one(&st, s).await
    }

    async fn one(&self, st: &tokio_postgres::Statement, s: Seq) -> Result<u64, StoreError> {
        let row = self
            .c
            .query_one(st, &[&self.room, &sql_int(self.viewer), &sql_int(s)])
            .await
            .map_err(backend)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }
}
