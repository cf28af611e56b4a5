//! Single writer and Acknowledged = durable (docs/architecture.md, section 'Invariants')
//! at the room layer: two directories over one store stand for two nodes. When the second
//! takes a room over, the first one's actor can no longer write: its caller gets an error
//! (never a false acknowledgement), nothing of it reaches the log, and the next request
//! reloads the room under a new epoch with a gapless `seq`.

use std::sync::Arc;

use huddle_core::{AgentToken, RoomError, RoomId, SendMessage, Seq};
use huddle_rooms::{RoomDirectory, RoomsConfig};
use huddle_store::{Durability, EmbeddedStore, LogRange, RoomStore};

async fn send(
    dir: &RoomDirectory,
    room: RoomId,
    token: &AgentToken,
    body: &str,
) -> Result<Seq, RoomError> {
    let op = SendMessage {
        token: token.clone(),
        body: body.into(),
        to: None,
        key: None,
    };
    Ok(dir.ask(room, op).await?.seq)
}

#[tokio::test]
async fn a_writer_that_lost_the_room_cannot_acknowledge_or_write() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RoomStore> =
        Arc::new(EmbeddedStore::open(dir.path(), Durability::Process).unwrap());
    let node_a = RoomDirectory::new(store.clone(), RoomsConfig::default());
    let node_b = RoomDirectory::new(store.clone(), RoomsConfig::default());

    let created = node_a
        .create(huddle_rooms::testing::alices_room(Some("fenced")))
        .await
        .unwrap();
    let (room, alice) = (created.room_id, created.agent_token);

    assert_eq!(send(&node_a, room, &alice, "one").await.unwrap(), 1);
    // node B takes the room over (a new epoch)...
    assert_eq!(send(&node_b, room, &alice, "two").await.unwrap(), 2);
    // ...so node A's actor, still holding the room in memory, is refused by the store.
    let err = send(&node_a, room, &alice, "three").await.unwrap_err();
    assert!(
        matches!(&err, RoomError::Unavailable(m) if m.contains("newer writer")),
        "{err:?}"
    );

    let bodies = |msgs: Vec<huddle_core::Message>| {
        msgs.into_iter()
            .map(|m| (m.seq.get(), m.body))
            .collect::<Vec<_>>()
    };
    let log = store
        .messages_after(LogRange::all(room, Seq::ZERO, 10))
        .await
        .unwrap();
    assert_eq!(
        bodies(log),
        [(1, "one".to_string()), (2, "two".to_string())]
    );

    // The next request on node A reloads the room (taking it back) and carries on gapless.
    assert_eq!(send(&node_a, room, &alice, "four").await.unwrap(), 3);
    let log = store
        .messages_after(LogRange::all(room, Seq::ZERO, 10))
        .await
        .unwrap();
    assert_eq!(
        bodies(log),
        [
            (1, "one".to_string()),
            (2, "two".to_string()),
            (3, "four".to_string())
        ]
    );
}
