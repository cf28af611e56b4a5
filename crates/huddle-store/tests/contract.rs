//! The store contract, run against every backend: fencing, durability across reopen,
//! privacy in reads, listing rules, kept counts and cursors, history pages equal to a
//! brute-force reference, idempotency keys, the `(room, seq)` guard, and creations of
//! one name serialised by `lock_name`.
//!
//! Each contract is one `async fn(&Backend)`; `contract!` runs each against SQLite
//! (a temporary data dir) and PostgreSQL (a new database on a throwaway server, see
//! `huddle_store::testing`).

mod common;

use std::sync::{Arc, Mutex, Weak};

use common::*;
use huddle_core::{Event, MemberId, Message, RoomId, RoomType, Seq, TokenDigest};
use huddle_store::testing::TestPostgres;
use huddle_store::{
    Durability, EmbeddedStore, LogRange, PostgresOptions, PostgresStore, RoomStore, SentKey,
    StoreError,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Where a contract's data lives; `open` gives a store on it (again after a drop: a
/// restart of the node).
enum Backend {
    Embedded(tempfile::TempDir),
    Postgres {
        url: String,
        _server: Arc<TestPostgres>,
    },
}

/// One server for the tests running at once; stopped when the last one drops it.
fn shared_server() -> Arc<TestPostgres> {
    static SERVER: Mutex<Weak<TestPostgres>> = Mutex::new(Weak::new());
    let mut slot = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = slot.upgrade() {
        return s;
    }
    let s = Arc::new(TestPostgres::start());
    *slot = Arc::downgrade(&s);
    s
}

impl Backend {
    fn embedded() -> Self {
        Backend::Embedded(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Self {
        let server = shared_server();
        Backend::Postgres {
            url: server.database(),
            _server: server,
        }
    }

    async fn open(&self) -> Arc<dyn RoomStore> {
        match self {
            Backend::Embedded(dir) => {
                Arc::new(EmbeddedStore::open(dir.path(), Durability::Process).unwrap())
            }
            Backend::Postgres { url, .. } => Arc::new(
                PostgresStore::connect(url, PostgresOptions::default())
                    .await
                    .unwrap(),
            ),
        }
    }

    /// `n` handles as `n` nodes would hold them: one store shared by its clones for
    /// the embedded backend (one process owns the file), `n` stores for PostgreSQL.
    async fn nodes(&self, n: usize) -> Vec<Arc<dyn RoomStore>> {
        match self {
            Backend::Embedded(_) => vec![self.open().await; n],
            Backend::Postgres { .. } => {
                let mut nodes = Vec::new();
                for _ in 0..n {
                    nodes.push(self.open().await);
                }
                nodes
            }
        }
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Backend::embedded()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Backend::postgres()).await;
                }
            )*
        }
    };
}

contract!(
    a_writer_that_lost_the_room_can_neither_write_nor_acknowledge,
    everything_appended_is_there_after_reopen,
    reads_hide_other_peoples_dms,
    listing_shows_only_open_rooms_sorted_and_searchable,
    listed_member_counts_follow_joins_leaves_and_kicks,
    cursors_only_move_forward_and_leave_with_their_member,
    history_totals_count_what_each_member_may_see,
    history_pages_match_a_brute_force_reference,
    history_pages_match_the_reference_in_a_log_mostly_of_others_dms,
    a_message_is_found_by_its_senders_key,
    a_seq_or_key_already_in_the_log_refuses_the_whole_append,
    concurrent_creates_of_one_name_and_password_make_one_room,
    a_name_lock_released_without_creating_lets_the_next_one_in,
    any_text_a_client_may_send_is_kept_exactly,
    the_epoch_read_is_the_last_writers,
);

async fn the_epoch_read_is_the_last_writers(b: &Backend) {
    let nodes = b.nodes(2).await;
    let (a, bn) = (&nodes[0], &nodes[1]);
    let r = room("dev", None);
    assert_eq!(a.epoch(r.id).await.unwrap(), None, "no such room");
    a.create_room(&r).await.unwrap();
    let (_, first) = a.acquire(r.id).await.unwrap().unwrap();
    assert_eq!(a.epoch(r.id).await.unwrap(), Some(first));
    assert_eq!(bn.epoch(r.id).await.unwrap(), Some(first));
    let (_, second) = bn.acquire(r.id).await.unwrap().unwrap();
    assert_eq!(
        a.epoch(r.id).await.unwrap(),
        Some(second),
        "seen by the old writer"
    );
    assert_ne!(first, second);
}

