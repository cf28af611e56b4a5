//! What is particular to the PostgreSQL store: its bounded pool, staying up while the
//! server is away, schema versions shared by several nodes, `sslmode`, and its writer
//! lanes and their batches.

mod common;

use std::future::Future;
use std::pin::{Pin, pin};

use common::*;
use futures::{FutureExt, poll};
use huddle_core::{MemberId, Room, RoomId, Seq};
use huddle_store::testing::TestPostgres;
use huddle_store::{Epoch, LogRange, PostgresOptions, PostgresStore, RoomStore, StoreError};

/// A store on `url` with the default options.
async fn connect(url: &str) -> PostgresStore {
    PostgresStore::connect(url, PostgresOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_pool_and_its_queue_are_refused_naming_the_limit() {
    let pg = TestPostgres::start();
    let options = PostgresOptions {
        pool: 1,
        read_queue: 1,
        writers: 1,
    };
    let store = PostgresStore::connect(&pg.database(), options)
        .await
        .unwrap();
    store.create_room(&room("dev", None)).await.unwrap();
    // A name lock holds the one pooled connection until dropped: no timing involved.
    let held = store.lock_name("dev").await.unwrap();
    let mut queued = pin!(store.list_rooms(None, page_of(10, 0)));
    assert!(poll!(&mut queued).is_pending(), "waits for the connection");
    let Some(Err(refused)) = store.rooms_named("dev").now_or_never() else {
        panic!("a third request must be refused at once, not queued");
    };
    assert!(matches!(refused, StoreError::Busy(2)), "{refused:?}");
    assert_eq!(refused.to_string(), "too many reads in flight (limit 2)");
    drop(held);
    assert_eq!(queued.await.unwrap().total, 1, "the queued read ran");
    assert_eq!(
        store.list_rooms(None, page_of(10, 0)).await.unwrap().total,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_errors_while_the_server_is_away_and_recovers_without_restart() {
    let pg = TestPostgres::start_own();
    let store = PostgresStore::connect(&pg.database(), PostgresOptions::default())
        .await
        .unwrap();
    let r = room("dev", None);
    store.create_room(&r).await.unwrap();
    let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    store
        .append(r.id, epoch, vec![msg(r.id, 1, 1, None)])
        .await
        .unwrap();

    pg.stop();
    let read = store
        .messages_after(LogRange::all(r.id, Seq::ZERO, 10))
        .await
        .unwrap_err();
    assert!(read.to_string().contains("PostgreSQL"), "{read}");
    let write = store
        .append(r.id, epoch, vec![msg(r.id, 2, 1, None)])
        .await
        .unwrap_err();
    assert!(matches!(write, StoreError::Backend(_)), "{write:?}");
    assert!(write.to_string().contains("PostgreSQL"), "{write}");

    pg.restart();
    store
        .append(r.id, epoch, vec![msg(r.id, 2, 1, None)])
        .await
        .unwrap();
    let log = store
        .messages_after(LogRange::all(r.id, Seq::ZERO, 10))
        .await
        .unwrap();
    assert_eq!(seqs(&log), [1, 2], "nothing lost, nothing doubled");
    assert_eq!(
        store.list_rooms(None, page_of(10, 0)).await.unwrap().total,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_migrate_once_and_a_newer_schema_is_refused() {
    let pg = TestPostgres::start();
    let url = pg.database();
    let starts = (0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PostgresStore::connect(&url, PostgresOptions::default()).await })
    });
    let stores = futures::future::join_all(starts).await;
    for s in stores {
        s.unwrap().expect("every node starts on the shared schema");
    }
    let store = connect(&url).await;
    store.create_room(&room("dev", None)).await.unwrap();
    pg.psql_on(&url, "UPDATE huddle_schema SET version = 99");
    let Err(err) = PostgresStore::connect(&url, PostgresOptions::default()).await else {
        panic!("a database of a newer schema must be refused");
    };
    let text = err.to_string();
    let ours = huddle_store::postgres::SCHEMA_VERSION;
    assert!(
        text.contains("schema version 99") && text.contains(&format!("this huddle's {ours}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_refuses_a_server_without_tls_and_disable_connects() {
    let pg = TestPostgres::start();
    let url = pg.database();
    let plain = PostgresStore::connect(&url, PostgresOptions::default()).await;
    assert!(plain.is_ok(), "sslmode=disable: {:?}", plain.err());
    let prefer = url.replace("sslmode=disable", "sslmode=prefer");
    let preferred = PostgresStore::connect(&prefer, PostgresOptions::default()).await;
    assert!(
        preferred.is_ok(),
        "prefer falls back: {:?}",
        preferred.err()
    );
    let require = url.replace("sslmode=disable", "sslmode=require");
    let Err(err) = PostgresStore::connect(&require, PostgresOptions::default()).await else {
        panic!("sslmode=require must not connect without TLS");
    };
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
    let Err(bad) = PostgresStore::connect(
        "postgres://x@h/db?sslmode=bogus",
        PostgresOptions::default(),
    )
    .await
    else {
        panic!("an unknown sslmode is refused");
    };
    assert!(bad.to_string().contains("invalid PostgreSQL URL"), "{bad}");
}

/// A plain session on `url`, outside huddle.
async fn raw_session(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// A raw session holding `room`'s row locked (`FOR UPDATE`) until it commits: the
/// writer lane that appends to the room waits for it, with whatever it batched.
struct RowLock {
    holder: tokio_postgres::Client,
    url: String,
}

impl RowLock {
    async fn take(url: &str, room: RoomId) -> Self {
        let holder = raw_session(url).await;
        holder.batch_execute("BEGIN").await.unwrap();
        let locked = holder
            .execute(
                "SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE",
                &[&room.to_string()],
            )
            .await
            .unwrap();
        assert_eq!(locked, 1);
        Self {
            holder,
            url: url.to_owned(),
        }
    }

    /// Returns once a huddle writer waits for this lock. Asked from a session of its
    /// own: inside the holder's transaction, `pg_stat_activity` stays as it was at the
    /// transaction's first look at it.
    async fn until_waited_for(&self) {
        let watcher = raw_session(&self.url).await;
        let sql = "SELECT count(*) FROM pg_stat_activity
                   WHERE application_name = 'huddle' AND wait_event_type = 'Lock'
                     AND datname = current_database()";
        while watcher.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    async fn release(self) {
        self.holder.batch_execute("COMMIT").await.unwrap();
    }
}

type Pending<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_append_in_a_batch_of_many_rooms_does_not_fail_its_neighbours() {
    let pg = TestPostgres::start();
    let url = pg.database();
    let options = PostgresOptions {
        writers: 1, // every room on one lane: the appends below make one batch
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect(&url, options).await.unwrap();
    let mut rooms = Vec::new();
    for name in ["blocker", "dup", "good", "fenced"] {
        let r = room(name, None);
        store.create_room(&r).await.unwrap();
        let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
        rooms.push((r.id, epoch));
    }
    let [(blocker, be), (dup, de), (good, ge), (fenced, fe)] = rooms[..] else {
        unreachable!()
    };
    store
        .append(dup, de, vec![msg(dup, 1, 1, None)])
        .await
        .unwrap();

    let lock = RowLock::take(&url, blocker).await;
    let mut first = pin!(store.append(blocker, be, vec![msg(blocker, 1, 1, None)]));
    assert!(poll!(&mut first).is_pending());
    lock.until_waited_for().await;
    // Queued behind the waiting transaction: the writer takes them as one batch.
    let mut batch: Vec<Pending<'_>> = vec![
        Box::pin(store.append(dup, de, vec![joined(2), msg(dup, 1, 1, None)])),
        Box::pin(store.append(dup, de, vec![msg(dup, 2, 1, None)])),
        Box::pin(store.append(good, ge, vec![msg(good, 1, 1, None)])),
        Box::pin(store.append(fenced, fe + 1, vec![msg(fenced, 1, 1, None)])),
        Box::pin(store.append(good, ge, vec![msg(good, 2, 1, Some(1))])),
    ];
    for append in &mut batch {
        assert!(poll!(append.as_mut()).is_pending(), "queued");
    }
    lock.release().await;
    first.await.unwrap();
    let results = futures::future::join_all(batch).await;

    assert!(results[0].is_err(), "a seq already in the log is refused");
    results[1]
        .as_ref()
        .expect("the room's next append still applies");
    results[2].as_ref().expect("another room's append applies");
    let refused = results[3].as_ref().unwrap_err();
    assert!(matches!(refused, StoreError::Fenced(..)), "{refused:?}");
    results[4].as_ref().expect("and that room's next one");
    for (room, want) in [
        (blocker, &[1][..]),
        (dup, &[1, 2]),
        (good, &[1, 2]),
        (fenced, &[]),
    ] {
        let log = store
            .messages_after(LogRange {
                room,
                viewer: Some(MemberId::new(1)),
                after: Seq::ZERO,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(seqs(&log), want);
    }
    assert_eq!(
        agents_listed(&store, "dup").await,
        1,
        "the refused join left nothing"
    );
    let (state, _) = store.acquire(good).await.unwrap().unwrap();
    assert_eq!(state.last_seq, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_held_up_on_a_row_lock_does_not_hold_up_other_rooms() {
    let pg = TestPostgres::start();
    let url = pg.database();
    let store = connect(&url).await;
    let rooms = taken_rooms(&store, "r", 21).await;
    let (held, held_epoch) = rooms[0];
    let lock = RowLock::take(&url, held).await;
    let mut first = pin!(store.append(held, held_epoch, vec![msg(held, 1, 1, None)]));
    assert!(poll!(&mut first).is_pending());
    lock.until_waited_for().await;
    // Every other room, one append each and then a second: none waits for the held one.
    for n in 1..=2 {
        let others = rooms[1..]
            .iter()
            .map(|&(id, epoch)| store.append(id, epoch, vec![msg(id, n, 1, None)]));
        let all = futures::future::join_all(others);
        let Ok(done) = tokio::time::timeout(std::time::Duration::from_secs(60), all).await else {
            panic!("another room's append waited for the held room's commit");
        };
        for result in done {
            result.unwrap();
        }
    }
    assert!(poll!(&mut first).is_pending(), "the held room still waits");
    lock.release().await;
    first.await.unwrap();
    for &(id, _) in &rooms {
        let (state, _) = store.acquire(id).await.unwrap().unwrap();
        assert_eq!(state.last_seq, if id == held { 1 } else { 2 });
    }
}

/// A node's store on a runtime of its own, on one thread: blocking that thread stops the
/// node the way `SIGSTOP` does, its connections open and its transactions where they are.
struct Stoppable {
    handle: tokio::runtime::Handle,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stoppable {
    fn start() -> Self {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (shutdown, until) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            handle_tx.send(rt.handle().clone()).unwrap();
            rt.block_on(async move {
                let _ = until.await;
            });
        });
        Self {
            handle: handle_rx.recv().unwrap(),
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// A store on `url` (the default options), living on the node.
    async fn connect(&self, url: &str) -> PostgresStore {
        let url = url.to_owned();
        self.run(async move { connect(&url).await }).await
    }

    /// Runs `work` on the node.
    async fn run<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> T {
        self.handle.spawn(work).await.unwrap()
    }

    /// Stops the node's thread; it runs again when the returned sender is used or dropped.
    async fn stop(&self) -> std::sync::mpsc::Sender<()> {
        let (resume, stopped) = std::sync::mpsc::channel::<()>();
        let (is_stopped, has_stopped) = tokio::sync::oneshot::channel();
        self.handle.spawn(async move {
            let _ = is_stopped.send(());
            let _ = stopped.recv();
        });
        has_stopped.await.unwrap();
        resume
    }
}

/// A fresh database, and a node on it that the test can stop. Fields drop in order: the
/// node (and its store's tasks) before the server.
struct OnStoppable {
    node: Stoppable,
    store: PostgresStore,
    url: String,
    _pg: TestPostgres,
}

async fn stoppable_node() -> OnStoppable {
    let pg = TestPostgres::start();
    let url = pg.database();
    let node = Stoppable::start();
    let store = node.connect(&url).await;
    OnStoppable {
        node,
        store,
        url,
        _pg: pg,
    }
}

impl Drop for Stoppable {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A node stopped in the middle of a commit (after its row lock, before its writes) would
/// keep the room's row locked while it is stopped, and the room's next owner could not
/// take it. The server ends that idle transaction: the next owner takes the room, and the
/// stopped node's append, once it runs again, is refused (never acknowledged, nothing of
/// it in the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_in_the_middle_of_a_commit_does_not_keep_the_room_locked() {
    let setup = stoppable_node().await;
    let (node, stopped, url) = (&setup.node, &setup.store, &setup.url);
    let r = room("dev", None);
    let (store, created) = (stopped.clone(), r.clone());
    node.run(async move { store.create_room(&created).await })
        .await
        .unwrap();
    let store = stopped.clone();
    let (_, epoch) = node
        .run(async move { store.acquire(r.id).await })
        .await
        .unwrap()
        .unwrap();
    // The room's first append after it was taken goes the locking way: the lock, then
    // the writes. Hold the row so that the node's transaction waits at the lock.
    let lock = RowLock::take(url, r.id).await;
    let store = stopped.clone();
    let append = node
        .handle
        .spawn(async move { store.append(r.id, epoch, vec![msg(r.id, 1, 1, None)]).await });
    lock.until_waited_for().await;
    let resume = node.stop().await;
    // The node's lock statement now returns, to a node that cannot send its writes.
    lock.release().await;
    let next = connect(url).await;
    let taken = tokio::time::timeout(std::time::Duration::from_secs(60), next.acquire(r.id))
        .await
        .expect("the next owner waited for the stopped node's transaction")
        .unwrap()
        .expect("the room is there");
    assert!(taken.1 > epoch, "the next owner holds a newer epoch");
    drop(resume);
    let late = append.await.unwrap();
    assert!(
        late.is_err(),
        "an append whose transaction the server ended was acknowledged"
    );
    let log = next
        .messages_after(LogRange::all(r.id, Seq::ZERO, 10))
        .await
        .unwrap();
    assert!(
        log.is_empty(),
        "the stopped node's append was written: {log:?}"
    );
}

/// A node stopped while it holds a name lock (in the middle of a room creation) would
/// keep every creation of that name, on every node, waiting for as long as it is
/// stopped. The server ends its idle transaction: the next creation goes ahead, and the
/// stopped node's creation is refused when it runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_while_it_holds_a_name_lock_does_not_keep_the_name_locked() {
    let setup = stoppable_node().await;
    let (node, url) = (&setup.node, &setup.url);
    let stopped = setup.store.clone();
    let held = node
        .run(async move { stopped.lock_name("dev").await })
        .await
        .unwrap();
    let resume = node.stop().await;
    let next = connect(url).await;
    let mut lock = tokio::time::timeout(std::time::Duration::from_secs(90), next.lock_name("dev"))
        .await
        .expect("the next creation waited for the stopped node's name lock")
        .unwrap();
    assert!(lock.rooms_named().await.unwrap().is_empty());
    let created = room("dev", None);
    lock.create_room(&created).await.unwrap();
    drop(resume);
    let late = node
        .run(async move { held.create_room(&room("dev", None)).await })
        .await;
    assert!(
        late.is_err(),
        "a creation whose transaction the server ended went through"
    );
    let named = next.rooms_named("dev").await.unwrap();
    assert_eq!(
        named.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![created.id]
    );
}

/// Two stores (two nodes) on one database, and a room the first one holds.
async fn two_writers_on_one_room() -> (TestPostgres, PostgresStore, PostgresStore, Room, Epoch) {
    let pg = TestPostgres::start();
    let url = pg.database();
    let a = connect(&url).await;
    let b = connect(&url).await;
    let r = room("dev", None);
    a.create_room(&r).await.unwrap();
    let (_, epoch) = a.acquire(r.id).await.unwrap().unwrap();
    (pg, a, b, r, epoch)
}

/// A lane remembers each room row as its last commit left it, to write the next plain
/// append without locking the row first. Two writers appending under one epoch (which
/// nothing in the store forbids) make that memory stale: the counts must stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_stay_exact_when_another_writer_moved_a_row_a_lane_remembers() {
    let (_pg, a, b, r, epoch) = two_writers_on_one_room().await;
    for seq in [1, 2] {
        a.append(r.id, epoch, vec![msg(r.id, seq, 1, None)])
            .await
            .unwrap();
    }
    let behind_a = vec![msg(r.id, 3, 1, Some(2)), msg(r.id, 4, 1, None)];
    b.append(r.id, epoch, behind_a).await.unwrap();
    a.append(r.id, epoch, vec![msg(r.id, 5, 1, None)])
        .await
        .unwrap();
    a.append(r.id, epoch, vec![msg(r.id, 6, 1, None)])
        .await
        .unwrap();

    let outsider = MemberId::new(3);
    let (page, total) = a.history(history_of(r.id, outsider, 10, 0)).await.unwrap();
    assert_eq!((seqs(&page), total), (vec![1, 2, 4, 5, 6], 5));
    let (page, total) = a
        .history(history_of(r.id, MemberId::new(2), 2, 4))
        .await
        .unwrap();
    assert_eq!((seqs(&page), total), (vec![1, 2], 6));
    let (state, _) = a.acquire(r.id).await.unwrap().unwrap();
    assert_eq!(state.last_seq, 6);
}

/// The same as the test above, at once: two writers append to one room concurrently, each
/// a batch of one room, which takes the row's lock with its update (no lock statement
/// before it). Whichever commits second finds the counts it remembered moved and redoes
/// its append the locking way: no count is lost, no append fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_to_one_room_keep_its_counts_exact() {
    let (_pg, a, b, r, epoch) = two_writers_on_one_room().await;
    let writer = |store: PostgresStore, first: u64| async move {
        for seq in (first..=40).step_by(2) {
            store
                .append(r.id, epoch, vec![msg(r.id, seq, 1, None)])
                .await
                .unwrap();
        }
    };
    futures::join!(writer(a.clone(), 1), writer(b, 2));
    let (page, total) = a
        .history(history_of(r.id, MemberId::new(2), 100, 0))
        .await
        .unwrap();
    assert_eq!(total, 40);
    assert_eq!(seqs(&page), (1..=40).collect::<Vec<_>>());
    let (state, _) = a.acquire(r.id).await.unwrap().unwrap();
    assert_eq!(state.last_seq, 40);
}
