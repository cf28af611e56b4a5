//! What is particular to the embedded store: its reader pool and queue, and opening
//! files written by older schemas (the first one, before schema versions; version 2,
//! before idempotency keys). The promises every backend keeps are in `contract.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use futures::{FutureExt, poll};
use huddle_core::{Event, MemberId, Message, Room};
use huddle_store::{
    Durability, EmbeddedOptions, EmbeddedStore, LogRange, RoomStore, SentKey, StoreError,
};
use proptest::prelude::*;

/// Appends `log` to a fresh room in batches cut at `cuts`, then checks every read against
/// the reference. With `legacy` set, the first `legacy` messages are written by the
/// first schema, and the store migrates the file when it opens it.
fn check_random_log(pairs: &[(u64, Option<u64>)], cuts: &[usize], legacy: usize) {
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

    /// Senders 0..4 (0 is the room-bot), about half the messages DMs among members 1..4,
    /// the first part written by the first schema (the contract suite covers the rest).
    #[test]
    fn history_pages_match_the_reference_after_migrating_a_first_schema_file(
        pairs in prop::collection::vec((0u64..5, prop::option::weighted(0.5, 1u64..5)), 0..120),
        cuts in prop::collection::vec(1usize..40, 0..4),
        legacy in 1usize..120,
    ) {
        check_random_log(&pairs, &cuts, legacy);
    }
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
        let mut running = pin!(store.list_rooms(None, page_of(10, 0)));
        let mut queued = pin!(store.list_rooms(None, page_of(10, 0)));
        assert!(poll!(&mut running).is_pending(), "holds the one reader");
        assert!(poll!(&mut queued).is_pending(), "waits in the queue");
        let refused = store.list_rooms(None, page_of(10, 0)).now_or_never();
        let Some(Err(err)) = refused else {
            panic!("a third read must be refused at once, not queued");
        };
        assert!(matches!(err, StoreError::Busy(2)), "{err:?}");
        assert_eq!(err.to_string(), "too many reads in flight (limit 2)");
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        assert_eq!(running.await.unwrap().total, 1);
        assert_eq!(queued.await.unwrap().total, 1);
        let after = store.list_rooms(None, page_of(10, 0)).await.unwrap();
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
fn write_first_schema(dir: &Path, room: &Room, more: &[u64], log: &[Message]) {
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
            log.last().map_or(0, |m| m.seq.get() as i64),
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
                m.seq.get() as i64,
                m.id,
                m.from,
                m.from_member.get() as i64,
                m.to,
                m.to_member.map(|t| t.get() as i64),
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
    let page = store.list_rooms(None, page_of(10, 0)).await.unwrap();
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
        Event::Left {
            member: MemberId::new(4),
        },
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

/// Turns the current file in `dir` into a file of schema version 2 (before idempotency
/// keys): the same tables without the key column and its index, and with the index of
/// broadcasts that version 4 dropped.
fn downgrade_to_version_2(dir: &Path) {
    let c = rusqlite::Connection::open(dir.join("huddle.db")).unwrap();
    c.execute_batch(
        "DROP INDEX messages_keys;
         ALTER TABLE messages DROP COLUMN key;
         CREATE INDEX messages_broadcasts ON messages(room_id, seq) WHERE to_member IS NULL;
         PRAGMA user_version = 2;",
    )
    .unwrap();
}

/// Whether the file in `dir` has an index of that name.
fn has_index(dir: &Path, name: &str) -> bool {
    let c = rusqlite::Connection::open(dir.join("huddle.db")).unwrap();
    c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        > 0
}

#[tokio::test]
async fn a_file_of_version_2_gains_idempotency_keys_drops_the_broadcast_index_and_keeps_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let r = room("dev", None);
    let old = vec![message(r.id, 1, 1, None), message(r.id, 2, 1, Some(2))];
    {
        let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
        store.create_room(&r).await.unwrap();
        let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
        let events = std::iter::once(joined(2))
            .chain(old.iter().cloned().map(Event::Posted))
            .collect();
        store.append(r.id, epoch, events).await.unwrap();
    }
    downgrade_to_version_2(dir.path());
    let c = rusqlite::Connection::open(dir.path().join("huddle.db")).unwrap();
    let columns: i64 = c
        .query_row(
            "SELECT count(*) FROM pragma_table_info('messages') WHERE name = 'key'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(columns, 0, "a version 2 file has no key column");
    drop(c);
    assert!(has_index(dir.path(), "messages_broadcasts"));

    let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
    assert!(
        !has_index(dir.path(), "messages_broadcasts"),
        "every send paid for an index that nothing reads any more"
    );
    assert_reads_match(&store, r.id, &old, 3).await;
    let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    let sent = Message {
        key: Some("k".into()),
        ..message(r.id, 3, 2, None)
    };
    store
        .append(r.id, epoch, vec![Event::Posted(sent.clone())])
        .await
        .unwrap();
    assert_eq!(
        store
            .sent_with_key(SentKey {
                room: r.id,
                sender: MemberId::new(2),
                key: "k"
            })
            .await
            .unwrap(),
        Some(sent)
    );
    assert_eq!(
        store
            .sent_with_key(SentKey {
                room: r.id,
                sender: MemberId::new(1),
                key: "k"
            })
            .await
            .unwrap(),
        None
    );
    let again = Message {
        key: Some("k".into()),
        ..message(r.id, 4, 2, None)
    };
    let refused = store.append(r.id, epoch, vec![Event::Posted(again)]).await;
    assert!(
        refused.is_err(),
        "the key is unique per sender after migrating"
    );
}

/// A store in a new directory, holding one room acquired for writing (and its epoch).
async fn open_with_a_room(
    durability: Durability,
) -> (tempfile::TempDir, EmbeddedStore, Room, huddle_store::Epoch) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), durability).unwrap();
    let r = room("dev", None);
    store.create_room(&r).await.unwrap();
    let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    (dir, store, r, epoch)
}

