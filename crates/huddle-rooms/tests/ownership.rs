//! Cluster mode at the room layer: two clustered directories over one store stand for
//! two nodes. A node whose append is fenced steps down and does not take the room back
//! (its calls say `NotOwner`, nothing of them is applied); past its lease deadline a node
//! answers from memory only after the store confirmed it still holds the room.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use huddle_core::{
    AgentToken, Authorize, JoinRoom, ModerateAgent, Moderation, RoomError, RoomId, SendMessage, Seq,
};
use huddle_rooms::call::Ask;
use huddle_rooms::{NotOwner, Ownership, RoomDirectory, RoomsConfig};
use huddle_store::{Durability, EmbeddedStore, LogRange, RoomStore};

/// A node's placement, set by the test.
struct Placement {
    owns: AtomicBool,
    lease: Mutex<Option<Instant>>,
}

impl Placement {
    fn owner(lease: Duration) -> Arc<Self> {
        Arc::new(Self {
            owns: AtomicBool::new(true),
            lease: Mutex::new(Some(Instant::now() + lease)),
        })
    }

    fn lease_lapsed(&self) {
        *self.lease.lock().unwrap() = Some(Instant::now() - Duration::from_secs(1));
    }

    fn lease_renewed(&self) {
        *self.lease.lock().unwrap() = Some(Instant::now() + LONG);
    }
}

impl Ownership for Placement {
    fn owns(&self, _room: RoomId) -> bool {
        self.owns.load(Ordering::SeqCst)
    }

    fn lease_deadline(&self) -> Option<Instant> {
        *self.lease.lock().unwrap()
    }

