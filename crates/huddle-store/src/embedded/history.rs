//! `history`: a page counted from the most recent message a viewer may see, found by
//! `seq` rather than by skipping rows.
//!
//! Number the messages `viewer` may see 1, 2, … from the oldest: the *rank*. The rank of
//! position `s` (how many visible messages have `seq <= s`) is the room's
//! `broadcast_rank` at `s` plus the viewer's `dm_views.rank` at `s`: two index lookups
//! in one statement (see `schema`). `total` is the rank at the end of the log, from the counts in the room
//! row. The page's newest message has rank `total - offset`; a binary search over `seq`
//! finds it, and the page is the `limit` visible messages from there down. The cost is
//! O(log² n + limit · log n) whatever `offset`, the log's size or how many DMs the viewer
//! may not see; and when the viewer sees every message (no DMs between others) the
//! search range is a single `seq`, so no probe runs at all.

use huddle_core::{MemberId, Message, Page, Seq};
use rusqlite::{Connection, OptionalExtension, params};

use crate::HistoryRead;

use super::codec;
use super::reads::{Bound, sql_member, sql_seq, visible_page};

pub(super) fn history(c: &Connection, read: HistoryRead) -> rusqlite::Result<(Vec<Message>, u64)> {
    let HistoryRead {
        room,
        viewer,
        page: Page { limit, offset },
    } = read;
    // One snapshot: the total and the page must describe the same log.
    let tx = c.unchecked_transaction()?;
    let room = room.to_string();
    let counts: Option<(i64, i64, i64)> = tx
        .prepare_cached("SELECT last_seq, message_count, dm_count FROM rooms WHERE id = ?1")?
        .query_row([&room], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((last_seq, messages, dms)) = counts else {
        return Ok((Vec::new(), 0));
    };
    let broadcasts = (messages - dms).max(0) as u64;
    let total = broadcasts + dm_rank(&tx, &room, viewer, Seq::MAX)?;
    let offset = offset as u64;
    if limit == 0 || offset >= total {
        return Ok((Vec::new(), total));
    }
    let newest = total - offset;
    // The newest message of the page has rank `newest`, so its seq is at least `newest`
    // (seqs are distinct and start at 1); `offset` visible messages come after it, so it
    // is at most `last_seq - offset`.
    let top = seq_of_rank(
        &tx,
        &room,
        viewer,
        newest,
        (
            Seq::new(newest),
            codec::seq_from(last_seq.max(0)).minus(offset),
        ),
    )?;
    let mut page = visible_page(&tx, &room, viewer, Bound::UpTo(top), limit)?;
    page.reverse();
    Ok((page, total))
}

/// The smallest `seq` in `lo..=hi` whose rank for `viewer` is at least `rank`: the seq
/// of the visible message with that rank.
fn seq_of_rank(
    c: &Connection,
    room: &str,
    viewer: MemberId,
    rank: u64,
    (mut lo, mut hi): (Seq, Seq),
) -> rusqlite::Result<Seq> {
    while lo < hi {
        let mid = lo.plus(hi.since(lo) / 2);
        if rank_at(c, room, viewer, mid)? >= rank {
            hi = mid;
        } else {
            lo = mid.next();
        }
    }
    Ok(lo)
}

/// How many messages `viewer` may see have `seq <= s`: the broadcasts up to `s` plus the
/// viewer's DMs up to `s` (one statement: this runs once per step of the search).
fn rank_at(c: &Connection, room: &str, viewer: MemberId, s: Seq) -> rusqlite::Result<u64> {
    let rank: i64 = c
        .prepare_cached(
            "SELECT coalesce((SELECT broadcast_rank FROM messages
                              WHERE room_id = ?1 AND seq <= ?3 ORDER BY seq DESC LIMIT 1), 0)
                  + coalesce((SELECT rank FROM dm_views
                              WHERE room_id = ?1 AND member = ?2 AND seq <= ?3
                              ORDER BY seq DESC LIMIT 1), 0)",
        )?
        .query_row(params![room, sql_member(viewer), sql_seq(s)], |r| r.get(0))?;
    Ok(rank.max(0) as u64)
}

/// How many DMs `viewer` may see have `seq <= s`.
fn dm_rank(c: &Connection, room: &str, viewer: MemberId, s: Seq) -> rusqlite::Result<u64> {
    let rank: Option<i64> = c
        .prepare_cached(
            "SELECT rank FROM dm_views WHERE room_id = ?1 AND member = ?2 AND seq <= ?3
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![room, sql_member(viewer), sql_seq(s)], |r| r.get(0))
        .optional()?;
    Ok(rank.unwrap_or(0).max(0) as u64)
}
