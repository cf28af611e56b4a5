//! What a room is asked to do, what it remembers, and what it answers.

use serde::{Deserialize, Serialize};

use crate::ids::{MemberId, Seq};
use crate::model::{Agent, Message, Role, RoomType};
use crate::shared::SharedMessage;
use crate::token::TokenDigest;

/// A change request to one room, with everything already resolved that needs I/O:
/// token digests computed, the password checked, new secrets minted.
///
/// The room actor sends the typed commands below directly (each decides into its own
/// answer type, see [`crate::room::Decide`]); this enum is the same commands as one
/// language, for the tests, the model and the fuzzer, and answers with a [`Reply`].
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
        /// The client's message id; the message sent earlier under it comes with it
        /// (looked up by whoever plays the actor: [`crate::fuzzing::Sim`] in tests).
        key: Option<String>,
        earlier: Option<Message>,
    },
    Unread {
        token: TokenDigest,
    },
    Delivered {
        member: MemberId,
        seq: Seq,
        prev: Seq,
    },
}

/// `room.join`: a newcomer, or a reconnect when `token` is the named member's.
#[derive(Clone, Debug)]
pub struct Join {
    pub agent_name: String,
    /// The token the client presented for a reconnect, if any.
    pub token: Option<TokenDigest>,
    /// The digest of a freshly minted token, used if this becomes a new member.
    pub new_token: TokenDigest,
    pub endpoint: Option<String>,
}

/// `room.leave`.
#[derive(Clone, Debug)]
pub struct Leave {
    pub token: TokenDigest,
}

/// `room.promote`, `room.demote`, `room.kick`: an admin acts on `target`.
#[derive(Clone, Debug)]
pub struct Moderate {
    pub token: TokenDigest,
    pub target: String,
    pub action: Moderation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Moderation {
    Promote,
    Demote,
    Kick,
}

/// `room.update`. The type stays text until the room has checked the caller's token and
/// role: a bad token or a member's update is refused as such before any word about its
/// values (the order every protocol answers in).
#[derive(Clone, Debug)]
pub struct Update {
    pub token: TokenDigest,
    pub description: Option<String>,
    pub kind: Option<String>,
}

/// `message.send`. With a `key` (the client's message id), a retry is answered with the
/// message first sent under it: `earlier` is that message, found by the actor (in its
/// log tail or the store) before deciding.
#[derive(Clone, Debug)]
pub struct Send {
    pub token: TokenDigest,
    pub body: String,
    pub to: Option<String>,
    pub key: Option<String>,
    pub earlier: Option<Message>,
}

/// `message.unread`.
#[derive(Clone, Debug)]
pub struct Unread {
    pub token: TokenDigest,
}

/// An A2A push was acknowledged with a 2xx: the recipient has seen `seq`. `prev` is
/// the message pushed to it before this one: the cursor only moves if the agent has
/// seen that one too, so a push that was given up is never skipped over by a later
/// success (the agent still finds it with `message.unread`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    pub member: MemberId,
    pub seq: Seq,
    pub prev: Seq,
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
    pub messages: Vec<SharedMessage>,
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

/// A join's answer from the room: who the agent is now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    pub member: MemberId,
    pub agent_name: String,
    pub role: Role,
    pub reconnected: bool,
    pub missed: Missed,
}

/// A moderation's answer: the target's name as it joined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moderated {
    pub target: String,
}

/// An update's answer: `changes` as the contract prints them (`description`,
/// `type to channel`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Updated {
    pub changes: Vec<String>,
}

/// A send's answer: the message's `seq` and what the sender had missed before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub seq: Seq,
    pub missed: Missed,
}

/// What a room answers to a [`Command`] that succeeded: the typed answers as one enum
/// (tests, model, fuzzer).
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
