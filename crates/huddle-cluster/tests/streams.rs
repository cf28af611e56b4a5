//! Streams across nodes, in one process: three directories on one store stand for three
//! nodes sharing PostgreSQL, a shared view stands for the membership, and the owners'
//! `Follow` is the owner directory's follow (the gRPC hop is the node service's).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use huddle_cluster::placement::{NodeId, Peer, View};
use huddle_cluster::testing::FixedPlacement;
use huddle_cluster::upstream::{Feeds, Owners};
use huddle_cluster::{MessageStream, OnLag, Subscribe, SubscribeError};
use huddle_core::{
    AgentToken, Authorize, GetLock, MemberId, ModerateAgent, Moderation, RoomError, RoomId, Seq,
    Viewer,
};
use huddle_rooms::testing::{join, room, send};
use huddle_rooms::{FollowEnd, FollowStream, RoomDirectory, RoomsConfig};
use huddle_store::{Durability, EmbeddedStore, LogRange, RoomStore};
use tokio::sync::watch;

/// Longest a test waits for something that must come; only a hang guard.
const PATIENCE: Duration = Duration::from_secs(30);

/// The cluster as the feeds see it: each node's directory, reached by its id.
struct Cluster {
    nodes: HashMap<NodeId, RoomDirectory>,
    feeds: HashMap<NodeId, Feeds>,
    views: Arc<watch::Sender<Arc<View>>>,
    store: Arc<dyn RoomStore>,
    _data: tempfile::TempDir,
}

fn peer(id: &str) -> Peer {
    Peer {
        id: NodeId::new(id),
        addr: format!("{id}:7000").into(),
        version: 1,
    }
}

impl Cluster {
    fn start(ids: &[&str]) -> Arc<Cluster> {
        let data = tempfile::tempdir().unwrap();
        let store: Arc<dyn RoomStore> =
            Arc::new(EmbeddedStore::open(data.path(), Durability::Process).unwrap());
        let view = View::new(ids.iter().map(|id| peer(id)).collect());
        let views = Arc::new(watch::Sender::new(Arc::new(view)));
        let mut nodes = HashMap::new();
        let mut feeds = HashMap::new();
        for id in ids {
            let dir = RoomDirectory::new(store.clone(), RoomsConfig::default());
            let placement = Arc::new(FixedPlacement::new(id, views.clone()));
            feeds.insert(NodeId::new(*id), Feeds::new(dir.clone(), placement));
            nodes.insert(NodeId::new(*id), dir);
        }
        Arc::new(Cluster {
            nodes,
            feeds,
            views,
            store,
            _data: data,
        })
    }

    fn node(&self, id: &str) -> &RoomDirectory {
        &self.nodes[&NodeId::new(id)]
    }

    fn owner(&self, room: RoomId) -> &RoomDirectory {
        let view = self.views.borrow().clone();
        &self.nodes[&view.owner(room).unwrap().id]
    }

    /// The room's nodes, owner first.
    fn ranked(&self, room: RoomId) -> Vec<String> {
        let view = self.views.borrow().clone();
        view.ranked(room).iter().map(|p| p.id.to_string()).collect()
    }

    /// The view without `id` (it left the cluster).
    fn leave(&self, id: &str) {
        let view = self.views.borrow().clone();
        let rest = view.nodes().iter().filter(|p| p.id.as_str() != id).cloned();
        self.views.send_replace(Arc::new(View::new(rest.collect())));
    }

    async fn read(self: &Arc<Self>, on: &str, room: RoomId, token: &AgentToken) -> MessageStream {
        let feeds = &self.feeds[&NodeId::new(on)];
        let owners: Arc<dyn Owners> = self.clone();
        let subscribed = feeds
            .subscribe(
                owners,
                Subscribe {
                    room,
                    reader: Some(token.clone()),
                    after: None,
                    on_lag: OnLag::End,
                },
            )
            .await
            .unwrap();
        subscribed.stream
    }
}

#[async_trait]
impl Owners for Cluster {
    async fn follow(
        &self,
        owner: &Peer,
        room: RoomId,
        after: Seq,
    ) -> Result<FollowStream, FollowEnd> {
        let view = self.views.borrow().clone();
        if view.owner(room).map(|p| &p.id) != Some(&owner.id) {
            return Err(FollowEnd::Moved);
        }
        self.nodes[&owner.id]
            .follow(room, after)
            .await
            .map_err(|e| FollowEnd::Lost(e.to_string()))
    }

    async fn authorize(&self, room: RoomId, token: AgentToken) -> Result<Viewer, RoomError> {
        self.owner(room).ask(room, Authorize { token }).await
    }

    async fn exists(&self, room: RoomId) -> Result<(), RoomError> {
        self.owner(room).ask(room, GetLock).await.map(|_| ())
    }
}

async fn next(stream: &mut MessageStream) -> String {
    let item = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("the stream went silent");
    match item {
        Some(Ok(m)) => format!("{}:{}", m.seq, m.body),
        Some(Err(SubscribeError::Removed)) => "<removed>".into(),
        Some(Err(e)) => format!("<{e}>"),
        None => "<end>".into(),
    }
}

/// Reads until a message with body `last` (included) or the stream's end.
async fn until(stream: &mut MessageStream, last: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let item = next(stream).await;
        let done = item.starts_with('<') || item.split_once(':').is_some_and(|(_, b)| b == last);
        got.push(item);
        if done {
            return got;
        }
    }
}

/// The messages of `room` after `after` that `viewer` may see, from the store.
async fn log(c: &Cluster, room: RoomId, viewer: Option<MemberId>, after: Seq) -> Vec<String> {
    let all = c
        .store
        .messages_after(LogRange {
            room,
            viewer,
            after,
            limit: 1000,
        })
        .await
        .unwrap();
    all.iter()
        .map(|m| format!("{}:{}", m.seq, m.body))
        .collect()
}