    fn cede_for(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

struct Two {
    store: Arc<dyn RoomStore>,
    a: RoomDirectory,
    a_placement: Arc<Placement>,
    b: RoomDirectory,
    room: RoomId,
    alice: AgentToken,
    _dir: tempfile::TempDir,
}

const LONG: Duration = Duration::from_secs(3600);

/// Nodes `a` (its lease `a_lease` from now) and `b` on one store, both believing they own
/// every room; a room created and active on `a`.
async fn two_nodes(a_lease: Duration) -> Two {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RoomStore> =
        Arc::new(EmbeddedStore::open(dir.path(), Durability::Process).unwrap());
    let a_placement = Placement::owner(a_lease);
    let a = RoomDirectory::clustered(store.clone(), RoomsConfig::default(), a_placement.clone());
    let b = RoomDirectory::clustered(
        store.clone(),
        RoomsConfig::default(),
        Placement::owner(LONG),
    );
    let created = a
        .create(huddle_rooms::testing::alices_room(Some("placed")))
        .await
        .unwrap();
    let two = Two {
        store,
        a,
        a_placement,
        b,
        room: created.room_id,
        alice: created.agent_token,
        _dir: dir,
    };
    two.say(&two.a, "on a").await.unwrap().unwrap();
    two
}

impl Two {
    async fn say(
        &self,
        on: &RoomDirectory,
        body: &str,
    ) -> Result<Result<Seq, RoomError>, NotOwner> {
        let op = SendMessage {
            token: self.alice.clone(),
            body: body.into(),
            to: None,
            key: None,
        };
        Ok(on.ask_owned(self.room, op).await?.map(|sent| sent.seq))
    }

    async fn on<O: Ask>(
        &self,
        on: &RoomDirectory,
        op: O,
    ) -> Result<Result<O::Answer, RoomError>, NotOwner> {
        on.ask_owned(self.room, op).await
    }

    async fn bodies(&self) -> Vec<String> {
        let log = self
            .store
            .messages_after(LogRange::all(self.room, Seq::ZERO, 100))
            .await
            .unwrap();
        log.into_iter().map(|m| m.body).collect()
    }
}

#[tokio::test]
async fn a_fenced_owner_steps_down_and_does_not_take_the_room_back() {
    let two = two_nodes(LONG).await;
    // `b` takes the room (a new epoch in the store).
    assert_eq!(two.say(&two.b, "on b").await.unwrap().unwrap(), 2);
    let epoch = two.store.epoch(two.room).await.unwrap();

    // `a`'s actor is fenced: it steps down, and its caller learns to ask the owner.
    assert_eq!(two.say(&two.a, "stale").await, Err(NotOwner(two.room)));
    assert!(two.a.ceded(two.room) && !two.a.may_hold(two.room));
    // Nor does `a` take the room back while it is ceded, though its view says it owns it.
    assert_eq!(two.say(&two.a, "again").await, Err(NotOwner(two.room)));
    assert_eq!(
        two.store.epoch(two.room).await.unwrap(),
        epoch,
        "not re-acquired"
    );

    assert_eq!(two.say(&two.b, "still b").await.unwrap().unwrap(), 3);
    assert_eq!(two.bodies().await, ["on a", "on b", "still b"]);
}

#[tokio::test]
async fn past_its_lease_a_node_answers_reads_only_for_rooms_the_store_says_it_holds() {
    let two = two_nodes(LONG).await;
    let bob = two
        .on(
            &two.a,
            JoinRoom {
                agent_name: "bob".into(),
                proof: None,
                token: None,
                endpoint: None,
            },
        )
        .await
        .unwrap()
        .unwrap()
        .agent_token;
    let authorize = || Authorize { token: bob.clone() };

    // Lease lapsed, nobody took the room: `a` confirms its epoch and answers.
    two.a_placement.lease_lapsed();
    assert!(two.on(&two.a, authorize()).await.unwrap().is_ok());

    // `b` takes the room and kicks bob; `a` still has bob in memory.
    let kicked = ModerateAgent {
        token: two.alice.clone(),
        target: "bob".into(),
        action: Moderation::Kick,
    };
    two.on(&two.b, kicked).await.unwrap().unwrap();
    assert!(matches!(
        two.on(&two.b, authorize()).await.unwrap(),
        Err(RoomError::InvalidToken)
    ));
    // Past its lease, `a` does not let the kicked member read through its memory.
    assert_eq!(
        two.on(&two.a, authorize()).await.unwrap_err(),
        NotOwner(two.room)
    );
    assert!(two.a.ceded(two.room));
}

#[tokio::test]
async fn a_lease_renewed_after_a_gap_does_not_vouch_for_what_happened_in_the_gap() {
    let lease = Duration::from_millis(300);
    let two = two_nodes(lease).await;
    let authorize = || Authorize {
        token: two.alice.clone(),
    };
    // `a` pauses past its lease (no read meanwhile); `b` takes the room and alice leaves.
    tokio::time::sleep(lease * 2).await;
    let left = huddle_core::LeaveRoom {
        token: two.alice.clone(),
    };
    two.on(&two.b, left).await.unwrap().unwrap();
    // `a` resumes and renews its lease at once: its memory still has alice, but the
    // renewal does not cover the gap, so it asks the store first and steps down.
    two.a_placement.lease_renewed();
    assert_eq!(
        two.on(&two.a, authorize()).await.unwrap_err(),
        NotOwner(two.room)
    );
}

/// A push endpoint on loopback that holds its first request until `release`, answers
/// every request 200, and records the body text of each push it received.
struct Endpoint {
    url: String,
    received: Arc<Mutex<Vec<String>>>,
    release: Arc<tokio::sync::Notify>,
}

impl Endpoint {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(tokio::sync::Notify::new());
        let (seen, gate) = (received.clone(), release.clone());
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let (seen, gate) = (seen.clone(), gate.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        let Some(head_end) = text.find("\r\n\r\n") else {
                            continue;
                        };
                        let length: usize = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() < head_end + 4 + length {
                            continue;
                        }
                        let body: serde_json::Value =
                            serde_json::from_slice(&buf[head_end + 4..head_end + 4 + length])
                                .unwrap();
                        buf.drain(..head_end + 4 + length);
                        let text = body["params"]["message"]["parts"][0]["text"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        let first = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(text);
                            seen.len() == 1
                        };
                        if first {
                            gate.notified().await;
                        }
                        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}";
                        if conn.write_all(ok.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            url,
            received,
            release,
        }
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }
}

/// Push acknowledgements sent to the room's owner, as a cluster node's router does; it
/// notes each acknowledged seq the owner recorded.
struct ToOwner {
    owner: RoomDirectory,
    recorded: Mutex<Vec<Seq>>,
}

#[async_trait::async_trait]
impl huddle_rooms::AckRoute for ToOwner {
    async fn acknowledge(
        &self,
        room: RoomId,
        ack: huddle_core::Acknowledge,
    ) -> Result<(), RoomError> {
        let seq = ack.0.seq;
        self.owner.ask(room, ack).await?;
        self.recorded.lock().unwrap().push(seq);
        Ok(())
    }
}

#[tokio::test]
async fn a_room_handed_over_drops_the_pushes_it_still_had_queued_and_its_new_owner_pushes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RoomStore> =
        Arc::new(EmbeddedStore::open(dir.path(), Durability::Process).unwrap());
    let config = || RoomsConfig {
        allow_private_endpoints: true,
        ..RoomsConfig::default()
    };
    let a_placement = Placement::owner(LONG);
    let a = RoomDirectory::clustered(store.clone(), config(), a_placement.clone());
    let b = RoomDirectory::clustered(store.clone(), config(), Placement::owner(LONG));
    let endpoint = Endpoint::start().await;
    let alice = a
        .create(huddle_rooms::testing::alices_room(Some("pushed")))
        .await
        .unwrap();
    let room = alice.room_id;
    let join = JoinRoom {
        agent_name: "bob".into(),
        proof: None,
        token: None,
        endpoint: Some(endpoint.url.clone()),
    };
    a.ask_owned(room, join).await.unwrap().unwrap();
    let say = |body: &str| SendMessage {
        token: alice.agent_token.clone(),
        body: body.into(),
        to: None,
        key: None,
    };
    let one = a.ask_owned(room, say("one")).await.unwrap().unwrap().seq;
    for body in ["two", "three"] {
        a.ask_owned(room, say(body)).await.unwrap().unwrap();
    }
    // "one" is held at the endpoint; "two" and "three" wait in a's queue.
    let within = Instant::now() + Duration::from_secs(10);
    while endpoint.received().is_empty() {
        assert!(Instant::now() < within, "the first push never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The room leaves a: a's queue for it is dropped; b owns it now, and acknowledgements
    // go to the owner (as a cluster node's router sends them).
    let to_owner = Arc::new(ToOwner {
        owner: b.clone(),
        recorded: Mutex::new(Vec::new()),
    });
    a.route_acks(to_owner.clone());
    a_placement.owns.store(false, Ordering::SeqCst);
    assert_eq!(a.hand_over(Duration::from_secs(5)).await, 1);
    endpoint.release.notify_one();
    b.ask_owned(room, say("four")).await.unwrap().unwrap();
    while !endpoint.received().contains(&"four".to_string()) {
        assert!(Instant::now() < within, "the new owner did not push");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Whatever was queued on the old owner was not sent from there: bob reads it with
    // message.unread (its cursor did not move past "one").
    assert_eq!(endpoint.received(), ["one", "four"]);
    // The push that was under way at the move completed, and its acknowledgement was
    // recorded by the new owner (the old one no longer holds the room).
    while !to_owner.recorded.lock().unwrap().contains(&one) {
        assert!(
            Instant::now() < within,
            "the acknowledgement of \"one\" was lost"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
