//! The typed answers of the room API as the contract's text line and data object
//! (docs/protocol.md, section 'Actions'), shared by A2A (text part + data part) and
//! MCP (text, then the data as compact JSON).

use huddle_app::RoomPage;
use huddle_core::{
    Created, HistoryPage, Joined, Message, Missed, Moderated, Moderation, RoomId, RoomView, Sent,
    Seq, SharedMessage, Updated,
};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

/// A successful action: the text line and, when the action returns data, the data.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub text: String,
    pub data: Option<Data>,
    pub room_id: Option<RoomId>,
    /// After a join or create: the agent in the room (not on the wire as such). A
    /// session remembers it and carries notification delivery on from its cursor.
    pub joined: Option<Member>,
}

/// The agent a create or join made (or reconnected).
#[derive(Clone, Debug)]
pub struct Member {
    pub room_id: RoomId,
    pub agent_name: String,
    pub agent_token: huddle_core::AgentToken,
    /// The room's name, after a create (a join names it by the client's reference).
    pub room_name: Option<String>,
    /// The agent's read cursor after the join (0 for a creator: everything is news).
    pub cursor: huddle_core::Seq,
}

impl Outcome {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            data: None,
            room_id: None,
            joined: None,
        }
    }

    fn in_room(mut self, room: RoomId) -> Self {
        self.room_id = Some(room);
        self
    }

    /// The messages under `data.missedMessages`, if any (for the A2A summary part).
    pub fn missed(&self) -> Option<&[SharedMessage]> {
        self.data.as_ref()?.missed.as_ref().map(|m| &m.messages[..])
    }
}

/// An answer's data object. Answers build their fields as a JSON object; the messages an
/// agent missed (on every send and join, often several) stay typed and are written
/// straight into the JSON at their place among the keys, instead of becoming a tree of
/// values per message first. Keys come out sorted, as in every object the server writes.
#[derive(Clone, Debug)]
pub struct Data {
    fields: Map<String, Value>,
    /// Never empty: no missed messages, no `missed*` keys.
    missed: Option<Missed>,
}

impl From<Value> for Data {
    fn from(fields: Value) -> Self {
        let Value::Object(fields) = fields else {
            unreachable!("an answer's data is a JSON object")
        };
        Self {
            fields,
            missed: None,
        }
    }
}

impl Data {
    fn with_missed(mut self, missed: Missed) -> Self {
        self.missed = Some(missed).filter(|m| !m.messages.is_empty());
        self
    }
}

/// The `missed*` keys' values.
enum MissedKey<'a> {
    Count(usize),
    HasMore,
    Messages(&'a [SharedMessage]),
}

impl Serialize for MissedKey<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Count(n) => s.serialize_u64(*n as u64),
            Self::HasMore => s.serialize_bool(true),
            // Each message's JSON as rendered once for every answer and stream.
            Self::Messages(ms) => s.collect_seq(ms.iter().map(SharedMessage::raw_json)),
        }
    }
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let missed = self.missed.as_ref().map_or([None, None, None], |m| {
            [
                Some(("missedCount", MissedKey::Count(m.messages.len()))),
                m.has_more.then_some(("missedHasMore", MissedKey::HasMore)),
                Some(("missedMessages", MissedKey::Messages(&m.messages))),
            ]
        });
        let mut missed = missed.into_iter().flatten().peekable();
        let mut map = s.serialize_map(None)?;
        for (key, value) in &self.fields {
            while let Some((k, v)) = missed.next_if(|(k, _)| *k < key.as_str()) {
                map.serialize_entry(k, &v)?;
            }
            map.serialize_entry(key, value)?;
        }
        for (k, v) in missed {
            map.serialize_entry(k, &v)?;
        }
        map.end()
    }
}

/// Compact JSON (MCP puts it under the text line).
impl std::fmt::Display for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn messages<'a>(ms: impl IntoIterator<Item = &'a Message>) -> Value {
    Value::Array(ms.into_iter().map(Message::to_json).collect())
}

/// A JSON object of `fields`, moved in. `json!` serialises every value it is given into
/// a new one: a deep copy of a list of messages, on every answer that carries one.
pub(crate) fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

pub fn help() -> Outcome {
    Outcome {
        data: Some(json!({ "documentation": crate::docs::structured() }).into()),
        ..Outcome::text(crate::docs::text())
    }
}