async fn member(c: &Cluster, room: RoomId, token: &AgentToken) -> Viewer {
    c.authorize(room, token.clone()).await.unwrap()
}

#[tokio::test]
async fn readers_on_other_nodes_get_every_message_they_may_see_once_in_order() {
    let c = Cluster::start(&["a", "b", "c"]);
    let (room, alice) = room(c.node("a")).await;
    let ranked = c.ranked(room);
    let (owner, b, third) = (ranked[0].as_str(), ranked[1].as_str(), ranked[2].as_str());
    let bob = join(c.node(owner), room, "bob").await;
    let carol = join(c.node(owner), room, "carol").await;
    let start = member(&c, room, &alice).await.last_seq;

    // Alice reads on one node, twice (one upstream for both); Carol on a third.
    let mut alices = c.read(b, room, &alice).await;
    let mut alices_too = c.read(b, room, &alice).await;
    let mut carols = c.read(third, room, &carol).await;
    assert_eq!(
        c.feeds[&NodeId::new(b)].upstreams(),
        1,
        "one upstream per room"
    );

    send(c.owner(room), room, &bob, "hello all", None).await;
    send(c.owner(room), room, &bob, "for alice only", Some("alice")).await;
    send(c.owner(room), room, &carol, "carol here", None).await;
    send(c.owner(room), room, &bob, "bye", None).await;

    let alice_may = log(&c, room, Some(member(&c, room, &alice).await.member), start).await;
    let carol_may = log(&c, room, Some(member(&c, room, &carol).await.member), start).await;
    assert!(alice_may.iter().any(|m| m.ends_with(":for alice only")));
    assert!(!carol_may.iter().any(|m| m.ends_with(":for alice only")));
    assert_eq!(until(&mut alices, "bye").await, alice_may);
    assert_eq!(until(&mut alices_too, "bye").await, alice_may);
    assert_eq!(
        until(&mut carols, "bye").await,
        carol_may,
        "a DM reached a third member"
    );
    assert_eq!(c.feeds[&NodeId::new(b)].upstreams(), 1);
    assert_eq!(
        c.feeds[&NodeId::new(owner)].upstreams(),
        0,
        "the owner reads its own room"
    );

    // The upstream goes with its last reader.
    drop((alices, alices_too));
    let deadline = Instant::now() + PATIENCE;
    while c.feeds[&NodeId::new(b)].upstreams() > 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream outlived its readers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn readers_elsewhere_notice_nothing_when_the_room_moves() {
    let c = Cluster::start(&["a", "b", "c"]);
    let (room, alice) = room(c.node("a")).await;
    let ranked = c.ranked(room);
    let (old, next_owner, other) = (ranked[0].clone(), ranked[1].clone(), ranked[2].clone());
    let bob = join(c.node(&old), room, "bob").await;
    let start = member(&c, room, &alice).await.last_seq;
    // Readers on the node the room moves to, and on the node it never lives on.
    let mut on_next = c.read(&next_owner, room, &alice).await;
    let mut on_other = c.read(&other, room, &alice).await;

    for body in ["one", "two", "three"] {
        send(c.node(&old), room, &bob, body, None).await;
    }
    let before = log(&c, room, None, start).await;
    assert_eq!(until(&mut on_next, "three").await, before);
    assert_eq!(until(&mut on_other, "three").await, before);
    // The owner leaves: it is out of the view, then hands its rooms over.
    c.leave(&old);
    c.node(&old).shutdown(PATIENCE).await;
    for body in ["four", "five", "six"] {
        send(c.node(&next_owner), room, &bob, body, None).await;
    }

    let after = log(&c, room, None, start.plus(3)).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(
        until(&mut on_next, "six").await,
        after,
        "the new owner's reader"
    );
    assert_eq!(
        until(&mut on_other, "six").await,
        after,
        "a reader on a third node"
    );
    assert_eq!(c.feeds[&NodeId::new(next_owner.as_str())].upstreams(), 0);
    assert_eq!(c.feeds[&NodeId::new(other.as_str())].upstreams(), 1);

    // Still open: the next message arrives too.
    send(c.node(&next_owner), room, &bob, "seven", None).await;
    assert!(next(&mut on_next).await.ends_with(":seven"));
    assert!(next(&mut on_other).await.ends_with(":seven"));
}

#[tokio::test]
async fn a_kicked_members_stream_on_another_node_ends() {
    let c = Cluster::start(&["a", "b"]);
    let (room, alice) = room(c.node("a")).await;
    let ranked = c.ranked(room);
    let (owner, elsewhere) = (ranked[0].clone(), ranked[1].clone());
    let bob = join(c.node(&owner), room, "bob").await;
    let mut bobs = c.read(&elsewhere, room, &bob).await;
    let mut alices = c.read(&elsewhere, room, &alice).await;

    send(c.node(&owner), room, &alice, "before", None).await;
    let kick = ModerateAgent {
        token: alice.clone(),
        target: "bob".into(),
        action: Moderation::Kick,
    };
    c.node(&owner).ask(room, kick).await.unwrap();
    send(c.node(&owner), room, &alice, "after", None).await;

    let bob_got = until(&mut bobs, "after").await;
    assert_eq!(bob_got.last().unwrap(), "<removed>", "{bob_got:?}");
    assert!(!bob_got.iter().any(|m| m.ends_with(":after")));
    assert!(
        until(&mut alices, "after")
            .await
            .last()
            .unwrap()
            .ends_with(":after")
    );
}