async fn a_writer_that_lost_the_room_can_neither_write_nor_acknowledge(b: &Backend) {
    let nodes = b.nodes(2).await;
    let (a, bn) = (&nodes[0], &nodes[1]);
    let r = room("dev", None);
    a.create_room(&r).await.unwrap();
    let (_, old) = a.acquire(r.id).await.unwrap().unwrap();
    let (_, new) = bn.acquire(r.id).await.unwrap().unwrap();
    assert!(new > old);
    let err = a
        .append(r.id, old, vec![msg(r.id, 1, 1, None), joined(2)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced(..)), "{err}");
    bn.append(r.id, new, vec![msg(r.id, 1, 1, None)])
        .await
        .unwrap();
    let all = a
        .messages_after(LogRange::all(r.id, Seq::ZERO, 10))
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "the fenced append left nothing behind");
    assert_eq!(agents_listed(&**a, "dev").await, 1, "nor a member");
    let (state, _) = a.acquire(r.id).await.unwrap().unwrap();
    assert_eq!(state.last_seq, 1);
    let unknown = a.append(RoomId::new_random(), 1, vec![msg(r.id, 1, 1, None)]);
    assert!(matches!(unknown.await, Err(StoreError::NoSuchRoom(_))));
}

async fn everything_appended_is_there_after_reopen(b: &Backend) {
    let r = room("dev", None);
    {
        let store = b.open().await;
        store.create_room(&r).await.unwrap();
        let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
        let events = vec![
            msg(r.id, 1, 1, None),
            msg(r.id, 2, 1, None),
            Event::CursorMoved {
                member: MemberId::new(1),
                seq: Seq::new(2),
            },
            Event::Updated {
                description: Some("new".into()),
                kind: Some(RoomType::Channel),
            },
            joined(2),
            Event::RoleChanged {
                member: MemberId::new(2),
                role: huddle_core::Role::Admin,
            },
            Event::Reconnected {
                member: MemberId::new(2),
                endpoint: Some("https://example.com/hook".into()),
            },
        ];
        store.append(r.id, epoch, events).await.unwrap();
    }
    let store = b.open().await;
    let (loaded, _) = store.acquire(r.id).await.unwrap().unwrap();
    assert_eq!(loaded.last_seq, 2);
    assert_eq!(loaded.last_member, 2);
    assert_eq!(loaded.agents[0].cursor, 2);
    assert_eq!(loaded.description, "new");
    assert_eq!(loaded.kind, RoomType::Channel);
    assert_eq!(loaded.agents[0].token, TokenDigest([7; 32]));
    assert_eq!(loaded.agents[1].role, huddle_core::Role::Admin);
    assert_eq!(
        loaded.agents[1].endpoint.as_deref(),
        Some("https://example.com/hook")
    );
    let log = store
        .messages_after(LogRange::all(r.id, Seq::ZERO, 10))
        .await
        .unwrap();
    assert_eq!(
        log,
        vec![message(r.id, 1, 1, None), message(r.id, 2, 1, None)]
    );
}

async fn reads_hide_other_peoples_dms(b: &Backend) {
    let store = b.open().await;
    let r = room("dev", None);
    store.create_room(&r).await.unwrap();
    let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    let events = vec![
        msg(r.id, 1, 1, None),
        msg(r.id, 2, 1, Some(2)),
        msg(r.id, 3, 2, Some(1)),
        msg(r.id, 4, 1, None),
    ];
    store.append(r.id, epoch, events).await.unwrap();
    let after = |v| {
        store.messages_after(LogRange {
            room: r.id,
            viewer: Some(v),
            after: Seq::ZERO,
            limit: 10,
        })
    };
    assert_eq!(seqs(&after(MemberId::new(3)).await.unwrap()), [1, 4]);
    assert_eq!(seqs(&after(MemberId::new(2)).await.unwrap()), [1, 2, 3, 4]);
    let (page, total) = store
        .history(history_of(r.id, MemberId::new(3), 10, 0))
        .await
        .unwrap();
    assert_eq!((seqs(&page), total), (vec![1, 4], 2));
    let (page, total) = store
        .history(history_of(r.id, MemberId::new(1), 2, 1))
        .await
        .unwrap();
    assert_eq!(
        (seqs(&page), total),
        (vec![2, 3], 4),
        "offset skips the most recent"
    );
}