pub fn created(c: Created) -> Outcome {
    let protected = if c.password_protected {
        " (password protected)"
    } else {
        ""
    };
    let text = format!(
        "Room created: {}{protected}. Joined as {} (admin).",
        c.room_id, c.agent_name
    );
    let data = json!({
        "roomId": c.room_id.to_string(),
        "name": c.name,
        "description": c.description,
        "type": c.kind.as_str(),
        "passwordProtected": c.password_protected,
        "agentName": c.agent_name,
        "agentToken": c.agent_token.as_str(),
    });
    Outcome {
        data: Some(data.into()),
        joined: Some(Member {
            room_id: c.room_id,
            agent_name: c.agent_name,
            agent_token: c.agent_token,
            room_name: Some(c.name),
            cursor: Seq::ZERO,
        }),
        ..Outcome::text(text).in_room(c.room_id)
    }
}

pub fn joined(j: Joined) -> Outcome {
    let verb = if j.reconnected {
        "Reconnected to room"
    } else {
        "Joined room"
    };
    let data = json!({
        "roomId": j.room_id.to_string(),
        "agentName": j.agent_name,
        "agentToken": j.agent_token.as_str(),
        "role": j.role.as_str(),
    });
    Outcome {
        data: Some(Data::from(data).with_missed(j.missed)),
        joined: Some(Member {
            room_id: j.room_id,
            room_name: None,
            cursor: j.cursor,
            agent_name: j.agent_name.clone(),
            agent_token: j.agent_token,
        }),
        ..Outcome::text(format!("{verb} {} as {}", j.room_id, j.agent_name)).in_room(j.room_id)
    }
}

pub fn left(room: RoomId) -> Outcome {
    Outcome::text(format!("Left room {room}")).in_room(room)
}

pub fn info(view: RoomView) -> Outcome {
    let agents: Vec<Value> = view
        .agents
        .iter()
        .map(
            |a| json!({"name": a.name, "role": a.role.as_str(), "joinedAt": a.joined_at.rfc3339()}),
        )
        .collect();
    let mut data = json!({
        "roomId": view.room_id.to_string(),
        "name": view.name,
        "description": view.description,
        "type": view.kind.as_str(),
        "passwordProtected": view.password_protected,
        "createdAt": view.created_at.rfc3339(),
        "lastSeq": view.last_seq,
    });
    data["agents"] = Value::Array(agents);
    Outcome {
        text: pretty(&data),
        data: Some(data.into()),
        ..Outcome::text("").in_room(view.room_id)
    }
}

pub fn listed(page: RoomPage) -> Outcome {
    let rooms: Vec<Value> = page
        .rooms
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "description": r.description,
                "type": r.kind.as_str(),
                "agents": r.agents,
                "createdAt": r.created_at.rfc3339(),
            })
        })
        .collect();
    let rooms = Value::Array(rooms);
    Outcome {
        text: pretty(&rooms),
        data: Some(object([("rooms", rooms), ("total", page.total.into())]).into()),
        ..Outcome::text("")
    }
}

pub fn moderated(room: RoomId, action: Moderation, m: Moderated) -> Outcome {
    let target = m.target;
    let text = match action {
        Moderation::Promote => format!("Promoted {target} to admin"),
        Moderation::Demote => format!("Demoted {target} to member"),
        Moderation::Kick => format!("Kicked {target} from the room"),
    };
    Outcome::text(text).in_room(room)
}

pub fn updated(room: RoomId, u: Updated) -> Outcome {
    Outcome::text(format!("Room updated: {}", u.changes.join(", "))).in_room(room)
}

pub fn sent(room: RoomId, s: Sent) -> Outcome {
    let data = Data::from(object([("seq", s.seq.get().into())]));
    Outcome {
        data: Some(data.with_missed(s.missed)),
        ..Outcome::text("Message sent").in_room(room)
    }
}

pub fn history(room: RoomId, page: HistoryPage) -> Outcome {
    let messages = messages(&page.messages);
    Outcome {
        text: pretty(&messages),
        data: Some(object([("messages", messages), ("total", page.total.into())]).into()),
        ..Outcome::text("").in_room(room)
    }
}

pub fn unread(room: RoomId, page: Missed) -> Outcome {
    let list = messages(page.messages.iter().map(|m| m.message()));
    let text = if page.messages.is_empty() {
        "No unread messages".to_string()
    } else {
        pretty(&list)
    };
    let total = page.messages.len().into();
    let mut data = object([("messages", list), ("total", total)]);
    if page.has_more {
        data["hasMore"] = true.into();
    }
    Outcome {
        data: Some(data.into()),
        ..Outcome::text(text).in_room(room)
    }
}

/// The A2A third part: `\n--- N missed message(s) ---\n` then `[from] body` lines.
pub fn missed_summary(missed: &[SharedMessage]) -> String {
    use std::fmt::Write;
    let mut text = format!("\n--- {} missed message(s) ---", missed.len());
    for m in missed {
        let _ = match &m.to {
            Some(to) => write!(text, "\n[{} -> {to}] {}", m.from, m.body),
            None => write!(text, "\n[{}] {}", m.from, m.body),
        };
    }
    text
}
