//! Group commit under concurrency (docs/architecture.md, 'message.send over A2A'): when a
//! room's last commit answered several callers, its next commit waits, up to
//! `RoomsConfig::group_commit_wait`, until they are back next to the callers that were
//! already waiting then; a caller alone never waits, nor a send long after the last
//! commit, nor one after a wait that ran out.
//!
//! The batch of several is made certain by holding SQLite's write lock from another
//! connection: the first send's commit waits on it, and the sends behind it gather.

use std::sync::Arc;
use std::time::Duration;

use huddle_core::{AgentToken, RoomId, SendMessage, Seq};
use huddle_rooms::{RoomDirectory, RoomsConfig};
use huddle_store::{Durability, EmbeddedStore, LogRange, RoomStore};
use tokio::task::JoinHandle;

/// How long an answer may take when nothing makes it wait: far above a commit on a
/// loaded machine, far below the 60 s waits some tests configure to tell a wait from none.
const PROMPT: Duration = Duration::from_secs(5);

struct Room {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Arc<dyn RoomStore>,
    rooms: Arc<RoomDirectory>,
    id: RoomId,
    alice: AgentToken,
}

async fn room(wait: Duration) -> Room {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RoomStore> =
        Arc::new(EmbeddedStore::open(dir.path(), Durability::Process).unwrap());
    let config = RoomsConfig {
        group_commit_wait: wait,
        ..RoomsConfig::default()
    };
    let rooms = Arc::new(RoomDirectory::new(store.clone(), config));
    let (id, alice) = huddle_rooms::testing::room(&rooms).await;
    Room {
        path: dir.path().join("huddle.db"),
        _dir: dir,
        store,
        rooms,
        id,
        alice,
    }
}

impl Room {
    fn send(&self, body: &str) -> JoinHandle<Seq> {
        let (rooms, id) = (self.rooms.clone(), self.id);
        let op = SendMessage {
            token: self.alice.clone(),
            body: body.into(),
            to: None,
            key: None,
        };
        tokio::spawn(async move { rooms.ask(id, op).await.expect("the send is answered").seq })
    }

    /// One commit that answers `n` sends: a first send's commit waits on a write lock
    /// held from another connection while the others gather behind it. (A send before
    /// that makes the room active: loading it writes too.)
    async fn commit_of_several(&self, n: usize) {
        answered(PROMPT, self.send("loads the room"), "a lone caller").await;
        let lock = self.lock();
        let first = self.send("first");
        // The first send's commit is now waiting on the lock; these gather behind it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rest: Vec<_> = (0..n)
            .map(|i| self.send(&format!("gathered {i}")))
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(lock);
        all_answered(PROMPT, std::iter::once(first).chain(rest)).await;
    }

    /// Holds the write lock from another connection until the value is dropped.
    fn lock(&self) -> WriteLock {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        WriteLock(conn)
    }

    async fn stored(&self) -> usize {
        self.store
            .messages_after(LogRange::all(self.id, Seq::ZERO, 1000))
            .await
            .unwrap()
            .len()
    }
}

/// The seq `sent` is answered with, if it is within `within`; `what` says what a send
/// answered later (or never) would have done wrong.
async fn answered(within: Duration, sent: JoinHandle<Seq>, what: &str) -> Seq {
    tokio::time::timeout(within, sent)
        .await
        .unwrap_or_else(|_| panic!("not answered within {within:?}: {what}"))
        .expect("the send task ended with its answer")
}

/// The seqs of every send of `sent`, sorted, each answered within `within`.
async fn all_answered(
    within: Duration,
    sent: impl IntoIterator<Item = JoinHandle<Seq>>,
) -> Vec<Seq> {
    let mut seqs = Vec::new();
    for sent in sent {
        seqs.push(answered(within, sent, "the send waited although its commit could go").await);
    }
    seqs.sort();
    seqs
}

struct WriteLock(rusqlite::Connection);

