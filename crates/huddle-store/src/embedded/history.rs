//! `history`: a page counted from the most recent message a viewer may see, found by
//! `seq` rather than by skipping rows.
//!
//! Messages are numbered by their *rank* among those the viewer may see (see `visible`).
//! `total` is the rank at the end of the log, from the counts in the room row. The page's
//! newest message has rank `total - offset`; a binary search over `seq` finds it, and the
//! page is the `limit` visible messages from there down (`visible::visible_page`). The
//! cost does not grow with `offset` or the log's size; and when the viewer sees every
//! message (no DMs between others) the search range is a single `seq`, so no probe runs
//! at all.

use huddle_core::{Message, Page, Seq};
use rusqlite::{Connection, OptionalExtension};

use crate::HistoryRead;

use super::codec;
use super::visible::{Bound, dm_rank, seq_of_rank, visible_page};

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
