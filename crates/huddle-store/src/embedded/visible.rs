//! A page of the messages one viewer may see, and the *rank* that numbers them.
//!
//! A viewer sees the room's broadcasts and its own DMs (sent or received). Number those
//! 1, 2, … from the oldest: the rank. The rank of position `s` (how many visible messages
//! have `seq <= s`) is the room's `broadcast_rank` at `s` plus the viewer's
//! `dm_views.rank` at `s`: two index lookups (see `schema`), so the `seq` of any rank is
//! a binary search away, whatever lies between.
//!
//! A page is a walk of the log from its bound, keeping what the viewer may see. Most of
//! a log usually is (broadcasts, the viewer's own DMs), so most pages are one range read
//! of about `limit` rows. A log can also hold long runs of DMs between others that the
//! viewer may not see, and a walk through them would cost as much as the run is long:
//! when a walk finds less than half of what it read visible, the next visible message
//! is found by its rank instead, and the walk goes on from there with a short step that
//! doubles while it pays. Every row read is then charged to a visible message found
//! (at most a few rows each) or to a jump (O(log² n)), so a page costs
//! O(limit · log² n) at worst and O(limit) in the usual case.
//!
//! Why not an index of broadcasts: SQLite rebalances an index b-tree at its right edge
//! every few inserts, rewriting three of its pages each time, and every send appends
//! there: scenario 2 of `huddle bench` runs ~13 % more sends/s without it
//! (BENCHMARKS.md). The ranks the counts already keep make it unnecessary.

use huddle_core::{MemberId, Message, Seq};
use rusqlite::{Connection, OptionalExtension, params};

use super::codec::{self, MESSAGE_COLUMNS};
use super::reads::{sql_count, sql_member, sql_seq};

/// Where a page of visible messages starts.
#[derive(Clone, Copy)]
pub(super) enum Bound {
    /// Oldest first, from just after this `seq`.
    After(Seq),
    /// Most recent first, from this `seq` down.
    UpTo(Seq),
}

/// The shortest walk after a jump: the visible message jumped to, and a few rows past it
/// in case the run of others' DMs ended there.
const MIN_STEP: usize = 8;

/// The first `limit` messages visible to `viewer` from `bound` on, in the bound's order.
pub(super) fn visible_page(
    c: &Connection,
    room: &str,
    viewer: MemberId,
    bound: Bound,
    limit: usize,
) -> rusqlite::Result<Vec<Message>> {
    let mut page = Vec::new();
    let mut from = bound;
    // The first walk expects the page to be all visible: one read of exactly the page.
    let mut step = limit;
    while page.len() < limit {
        let rows = walk(c, room, from, step)?;
        let Some(last) = rows.last().map(|m| m.seq) else {
            break;
        };
        let read = rows.len();
        let before = page.len();
        page.extend(
            rows.into_iter()
                .filter(|m| m.visible_to(viewer))
                .take(limit - before),
        );
        if read < step || page.len() == limit {
            break; // the end of the log, or a full page
        }
        let want = limit - page.len();
        if 2 * (page.len() - before) >= read {
            // Mostly visible: walking pays, so walk on (further each time).
            from = continue_after(from, last);
            step = step.saturating_mul(2).min(want.saturating_add(MIN_STEP));
        } else {
            // A run of others' DMs: go straight to the next visible message.
            match jump(c, room, viewer, from, last)? {
                Some(next) => from = next,
                None => break,
            }
            step = MIN_STEP;
        }
    }
    Ok(page)
}

/// Up to `n` rows of the log from `from`, in its order, visible or not.
fn walk(c: &Connection, room: &str, from: Bound, n: usize) -> rusqlite::Result<Vec<Message>> {
    let (sql, at) = match from {
        Bound::After(s) => (
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE room_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            ),
            s,
        ),
        Bound::UpTo(s) => (
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE room_id = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT ?3"
            ),
            s,
        ),
    };
    c.prepare_cached(&sql)?
        .query_map(params![room, sql_seq(at), sql_count(n)], codec::message)?
        .collect()
}

