//! Builders and brute-force references shared by the store tests.
#![allow(dead_code)] // each test target uses its own part

use huddle_core::room::NewRoom;
use huddle_core::{
    Agent, Event, MemberId, Message, Role, Room, RoomId, RoomType, Timestamp, TokenDigest,
};
use huddle_store::RoomStore;

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

pub fn message(room: RoomId, seq: u64, from: MemberId, to: Option<MemberId>) -> Message {
    Message {
        seq,
        id: format!("m{seq}"),
        room_id: room,
        from: format!("a{from}"),
        from_member: from,
        to: to.map(|t| format!("a{t}")),
        to_member: to,
        body: format!("body {seq}"),
        timestamp: Timestamp(2_000 + seq as i64),
        key: None,
    }
}

pub fn msg(room: RoomId, seq: u64, from: MemberId, to: Option<MemberId>) -> Event {
    Event::Posted(message(room, seq, from, to))
}

pub fn joined(member: MemberId) -> Event {
    Event::Joined(Agent {
        member,
        name: format!("a{member}"),
        role: Role::Member,
        joined_at: Timestamp(1_500 + member as i64),
        token: TokenDigest([member as u8; 32]),
        endpoint: None,
        cursor: 0,
    })
}

pub fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
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
        .map(|m| m.seq)
        .collect();
    let end = visible.len().saturating_sub(offset);
    let start = end.saturating_sub(limit);
    (visible[start..end].to_vec(), visible.len() as u64)
}

/// The brute-force reference of `messages_after`.
pub fn reference_after(
    log: &[Message],
    viewer: Option<MemberId>,
    after: u64,
    limit: usize,
) -> Vec<u64> {
    log.iter()
        .filter(|m| m.seq > after && viewer.is_none_or(|v| m.visible_to(v)))
        .take(limit)
        .map(|m| m.seq)
        .collect()
}

/// Asserts that every history page and every `messages_after` read of `room` equals the
/// reference over `log`, for members who sent or received DMs, the room-bot (0) and a
/// member who never took part (`outsider`).
pub async fn assert_reads_match(
    store: &dyn RoomStore,
    room: RoomId,
    log: &[Message],
    outsider: MemberId,
) {
    let n = log.len();
    for viewer in (0..=outsider).collect::<Vec<_>>() {
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
                let (page, got_total) = store.history(room, viewer, limit, offset).await.unwrap();
                assert_eq!(
                    (seqs(&page), got_total),
                    reference_history(log, viewer, limit, offset),
                    "history for viewer {viewer}, limit {limit}, offset {offset}"
                );
            }
        }
    }
    let viewers = (0..=outsider).map(Some).chain([None]);
    for viewer in viewers {
        for after in [0, 1, n as u64 / 2, n as u64, u64::MAX] {
            for limit in [1, 5, 1000] {
                let got = store
                    .messages_after(room, viewer, after, limit)
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
    let page = store.list_rooms(Some(name), 100, 0).await.unwrap();
    let found: Vec<_> = page.rooms.iter().filter(|r| r.name == name).collect();
    assert_eq!(found.len(), 1, "room {name} is listed once");
    found[0].agents
}
