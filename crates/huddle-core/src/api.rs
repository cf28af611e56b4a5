//! The requests a gateway sends to a room (through the `Router`) and what comes back.
//! These are the protocol-neutral operations of PROTOCOL.md A.4; they are serde types
//! so that the cluster can carry them between nodes unchanged.

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

/// An operation on one existing room.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RoomRequest {
    Join {
        agent_name: String,
        password: Option<String>,
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
    /// `room.info`: needs the password of a protected room or a member's token (B.4).
    Info {
        password: Option<String>,
        token: Option<AgentToken>,
    },
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
