//! Shorthands for tests that drive a [`RoomDirectory`] directly (feature `testing`): a
//! room made by alice, a member joined, a message sent — each unwrapped, as tests want.

use huddle_core::{AgentToken, CreateRoom, JoinRoom, RoomId, SendMessage};

use crate::RoomDirectory;

/// What creating a password-less room by `alice` asks: named `name`, or after its id.
pub fn alices_room(name: Option<&str>) -> CreateRoom {
    CreateRoom {
        name: name.map(str::to_string),
        agent_name: "alice".into(),
        password: None,
        description: None,
        kind: None,
        endpoint: None,
    }
}

/// A password-less room named after its id, created by `alice`: its id and her token.
pub async fn room(dir: &RoomDirectory) -> (RoomId, AgentToken) {
    let created = dir
        .create(alices_room(None))
        .await
        .expect("a room is created");
    (created.room_id, created.agent_token)
}

/// `name` joins `room`: its token.
pub async fn join(dir: &RoomDirectory, room: RoomId, name: &str) -> AgentToken {
    let op = JoinRoom {
        agent_name: name.into(),
        proof: None,
        token: None,
        endpoint: None,
    };
    dir.ask(room, op)
        .await
        .expect("the agent joins")
        .agent_token
}

/// `from` sends `body` to the room (or as a DM `to` one member).
pub async fn send(
    dir: &RoomDirectory,
    room: RoomId,
    from: &AgentToken,
    body: &str,
    to: Option<&str>,
) {
    let op = SendMessage {
        token: from.clone(),
        body: body.into(),
        to: to.map(Into::into),
        key: None,
    };
    dir.ask(room, op).await.expect("the message is sent");
}
