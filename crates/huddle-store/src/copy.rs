//! Copying a node's embedded store into another store (PostgreSQL, when one machine is
//! outgrown): rooms with their members, token digests and cursors, then each room's
//! log in order, through the destination's own `create_room` and `append` so its kept
//! counts are built as they would have been.
//!
//! Resumable: a room's messages go in batches, each committed whole, so after an
//! interruption the destination's `last_seq` of a room says where its copy stopped and a
//! rerun goes on from there; a room already complete is skipped. Verified: at the end
//! every room's message count, last `seq` and member count are compared on both sides.
//!
//! Run it with the node stopped: what the source gets during the copy may be missed.
//! Epochs are not carried over: the destination fences its own writers from its own
//! epochs, and no writer of the source survives the move.

use huddle_core::{Event, Room, RoomId, Seq};

use crate::{EmbeddedStore, LogRange, RoomStore, StoreError};

/// Messages per append: one destination transaction each.
const BATCH: usize = 500;

/// What happened to one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomCopy {
    pub id: RoomId,
    pub name: String,
    /// Messages appended by this run (0 when the room was already complete).
    pub copied: u64,
    /// Messages in the room's log, counted on both sides after the copy.
    pub messages: u64,
    pub last_seq: Seq,
    pub members: usize,
}

/// Copies every room of `from` into `to` (see the module doc), reporting each room to
/// `done` as it is verified. Stops at the first room whose copy does not match.
pub async fn copy(
    from: &EmbeddedStore,
    to: &dyn RoomStore,
    mut done: impl FnMut(&RoomCopy),
) -> Result<Vec<RoomCopy>, StoreError> {
    let mut report = Vec::new();
    for id in from.room_ids().await? {
        let Some((source, _)) = from.load(id).await? else {
            continue; // gone since listed: the node is running (see the module doc)
        };
        let copied = copy_room(from, to, &source).await?;
        let room = verify(from, to, &source, copied).await?;
        done(&room);
        report.push(room);
    }
    Ok(report)
}

/// Appends the messages of `source` that `to` lacks; returns how many.
async fn copy_room(
    from: &EmbeddedStore,
    to: &dyn RoomStore,
    source: &Room,
) -> Result<u64, StoreError> {
    let id = source.id;
    let (mut after, epoch) = match to.acquire(id).await? {
        Some((there, epoch)) => (there.last_seq, epoch),
        None => {
            // The log is appended after, so the counts are built by the appends.
            let empty = Room {
                last_seq: Seq::ZERO,
                ..source.clone()
            };
            to.create_room(&empty).await?;
            let (_, epoch) = to.acquire(id).await?.ok_or(StoreError::NoSuchRoom(id))?;
            (Seq::ZERO, epoch)
        }
    };
    let mut copied = 0;
    while after < source.last_seq {
        let page = from.messages_after(LogRange::all(id, after, BATCH)).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        copied += page.len() as u64;
        let events = page.into_iter().map(Event::Posted).collect();
        to.append(id, epoch, events).await?;
    }
    Ok(copied)
}

/// Every message of `room` in `store`, counted page by page.
async fn count(store: &dyn RoomStore, room: RoomId) -> Result<(u64, Seq), StoreError> {
    let (mut n, mut after) = (0, Seq::ZERO);
    loop {
        let page = store
            .messages_after(LogRange::all(room, after, BATCH))
            .await?;
        let Some(last) = page.last() else {
            return Ok((n, after));
        };
        after = last.seq;
        n += page.len() as u64;
    }
}

async fn verify(
    from: &EmbeddedStore,
    to: &dyn RoomStore,
    source: &Room,
    copied: u64,
) -> Result<RoomCopy, StoreError> {
    let mismatch = |what: String| {
        StoreError::Backend(format!(
            "the copy of room {} ({}) does not match: {what}",
            source.id, source.name
        ))
    };
    let (messages, last) = count(from, source.id).await?;
    let (there, there_last) = count(to, source.id).await?;
    if (messages, last) != (there, there_last) {
        return Err(mismatch(format!(
            "{messages} messages up to seq {last} in the source, {there} up to seq \
             {there_last} in the destination"
        )));
    }
    let (copy, _) = to
        .acquire(source.id)
        .await?
        .ok_or(StoreError::NoSuchRoom(source.id))?;
    if copy.agents != source.agents || copy.last_seq != source.last_seq {
        return Err(mismatch(format!(
            "{} members (last seq {}) in the source, {} (last seq {}) in the destination",
            source.agents.len(),
            source.last_seq,
            copy.agents.len(),
            copy.last_seq
        )));
    }
    Ok(RoomCopy {
        id: source.id,
        name: source.name.clone(),
        copied,
        messages,
        last_seq: last,
        members: copy.agents.len(),
    })
}
