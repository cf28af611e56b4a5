//! Every parameter an action takes, as A2A metadata and MCP arguments deliver them (one
//! loose shape for both envelopes), and the checks of their presence.

use huddle_core::{AgentToken, RoomError};
use serde_json::Value;

/// Every parameter any action takes, as the envelope delivered it.
#[derive(Clone, Debug, Default)]
pub struct Params {
    /// A2A `text` / MCP `name` (create) or `text` (send).
    pub text: Option<String>,
    /// A2A `contextId` / MCP `roomId`.
    pub room: Option<String>,
    pub agent_name: Option<String>,
    pub agent_token: Option<String>,
    pub agent_endpoint: Option<String>,
    pub password: Option<String>,
    pub description: Option<String>,
    pub kind: Option<String>,
    pub to: Option<String>,
    pub target_agent: Option<String>,
    pub search: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// The client's id of a message (A2A `message.messageId`, MCP `messageId`): a
    /// send's idempotency key.
    pub message_id: Option<String>,
    /// Not a wire parameter: the client's address, which failed password attempts are
    /// throttled by (`None` when the transport does not know it).
    pub client: Option<std::net::IpAddr>,
}

impl Params {
    /// Reads the parameters from a JSON object (A2A metadata, MCP arguments); strings only
    /// where strings are expected, numbers (or numeric strings) for limit/offset.
    pub fn from_json(v: &Value) -> Params {
        Params::from_entries(|k| v.get(k))
    }

    /// [`Params::from_json`] over any object's entries, found by key (the A2A fast path
    /// reads metadata into a list of entries, not a tree of values).
    pub fn from_entries<'a>(get: impl Fn(&str) -> Option<&'a Value>) -> Params {
        let s = |k: &str| get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| {
            get(k).and_then(|x| {
                x.as_i64()
                    .or_else(|| x.as_f64().map(|f| f as i64))
                    .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            })
        };
        Params {
            text: None,
            room: s("roomId"),
            agent_name: s("agentName"),
            agent_token: s("agentToken"),
            agent_endpoint: s("agentEndpoint"),
            password: s("password"),
            description: s("description"),
            kind: s("type"),
            to: s("to"),
            target_agent: s("targetAgent"),
            search: s("search"),
            limit: n("limit"),
            offset: n("offset"),
            message_id: s("messageId"),
            client: None,
        }
    }
}

/// `names required` for every name whose value is absent (listed in the given order).
pub fn required(present: &[(&str, bool)]) -> Result<(), RoomError> {
    let missing: Vec<&str> = present
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RoomError::missing(&missing))
    }
}

/// A value that is there and not empty.
pub fn non_empty(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

/// A non-empty string as an agent token.
pub fn token_param(s: Option<String>) -> Option<AgentToken> {
    s.filter(|t| !t.is_empty()).map(AgentToken::from_wire)
}
