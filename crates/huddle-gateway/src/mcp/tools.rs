//! The twelve MCP tools (docs/protocol.md, section 'Tools'): their names, descriptions,
//! input schemas and annotations, and which room action each runs.
//!
//! The tools are a table; the schemas are generated from it, so a tool's arguments, its
//! schema and the way a session fills in its agent token cannot disagree.

use std::sync::{Arc, OnceLock};

use rmcp::model::Tool;
use serde_json::{Map, Value, json};

use crate::ops::Action;

/// How a tool finds the agent it acts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// No agent (`listRooms`).
    Anyone,
    /// Makes the agent: `createRoom`, `joinRoom` (the session remembers its token).
    Joins,
    /// Names a room (`roomInfo`); a member's token, when the session has one for that
    /// room, opens a password-protected room.
    Names,
    /// Acts as one of the session's agents: `roomId` picks the room, default the most
    /// recently joined; an explicit `agentToken` (sessionless clients) wins.
    Member,
}

#[derive(Clone, Copy, Debug)]
pub struct Arg {
    pub name: &'static str,
    pub kind: &'static str,
    pub description: &'static str,
    pub one_of: &'static [&'static str],
}

const fn arg(name: &'static str, kind: &'static str, description: &'static str) -> Arg {
    Arg {
        name,
        kind,
        description,
        one_of: &[],
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ToolSpec {
    pub name: &'static str,
    pub action: Action,
    pub scope: Scope,
    pub description: &'static str,
    pub args: &'static [Arg],
    pub required: &'static [&'static str],
    pub hints: Hints,
}

/// What a client may assume of a tool before calling it (MCP's tool annotations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    /// Whether what it does reaches beyond the caller (other agents see it).
    pub open_world: bool,
}

impl Hints {
    /// A read: changes nothing, seen by no one else.
    const READ: Hints = Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
    };
    /// A change the room's other agents see (a message, a notice); each call makes one.
    const POST: Hints = Hints {
        read_only: false,
        destructive: false,
        idempotent: false,
        open_world: true,
    };

    /// Takes something away (a member, a role, a description).
    const fn destructive(self) -> Hints {
        Hints {
            destructive: true,
            ..self
        }
    }

    /// Calling it again changes nothing more.
    const fn idempotent(self) -> Hints {
        Hints {
            idempotent: true,
            ..self
        }
    }

    /// Nobody else sees it.
    const fn unseen(self) -> Hints {
        Hints {
            open_world: false,
            ..self
        }
    }
}

const ROOM_CHOICE: Arg = arg(
    "roomId",
    "string",
    "Which of your joined rooms (id or name). Default: the room you joined most recently.",
);
const TOKEN: Arg = arg(
    "agentToken",
    "string",
    "Your agentToken. Only needed without an MCP session (protocol 2026-07-28): a session remembers the token createRoom/joinRoom returned.",
);
const ROOM_TYPE: Arg = Arg {
    name: "type",
    kind: "string",
    description: "\"group\": everyone posts; \"channel\": only admins post.",
    one_of: &["group", "channel"],
};
const TARGET: Arg = arg(
    "targetAgent",
    "string",
    "The agent's display name in the room.",
);
const LIMIT: Arg = arg("limit", "integer", "How many (1..100, default 20).");
const OFFSET: Arg = arg("offset", "integer", "How many to skip (default 0).");

pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "createRoom",
        action: Action::Create,
        scope: Scope::Joins,
        description: "Create a room and join it as its admin. Returns the room id and your agentToken; this session remembers the token, and from now on every message of the room reaches you as a notification (logger \"room/<roomId>\").",
        args: &[
            arg("agentName", "string", "Your display name in the room."),
            arg(
                "name",
                "string",
                "Room name (lower-cased; default: the room's id).",
            ),
            arg("password", "string", "Makes the room password protected."),
            arg(
                "description",
                "string",
                "What the room is for (up to 5000 characters).",
            ),
            ROOM_TYPE,
        ],
        required: &["agentName"],
        hints: Hints::POST,
    },
    ToolSpec {
        name: "joinRoom",
        action: Action::Join,
        scope: Scope::Joins,
        description: "Join a room by id, name or \"name:password\" (or reconnect under your name with your agentToken). This session remembers the token and delivers the room's messages as notifications. A session may be in several rooms: the tools that act as your agent (sendMessage, leaveRoom, ...) act on the most recently joined one unless given roomId.",
        args: &[
            arg("roomId", "string", "Room id, name, or \"name:password\"."),
            arg(
                "agentName",
                "string",
                "Your display name, unique in the room.",
            ),
            arg("password", "string", "The room's password, if it has one."),
            arg(
                "agentToken",
                "string",
                "Your agentToken, to reconnect under the same name.",
            ),
        ],
        required: &["roomId", "agentName"],
        hints: Hints::POST,
    },
    ToolSpec {
        name: "leaveRoom",
        action: Action::Leave,
        scope: Scope::Member,
        description: "Leave a room you joined (default: the most recently joined). Your agentToken for it stops working and its notifications stop.",
        args: &[ROOM_CHOICE, TOKEN],
        required: &[],
        hints: Hints::POST.destructive(),
    },
    ToolSpec {
        name: "roomInfo",
        action: Action::Info,
        scope: Scope::Names,
        description: "Describe a room: name, description, type, and its members with their roles.",
        args: &[
            arg("roomId", "string", "Room id, name, or \"name:password\"."),
            TOKEN,
        ],
        required: &["roomId"],
        hints: Hints::READ,
    },
    ToolSpec {
        name: "listRooms",
        action: Action::List,
        scope: Scope::Anyone,
        description: "List the public (password-less) rooms, sorted by name, with their member counts.",
        args: &[
            arg("search", "string", "Only rooms whose name contains this."),
            LIMIT,
            OFFSET,
        ],
        required: &[],
        hints: Hints::READ,
    },
    ToolSpec {
        name: "sendMessage",
        action: Action::Send,
        scope: Scope::Member,
        description: "Post a message to the room, or privately to one agent with `to` (a direct message only its sender and recipient see). Returns the messages you missed since your last read.",
        args: &[
            arg("text", "string", "The message."),
            arg(
                "to",
                "string",
                "An agent's name: makes it a private direct message.",
            ),
            arg(
                "messageId",
                "string",
                "Your id for this message (at most 128 bytes): sending again with the same id returns the first send's seq instead of posting twice, so a retry is safe.",
            ),
            ROOM_CHOICE,
            TOKEN,
        ],
        required: &["text"],
        hints: Hints::POST,
    },
    ToolSpec {
        name: "messageHistory",
        action: Action::History,
        scope: Scope::Member,
        description: "The most recent messages of a room you joined that you may see (direct messages to others excluded), oldest first in seq order.",
        args: &[
            arg(
                "roomId",
                "string",
                "The room's id (or the name you joined it by).",
            ),
            LIMIT,
            arg(
                "offset",
                "integer",
                "Skip this many of the most recent messages (default 0).",
            ),
            TOKEN,
        ],
        required: &["roomId"],
        hints: Hints::READ,
    },
    ToolSpec {
        name: "unreadMessages",
        action: Action::Unread,
        scope: Scope::Member,
        description: "Everything posted since your last read (100 at a time, oldest first), and mark it read.",
        args: &[ROOM_CHOICE, TOKEN],
        required: &[],
        hints: Hints::POST.unseen(),
    },
    ToolSpec {
        name: "promoteAgent",
        action: Action::Promote,
        scope: Scope::Member,
        description: "Make another agent of the room an admin (admins only).",
        args: &[TARGET, ROOM_CHOICE, TOKEN],
        required: &["targetAgent"],
        hints: Hints::POST.idempotent(),
    },
    ToolSpec {
        name: "demoteAgent",
        action: Action::Demote,
        scope: Scope::Member,
        description: "Make an admin a plain member again (admins only; a room keeps at least one admin).",
        args: &[TARGET, ROOM_CHOICE, TOKEN],
        required: &["targetAgent"],
        hints: Hints::POST.destructive().idempotent(),
    },
    ToolSpec {
        name: "kickAgent",
        action: Action::Kick,
        scope: Scope::Member,
        description: "Remove an agent from the room (admins only); its agentToken stops working.",
        args: &[TARGET, ROOM_CHOICE, TOKEN],
        required: &["targetAgent"],
        hints: Hints::POST.destructive(),
    },
    ToolSpec {
        name: "updateRoom",
        action: Action::Update,
        scope: Scope::Member,
        description: "Change the room's description and/or type (admins only).",
        args: &[
            arg(
                "description",
                "string",
                "The new description (up to 5000 characters).",
            ),
            ROOM_TYPE,
            ROOM_CHOICE,
            TOKEN,
        ],
        required: &[],
        hints: Hints::POST.destructive().idempotent(),
    },
];

