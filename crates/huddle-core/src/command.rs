//! What a room is asked to do, what it remembers, and what it answers.

use serde::{Deserialize, Serialize};

use crate::ids::{MemberId, Seq};
use crate::model::{Agent, Message, Role, RoomType};
use crate::token::TokenDigest;

/// A change request to one room, with everything already resolved that needs I/O:
/// token digests computed, the password checked, new secrets minted.
#[derive(Clone, Debug)]
pub enum Command {
    Join {
        agent_name: String,
        /// The token the client presented for a reconnect, if any.
        token: Option<TokenDigest>,
        /// The digest of a freshly minted token, used if this becomes a new member.
        new_token: TokenDigest,
        endpoint: Option<String>,
    },
    Leave {
        token: TokenDigest,
    },
    Promote {
        token: TokenDigest,
        target: String,
    },
    Demote {
        token: TokenDigest,
        target: String,
    },
    Kick {
        token: TokenDigest,
        target: String,
    },
    Update {
        token: TokenDigest,
        description: Option<String>,
        kind: Option<String>,
    },
    Send {
        token: TokenDigest,
        body: String,
        to: Option<String>,
    },
    Unread {
        token: TokenDigest,
    },
    /// An A2A push was acknowledged with a 2xx: the recipient has seen `seq`. `prev` is
    /// the message pushed to it before this one: the cursor only moves if the agent has
    /// seen that one too, so a push that was given up is never skipped over by a later
    /// success (the agent still finds it with `message.unread`).
    Delivered {
        member: MemberId,
        seq: Seq,
        prev: Seq,
    },
}

/// A slice of the log the room needs before it can decide (missed messages, unread):
/// the visible messages for `viewer` with `seq > after`, at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRead {
    pub viewer: MemberId,
    pub after: Seq,
    pub limit: usize,
}

/// A page of messages after a cursor; `has_more` when the page was cut at the limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missed {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

/// A fact about a room, persisted in order. [`crate::Room::apply`] folds it into state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    Joined(Agent),
    Reconnected {
        member: MemberId,
        endpoint: Option<String>,
    },
    Left {
        member: MemberId,
    },
    RoleChanged {
        member: MemberId,
        role: Role,
    },
    Updated {
        description: Option<String>,
        kind: Option<RoomType>,
    },
    Posted(Message),
    CursorMoved {
        member: MemberId,
        seq: Seq,
    },
}

/// What a room answers to a [`Command`] that succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Joined {
        member: MemberId,
        agent_name: String,
        role: Role,
        reconnected: bool,
        missed: Missed,
    },
    Left,
    Promoted {
        target: String,
    },
    Demoted {
        target: String,
    },
    Kicked {
        target: String,
    },
    /// `changes` as the contract prints them: `description, type to channel`.
    Updated {
        changes: Vec<String>,
    },
    Sent {
        seq: Seq,
        missed: Missed,
    },
    Unread(Missed),
    Delivered,
}