async fn listing_shows_only_open_rooms_sorted_and_searchable(b: &Backend) {
    let store = b.open().await;
    for (name, pw) in [
        ("beta", None),
        ("alpha", None),
        ("secret", Some("$argon2id$x")),
        ("al_x", None),
        ("100%", None),
        ("a\\b", None),
        ("Zeta", None),
    ] {
        store.create_room(&room(name, pw)).await.unwrap();
    }
    let page = store.list_rooms(None, page_of(10, 0)).await.unwrap();
    let names: Vec<_> = page.rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["100%", "Zeta", "a\\b", "al_x", "alpha", "beta"],
        "bytewise order, whatever the locale"
    );
    assert_eq!(page.total, 6);
    assert_eq!(page.rooms[0].agents, 1);
    let found = |s: &'static str| {
        let store = store.clone();
        async move {
            let page = store.list_rooms(Some(s), page_of(10, 0)).await.unwrap();
            let names: Vec<_> = page.rooms.into_iter().map(|r| r.name).collect();
            (names, page.total)
        }
    };
    assert_eq!(
        found("l_").await,
        (vec!["al_x".into()], 1),
        "'_' is literal"
    );
    assert_eq!(
        found("0%").await,
        (vec!["100%".into()], 1),
        "'%' is literal"
    );
    assert_eq!(
        found("\\").await,
        (vec!["a\\b".into()], 1),
        "'\\' is literal"
    );
    assert_eq!(
        found("secret").await,
        (vec![], 0),
        "protected rooms are unlisted"
    );
    let page = store.list_rooms(None, page_of(2, 3)).await.unwrap();
    let names: Vec<_> = page.rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!((names, page.total), (vec!["al_x", "alpha"], 6));
    let page = store.list_rooms(None, page_of(10, 99)).await.unwrap();
    assert_eq!((page.rooms.len(), page.total), (0, 6));
}

async fn listed_member_counts_follow_joins_leaves_and_kicks(b: &Backend) {
    let r = room("dev", None);
    {
        let store = b.open().await;
        store.create_room(&r).await.unwrap();
        assert_eq!(agents_listed(&*store, "dev").await, 1, "the creator");
        let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
        store
            .append(r.id, epoch, vec![joined(2), joined(3), joined(4)])
            .await
            .unwrap();
        assert_eq!(agents_listed(&*store, "dev").await, 4);
        // A leave and a kick are both `Left`; a kick also posts a notice.
        let events = vec![
            Event::Left {
                member: MemberId::new(2),
            },
            Event::Left {
                member: MemberId::new(3),
            },
            msg(r.id, 1, 0, None),
            joined(5),
        ];
        store.append(r.id, epoch, events).await.unwrap();
        assert_eq!(agents_listed(&*store, "dev").await, 3);
        // A batch refused by fencing moves no count.
        let refused = store.append(r.id, epoch - 1, vec![joined(6)]).await;
        assert!(matches!(refused, Err(StoreError::Fenced(..))));
        // `Left` of someone already gone removes nobody.
        store
            .append(
                r.id,
                epoch,
                vec![Event::Left {
                    member: MemberId::new(2),
                }],
            )
            .await
            .unwrap();
        assert_eq!(agents_listed(&*store, "dev").await, 3);
    }
    let store = b.open().await;
    assert_eq!(agents_listed(&*store, "dev").await, 3, "kept across reopen");
    let (loaded, _) = store.acquire(r.id).await.unwrap().unwrap();
    let members: Vec<_> = loaded.agents.iter().map(|a| a.member).collect();
    assert_eq!(members, [1, 4, 5]);
    assert_eq!(loaded.last_member, 5);
}

