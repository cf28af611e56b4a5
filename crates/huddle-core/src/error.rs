//! Every error a client can trigger, with the contract's text as its `Display`.
//!
//! The texts are matched by clients (docs/protocol.md, section 'Actions'), so they are
//! verbatim. Edges map these to their own codes with an exhaustive `match` (no `_` arm):
//! a new variant forces every protocol to decide what it means.

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum RoomError {
    /// `<p1>, <p2> required`
    #[error("{}", missing_text(.0))]
    Missing(Vec<String>),
    #[error("Room name \"{0}\" is reserved.")]
    ReservedName(String),
    #[error("Password-protected room \"{0}\" already exists. You must provide a password.")]
    ProtectedRoomExists(String),
    #[error("Room \"{0}\" already exists.")]
    RoomExists(String),
    #[error("Room \"{0}\" already exists with this password.")]
    RoomExistsWithPassword(String),
    #[error("Room not found: {0}")]
    RoomNotFound(String),
    #[error("Invalid room password")]
    InvalidPassword,
    #[error(
        "Agent name \"{0}\" is already taken in this room. If you own this name, use your agentToken to reconnect."
    )]
    NameTaken(String),
    #[error("Invalid agentToken")]
    InvalidToken,
    #[error("agentToken does not belong to this room")]
    TokenNotInRoom,
    #[error("Admin role required")]
    AdminRequired,
    #[error("Agent \"{0}\" not found in room")]
    AgentNotFound(String),
    #[error("Cannot demote the last admin")]
    LastAdmin,
    #[error("Cannot kick yourself")]
    KickSelf,
    #[error("At least one of description or type must be provided")]
    NothingToUpdate,
    #[error("Only admins can post in channels")]
    ChannelAdminsOnly,
    #[error("Invalid endpoint URL")]
    InvalidEndpoint,
    #[error("Endpoint URL must use http or https")]
    EndpointScheme,
    #[error("Endpoint URL must not point to localhost")]
    EndpointLocalhost,
    #[error("Endpoint URL must not point to a private IP address")]
    EndpointPrivate,
    /// A value over a configured limit: names the limit.
    #[error("{what} is too long: the limit is {limit} {unit}")]
    TooLong {
        what: String,
        limit: usize,
        unit: String,
    },
    /// Any other invalid value (empty name, control characters, bad type).
    #[error("{0}")]
    Invalid(String),
    /// A send reused its `messageId` (idempotency key) for another text or recipient.
    #[error("messageId already used for another message")]
    MessageIdReused,
    /// Admission control refused the request: retry later.
    #[error("Server busy: too many requests in flight (limit {0}); retry shortly")]
    Busy(usize),
    /// Live streams (SSE, gRPC Subscribe, MCP notifications) on this node are at their
    /// limit: retry later or on another node.
    #[error("Too many live streams on this node: the limit is {0}; retry shortly")]
    TooManyStreams(usize),
    /// The store or the room's actor failed; the command may not have been applied.
    #[error("Service unavailable: {0}")]
    Unavailable(String),
    /// Failed password attempts from one client address, or on one room, are over their
    /// rate (a token bucket per minute): refused before any hashing.
    #[error(
        "Too many failed password attempts {scope}: the limit is {limit} per minute; retry in {retry_after_secs} s"
    )]
    PasswordAttempts {
        scope: AttemptScope,
        limit: u32,
        retry_after_secs: u64,
    },
    /// Password checks (argon2) waiting for a hashing thread are at their limit.
    #[error("Server busy: too many password checks waiting (limit {0}); retry shortly")]
    PasswordChecksBusy(usize),
    /// `room.create` of a name that already has this many rooms: every same-name room is
    /// a password to try on a join, so their number is bounded.
    #[error("Too many rooms named \"{name}\": the limit is {limit}")]
    TooManyRoomsNamed { name: String, limit: usize },
    /// `room.join` of a newcomer to a room that has this many agents: anyone who knows a
    /// public room's name may join it, so its member list is bounded.
    #[error("Room is full: the limit is {0} agents")]
    RoomFull(usize),
}

/// Whose failed password attempts are over their rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptScope {
    /// The client's address (an IPv6 client's /64).
    Address,
    /// The room the attempts were made on.
    Room,
}

impl std::fmt::Display for AttemptScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttemptScope::Address => "from your address",
            AttemptScope::Room => "on this room",
        })
    }
}

fn missing_text(params: &[String]) -> String {
    format!("{} required", params.join(", "))
}

impl RoomError {
    pub fn missing(params: &[&str]) -> Self {
        Self::Missing(params.iter().map(|s| s.to_string()).collect())
    }

    pub fn too_long(what: &str, limit: usize, unit: &str) -> Self {
        Self::TooLong {
            what: what.into(),
            limit,
            unit: unit.into(),
        }
    }

    /// Seconds after which the same request may succeed, for refusals that know it (an
    /// HTTP edge sends it as `Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::PasswordAttempts {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::PasswordChecksBusy(_) => Some(1),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_the_contracts() {
        assert_eq!(
            RoomError::missing(&["agentName", "roomId"]).to_string(),
            "agentName, roomId required"
        );
        assert_eq!(
            RoomError::NameTaken("bob".into()).to_string(),
            "Agent name \"bob\" is already taken in this room. If you own this name, use your agentToken to reconnect."
        );
        assert_eq!(
            RoomError::too_long("Message text", 65536, "bytes").to_string(),
            "Message text is too long: the limit is 65536 bytes"
        );
        let throttled = RoomError::PasswordAttempts {
            scope: AttemptScope::Address,
            limit: 10,
            retry_after_secs: 6,
        };
        assert_eq!(
            throttled.to_string(),
            "Too many failed password attempts from your address: the limit is 10 per minute; retry in 6 s"
        );
        assert_eq!(throttled.retry_after_secs(), Some(6));
        assert_eq!(
            RoomError::PasswordChecksBusy(32).to_string(),
            "Server busy: too many password checks waiting (limit 32); retry shortly"
        );
    }
}
