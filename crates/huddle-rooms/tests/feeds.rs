//! Room feeds at the room layer: what a subscription may allocate, when it is freed, and
//! the order a commit reaches streams in.
//!
//! The commit-order tests need several requests to land in one commit. The store below is
//! the real embedded store with a gate in front of `append`: while the gate is held, the
//! actor's append stays in flight and the requests sent meanwhile are applied and
//! gathered into the next commit — exactly the pipelining the actor does under load,
//! made deterministic.

use std::sync::Arc;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use huddle_core::{
    AgentToken, CreateRoom, Event, GetInfo, JoinRoom, Message, ModerateAgent, Moderation, Page,
    RoomError, RoomId, SendMessage, Sent, Seq, SharedMessage,
};
use huddle_rooms::{MessageStream, OnLag, RoomDirectory, RoomsConfig, Subscribe, SubscribeError};
use huddle_store::{
    Durability, EmbeddedStore, Epoch, HistoryRead, LogRange, NameLock, NamedRoom, RoomPage,
    RoomStore, SentKey, StoreError, Writes,
};
use tokio::sync::{OwnedRwLockWriteGuard, RwLock, mpsc};

/// The embedded store, whose appends wait while the test holds the gate.
struct GatedStore {
    inner: EmbeddedStore,
    gate: Arc<RwLock<()>>,
    /// One signal per append that reached the gate.
    entered: mpsc::UnboundedSender<()>,
}

#[async_trait]
impl RoomStore for GatedStore {
    fn writer(&self) -> &Writes {
        self.inner.writer()
    }

    async fn append(
        &self,
        room: RoomId,
        epoch: Epoch,
        events: Vec<Event>,
    ) -> Result<(), StoreError> {
        let _ = self.entered.send(());
        let _open = self.gate.read().await;
        self.inner.append(room, epoch, events).await
    }

    async fn epoch(&self, room: RoomId) -> Result<Option<Epoch>, StoreError> {
        self.inner.epoch(room).await
    }

    async fn rooms_named(&self, name: &str) -> Result<Vec<NamedRoom>, StoreError> {
        self.inner.rooms_named(name).await
    }

    async fn lock_name(&self, name: &str) -> Result<Box<dyn NameLock>, StoreError> {
        self.inner.lock_name(name).await
    }

    async fn sent_with_key(&self, sent: SentKey<'_>) -> Result<Option<Message>, StoreError> {
        self.inner.sent_with_key(sent).await
    }

    async fn list_rooms(&self, search: Option<&str>, page: Page) -> Result<RoomPage, StoreError> {
        self.inner.list_rooms(search, page).await
    }

    async fn messages_after(&self, read: LogRange) -> Result<Vec<Message>, StoreError> {
        self.inner.messages_after(read).await
    }

    async fn history(&self, read: HistoryRead) -> Result<(Vec<Message>, u64), StoreError> {
        self.inner.history(read).await
    }
}

struct Node {
    dir: RoomDirectory,
    gate: Arc<RwLock<()>>,
    entered: mpsc::UnboundedReceiver<()>,
    _data: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        Node::start_with(RoomsConfig::default())
    }

    fn start_with(config: RoomsConfig) -> Node {
        let data = tempfile::tempdir().unwrap();
        let (tx, entered) = mpsc::unbounded_channel();
        let gate = Arc::new(RwLock::new(()));
        let store = GatedStore {
            inner: EmbeddedStore::open(data.path(), Durability::Process).unwrap(),
            gate: gate.clone(),
            entered: tx,
        };
        Node {
            dir: RoomDirectory::new(Arc::new(store), config),
            gate,
            entered,
            _data: data,
        }
    }

    /// Holds every append from now on, and returns once one is held at the gate.
    async fn hold_appends(&mut self) -> OwnedRwLockWriteGuard<()> {
        while self.entered.try_recv().is_ok() {}
        self.gate.clone().write_owned().await
    }

    async fn an_append_is_in_flight(&mut self) {
        self.entered.recv().await.expect("the store is alive");
    }

    async fn room(&self, creator: &str) -> (RoomId, AgentToken) {
        let created = self
            .dir
            .create(CreateRoom {
                name: None,
                agent_name: creator.into(),
                password: None,
                description: None,
                kind: None,
                endpoint: None,
            })
            .await
            .unwrap();
        (created.room_id, created.agent_token)
    }

    async fn join(&self, room: RoomId, name: &str) -> AgentToken {
        let op = JoinRoom {
            agent_name: name.into(),
            proof: None,
            token: None,
            endpoint: None,
        };
        self.dir.ask(room, op).await.unwrap().agent_token
    }
}