/// The bound of the walk that goes on past `last`, the last row the previous one read.
fn continue_after(from: Bound, last: Seq) -> Bound {
    match from {
        Bound::After(_) => Bound::After(last),
        Bound::UpTo(_) => Bound::UpTo(last.minus(1)),
    }
}

/// The bound of a walk that starts at the next message `viewer` may see past `last` (in
/// `from`'s direction), found by its rank; `None` when there is none.
fn jump(
    c: &Connection,
    room: &str,
    viewer: MemberId,
    from: Bound,
    last: Seq,
) -> rusqlite::Result<Option<Bound>> {
    match from {
        Bound::After(_) => {
            let Some(end) = last_seq(c, room)? else {
                return Ok(None);
            };
            let next = rank_at(c, room, viewer, last)? + 1;
            if end <= last || rank_at(c, room, viewer, end)? < next {
                return Ok(None);
            }
            let seq = seq_of_rank(c, room, viewer, next, (last.next(), end))?;
            // The walk reads after its bound: start it just before the message found.
            Ok(Some(Bound::After(seq.minus(1))))
        }
        Bound::UpTo(_) => {
            let below = last.minus(1);
            let rank = rank_at(c, room, viewer, below)?;
            if rank == 0 {
                return Ok(None);
            }
            // Seqs are distinct and start at 1, so the message of rank r has seq >= r.
            let seq = seq_of_rank(c, room, viewer, rank, (Seq::new(rank), below))?;
            Ok(Some(Bound::UpTo(seq)))
        }
    }
}

/// The room's last `seq`, `None` for a room not in the store.
fn last_seq(c: &Connection, room: &str) -> rusqlite::Result<Option<Seq>> {
    c.prepare_cached("SELECT last_seq FROM rooms WHERE id = ?1")?
        .query_row([room], |r| r.get::<_, i64>(0))
        .optional()
        .map(|s| s.map(|s| codec::seq_from(s.max(0))))
}

