//! The room's data: members, roles, types and messages.

use serde::{Deserialize, Serialize};

use crate::ids::{MemberId, RoomId, Seq};
use crate::time::Timestamp;
use crate::token::TokenDigest;

/// Sender name of server notices (docs/protocol.md, section 'Concepts').
pub const ROOM_BOT: &str = "room-bot";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomType {
    Group,
    Channel,
}

impl RoomType {
    pub fn as_str(&self) -> &'static str {
        match self {
            RoomType::Group => "group",
            RoomType::Channel => "channel",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub member: MemberId,
    pub name: String,
    pub role: Role,
    pub joined_at: Timestamp,
    pub token: TokenDigest,
    /// A2A push endpoint (docs/protocol.md, section 'A2A push'), checked again at every delivery.
    pub endpoint: Option<String>,
    /// Read cursor: the last `seq` this agent has seen.
    pub cursor: Seq,
}

/// One message of a room's log. `from_member`/`to_member` are the identities privacy is
/// decided on; `from`/`to` are the display names clients see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub seq: Seq,
    pub id: String,
    pub room_id: RoomId,
    pub from: String,
    pub from_member: MemberId,
    pub to: Option<String>,
    pub to_member: Option<MemberId>,
    pub body: String,
    pub timestamp: Timestamp,
    /// The sender's idempotency key (the client's message id), if it gave one: a retry
    /// of a send under the same key is answered with this message instead of a new one
    /// (docs/room-semantics.md, section 'Idempotent sends'). Never on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Message {
    /// A DM is visible only to its sender and its recipient (docs/protocol.md, section
    /// 'DMs are private').
    pub fn visible_to(&self, viewer: MemberId) -> bool {
        match self.to_member {
            None => true,
            Some(to) => to == viewer || self.from_member == viewer,
        }
    }

    /// The wire shape shared by every protocol: `{id, roomId, from, to?, body, timestamp, seq}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.wire()).expect("a message is plain JSON")
    }

    /// The wire shape, serialised straight from the message: answers that carry many
    /// messages write them without first building a tree of values per message.
    pub fn wire(&self) -> WireMessage<'_> {
        WireMessage(self)
    }
}

/// A [`Message`] in its wire shape (see [`Message::wire`]). The keys come sorted, as
/// every JSON object the server writes has them, so both ways give the same bytes.
#[derive(Clone, Copy)]
pub struct WireMessage<'a>(&'a Message);

impl Serialize for WireMessage<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let m = self.0;
        let mut map = s.serialize_map(Some(6 + usize::from(m.to.is_some())))?;
        map.serialize_entry("body", &m.body)?;
        map.serialize_entry("from", &m.from)?;
        map.serialize_entry("id", &m.id)?;
        map.serialize_entry("roomId", &m.room_id)?;
        map.serialize_entry("seq", &m.seq)?;
        map.serialize_entry("timestamp", &m.timestamp.rfc3339())?;
        if let Some(to) = &m.to {
            map.serialize_entry("to", to)?;
        }
        map.end()
    }
}

/// A room's state as its actor holds it. The message log is not here: it lives in the
/// store (and a tail cache in the actor); the room only knows how far it goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    pub id: RoomId,
    pub name: String,
    /// argon2id PHC string; `None` for an open room.
    pub password_hash: Option<String>,
    pub description: String,
    pub kind: RoomType,
    pub created_at: Timestamp,
    /// Members in join order.
    pub agents: Vec<Agent>,
    /// Highest `seq` in the log (0 when empty).
    pub last_seq: Seq,
    /// Highest member id handed out (ids are never reused).
    pub last_member: MemberId,
}

impl Room {
    pub fn agent_by_token(&self, token: &TokenDigest) -> Option<&Agent> {
        self.agents.iter().find(|a| &a.token == token)
    }

    /// The member called `name`, compared by [`crate::name::fold`] (so `Alice` finds
    /// `alice`). An exact match wins: members that joined before names were folded may
    /// share a fold, and each must still find itself.
    pub fn agent_by_name(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name).or_else(|| {
            let folded = crate::name::fold(name);
            self.agents
                .iter()
                .find(|a| crate::name::fold(&a.name) == folded)
        })
    }

    pub fn agent(&self, member: MemberId) -> Option<&Agent> {
        self.agents.iter().find(|a| a.member == member)
    }

    pub(crate) fn agent_mut(&mut self, member: MemberId) -> Option<&mut Agent> {
        self.agents.iter_mut().find(|a| a.member == member)
    }

    pub fn is_protected(&self) -> bool {
        self.password_hash.is_some()
    }

    pub fn admin_count(&self) -> usize {
        self.agents.iter().filter(|a| a.role == Role::Admin).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: Option<&str>) -> Message {
        Message {
            seq: Seq::new(7),
            id: "m-7".into(),
            room_id: RoomId::new_random(),
            from: "alice".into(),
            from_member: MemberId::new(1),
            to: to.map(str::to_string),
            to_member: to.map(|_| MemberId::new(2)),
            body: "say \"hi\"\n".into(),
            timestamp: Timestamp(1_700_000_000_000),
            key: Some("never on the wire".into()),
        }
    }

    /// The wire shape is written straight from the message; clients have always seen
    /// the keys of a JSON object in sorted order, so it must give those very bytes.
    #[test]
    fn the_wire_shape_is_the_json_object_of_its_fields_byte_for_byte() {
        for to in [None, Some("bob")] {
            let m = message(to);
            let mut expected = serde_json::json!({
                "id": m.id,
                "roomId": m.room_id.to_string(),
                "from": m.from,
                "body": m.body,
                "timestamp": m.timestamp.rfc3339(),
                "seq": 7,
            });
            if let Some(to) = to {
                expected["to"] = to.into();
            }
            assert_eq!(
                serde_json::to_string(&m.wire()).unwrap(),
                expected.to_string()
            );
            assert_eq!(m.to_json(), expected);
        }
    }
}
