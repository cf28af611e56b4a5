//! Input limits (docs/protocol.md, section 'Limits'). Each is configurable and each
//! refusal names it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest message body, in bytes of UTF-8 (`HUDDLE_MAX_MESSAGE_BYTES`).
    pub max_message_bytes: usize,
    /// Longest room or agent name, in characters (`HUDDLE_MAX_NAME_CHARS`).
    pub max_name_chars: usize,
    /// Longest room description, in characters (join.cloud: 5000).
    pub max_description_chars: usize,
    /// Longest room password, in bytes: argon2 work grows with it.
    pub max_password_bytes: usize,
    /// Largest page of history/unread/missed messages.
    pub max_page: usize,
    /// Most agents in one room (`HUDDLE_MAX_AGENTS_PER_ROOM`): anyone who knows a public
    /// room's name may join it, each send finds its sender among them and `room.info`
    /// lists them all. Reconnects are always let in.
    pub max_agents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_name_chars: 100,
            max_description_chars: 5000,
            max_password_bytes: 1024,
            max_page: 100,
            max_agents: 1000,
        }
    }
}
