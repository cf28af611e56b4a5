//! Identifiers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A room's id: a server-made UUID v4, rendered hyphenated (join.cloud's shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub Uuid);

impl RoomId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for RoomId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// A member's identity inside one room. Names can be reused after someone leaves, so
/// DMs and cursors refer to the member id, never to the display name: a newcomer who
/// takes a departed agent's name does not inherit its private messages.
/// `0` is the room-bot.
pub type MemberId = u64;

/// Position of a message in its room's log: gapless, strictly increasing, from 1.
pub type Seq = u64;
