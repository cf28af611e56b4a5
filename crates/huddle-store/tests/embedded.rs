//! The embedded store's promises: fencing, durability across reopen, privacy in reads,
//! listing rules, the counts kept by appends, history pages equal to a brute-force
//! reference, the bounded reader pool, and opening files written by the first schema.

use std::path::Path;
use std::pin::pin;

use futures::{FutureExt, poll};
use huddle_core::room::NewRoom;
use huddle_core::{
    Agent, Event, MemberId, Message, Role, Room, RoomId, RoomType, Timestamp, TokenDigest,
};
use huddle_store::{Durability, EmbeddedOptions, EmbeddedStore, RoomStore, StoreError};
use proptest::prelude::*;

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
        key: None,
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

fn joined(member: MemberId) -> Event {
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

fn message(room: RoomId, seq: u64, from: MemberId, to: Option<MemberId>) -> Message {
    match msg(room, seq, from, to) {
        Event::Posted(m) => m,
        _ => unreachable!("msg builds a Posted event"),
    }
}

fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// The brute-force reference of `history`: filter the whole log, count it, slice it.
fn reference_history(
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
fn reference_after(
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
async fn assert_reads_match(
    store: &EmbeddedStore,
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

async fn agents_listed(store: &EmbeddedStore, name: &str) -> u64 {
    let page = store.list_rooms(Some(name), 100, 0).await.unwrap();
    let found: Vec<_> = page.rooms.iter().filter(|r| r.name == name).collect();
    assert_eq!(found.len(), 1, "room {name} is listed once");
    found[0].agents
}

#[tokio::test]
async fn listed_member_counts_follow_joins_leaves_and_kicks() {
    let dir = tempfile::tempdir().unwrap();
    let r = room("dev", None);
    {
        let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
        store.create_room(&r).await.unwrap();
        assert_eq!(agents_listed(&store, "dev").await, 1, "the creator");
        let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
        store
            .append(r.id, epoch, vec![joined(2), joined(3), joined(4)])
            .await
            .unwrap();
        assert_eq!(agents_listed(&store, "dev").await, 4);
        // A leave and a kick are both `Left`; a kick also posts a notice.
        let events = vec![
            Event::Left { member: 2 },
            Event::Left { member: 3 },
            msg(r.id, 1, 0, None),
            joined(5),
        ];
        store.append(r.id, epoch, events).await.unwrap();
        assert_eq!(agents_listed(&store, "dev").await, 3);
        // A batch refused by fencing moves no count.
        let refused = store.append(r.id, epoch - 1, vec![joined(6)]).await;
        assert!(matches!(refused, Err(StoreError::Fenced(..))));
        // `Left` of someone already gone removes nobody.
        store
            .append(r.id, epoch, vec![Event::Left { member: 2 }])
            .await
            .unwrap();
        assert_eq!(agents_listed(&store, "dev").await, 3);
    }
    let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
    assert_eq!(agents_listed(&store, "dev").await, 3, "kept across reopen");
    let (loaded, _) = store.acquire(r.id).await.unwrap().unwrap();
    assert_eq!(loaded.agents.len(), 3);
}

#[tokio::test]
async fn history_totals_count_what_each_member_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
    let r = room("dev", None);
    store.create_room(&r).await.unwrap();
    let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    let log = vec![
        message(r.id, 1, 1, None),
        message(r.id, 2, 1, Some(2)),
        message(r.id, 3, 2, Some(1)),
        message(r.id, 4, 3, Some(3)), // a DM to oneself
        message(r.id, 5, 0, None),
        message(r.id, 6, 2, Some(3)),
    ];
    store
        .append(r.id, epoch, vec![joined(2), joined(3)])
        .await
        .unwrap();
    // Appended in two batches: counts carry over from one append to the next.
    let (first, second) = log.split_at(3);
    for part in [first, second] {
        let events = part.iter().cloned().map(Event::Posted).collect();
        store.append(r.id, epoch, events).await.unwrap();
    }
    // Member 3 leaves: its DMs stay its own (identity is the member, not the name).
    store
        .append(r.id, epoch, vec![Event::Left { member: 3 }])
        .await
        .unwrap();
    for (viewer, total) in [(1, 4), (2, 5), (3, 4), (4, 2), (0, 2)] {
        let (_, got) = store.history(r.id, viewer, 100, 0).await.unwrap();
        assert_eq!(got, total, "total for member {viewer}");
    }
    assert_reads_match(&store, r.id, &log, 4).await;
    let (page, total) = store.history(RoomId::new_random(), 1, 10, 0).await.unwrap();
    assert_eq!(
        (page.len(), total),
        (0, 0),
        "an unknown room has no history"
    );
}

/// Appends `log` to a fresh room in batches cut at `cuts`, then checks every read against
/// the reference. With `legacy` set, the first `legacy` messages are written by the
/// first schema, and the store migrates the file when it opens it.
fn check_random_log(pairs: &[(MemberId, Option<MemberId>)], cuts: &[usize], legacy: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let r = room("dev", None);
        let log: Vec<Message> = pairs
            .iter()
            .enumerate()
            .map(|(i, (from, to))| message(r.id, i as u64 + 1, *from, *to))
            .collect();
        let legacy = legacy.min(log.len());
        if legacy > 0 {
            write_first_schema(dir.path(), &r, &[], &log[..legacy]);
        }
        let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
        if legacy == 0 {
            store.create_room(&r).await.unwrap();
        }
        let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
        let mut rest = &log[legacy..];
        for cut in cuts {
            let (batch, tail) = rest.split_at((*cut).min(rest.len()));
            let events = batch.iter().cloned().map(Event::Posted).collect();
            store.append(r.id, epoch, events).await.unwrap();
            rest = tail;
        }
        let events = rest.iter().cloned().map(Event::Posted).collect();
        store.append(r.id, epoch, events).await.unwrap();
        assert_reads_match(&store, r.id, &log, 5).await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Senders 0..4 (0 is the room-bot), about half the messages DMs among members 1..4.
    #[test]
    fn history_pages_match_a_brute_force_reference(
        pairs in prop::collection::vec((0u64..5, prop::option::weighted(0.5, 1u64..5)), 0..120),
        cuts in prop::collection::vec(1usize..40, 0..4),
        legacy in prop_oneof![Just(0usize), 1usize..120],
    ) {
        check_random_log(&pairs, &cuts, legacy);
    }
}

#[test]
fn history_pages_match_the_reference_in_a_log_mostly_of_others_dms() {
    // Long runs of DMs the viewer may not see, between the few it may.
    let pairs: Vec<_> = (0..600u64)
        .map(|i| match i % 50 {
            0 => (1, None),
            7 => (3, Some(4)),
            _ => (1 + i % 2, Some(2 - i % 2)),
        })
        .collect();
    check_random_log(&pairs, &[100, 250], 0);
}

#[test]
fn reads_past_the_readers_and_their_queue_are_refused_naming_the_limit() {
    // One blocking thread, held by `blocker`: a read that got a reader cannot finish until
    // the test lets it, so what is in flight is known without any timing.
    let rt = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let options = EmbeddedOptions {
            readers: 1,
            read_queue: 1,
            ..EmbeddedOptions::new(Durability::Process)
        };
        let store = EmbeddedStore::open_with(dir.path(), options).unwrap();
        store.create_room(&room("dev", None)).await.unwrap();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::task::spawn_blocking(move || held.recv());
        let mut running = pin!(store.list_rooms(None, 10, 0));
        let mut queued = pin!(store.list_rooms(None, 10, 0));
        assert!(poll!(&mut running).is_pending(), "holds the one reader");
        assert!(poll!(&mut queued).is_pending(), "waits in the queue");
        let refused = store.list_rooms(None, 10, 0).now_or_never();
        let Some(Err(err)) = refused else {
            panic!("a third read must be refused at once, not queued");
        };
        assert!(matches!(err, StoreError::Busy(2)), "{err:?}");
        assert_eq!(err.to_string(), "too many reads in flight (limit 2)");
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        assert_eq!(running.await.unwrap().total, 1);
        assert_eq!(queued.await.unwrap().total, 1);
        let after = store.list_rooms(None, 10, 0).await.unwrap();
        assert_eq!(after.total, 1, "the pool serves again once reads finish");
    });
}

/// The first schema's tables, as huddle wrote them before schema versions existed.
const FIRST_SCHEMA: &str = "
    CREATE TABLE rooms (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, password_hash TEXT,
        description TEXT NOT NULL, kind TEXT NOT NULL, created_at INTEGER NOT NULL,
        last_seq INTEGER NOT NULL, last_member INTEGER NOT NULL, epoch INTEGER NOT NULL);
    CREATE INDEX rooms_by_name ON rooms(name);
    CREATE TABLE agents (
        room_id TEXT NOT NULL, member INTEGER NOT NULL, name TEXT NOT NULL,
        role TEXT NOT NULL, joined_at INTEGER NOT NULL, token BLOB NOT NULL, endpoint TEXT,
        cursor INTEGER NOT NULL, PRIMARY KEY (room_id, member)) WITHOUT ROWID;
    CREATE TABLE messages (
        room_id TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,
        from_name TEXT NOT NULL, from_member INTEGER NOT NULL, to_name TEXT,
        to_member INTEGER, body TEXT NOT NULL, ts INTEGER NOT NULL,
        PRIMARY KEY (room_id, seq)) WITHOUT ROWID;";

/// Writes `room` (its creator plus `more` members) and `log` into `<dir>/huddle.db` the
/// way the first schema's huddle did, creating the tables if needed.
fn write_first_schema(dir: &Path, room: &Room, more: &[MemberId], log: &[Message]) {
    let c = rusqlite::Connection::open(dir.join("huddle.db")).unwrap();
    let exists: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'rooms'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if exists == 0 {
        c.execute_batch(&format!("PRAGMA journal_mode=WAL; {FIRST_SCHEMA}"))
            .unwrap();
    }
    let id = room.id.to_string();
    let last_member = more.iter().copied().max().unwrap_or(1).max(1);
    c.execute(
        "INSERT INTO rooms VALUES (?1, ?2, ?3, ?4, 'group', ?5, ?6, ?7, 0)",
        rusqlite::params![
            id,
            room.name,
            room.password_hash,
            room.description,
            room.created_at.0,
            log.last().map_or(0, |m| m.seq as i64),
            last_member as i64,
        ],
    )
    .unwrap();
    for member in std::iter::once(1).chain(more.iter().copied()) {
        c.execute(
            "INSERT INTO agents VALUES (?1, ?2, ?3, 'member', 1000, ?4, NULL, 0)",
            rusqlite::params![
                id,
                member as i64,
                format!("a{member}"),
                &[member as u8; 32][..]
            ],
        )
        .unwrap();
    }
    for m in log {
        c.execute(
            "INSERT INTO messages VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params![
                id,
                m.seq as i64,
                m.id,
                m.from,
                m.from_member as i64,
                m.to,
                m.to_member.map(|t| t as i64),
                m.body,
                m.timestamp.0,
            ],
        )
        .unwrap();
    }
}

