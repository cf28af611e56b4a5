//! The cluster router over real internal services on loopback: two nodes' rooms over one
//! store, each node with a fixed view of the cluster. An operation reaching a node that
//! does not own its room runs on the owner; an owner fenced by a node that believes it
//! owns the room steps down and forwards to it, instead of taking the room back.

use std::sync::Arc;
use std::time::Duration;

use huddle_cluster::node_service::NodeService;
use huddle_cluster::peers::{Peers, Timeouts};
use huddle_cluster::placement::{NodeId, Peer, Placement, View};
use huddle_cluster::testing::FixedPlacement;
use huddle_cluster::{ClusterRouter, Placed, Router};
use huddle_core::{RoomId, SendMessage, Seq};
use huddle_rooms::{RoomDirectory, RoomsConfig};
use huddle_store::{Durability, EmbeddedStore, LogRange, RoomStore};
use tokio::sync::watch;

const SECRET: &str = "router-test-secret";

/// One node: its rooms, its router, its internal service on a loopback port.
struct TestNode {
    rooms: RoomDirectory,
    router: Arc<dyn Router>,
}

async fn start(
    me: &str,
    view: View,
    store: Arc<dyn RoomStore>,
    listener: tokio::net::TcpListener,
) -> TestNode {
    let views = Arc::new(watch::Sender::new(Arc::new(view)));
    let placement: Arc<dyn Placement> = Arc::new(FixedPlacement::new(me, views));
    let rooms = RoomDirectory::clustered(
        store,
        RoomsConfig::default(),
        Arc::new(Placed::new(placement.clone(), Duration::from_secs(60))),
    );
    let routes = NodeService::new(rooms.clone(), placement.clone()).routes(SECRET, 1 << 20);
    tokio::spawn(async move { axum::serve(listener, routes).await });
    let peers = Peers::new(SECRET, Timeouts::default()).unwrap();
    let router: Arc<dyn Router> = Arc::new(ClusterRouter::new(rooms.clone(), placement, peers));
    TestNode { rooms, router }
}

fn peer(id: &str, addr: std::net::SocketAddr) -> Peer {
    Peer {
        id: NodeId::new(id),
        addr: addr.to_string().into(),
        version: 1,
    }
}

struct Cluster {
    a: TestNode,
    b: TestNode,
    view: View,
    store: Arc<dyn RoomStore>,
    _dir: tempfile::TempDir,
}

/// Nodes `a` and `b`; `b`'s view is `b_view(view of both)` (the same, or one that
/// disagrees).
async fn cluster(b_view: impl FnOnce(&View, Peer) -> View) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RoomStore> =
        Arc::new(EmbeddedStore::open(dir.path(), Durability::Process).unwrap());
    let (la, lb) = (
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let (pa, pb) = (
        peer("a", la.local_addr().unwrap()),
        peer("b", lb.local_addr().unwrap()),
    );
    let view = View::new(vec![pa, pb.clone()]);
    let a = start("a", view.clone(), store.clone(), la).await;
    let b = start("b", b_view(&view, pb), store.clone(), lb).await;
    Cluster {
        a,
        b,
        view,
        store,
        _dir: dir,
    }
}

impl Cluster {
    /// A room created on `a` whose owner in the shared view is `owner`; its creator.
    async fn room_owned_by(&self, owner: &str) -> (RoomId, huddle_core::AgentToken) {
        loop {
            let created = self
                .a
                .router
                .create(huddle_rooms::testing::alices_room(None))
                .await
                .unwrap();
            if self.view.owner(created.room_id).unwrap().id.as_str() == owner {
                return (created.room_id, created.agent_token);
            }
        }
    }
}

fn say(token: &huddle_core::AgentToken, body: &str) -> SendMessage {
    SendMessage {
        token: token.clone(),
        body: body.into(),
        to: None,
        key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_on_a_room_owned_elsewhere_runs_on_its_owner() {
    let c = cluster(|view, _| view.clone()).await;
    let (room, alice) = c.room_owned_by("b").await;
    let sent = c.a.router.ask(room, say(&alice, "via a")).await.unwrap();
    assert_eq!(sent.seq, 1);
    assert_eq!((c.a.rooms.active_rooms(), c.b.rooms.active_rooms()), (0, 1));
    let sent = c.b.router.ask(room, say(&alice, "on b")).await.unwrap();
    assert_eq!(sent.seq, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_owner_forwards_to_the_next_node_instead_of_taking_the_room_back() {
    // `b` believes it is alone: it owns every room in its view.
    let c = cluster(|_, me| View::new(vec![me])).await;
    let (room, alice) = c.room_owned_by("a").await;
    c.a.router.ask(room, say(&alice, "on a")).await.unwrap();
    // `b` takes the room: a new epoch in the store.
    c.b.router.ask(room, say(&alice, "on b")).await.unwrap();
    let epoch = c.store.epoch(room).await.unwrap();

    // `a`'s append is fenced: it steps down and forwards the send to `b`.
    let sent = c.a.router.ask(room, say(&alice, "via a")).await.unwrap();
    assert_eq!(sent.seq, 3);
    assert!(c.a.rooms.ceded(room));
    assert_eq!(c.store.epoch(room).await.unwrap(), epoch, "not taken back");
    // And so again: `a` does not re-acquire the room it ceded.
    assert_eq!(
        c.a.router
            .ask(room, say(&alice, "again"))
            .await
            .unwrap()
            .seq,
        4
    );
    assert_eq!(c.store.epoch(room).await.unwrap(), epoch);
    let log = c
        .store
        .messages_after(LogRange::all(room, Seq::ZERO, 10))
        .await
        .unwrap();
    let bodies: Vec<_> = log.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["on a", "on b", "via a", "again"]);
}