/// The writer leaves checkpoints to a thread of its own (so a commit never waits for
/// one): with that thread broken, the log would grow for as long as the node runs and
/// the database file would never receive the messages. Here 4 MB of messages go through
/// the log, and the file must come to hold them while the store stays open.
#[tokio::test]
async fn the_log_is_copied_into_the_database_file_while_the_store_runs() {
    let (dir, store, r, epoch) = open_with_a_room(Durability::Process).await;
    let text = "x".repeat(1000);
    let mut seq = 0;
    for _ in 0..16 {
        let events = (0..250)
            .map(|_| {
                seq += 1;
                let mut m = message(r.id, seq, 1, None);
                m.body = text.clone();
                Event::Posted(m)
            })
            .collect();
        store.append(r.id, epoch, events).await.unwrap();
    }
    let file = dir.path().join("huddle.db");
    let written = 16 * 250 * text.len() as u64;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let size = std::fs::metadata(&file).unwrap().len();
        if size >= written {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after 30 s the database file holds {size} bytes of the {written} written to the log"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Another connection to the file (an operator's `sqlite3`, a `huddle store copy`) may
/// hold the write lock for a moment: an append then waits for it, as SQLite's busy
/// timeout promises, rather than failing (which would stop the room and answer its
/// callers `Service unavailable`). The writer takes the lock before it reads, since
/// SQLite refuses a read transaction's upgrade to a write at once. And the writer is a
/// task on the runtime the store was opened on (here the test's only thread): while it
/// waits for the lock it must leave that thread free, so a read, and everything else on
/// the runtime, goes on meanwhile.
#[tokio::test]
async fn an_append_waits_out_another_connections_brief_write_lock_leaving_the_runtime_free() {
    waits_out_a_brief_write_lock(Durability::Process).await;
}

/// With `--fsync` the writer has a thread of its own (a commit waits for the disk), and
/// waits for the lock there, on that thread's timer.
#[tokio::test]
async fn with_fsync_an_append_waits_out_a_brief_write_lock_on_the_writers_own_thread() {
    let _open = waits_out_a_brief_write_lock(Durability::Power).await;
    // While the store is open, what `top -H` shows an operator: the writer's thread (names are cut to 15 bytes).
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .collect();
    assert!(
        threads.iter().any(|name| name.trim() == "huddle-store-wr"),
        "no writer thread of its own with --fsync: {threads:?}"
    );
}

/// A burst over many rooms makes one batch far larger than usual, and its commit long.
/// On the runtime worker it runs on, it would hold back every task queued there. Here the
/// runtime has a single worker, and a task watching the file must get its turn while that
/// commit holds the write lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_long_commit_leaves_the_runtime_serving_other_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
    let rooms = taken_rooms(&store, "burst-", 64).await;
    let done = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(saw_a_commit_running(
        dir.path().join("huddle.db"),
        done.clone(),
    ));
    let appends = rooms.iter().map(|(id, epoch)| {
        let events = (1..=512).map(|seq| msg(*id, seq, 1, None)).collect();
        store.append(*id, *epoch, events)
    });
    for appended in futures::future::join_all(appends).await {
        appended.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(
        watcher.await.unwrap(),
        "no other task ran while the long commit held the write lock"
    );
}

/// Whether this task found the store's write lock taken before `done`: it sees that only
/// if it runs while a commit does.
async fn saw_a_commit_running(file: PathBuf, done: Arc<AtomicBool>) -> bool {
    let c = rusqlite::Connection::open(file).unwrap();
    c.busy_timeout(std::time::Duration::ZERO).unwrap();
    while !done.load(Ordering::Relaxed) {
        match c.execute_batch("BEGIN IMMEDIATE") {
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                return true;
            }
            began => {
                began.unwrap();
                c.execute_batch("ROLLBACK").unwrap();
            }
        }
        tokio::task::yield_now().await;
    }
    false
}

/// A single-threaded runtime (tests, tools) has no other worker to hand a long commit's
/// tasks to: the commit runs where it is, and commits.
#[tokio::test]
async fn a_long_commit_on_a_single_threaded_runtime_commits_in_place() {
    let (_dir, store, r, epoch) = open_with_a_room(Durability::Process).await;
    let events = (1..=1000).map(|seq| msg(r.id, seq, 1, None)).collect();
    store
        .append(r.id, epoch, events)
        .await
        .expect("a long commit on a single-threaded runtime");
    let last = store
        .messages_after(LogRange::all(r.id, huddle_core::Seq::new(999), 10))
        .await
        .unwrap();
    assert_eq!(seqs(&last), [1000]);
}

/// Returns the store, still open.
async fn waits_out_a_brief_write_lock(
    durability: Durability,
) -> (tempfile::TempDir, EmbeddedStore) {
    let (dir, store, r, epoch) = open_with_a_room(durability).await;
    let lock = rusqlite::Connection::open(dir.path().join("huddle.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let append = store.append(r.id, epoch, vec![Event::Posted(message(r.id, 1, 1, None))]);
    let mut append = pin!(append);
    assert!(poll!(append.as_mut()).is_pending());
    // The writer's turn comes while this thread waits for the read: it finds the lock
    // taken, and must not wait for it here.
    let log = store
        .messages_after(LogRange::all(r.id, huddle_core::Seq::ZERO, 10))
        .await
        .unwrap();
    assert!(log.is_empty(), "nothing is written under another's lock");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        poll!(append.as_mut()).is_pending(),
        "the append failed under another's lock (or gave up on it while holding the thread)"
    );
    lock.execute_batch("COMMIT").unwrap();
    append
        .await
        .expect("the append waits for the lock, then commits");
    let log = store
        .messages_after(LogRange::all(r.id, huddle_core::Seq::ZERO, 10))
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    (dir, store.clone())
}
