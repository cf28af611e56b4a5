//! The requests a gateway sends to a room (through the `Router`) and what comes back.
//! These are the protocol-neutral operations of docs/protocol.md, section 'Actions';
//! they are serde types so that the cluster can carry them between nodes unchanged.

use serde::{Deserialize, Serialize};

use crate::command::{Missed, Reply};
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

/// An operation on one existing room.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RoomRequest {
    /// `room.join`: a protected room needs `proof` (even on reconnect, join.cloud's rule).
    Join {
        agent_name: String,
        proof: Option<PasswordProof>,
        token: Option<AgentToken>,
        endpoint: Option<String>,
    },
    Leave {
        token: AgentToken,
    },
    Promote {
        token: AgentToken,
        target: String,
    },
    Demote {
        token: AgentToken,
        target: String,
    },
    Kick {
        token: AgentToken,
        target: String,
    },
    Update {
        token: AgentToken,
        description: Option<String>,
        kind: Option<String>,
    },
    Send {
        token: AgentToken,
        body: String,
        to: Option<String>,
    },
    Unread {
        token: AgentToken,
    },
    /// `room.info`: needs a protected room's password (verified: `proof`) or a member's
    /// token.
    Info {
        proof: Option<PasswordProof>,
        token: Option<AgentToken>,
    },
    /// The room's password hash (`None`: an open room), for verifying a password outside
    /// the room before sending it a [`PasswordProof`].
    PasswordHash,
    /// `message.history`: the `limit` most recent visible messages after skipping `offset`.
    History {
        token: AgentToken,
        limit: usize,
        offset: usize,
    },
    /// Who is this token? Used before streaming to a subscriber.
    Authorize {
        token: AgentToken,
    },
    /// An A2A push to `member` was acknowledged (see `Command::Delivered` for `prev`).
    Delivered {
        member: MemberId,
        seq: Seq,
        prev: Seq,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RoomResponse {
    Joined {
        room_id: RoomId,
        agent_name: String,
        agent_token: AgentToken,
        role: Role,
        reconnected: bool,
        missed: Missed,
        /// The agent's read cursor after the join: everything up to it was handed out
        /// (its own join notice, the missed messages). A subscription that should carry
        /// on from the join starts here, so nothing committed after it is skipped.
        cursor: Seq,
    },
    Done(Reply),
    Info(RoomView),
    History {
        messages: Vec<Message>,
        total: u64,
    },
    Viewer {
        member: MemberId,
        agent_name: String,
        last_seq: Seq,
    },
    PasswordHash(Option<String>),
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