async fn cursors_only_move_forward_and_leave_with_their_member(b: &Backend) {
    let store = b.open().await;
    let r = room("dev", None);
    store.create_room(&r).await.unwrap();
    let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    let moved = |member, seq| Event::CursorMoved {
        member: MemberId::new(member),
        seq: Seq::new(seq),
    };
    let events = vec![joined(2), msg(r.id, 1, 1, None), msg(r.id, 2, 1, None)];
    store.append(r.id, epoch, events).await.unwrap();
    store
        .append(r.id, epoch, vec![moved(1, 2), moved(2, 1), moved(1, 1)])
        .await
        .unwrap();
    store.append(r.id, epoch, vec![moved(2, 0)]).await.unwrap();
    let (loaded, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    let cursors: Vec<_> = loaded.agents.iter().map(|a| a.cursor.get()).collect();
    assert_eq!(cursors, [2, 1], "a cursor never moves back");
    let events = vec![
        moved(2, 2),
        Event::Left {
            member: MemberId::new(2),
        },
    ];
    store.append(r.id, epoch, events).await.unwrap();
    let (loaded, _) = store.acquire(r.id).await.unwrap().unwrap();
    assert_eq!(loaded.agents.len(), 1);
}

async fn history_totals_count_what_each_member_may_see(b: &Backend) {
    let store = b.open().await;
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
        .append(
            r.id,
            epoch,
            vec![Event::Left {
                member: MemberId::new(3),
            }],
        )
        .await
        .unwrap();
    for (viewer, total) in [(1, 4), (2, 5), (3, 4), (4, 2), (0, 2)] {
        let (_, got) = store
            .history(history_of(r.id, MemberId::new(viewer), 100, 0))
            .await
            .unwrap();
        assert_eq!(got, total, "total for member {viewer}");
    }
    assert_reads_match(&*store, r.id, &log, 4).await;
    let (page, total) = store
        .history(history_of(RoomId::new_random(), MemberId::new(1), 10, 0))
        .await
        .unwrap();
    assert_eq!(
        (page.len(), total),
        (0, 0),
        "an unknown room has no history"
    );
}

/// Appends `pairs` as a log to a new room of `store` in batches cut at `cuts`, then
/// checks every read against the reference.
async fn check_random_log(store: &dyn RoomStore, pairs: &[(u64, Option<u64>)], cuts: &[usize]) {
    let r = room("dev", None);
    let log: Vec<Message> = pairs
        .iter()
        .enumerate()
        .map(|(i, (from, to))| message(r.id, i as u64 + 1, *from, *to))
        .collect();
    store.create_room(&r).await.unwrap();
    let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    let mut rest = &log[..];
    for cut in cuts {
        let (batch, tail) = rest.split_at((*cut).min(rest.len()));
        let events = batch.iter().cloned().map(Event::Posted).collect();
        store.append(r.id, epoch, events).await.unwrap();
        rest = tail;
    }
    let events = rest.iter().cloned().map(Event::Posted).collect();
    store.append(r.id, epoch, events).await.unwrap();
    assert_reads_match(store, r.id, &log, 5).await;
}

/// Senders 0..4 (0 is the room-bot), about half the messages DMs among members 1..4;
/// each case a new room of one store.
async fn history_pages_match_a_brute_force_reference(b: &Backend) {
    let store = b.open().await;
    let rt = tokio::runtime::Handle::current();
    let strategy = (
        prop::collection::vec((0u64..5, prop::option::weighted(0.5, 1u64..5)), 0..120),
        prop::collection::vec(1usize..40, 0..4),
    );
    let mut runner = TestRunner::new(Config::with_cases(24));
    let result = runner.run(&strategy, |(pairs, cuts)| {
        tokio::task::block_in_place(|| rt.block_on(check_random_log(&*store, &pairs, &cuts)));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

async fn history_pages_match_the_reference_in_a_log_mostly_of_others_dms(b: &Backend) {
    // Long runs of DMs the viewer may not see, between the few it may.
    let pairs: Vec<_> = (0..600u64)
        .map(|i| match i % 50 {
            0 => (1, None),
            7 => (3, Some(4)),
            _ => (1 + i % 2, Some(2 - i % 2)),
        })
        .collect();
    check_random_log(&*b.open().await, &pairs, &[100, 250]).await;
}

fn keyed(room: RoomId, seq: u64, from: u64, key: &str) -> Message {
    Message {
        key: Some(key.into()),
        ..message(room, seq, from, None)
    }
}

async fn a_message_is_found_by_its_senders_key(b: &Backend) {
    let r = room("dev", None);
    let sent = keyed(r.id, 2, 1, "k-1");
    {
        let store = b.open().await;
        store.create_room(&r).await.unwrap();
        let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
        let events = vec![
            joined(2),
            msg(r.id, 1, 1, None),
            Event::Posted(sent.clone()),
            Event::Posted(keyed(r.id, 3, 2, "k-1")), // another sender, same key
        ];
        store.append(r.id, epoch, events).await.unwrap();
        let found = store
            .sent_with_key(SentKey {
                room: r.id,
                sender: MemberId::new(1),
                key: "k-1",
            })
            .await
            .unwrap();
        assert_eq!(found.as_ref(), Some(&sent));
    }
    let store = b.open().await;
    let found = |member, key: &'static str| {
        store.sent_with_key(SentKey {
            room: r.id,
            sender: member,
            key,
        })
    };
    assert_eq!(
        found(MemberId::new(1), "k-1").await.unwrap(),
        Some(sent),
        "kept on reopen"
    );
    assert_eq!(
        found(MemberId::new(2), "k-1").await.unwrap().map(|m| m.seq),
        Some(Seq::new(3))
    );
    assert_eq!(found(MemberId::new(1), "k-2").await.unwrap(), None);
    assert_eq!(found(MemberId::new(3), "k-1").await.unwrap(), None);
    let other = store
        .sent_with_key(SentKey {
            room: RoomId::new_random(),
            sender: MemberId::new(1),
            key: "k-1",
        })
        .await;
    assert_eq!(other.unwrap(), None, "keys are per room");
    let log = store
        .messages_after(LogRange::all(r.id, Seq::ZERO, 10))
        .await
        .unwrap();
    assert_eq!(log[1].key.as_deref(), Some("k-1"), "reads keep the key");
}

async fn a_seq_or_key_already_in_the_log_refuses_the_whole_append(b: &Backend) {
    let store = b.open().await;
    let r = room("dev", None);
    let other = room("ops", None);
    store.create_room(&r).await.unwrap();
    store.create_room(&other).await.unwrap();
    let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    let (_, other_epoch) = store.acquire(other.id).await.unwrap().unwrap();
    store
        .append(r.id, epoch, vec![Event::Posted(keyed(r.id, 1, 1, "k"))])
        .await
        .unwrap();
    // Both refusals run in one group commit with a good append of another room.
    let (again, dup_key, fine) = tokio::join!(
        store.append(r.id, epoch, vec![joined(2), msg(r.id, 1, 1, None)]),
        store.append(r.id, epoch, vec![Event::Posted(keyed(r.id, 2, 1, "k"))]),
        store.append(other.id, other_epoch, vec![msg(other.id, 1, 1, None)]),
    );
    assert!(again.is_err(), "a seq already in the log");
    assert!(dup_key.is_err(), "a key its sender already used");
    fine.unwrap();
    let log = store
        .messages_after(LogRange::all(r.id, Seq::ZERO, 10))
        .await
        .unwrap();
    assert_eq!(seqs(&log), [1]);
    assert_eq!(agents_listed(&*store, "dev").await, 1, "the join went too");
    let (state, _) = store.acquire(r.id).await.unwrap().unwrap();
    assert_eq!(state.last_seq, 1);
    let log = store
        .messages_after(LogRange::all(other.id, Seq::ZERO, 10))
        .await
        .unwrap();
    assert_eq!(seqs(&log), [1]);
}

/// `tasks` creations of `name` with password hash `hash` racing through `lock_name`,
/// each creating only if no room of the name has that hash (the directory's rule,
/// with hashes compared as strings instead of argon2).
async fn race_creates(nodes: &[Arc<dyn RoomStore>], name: &str, hash: &str, tasks: usize) {
    let mut handles = Vec::new();
    for i in 0..tasks {
        let store = nodes[i % nodes.len()].clone();
        let (name, hash) = (name.to_string(), hash.to_string());
        handles.push(tokio::spawn(async move {
            let mut lock = store.lock_name(&name).await.unwrap();
            let existing = lock.rooms_named().await.unwrap();
            if existing
                .iter()
                .any(|r| r.password_hash.as_deref() == Some(&hash))
            {
                return false;
            }
            tokio::task::yield_now().await;
            lock.create_room(&room(&name, Some(&hash))).await.unwrap();
            true
        }));
    }
    let mut created = 0;
    for h in handles {
        created += usize::from(h.await.unwrap());
    }
    assert_eq!(created, 1, "exactly one of the racing creations of {name}");
}

async fn concurrent_creates_of_one_name_and_password_make_one_room(b: &Backend) {
    let nodes = b.nodes(3).await;
    race_creates(&nodes, "dev", "$h1", 24).await;
    race_creates(&nodes, "dev", "$h2", 24).await;
    let named = nodes[0].rooms_named("dev").await.unwrap();
    let mut hashes: Vec<_> = named
        .iter()
        .filter_map(|r| r.password_hash.clone())
        .collect();
    hashes.sort();
    assert_eq!(hashes, ["$h1", "$h2"], "one room per (name, password)");
}

async fn a_name_lock_released_without_creating_lets_the_next_one_in(b: &Backend) {
    let store = b.open().await;
    let mut lock = store.lock_name("dev").await.unwrap();
    assert!(lock.rooms_named().await.unwrap().is_empty());
    drop(lock);
    let lock = store.lock_name("dev").await.unwrap();
    lock.create_room(&room("dev", None)).await.unwrap();
    let mut lock = store.lock_name("dev").await.unwrap();
    assert_eq!(
        lock.rooms_named().await.unwrap().len(),
        1,
        "sees the creation"
    );
    // Another name is not held up by a held lock.
    let mut other = store.lock_name("ops").await.unwrap();
    assert!(other.rooms_named().await.unwrap().is_empty());
}

async fn any_text_a_client_may_send_is_kept_exactly(b: &Backend) {
    // U+0000 and friends: no validation refuses them in bodies, ids, keys, descriptions
    // or endpoints, so a store must keep them (PostgreSQL's TEXT would refuse them).
    let odd = "a\u{0}b\u{1}\u{7f}\u{fffd}é😀\\%_'\"";
    let mut r = room("dev", None);
    r.description = odd.into();
    let store = b.open().await;
    store.create_room(&r).await.unwrap();
    let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    let sent = Message {
        id: odd.into(),
        body: odd.into(),
        key: Some(odd.into()),
        ..message(r.id, 1, 1, None)
    };
    let events = vec![
        Event::Posted(sent.clone()),
        Event::Reconnected {
            member: MemberId::new(1),
            endpoint: Some(format!("https://example.com/{odd}")),
        },
        Event::Updated {
            description: Some(format!("{odd}!")),
            kind: None,
        },
    ];
    store.append(r.id, epoch, events).await.unwrap();
    let log = store
        .messages_after(LogRange {
            room: r.id,
            viewer: Some(MemberId::new(1)),
            after: Seq::ZERO,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(log, vec![sent.clone()]);
    let (page, _) = store
        .history(history_of(r.id, MemberId::new(1), 10, 0))
        .await
        .unwrap();
    assert_eq!(page, vec![sent.clone()]);
    assert_eq!(
        store
            .sent_with_key(SentKey {
                room: r.id,
                sender: MemberId::new(1),
                key: odd
            })
            .await
            .unwrap(),
        Some(sent)
    );
    let (state, _) = store.acquire(r.id).await.unwrap().unwrap();
    assert_eq!(state.description, format!("{odd}!"));
    let endpoint = state.agents[0].endpoint.clone();
    assert_eq!(endpoint, Some(format!("https://example.com/{odd}")));
    let listed = store.list_rooms(None, page_of(10, 0)).await.unwrap();
    assert_eq!(listed.rooms[0].description, format!("{odd}!"));
}
