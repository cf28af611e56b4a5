//! The operations a gateway sends to a room (through the `Router`), each with its answer.
//! These are the protocol-neutral operations of docs/protocol.md, section 'Actions';
//! they are serde types so that the cluster can carry them between nodes unchanged.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::command::{Delivered, Missed, Moderated, Moderation, Sent, Updated};
use crate::ids::{MemberId, RoomId, Seq};
use crate::model::{Message, Role, RoomType};
use crate::time::Timestamp;
use crate::token::AgentToken;

/// `room.create`: not addressed to an existing room.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateRoom {
    pub name: Option<String>,
    pub agent_name: String,
    pub password: Option<String>,
    pub description: Option<String>,
    pub kind: Option<String>,
    pub endpoint: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Created {
    pub room_id: RoomId,
    pub name: String,
    pub description: String,
    pub kind: RoomType,
    pub password_protected: bool,
    pub agent_name: String,
    pub agent_token: AgentToken,
}

/// Proof that a caller's password was verified against a protected room's password hash
/// before the request reached the room: the hash it matched. Verifying (argon2, slow on
/// purpose) happens outside the room's actor, so a flood of wrong passwords cannot hold
/// up the room's members; the room only compares this with its own hash, so a proof made
/// for another room opens nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordProof(String);

impl PasswordProof {
    /// The proof for a password that matched `hash` (a PHC string).
    pub fn verified(hash: &str) -> Self {
        Self(hash.to_string())
    }

    /// Whether this proof opens a room whose password hash is `hash`.
    pub fn opens(&self, hash: &str) -> bool {
        self.0 == hash
    }
}

impl std::fmt::Debug for PasswordProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordProof(..)")
    }
}

/// An operation on one existing room, answered by the room's owner with its own
/// [`RoomOp::Answer`] type: a request and its answer are tied by the type system, so
/// nothing pairs them at run time. They are serde types: the cluster carries them
/// between nodes unchanged.
pub trait RoomOp:
    Clone + fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    type Answer: fmt::Debug + Serialize + DeserializeOwned + Send + 'static;
}

/// `room.join`: a protected room needs `proof` (even on reconnect, join.cloud's rule).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRoom {
    pub agent_name: String,
    pub proof: Option<PasswordProof>,
    pub token: Option<AgentToken>,
    pub endpoint: Option<String>,
}

/// The answer to a join: what `room.join` and `JoinRoom` render.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Joined {
    pub room_id: RoomId,
    pub agent_name: String,
    pub agent_token: AgentToken,
    pub role: Role,
    pub reconnected: bool,
    pub missed: Missed,
    /// The agent's read cursor after the join: everything up to it was handed out
    /// (its own join notice, the missed messages). A subscription that should carry
    /// on from the join starts here, so nothing committed after it is skipped.
    pub cursor: Seq,
}

/// `room.leave`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaveRoom {
    pub token: AgentToken,
}

/// `room.promote`, `room.demote`, `room.kick`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModerateAgent {
    pub token: AgentToken,
    pub target: String,
    pub action: Moderation,
}

/// `room.update`. The type is text: the room checks the token and the caller's role
/// before any value (the order of the contract's refusals).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpdateRoom {
    pub token: AgentToken,
    pub description: Option<String>,
    pub kind: Option<String>,
}

/// `message.send`. `key` is the client's message id: a retry under the same key is
/// answered with the first send's `seq` and stores nothing new.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SendMessage {
    pub token: AgentToken,
    pub body: String,
    pub to: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
}

/// `message.unread`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetUnread {
    pub token: AgentToken,
}

/// `room.info`: needs a protected room's password (verified: `proof`) or a member's
/// token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetInfo {
    pub proof: Option<PasswordProof>,
    pub token: Option<AgentToken>,
}

/// The room's password hash, for verifying a password outside the room before sending
/// it a [`PasswordProof`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetLock;

/// A room's lock: its password hash, `None` for an open room.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lock(pub Option<String>);

/// Who is this token? Asked before reading history or streaming to a subscriber.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Authorize {
    pub token: AgentToken,
}

/// A member authorised to read: the messages it may see are decided by `member`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Viewer {
    pub member: MemberId,
    pub agent_name: String,
    pub last_seq: Seq,
}

/// An A2A push to `member` was acknowledged (see [`Delivered`] for `prev`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Acknowledge(pub Delivered);

/// Each operation with its answer type.
macro_rules! room_ops {
    ($($op:ty => $answer:ty),* $(,)?) => {
        $(impl RoomOp for $op {
            type Answer = $answer;
        })*
    };
}

room_ops! {
    JoinRoom => Joined,
    LeaveRoom => (),
    ModerateAgent => Moderated,
    UpdateRoom => Updated,
    SendMessage => Sent,
    GetUnread => Missed,
    GetInfo => RoomView,
    GetLock => Lock,
    Authorize => Viewer,
    Acknowledge => (),
}

/// A page of a room's history, newest last, and how many messages the viewer may see.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    pub total: u64,
}

/// Which slice of a listing or history: at most `limit` items after skipping `offset`.
/// The defaults and bounds of every protocol are here: `limit` 20 when not given,
/// else between 1 and 100; `offset` at least 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

impl Page {
    pub const DEFAULT_LIMIT: usize = 20;
    pub const MAX_LIMIT: usize = 100;

    /// A page from a client's values (gRPC, where 0 is "not given", passes `None`).
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Page {
        let limit = limit
            .unwrap_or(Self::DEFAULT_LIMIT as i64)
            .clamp(1, Self::MAX_LIMIT as i64);
        Page {
            limit: limit as usize,
            offset: offset.unwrap_or(0).max(0) as usize,
        }
    }
}

/// `room.info` data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomView {
    pub room_id: RoomId,
    pub name: String,
    pub description: String,
    pub kind: RoomType,
    pub password_protected: bool,
    pub created_at: Timestamp,
    pub agents: Vec<AgentView>,
    pub last_seq: Seq,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    pub name: String,
    pub role: Role,
    pub joined_at: Timestamp,
}

/// One row of `room.list` (room ids are not listed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub name: String,
    pub description: String,
    pub kind: RoomType,
    pub agents: u64,
    pub created_at: Timestamp,
}

impl crate::model::Room {
    pub fn view(&self) -> RoomView {
        RoomView {
            room_id: self.id,
            name: self.name.clone(),
            description: self.description.clone(),
            kind: self.kind,
            password_protected: self.is_protected(),
            created_at: self.created_at,
            agents: self
                .agents
                .iter()
                .map(|a| AgentView {
                    name: a.name.clone(),
                    role: a.role,
                    joined_at: a.joined_at,
                })
                .collect(),
            last_seq: self.last_seq,
        }
    }
}