fn send(token: &AgentToken, body: &str) -> SendMessage {
    SendMessage {
        token: token.clone(),
        body: body.into(),
        to: None,
        key: None,
    }
}

/// A stream that ends when it falls behind (the client resumes), as SSE and gRPC open.
async fn open(
    dir: &RoomDirectory,
    room: RoomId,
    token: AgentToken,
    after: Option<Seq>,
) -> Result<MessageStream, RoomError> {
    let subscribed = dir
        .subscribe(Subscribe {
            room,
            reader: Some(token),
            after,
            on_lag: OnLag::End,
        })
        .await?;
    Ok(subscribed.stream)
}

/// What a stream yields, as text: a message body or the error that ended it.
async fn next(stream: &mut MessageStream) -> String {
    match stream.next().await {
        Some(Ok(m)) => m.body.clone(),
        Some(Err(SubscribeError::Removed)) => "<removed>".into(),
        Some(Err(e)) => format!("<{e}>"),
        None => "<end>".into(),
    }
}

/// Reads until `last` (included).
async fn until(stream: &mut MessageStream, last: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let item = next(stream).await;
        let done = item == last || item.starts_with('<');
        got.push(item);
        if done {
            return got;
        }
    }
}

/// Polls a request once: it is in the room's mailbox when this returns.
async fn in_mailbox<F: std::future::Future + Unpin>(mut request: F) -> F {
    assert!(
        futures::poll!(&mut request).is_pending(),
        "the answer must wait for the held append"
    );
    request
}

#[tokio::test]
async fn refused_subscriptions_and_unknown_rooms_leave_nothing_behind() {
    let node = Node::start();
    let (room, _alice) = node.room("alice").await;
    let foreign = AgentToken::mint(RoomId::new_random(), "c2VjcmV0c2VjcmV0");

    for _ in 0..3 {
        let ghost = RoomId::new_random();
        let refused = open(&node.dir, ghost, foreign.clone(), None).await;
        assert!(matches!(refused, Err(RoomError::RoomNotFound(_))));
        let info = GetInfo {
            proof: None,
            token: None,
        };
        let refused = node.dir.ask(ghost, info).await;
        assert!(matches!(refused, Err(RoomError::RoomNotFound(_))));

        let refused = open(&node.dir, room, foreign.clone(), None).await;
        assert!(
            matches!(
                refused,
                Err(RoomError::InvalidToken | RoomError::TokenNotInRoom)
            ),
            "{:?}",
            refused.err()
        );
    }
    assert_eq!(node.dir.live_rooms(), 0, "a refused subscriber left a feed");
    assert_eq!(
        node.dir.active_rooms(),
        1,
        "only the real room may be active"
    );
}

#[tokio::test]
async fn a_rooms_feed_is_freed_when_its_last_stream_drops() {
    let node = Node::start();
    let (room, alice) = node.room("alice").await;
    let bob = node.join(room, "bob").await;

    let mut first = open(&node.dir, room, alice.clone(), None).await.unwrap();
    let second = open(&node.dir, room, bob, None).await.unwrap();
    assert_eq!(node.dir.live_rooms(), 1);
    drop(second);
    assert_eq!(
        node.dir.live_rooms(),
        1,
        "alice's stream still follows the room"
    );

    // The remaining stream still works.
    node.dir
        .ask(room, send(&alice, "still here"))
        .await
        .unwrap();
    assert_eq!(next(&mut first).await, "still here");

    drop(first);
    assert_eq!(
        node.dir.live_rooms(),
        0,
        "the room's feed outlived its last stream"
    );
    assert_eq!(node.dir.feed_buffer(room), None);
}

#[tokio::test]
async fn a_kicked_members_stream_ends_before_what_followed_the_kick_in_its_commit() {
    let mut node = Node::start();
    let (room, alice) = node.room("alice").await;
    let bob = node.join(room, "bob").await;
    let mut bob_stream = open(&node.dir, room, bob, None).await.unwrap();

    let dir = node.dir.clone();
    let gate = node.hold_appends().await;
    let first = in_mailbox(Box::pin(dir.ask(room, send(&alice, "before")))).await;
    node.an_append_is_in_flight().await;
    // Both land in the next commit, the kick first.
    let kick = ModerateAgent {
        token: alice.clone(),
        target: "bob".into(),
        action: Moderation::Kick,
    };
    let kick = in_mailbox(Box::pin(dir.ask(room, kick))).await;
    let after = in_mailbox(Box::pin(dir.ask(room, send(&alice, "after the kick")))).await;
    drop(gate);
    let (first, kick, after) = tokio::join!(first, kick, after);
    let seq = |r: Result<Sent, RoomError>| r.unwrap().seq;
    kick.unwrap();
    assert_eq!(
        seq(after),
        seq(first).plus(2),
        "kick notice, then the message"
    );

    assert_eq!(
        [next(&mut bob_stream).await, next(&mut bob_stream).await],
        ["before", "<removed>"],
        "bob's stream must end at the kick"
    );
    assert_eq!(next(&mut bob_stream).await, "<end>");
}