impl Drop for WriteLock {
    fn drop(&mut self) {
        self.0.execute_batch("COMMIT").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_commit_of_several_a_send_waits_for_as_many_callers() {
    let room = room(Duration::from_secs(60)).await;
    room.commit_of_several(4).await;
    assert_eq!(room.stored().await, 6);

    let lone = room.send("lone");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !lone.is_finished(),
        "the send is answered at once, although the last commit answered four callers"
    );
    // The three that complete the four: the commit goes without waiting any longer.
    let others: Vec<_> = (0..3).map(|i| room.send(&format!("other {i}"))).collect();
    let seqs = all_answered(PROMPT, std::iter::once(lone).chain(others)).await;
    assert_eq!(seqs, (7..=10).map(Seq::new).collect::<Vec<_>>());
    assert_eq!(room.stored().await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_for_callers_ends_when_its_time_is_up() {
    let room = room(Duration::from_secs(1)).await;
    room.commit_of_several(4).await;
    let lone = room.send("lone");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!lone.is_finished(), "the send is answered without waiting");
    // Nobody else comes: the lone send is committed once the wait is over.
    let seq = answered(PROMPT, lone, "answered once the wait is over").await;
    assert_eq!(seq, Seq::new(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_alone_never_waits() {
    let room = room(Duration::from_secs(60)).await;
    for i in 1..=3 {
        let seq = answered(
            PROMPT,
            room.send(&format!("one by one {i}")),
            "a lone caller is answered without waiting",
        )
        .await;
        assert_eq!(seq, Seq::new(i));
    }
}

/// The callers that gathered while a commit ran wait, next to it, for the callers it
/// answered: four answered and two waiting make six expected, not four. A commit slower
/// than the wait (a slow disk, a remote store) changes nothing: without the wait the two
/// groups would take turns, each commit carrying one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_waiting_during_a_commit_wait_for_those_it_answered() {
    let wait = Duration::from_secs(2);
    let room = room(wait).await;
    room.commit_of_several(4).await;
    // Four callers make the next commit (as many as the last one answered); the write
    // lock holds it for longer than the wait while two more callers gather.
    let lock = room.lock();
    let four: Vec<_> = (0..4).map(|i| room.send(&format!("four {i}"))).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let gathered: Vec<_> = (0..2)
        .map(|i| room.send(&format!("gathered {i}")))
        .collect();
    tokio::time::sleep(wait + Duration::from_millis(500)).await;
    drop(lock);
    all_answered(PROMPT, four).await;
    // Two of the four are back: four callers wait, as many as the last commit answered,
    // but six are expected.
    let back: Vec<_> = (0..2).map(|i| room.send(&format!("back {i}"))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        gathered.iter().chain(&back).all(|s| !s.is_finished()),
        "the callers were answered before those of the last commit were back"
    );
    // The other two: the commit goes without waiting any longer.
    let last: Vec<_> = (0..2).map(|i| room.send(&format!("last {i}"))).collect();
    let seqs = all_answered(wait / 2, gathered.into_iter().chain(back).chain(last)).await;
    assert_eq!(seqs, (11..=16).map(Seq::new).collect::<Vec<_>>());
}

/// A wait that ran out means the callers did not come back: the commit after it does
/// not wait for the ones it answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_wait_that_ran_out_a_send_does_not_wait() {
    let wait = Duration::from_secs(1);
    let room = room(wait).await;
    room.commit_of_several(4).await;
    // Two of the four come back; the wait for the others runs out.
    let two: Vec<_> = (0..2).map(|i| room.send(&format!("two {i}"))).collect();
    all_answered(PROMPT, two).await;
    let seq = answered(
        wait / 2,
        room.send("lone"),
        "a send after a wait that ran out is answered without waiting",
    )
    .await;
    assert_eq!(seq, Seq::new(9));
}

/// The callers of a commit answered longer ago than the wait are not on their way back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_long_after_the_last_commit_does_not_wait() {
    let wait = Duration::from_secs(1);
    let room = room(wait).await;
    room.commit_of_several(4).await;
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    let seq = answered(
        wait / 2,
        room.send("lone"),
        "a send long after the last commit is answered without waiting",
    )
    .await;
    assert_eq!(seq, Seq::new(7));
}