pub fn find(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

impl ToolSpec {
    /// The tool's JSON Schema for its arguments.
    pub fn input_schema(&self) -> Value {
        let mut properties = Map::new();
        for a in self.args {
            let mut p = json!({ "type": a.kind, "description": a.description });
            if !a.one_of.is_empty() {
                p["enum"] = json!(a.one_of);
            }
            if a.kind == "integer" {
                p["minimum"] = json!(0);
            }
            properties.insert(a.name.to_string(), p);
        }
        let mut schema = json!({ "type": "object", "properties": properties });
        if !self.required.is_empty() {
            schema["required"] = json!(self.required);
        }
        schema
    }

    /// The human title: the action's, from the one documentation table (`docs`).
    pub fn title(&self) -> &'static str {
        crate::docs::doc(self.action.name()).map_or(self.name, |d| d.title)
    }

    /// The tool as `tools/list` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "title": self.title(),
            "description": self.description,
            "inputSchema": self.input_schema(),
            "annotations": {
                "title": self.title(),
                "readOnlyHint": self.hints.read_only,
                "destructiveHint": self.hints.destructive,
                "idempotentHint": self.hints.idempotent,
                "openWorldHint": self.hints.open_world,
            },
        })
    }
}

/// `tools/list`, built once.
pub fn catalogue() -> Arc<Vec<Tool>> {
    static CATALOGUE: OnceLock<Arc<Vec<Tool>>> = OnceLock::new();
    CATALOGUE
        .get_or_init(|| {
            Arc::new(
                TOOLS
                    .iter()
                    .map(|t| serde_json::from_value(t.to_json()).expect("tool table is valid"))
                    .collect(),
            )
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tool list itself is checked over HTTP (tests/mcp/tools.rs); here: every tool
    /// is one documented action, and its schema names what it requires.
    #[test]
    fn every_tool_is_a_documented_action_with_schema_and_annotations() {
        for spec in TOOLS {
            let doc = crate::docs::doc(spec.action.name())
                .unwrap_or_else(|| panic!("{} has no documented action", spec.name));
            assert_eq!(spec.title(), doc.title);
        }
        let tools = catalogue();
        assert_eq!(tools.len(), 12);
        for (spec, tool) in TOOLS.iter().zip(tools.iter()) {
            let v = serde_json::to_value(tool).unwrap();
            assert_eq!(v["inputSchema"]["type"], "object", "{}", spec.name);
            for r in spec.required {
                assert!(
                    v["inputSchema"]["properties"].get(*r).is_some(),
                    "{} {r}",
                    spec.name
                );
            }
            let a = &v["annotations"];
            for hint in [
                "title",
                "readOnlyHint",
                "destructiveHint",
                "idempotentHint",
                "openWorldHint",
            ] {
                assert!(a.get(hint).is_some(), "{} lacks {hint}", spec.name);
            }
        }
    }
}
