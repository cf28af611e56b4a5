//! The embedded store's promises: fencing, durability across reopen, privacy in reads,
//! listing rules.

use huddle_core::room::NewRoom;
use huddle_core::{Event, Message, Room, RoomId, RoomType, Timestamp, TokenDigest};
use huddle_store::{Durability, EmbeddedStore, RoomStore, StoreError};

fn room(name: &str, password_hash: Option<&str>) -> Room {
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

fn msg(room: RoomId, seq: u64, from: u64, to: Option<u64>) -> Event {
    Event::Posted(Message {
        seq,
        id: format!("m{seq}"),
        room_id: room,
        from: format!("a{from}"),
        from_member: from,
        to: to.map(|t| format!("a{t}")),
        to_member: to,
        body: format!("body {seq}"),
        timestamp: Timestamp(2_000 + seq as i64),
    })
}

#[tokio::test]
async fn a_stale_epoch_cannot_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
    let r = room("dev", None);
    store.create_room(&r).await.unwrap();
    let (_, old) = store.acquire(r.id).await.unwrap().unwrap();
    let (_, new) = store.acquire(r.id).await.unwrap().unwrap();
    assert!(new > old);
    let err = store
        .append(r.id, old, vec![msg(r.id, 1, 1, None)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced(..)), "{err}");
    store
        .append(r.id, new, vec![msg(r.id, 1, 1, None)])
        .await
        .unwrap();
    let all = store.messages_after(r.id, None, 0, 10).await.unwrap();
    assert_eq!(all.len(), 1, "the fenced append left nothing behind");
}

#[tokio::test]
async fn everything_appended_is_there_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let r = room("dev", None);
    {
        let store = EmbeddedStore::open(dir.path(), Durability::Power).unwrap();
        store.create_room(&r).await.unwrap();
        let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
        let events = vec![
            msg(r.id, 1, 1, None),
            msg(r.id, 2, 1, None),
            Event::CursorMoved { member: 1, seq: 2 },
            Event::Updated {
                description: Some("new".into()),
                kind: Some(RoomType::Channel),
            },
        ];
        store.append(r.id, epoch, events).await.unwrap();
    }
    let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
    let (loaded, _) = store.acquire(r.id).await.unwrap().unwrap();
    assert_eq!(loaded.last_seq, 2);
    assert_eq!(loaded.agents[0].cursor, 2);
    assert_eq!(loaded.description, "new");
    assert_eq!(loaded.kind, RoomType::Channel);
    assert_eq!(loaded.agents[0].token, TokenDigest([7; 32]));
}

#[tokio::test]
async fn reads_hide_other_peoples_dms() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
    let r = room("dev", None);
    store.create_room(&r).await.unwrap();
    let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    store
        .append(
            r.id,
            epoch,
            vec![
                msg(r.id, 1, 1, None),
                msg(r.id, 2, 1, Some(2)),
                msg(r.id, 3, 2, Some(1)),
                msg(r.id, 4, 1, None),
            ],
        )
        .await
        .unwrap();
    let seqs = |v: Vec<Message>| v.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(store.messages_after(r.id, Some(3), 0, 10).await.unwrap()),
        [1, 4]
    );
    assert_eq!(
        seqs(store.messages_after(r.id, Some(2), 0, 10).await.unwrap()),
        [1, 2, 3, 4]
    );
    let (page, total) = store.history(r.id, 3, 10, 0).await.unwrap();
    assert_eq!((seqs(page), total), (vec![1, 4], 2));
    let (page, total) = store.history(r.id, 1, 2, 1).await.unwrap();
    assert_eq!(
        (seqs(page), total),
        (vec![2, 3], 4),
        "offset skips the most recent"
    );
}

#[tokio::test]
async fn listing_shows_only_open_rooms_sorted_and_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
    for (name, pw) in [
        ("beta", None),
        ("alpha", None),
        ("secret", Some("$argon2id$x")),
        ("al_x", None),
    ] {
        store.create_room(&room(name, pw)).await.unwrap();
    }
    let page = store.list_rooms(None, 10, 0).await.unwrap();
    let names: Vec<_> = page.rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["al_x", "alpha", "beta"]);
    assert_eq!(page.total, 3);
    assert_eq!(page.rooms[0].agents, 1);
    let page = store.list_rooms(Some("l_"), 10, 0).await.unwrap();
    assert_eq!(
        page.rooms.len(),
        1,
        "'_' is matched literally, not as a wildcard"
    );
    let page = store.list_rooms(None, 1, 1).await.unwrap();
    assert_eq!(page.rooms[0].name, "alpha");
    assert_eq!(page.total, 3);
}