#[tokio::test]
async fn a_stream_opened_while_commits_are_in_flight_has_no_gap_or_duplicate() {
    let mut node = Node::start();
    let (room, alice) = node.room("alice").await;
    let carol = node.join(room, "carol").await;

    let dir = node.dir.clone();
    let gate = node.hold_appends().await;
    let one = in_mailbox(Box::pin(dir.ask(room, send(&alice, "one")))).await;
    node.an_append_is_in_flight().await;
    // "two" is applied but not yet published when the streams open; "three" after.
    let two = in_mailbox(Box::pin(dir.ask(room, send(&alice, "two")))).await;
    let live = in_mailbox(Box::pin(open(&dir, room, carol.clone(), None))).await;
    let replay = in_mailbox(Box::pin(open(&dir, room, carol.clone(), Some(Seq::ZERO)))).await;
    let three = in_mailbox(Box::pin(dir.ask(room, send(&alice, "three")))).await;
    drop(gate);
    let (one, two, live, replay, three) = tokio::join!(one, two, live, replay, three);
    for sent in [one, two, three] {
        sent.unwrap();
    }
    let mut live = live.unwrap();
    let mut replay = replay.unwrap();
    dir.ask(room, send(&alice, "four")).await.unwrap();

    assert_eq!(
        until(&mut live, "four").await,
        ["three", "four"],
        "a stream without a position starts where the room was when it opened"
    );
    assert_eq!(
        until(&mut replay, "four").await,
        ["carol joined the room", "one", "two", "three", "four"],
        "the replayed log and the live feed must join without gap or duplicate"
    );
    // Nothing else is pending on either stream.
    assert!(live.next().now_or_never().is_none());
    assert!(replay.next().now_or_never().is_none());
}

/// A node whose rooms' fan-out holds at most `buffer` pending items.
fn with_buffer(buffer: usize) -> Node {
    Node::start_with(RoomsConfig {
        subscriber_buffer: buffer,
        ..RoomsConfig::default()
    })
}

#[tokio::test]
async fn an_idle_stream_holds_no_buffer_and_one_grows_only_with_what_is_pending() {
    // The default bound (4096 pending items): nothing of it is allocated up front.
    let node = Node::start();
    let (room, alice) = node.room("alice").await;
    let bob = node.join(room, "bob").await;
    let mut idle = open(&node.dir, room, alice.clone(), None).await.unwrap();
    let mut reader = open(&node.dir, room, bob, None).await.unwrap();
    let stats = node.dir.feed_buffer(room).unwrap();
    assert_eq!(
        (stats.pending, stats.allocated, stats.subscribers),
        (0, 0, 2),
        "an idle room's feed allocates nothing"
    );

    for i in 0..3 {
        node.dir
            .ask(room, send(&alice, &format!("m{i}")))
            .await
            .unwrap();
    }
    let stats = node.dir.feed_buffer(room).unwrap();
    assert_eq!(stats.pending, 3, "three messages nobody has read");
    assert!(
        stats.allocated < 16,
        "the buffer grows with what is pending, not to its bound: {stats:?}"
    );
    assert_eq!(until(&mut reader, "m2").await, ["m0", "m1", "m2"]);
    assert_eq!(
        node.dir.feed_buffer(room).unwrap().pending,
        3,
        "alice's stream has not read them yet"
    );
    assert_eq!(until(&mut idle, "m2").await, ["m0", "m1", "m2"]);
    assert_eq!(
        node.dir.feed_buffer(room).unwrap().pending,
        0,
        "an item goes once every stream has read it"
    );
}

