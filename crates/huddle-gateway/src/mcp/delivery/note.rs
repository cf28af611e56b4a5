//! The wire shape of a room message notification, and the SSE event that carries it.

use std::borrow::Cow;

use axum::body::Bytes;
use huddle_core::{Message, Seq, SharedMessage};
use serde::Serialize;

/// One SSE event carrying a JSON-RPC message (`event: message`, as MCP clients expect).
pub fn sse_message(id: Option<&str>, message: &str) -> Bytes {
    match id {
        Some(id) => Bytes::from(format!("event: message\nid: {id}\ndata: {message}\n\n")),
        None => Bytes::from(format!("event: message\ndata: {message}\n\n")),
    }
}

/// The wire shape of a room message notification (serialised straight from the message,
/// no intermediate JSON tree; a fanned-out message is rendered once, see [`shared`]).
#[derive(Serialize)]
struct Note<'a> {
    jsonrpc: &'static str,
    method: &'static str,
    params: NoteParams<'a>,
}

#[derive(Serialize)]
struct NoteParams<'a> {
    level: &'static str,
    logger: String,
    data: NoteData<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NoteData<'a> {
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    body: &'a str,
    timestamp: String,
    seq: Seq,
    message_id: &'a str,
    room_id: String,
}

/// `notifications/message` for one room message (docs/protocol.md, section
/// 'Notifications'), as JSON text:
/// `{level: "info", logger: "room/<roomId>", data: {from, to?, body, timestamp, seq, ...}}`.
pub fn notification(m: &Message) -> String {
    let room_id = m.room_id.to_string();
    let note = Note {
        jsonrpc: "2.0",
        method: "notifications/message",
        params: NoteParams {
            level: "info",
            logger: format!("room/{room_id}"),
            data: NoteData {
                from: &m.from,
                to: m.to.as_deref(),
                body: &m.body,
                timestamp: m.timestamp.rfc3339(),
                seq: m.seq,
                message_id: &m.id,
                room_id,
            },
        },
    };
    serde_json::to_string(&note).expect("a notification serialises")
}

/// The notification of a message a room fans out: rendered once, for every session that
/// gets it.
pub fn shared(m: &SharedMessage) -> Cow<'_, str> {
    m.note(notification)
}
