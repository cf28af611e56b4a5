//! The router seam carries operations that can cross a network: a router that sends
//! every operation and its answer through JSON (as a node forwarding to a room's owner
//! would) serves the room API exactly as the local router does.

use std::sync::Arc;

use async_trait::async_trait;
use huddle_cluster::call::{Answerer, Ask};
use huddle_cluster::{LocalRouter, Router, Subscribe, Subscribed};
use huddle_core::{
    AgentToken, Authorize, GetInfo, GetUnread, JoinRoom, ModerateAgent, Moderation, RoomError,
    RoomId, SendMessage, UpdateRoom,
};
use huddle_rooms::{RoomCall, RoomDirectory, RoomsConfig};
use huddle_store::{Durability, EmbeddedStore};

/// Forwards every room call as JSON text and decodes the answer from JSON text.
struct OverTheWire {
    owner: Arc<dyn Router>,
}

/// Every room's calls, through JSON, to the owner's router.
impl Answerer for OverTheWire {
    async fn answer<O: Ask>(&self, room: RoomId, op: O) -> Result<O::Answer, RoomError> {
        let sent = serde_json::to_string(&op).expect("an operation serialises");
        let received: O = serde_json::from_str(&sent).expect("an operation deserialises");
        let answer = self.owner.ask(room, received).await;
        let sent = serde_json::to_string(&answer).expect("an answer serialises");
        serde_json::from_str(&sent).expect("an answer deserialises")
    }
}

/// Room calls cross JSON; the rest is the owner's router's, as on a cluster node.
#[async_trait]
impl Router for OverTheWire {
    fn directory(&self) -> &RoomDirectory {
        self.owner.directory()
    }

    async fn call(&self, room: RoomId, call: RoomCall) {
        call.answer(room, self).await;
    }

    async fn subscribe(&self, req: Subscribe) -> Result<Subscribed, RoomError> {
        self.owner.subscribe(req).await
    }
}

#[tokio::test]
async fn every_room_operation_and_answer_crosses_json_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), Durability::Process).unwrap());
    let local: Arc<dyn Router> = Arc::new(LocalRouter::new(RoomDirectory::new(
        store,
        RoomsConfig::default(),
    )));
    let wire: Arc<dyn Router> = Arc::new(OverTheWire {
        owner: local.clone(),
    });
    let router = wire.as_ref();

    let created = router
        .create(huddle_rooms::testing::alices_room(Some("wired")))
        .await
        .unwrap();
    let (room, alice) = (created.room_id, created.agent_token);
    let joined = router
        .ask(
            room,
            JoinRoom {
                agent_name: "bob".into(),
                proof: None,
                token: None,
                endpoint: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((joined.room_id, joined.agent_name.as_str()), (room, "bob"));
    let bob = joined.agent_token;

    let sent = router
        .ask(
            room,
            SendMessage {
                token: alice.clone(),
                body: "hello".into(),
                to: Some("bob".into()),
                key: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(sent.seq, 2, "after bob's join notice");

    let unread = router
        .ask(room, GetUnread { token: bob.clone() })
        .await
        .unwrap();
    let bodies: Vec<_> = unread.messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["hello"]);

    let moderated = router
        .ask(
            room,
            ModerateAgent {
                token: alice.clone(),
                target: "BOB".into(),
                action: Moderation::Promote,
            },
        )
        .await
        .unwrap();
    assert_eq!(moderated.target, "bob");

    let updated = router
        .ask(
            room,
            UpdateRoom {
                token: bob.clone(),
                description: Some("wired up".into()),
                kind: Some("channel".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.changes, ["description", "type to channel"]);

    let view = router
        .ask(
            room,
            GetInfo {
                proof: None,
                token: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(view.description, "wired up");
    assert_eq!(view.agents.len(), 2);

    let viewer = router.ask(room, Authorize { token: bob }).await.unwrap();
    assert_eq!(viewer.last_seq, view.last_seq);

    // Refusals cross too, with their text.
    let refused = router
        .ask(
            room,
            SendMessage {
                token: AgentToken::mint(room, "bm90LWEtbWVtYmVy"),
                body: "x".into(),
                to: None,
                key: None,
            },
        )
        .await;
    assert!(
        matches!(refused, Err(RoomError::InvalidToken)),
        "{refused:?}"
    );
}