#[tokio::test]
async fn a_slow_stream_lags_without_growing_the_buffer_past_its_bound() {
    const BUFFER: usize = 4;
    let node = with_buffer(BUFFER);
    let (room, alice) = node.room("alice").await;
    let bob = node.join(room, "bob").await;
    let mut slow = open(&node.dir, room, bob.clone(), None).await.unwrap();
    let mut fast = open(&node.dir, room, alice.clone(), None).await.unwrap();
    for i in 0..20 {
        node.dir
            .ask(room, send(&alice, &format!("m{i}")))
            .await
            .unwrap();
        assert_eq!(next(&mut fast).await, format!("m{i}"));
        let stats = node.dir.feed_buffer(room).unwrap();
        assert!(stats.pending <= BUFFER, "{stats:?}");
    }
    // bob read nothing: his stream ends naming where he was (his join notice, seq 1).
    let lagged = slow.next().await;
    assert!(
        matches!(lagged, Some(Err(SubscribeError::Lagged(s))) if s == 1),
        "{lagged:?}"
    );
    assert_eq!(next(&mut slow).await, "<end>");
    assert_eq!(node.dir.feed_buffer(room).unwrap().subscribers, 1);
}

#[tokio::test]
async fn a_resuming_stream_carries_on_across_lags_without_gap_or_duplicate() {
    let node = with_buffer(2);
    let (room, alice) = node.room("alice").await;
    let bob = node.join(room, "bob").await;
    let subscribed = node
        .dir
        .subscribe(Subscribe {
            room,
            reader: Some(bob),
            after: None,
            on_lag: OnLag::Resume,
        })
        .await
        .unwrap();
    let mut stream = subscribed.stream;
    let mut expected = Vec::new();
    for round in 0..3 {
        // Far more than the bound while bob does not read.
        for i in 0..10 {
            let body = format!("r{round}m{i}");
            node.dir.ask(room, send(&alice, &body)).await.unwrap();
            expected.push(body);
        }
        assert!(node.dir.feed_buffer(room).unwrap().pending <= 2);
        let last = expected.last().unwrap().clone();
        let got = until(&mut stream, &last).await;
        let start = expected.len() - 10;
        assert_eq!(got, expected[start..], "round {round}");
    }
    assert!(
        stream.next().now_or_never().is_none(),
        "nothing repeated after the last message"
    );
}

#[tokio::test]
async fn a_stream_without_token_is_answered_by_the_room_and_takes_no_place() {
    let node = Node::start_with(RoomsConfig {
        max_streams: 1,
        ..RoomsConfig::default()
    });
    let (room, alice) = node.room("alice").await;
    let _held = open(&node.dir, room, alice.clone(), None).await.unwrap();
    let busy = open(&node.dir, room, alice, None).await.err();
    assert!(
        matches!(busy, Some(RoomError::TooManyStreams(1))),
        "{busy:?}"
    );

    // Without a token: the room answers (unknown room first), and no stream place is
    // needed to be told so.
    let ghost = node
        .dir
        .subscribe(Subscribe {
            room: RoomId::new_random(),
            reader: None,
            after: None,
            on_lag: OnLag::End,
        })
        .await
        .err();
    assert!(
        matches!(ghost, Some(RoomError::RoomNotFound(_))),
        "{ghost:?}"
    );
    let missing = node
        .dir
        .subscribe(Subscribe {
            room,
            reader: None,
            after: None,
            on_lag: OnLag::End,
        })
        .await
        .err();
    assert!(
        matches!(missing, Some(RoomError::Missing(_))),
        "{missing:?}"
    );
    assert_eq!(node.dir.active_rooms(), 1, "the unknown room left nothing");
}

#[tokio::test]
async fn a_message_is_rendered_once_for_its_streams_and_the_answers_that_list_it() {
    let node = Node::start();
    let (room, alice) = node.room("alice").await;
    let bob = node.join(room, "bob").await;
    let bob_token = bob.clone();
    let mut first = open(&node.dir, room, alice.clone(), None).await.unwrap();
    let mut second = open(&node.dir, room, bob, None).await.unwrap();
    node.dir.ask(room, send(&alice, "hello")).await.unwrap();
    let (a, b) = (first.next().await, second.next().await);
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert!(
        SharedMessage::ptr_eq(&a, &b),
        "both streams carry the one fanned-out item"
    );
    assert!(
        std::ptr::eq(&*a.json(), &*b.json()),
        "its JSON is rendered once, not per stream"
    );
    assert_eq!(a.json(), a.message().to_json().to_string());
    // Bob's next send lists the message he missed: the same shared message, whose JSON
    // the streams already made.
    let sent = node.dir.ask(room, send(&bob_token, "back")).await.unwrap();
    let missed = &sent.missed.messages;
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert!(
        SharedMessage::ptr_eq(&missed[0], &a),
        "a send's missed list shares the message its room's streams carry"
    );
    assert!(std::ptr::eq(&*missed[0].json(), &*a.json()));
}