/// The smallest `seq` in `lo..=hi` whose rank for `viewer` is at least `rank`: the seq
/// of the visible message with that rank.
pub(super) fn seq_of_rank(
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
/// viewer's DMs up to `s` (one statement: this runs once per step of a search).
pub(super) fn rank_at(
    c: &Connection,
    room: &str,
    viewer: MemberId,
    s: Seq,
) -> rusqlite::Result<u64> {
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
pub(super) fn dm_rank(
    c: &Connection,
    room: &str,
    viewer: MemberId,
    s: Seq,
) -> rusqlite::Result<u64> {
    let rank: Option<i64> = c
        .prepare_cached(
            "SELECT rank FROM dm_views WHERE room_id = ?1 AND member = ?2 AND seq <= ?3
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row(params![room, sql_member(viewer), sql_seq(s)], |r| r.get(0))
        .optional()?;
    Ok(rank.unwrap_or(0).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use huddle_core::room::NewRoom;
    use huddle_core::{Event, Message, Room, RoomId, RoomType, Timestamp, TokenDigest};

    use super::*;
    use crate::RoomStore;
    use crate::embedded::{Durability, EmbeddedStore};

    /// Broadcasts before and after the run of DMs.
    const EACH_SIDE: u64 = 5;
    /// DMs from member 1 to member 2 that member 3 may not see.
    const RUN: u64 = 20_000;

    fn message(room: RoomId, seq: u64, to: Option<u64>) -> Event {
        Event::Posted(Message {
            seq: Seq::new(seq),
            id: format!("m{seq}"),
            room_id: room,
            from: "a1".into(),
            from_member: MemberId::new(1),
            to: to.map(|t| format!("a{t}")),
            to_member: to.map(MemberId::new),
            body: format!("body {seq}"),
            timestamp: Timestamp(2_000 + seq as i64),
            key: None,
        })
    }

    /// A room whose log is `EACH_SIDE` broadcasts, `RUN` DMs from 1 to 2, and
    /// `EACH_SIDE` broadcasts, written through the store; a connection to read it. (Who
    /// may see a message depends on its sender and recipient only, so the viewers need
    /// not have joined.)
    async fn room_with_a_long_private_run(dir: &std::path::Path) -> (Connection, String) {
        let store = EmbeddedStore::open(dir, Durability::Process).unwrap();
        let room = Room::create(
            NewRoom {
                id: RoomId::new_random(),
                name: "dev".into(),
                password_hash: None,
                description: "d".into(),
                kind: RoomType::Group,
                creator: "a1".into(),
                creator_token: TokenDigest([1; 32]),
                creator_endpoint: None,
            },
            Timestamp(1_000),
        );
        let id = room.id;
        store.create_room(&room).await.unwrap();
        let (_, epoch) = store.acquire(id).await.unwrap().unwrap();
        let last = 2 * EACH_SIDE + RUN;
        let mut events: Vec<Event> = (1..=last)
            .map(|s| {
                let private = s > EACH_SIDE && s <= EACH_SIDE + RUN;
                message(id, s, private.then_some(2))
            })
            .collect();
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(1_000));
            store.append(id, epoch, events).await.unwrap();
            events = rest;
        }
        (
            Connection::open(dir.join("huddle.db")).unwrap(),
            id.to_string(),
        )
    }

    /// What `f` costs the connection, in SQLite virtual machine steps (hundreds).
    fn steps<T>(c: &mut Connection, f: impl FnOnce(&Connection) -> T) -> (T, u64) {
        let count = Arc::new(AtomicU64::new(0));
        let counter = count.clone();
        c.progress_handler(
            100,
            Some(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                false
            }),
        )
        .unwrap();
        let out = f(c);
        c.progress_handler(100, None::<fn() -> bool>).unwrap();
        (out, count.load(Ordering::Relaxed))
    }

    fn seqs(page: &[Message]) -> Vec<u64> {
        page.iter().map(|m| m.seq.get()).collect()
    }

    #[tokio::test]
    async fn a_page_across_a_long_run_of_others_dms_reads_about_a_page() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, room) = room_with_a_long_private_run(dir.path()).await;
        let viewer = MemberId::new(3);
        let later: Vec<u64> = (EACH_SIDE + RUN + 1..=2 * EACH_SIDE + RUN).collect();
        let earlier: Vec<u64> = (1..=EACH_SIDE).rev().collect();
        // The yardstick: reading 1,000 rows of the log, a twentieth of the run.
        let (_, thousand) = steps(&mut c, |c| {
            walk(c, &room, Bound::After(Seq::ZERO), 1_000).unwrap()
        });

        let mut after_start: Vec<u64> = (3..=EACH_SIDE).collect();
        after_start.extend(&later);
        let mut down_from_end: Vec<u64> = later.iter().rev().copied().collect();
        down_from_end.extend(&earlier);
        for (what, bound, expected) in [
            (
                "a page after the run's start",
                Bound::After(Seq::new(2)),
                after_start,
            ),
            (
                "a page down from the end",
                Bound::UpTo(Seq::MAX),
                down_from_end,
            ),
        ] {
            let (page, cost) = steps(&mut c, |c| {
                visible_page(c, &room, viewer, bound, 10).unwrap()
            });
            assert_eq!(seqs(&page), expected, "{what}");
            assert!(
                cost < thousand,
                "{what} cost {cost} against {thousand} for 1,000 rows"
            );
        }

        // Member 2, the DMs' recipient, sees them: its page is the log itself.
        let (theirs, _) = steps(&mut c, |c| {
            visible_page(c, &room, MemberId::new(2), Bound::After(Seq::ZERO), 10).unwrap()
        });
        assert_eq!(seqs(&theirs), (1..=10).collect::<Vec<_>>());
    }
}