#[tokio::test]
async fn a_file_of_the_first_schema_opens_with_identical_answers() {
    let dir = tempfile::tempdir().unwrap();
    let dev = room("dev", None);
    let ops = room("ops", None);
    let secret = room("secret", Some("$argon2id$x"));
    let dev_log: Vec<Message> = [
        (1, None),
        (2, Some(3)),
        (3, Some(2)),
        (1, None),
        (4, Some(4)),
    ]
    .iter()
    .enumerate()
    .map(|(i, (from, to))| message(dev.id, i as u64 + 1, *from, *to))
    .collect();
    let ops_log = vec![message(ops.id, 1, 1, None), message(ops.id, 2, 1, Some(2))];
    write_first_schema(dir.path(), &dev, &[2, 3, 4], &dev_log);
    write_first_schema(dir.path(), &ops, &[2], &ops_log);
    write_first_schema(dir.path(), &secret, &[], &[]);

    let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
    let page = store.list_rooms(None, 10, 0).await.unwrap();
    let listed: Vec<_> = page
        .rooms
        .iter()
        .map(|r| (r.name.as_str(), r.agents))
        .collect();
    assert_eq!(listed, [("dev", 4), ("ops", 2)], "member counts backfilled");
    assert_eq!(page.total, 2);
    assert_reads_match(&store, dev.id, &dev_log, 5).await;
    assert_reads_match(&store, ops.id, &ops_log, 3).await;

    // The backfilled counts go on from where they were.
    let (_, epoch) = store.acquire(dev.id).await.unwrap().unwrap();
    let mut dev_log = dev_log;
    dev_log.push(message(dev.id, 6, 2, Some(3)));
    dev_log.push(message(dev.id, 7, 0, None));
    let events = vec![
        Event::Posted(dev_log[5].clone()),
        Event::Left { member: 4 },
        Event::Posted(dev_log[6].clone()),
    ];
    store.append(dev.id, epoch, events).await.unwrap();
    assert_eq!(agents_listed(&store, "dev").await, 3);
    assert_reads_match(&store, dev.id, &dev_log, 5).await;

    // Opening again does not run the migration twice.
    drop(store);
    let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
    assert_eq!(agents_listed(&store, "dev").await, 3);
    assert_reads_match(&store, dev.id, &dev_log, 5).await;
}

#[test]
fn a_file_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(dir.path(), Durability::Process).unwrap());
    let c = rusqlite::Connection::open(dir.path().join("huddle.db")).unwrap();
    c.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(c);
    let err = EmbeddedStore::open(dir.path(), Durability::Process)
        .err()
        .expect("a file written by a newer huddle must not be opened");
    assert!(err.to_string().contains("schema version 99"), "{err}");
}
