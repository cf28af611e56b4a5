//! Builders and brute-force references shared by the store tests.
#![allow(dead_code)] // each test target uses its own part

use huddle_core::room::NewRoom;
use huddle_core::{
    Agent, Event, MemberId, Message, Page, Role, Room, RoomId, RoomType, Seq, Timestamp,
    TokenDigest,
};
use huddle_store::{Epoch, HistoryRead, LogRange, RoomStore};

/// A page as the store takes it: at most `limit` after skipping `offset`, not clamped
/// (the store's own handling of any values is under test).
pub fn page_of(limit: usize, offset: usize) -> Page {
    Page { limit, offset }
}

/// The history page `viewer` asks of `room` (see [`page_of`]).
pub fn history_of(room: RoomId, viewer: MemberId, limit: usize, offset: usize) -> HistoryRead {
    HistoryRead {
        room,
        viewer,
        page: page_of(limit, offset),
    }
}

pub fn room(name: &str, password_hash: Option<&str>) -> Room {
    Room::create(
        NewRoom {
            id: RoomId::new_random(),
            name: name.into(),
            password_hash: password_hash.map(str::to_string),
            description: "d".into(),
            kind: RoomType::Group,
            creator: "alice".into(),
            creator_token: TokenDigest([7; 32]),
            creator_endpoint: None,
        },
        Timestamp(1_000),
    )
}

/// Message `seq` from member `from` (to member `to`), numbers as the tests write them.
pub fn message(room: RoomId, seq: u64, from: u64, to: Option<u64>) -> Message {
    Message {
        seq: Seq::new(seq),
        id: format!("m{seq}"),
        room_id: room,
        from: format!("a{from}"),
        from_member: MemberId::new(from),
        to: to.map(|t| format!("a{t}")),
        to_member: to.map(MemberId::new),
        body: format!("body {seq}"),
        timestamp: Timestamp(2_000 + seq as i64),
        key: None,
    }
}

pub fn msg(room: RoomId, seq: u64, from: u64, to: Option<u64>) -> Event {
    Event::Posted(message(room, seq, from, to))
}

pub fn joined(member: u64) -> Event {
    Event::Joined(Agent {
        member: MemberId::new(member),
        name: format!("a{member}"),
        role: Role::Member,
        joined_at: Timestamp(1_500 + member as i64),
        token: TokenDigest([member as u8; 32]),
        endpoint: None,
        cursor: Seq::ZERO,
    })
}

pub fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq.get()).collect()
}

/// The brute-force reference of `history`: filter the whole log, count it, slice it.
pub fn reference_history(
    log: &[Message],
    viewer: MemberId,
    limit: usize,
    offset: usize,
) -> (Vec<u64>, u64) {
    let visible: Vec<u64> = log
        .iter()
        .filter(|m| m.visible_to(viewer))
        .map(|m| m.seq.get())
        .collect();
    let end = visible.len().saturating_sub(offset);
    let start = end.saturating_sub(limit);
    (visible[start..end].to_vec(), visible.len() as u64)
}

/// The brute-force reference of `messages_after`.
pub fn reference_after(
    log: &[Message],
    viewer: Option<MemberId>,
    after: Seq,
    limit: usize,
) -> Vec<u64> {
    log.iter()
        .filter(|m| m.seq > after && viewer.is_none_or(|v| m.visible_to(v)))
        .take(limit)
        .map(|m| m.seq.get())
        .collect()
}

/// Asserts that every history page and every `messages_after` read of `room` equals the
/// reference over `log`, for members who sent or received DMs, the room-bot (0) and a
/// member who never took part (`outsider`).
pub async fn assert_reads_match(
    store: &dyn RoomStore,
    room: RoomId,
    log: &[Message],
    outsider: u64,
) {
    let n = log.len();
    for viewer in (0..=outsider).map(MemberId::new) {
        let total = log.iter().filter(|m| m.visible_to(viewer)).count();
        for limit in [0, 1, 2, 7, 100] {
            for offset in [
                0,
                1,
                3,
                total.saturating_sub(1),
                total,
                total + 1,
                usize::MAX,
            ] {
                let (page, got_total) = store
                    .history(history_of(room, viewer, limit, offset))
                    .await
                    .unwrap();
                assert_eq!(
                    (seqs(&page), got_total),
                    reference_history(log, viewer, limit, offset),
                    "history for viewer {viewer}, limit {limit}, offset {offset}"
                );
            }
        }
    }
    let viewers = (0..=outsider).map(|v| Some(MemberId::new(v))).chain([None]);
    for viewer in viewers {
        for after in [0, 1, n as u64 / 2, n as u64, u64::MAX].map(Seq::new) {
            for limit in [1, 5, 1000] {
                let got = store
                    .messages_after(LogRange {
                        room,
                        viewer,
                        after,
                        limit,
                    })
                    .await
                    .unwrap();
                assert_eq!(
                    seqs(&got),
                    reference_after(log, viewer, after, limit),
                    "messages_after for viewer {viewer:?}, after {after}, limit {limit}"
                );
            }
        }
    }
}

/// The member count the listing shows for the one room called `name`.
pub async fn agents_listed(store: &dyn RoomStore, name: &str) -> u64 {
    let page = store.list_rooms(Some(name), page_of(100, 0)).await.unwrap();
    let found: Vec<_> = page.rooms.iter().filter(|r| r.name == name).collect();
    assert_eq!(found.len(), 1, "room {name} is listed once");
    found[0].agents
}

/// `n` fresh rooms named `<prefix><i>`, created and taken by `store`: their ids and epochs.
pub async fn taken_rooms(store: &dyn RoomStore, prefix: &str, n: usize) -> Vec<(RoomId, Epoch)> {
    let mut rooms = Vec::with_capacity(n);
    for i in 0..n {
        let r = room(&format!("{prefix}{i}"), None);
        store.create_room(&r).await.unwrap();
        let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
        rooms.push((r.id, epoch));
    }
    rooms
}
