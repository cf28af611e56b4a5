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
    /// Built field by field: `json!` would serialise each field into a new value.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        let mut m = serde_json::Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("roomId".into(), Value::String(self.room_id.to_string()));
        m.insert("from".into(), Value::String(self.from.clone()));
        if let Some(to) = &self.to {
            m.insert("to".into(), Value::String(to.clone()));
        }
        m.insert("body".into(), Value::String(self.body.clone()));
        m.insert("timestamp".into(), Value::String(self.timestamp.rfc3339()));
        m.insert("seq".into(), Value::from(self.seq.get()));
        Value::Object(m)
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
