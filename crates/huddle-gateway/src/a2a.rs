//! A2A JSON-RPC at `POST /a2a` (docs/protocol.md, section 'A2A envelope'): the envelope,
//! the methods, and the rendering of an action's [`Outcome`] as an A2A Message. Also
//! `GET /a2a` and the Agent Card (section 'Agent Card and discovery').

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use crate::AppState;
use crate::body::{BodyError, read_limited};
use crate::observe;
use crate::ops::{self, Action, Outcome, Params};
use crate::render::Data;

pub(crate) mod fast;
use huddle_metrics::Protocol;

fn rpc_error(code: i64, message: impl Into<String>, id: Value) -> Value {
    json!({"jsonrpc": "2.0", "error": {"code": code, "message": message.into()}, "id": id})
}

/// A JSON-RPC success answer, written straight to JSON (keys sorted, as in every object
/// the server writes).
struct RpcResult<R> {
    id: Value,
    result: R,
}

impl<R: Serialize> Serialize for RpcResult<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("jsonrpc", "2.0")?;
        map.serialize_entry("result", &self.result)?;
        map.end()
    }
}

/// An answer as a JSON response. `axum::Json` writes through a `BytesMut` grown from 128
/// bytes, a checked copy per token; a send's answer is a few hundred bytes, written here
/// into one buffer of about its size.
fn json_response(answer: &impl Serialize) -> Response {
    let mut body = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut body, answer) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "an answer that is not JSON");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The same, as a value (answers decided before any room is touched).
fn rpc_result(result: impl Serialize, id: Value) -> Value {
    serde_json::to_value(RpcResult { id, result }).expect("an answer is plain JSON")
}

pub async fn post(State(app): State<AppState>, request: Request) -> Response {
    let client = crate::peer::ip(request.extensions());
    let body = match read_limited(request.into_body(), app.config.max_body_bytes).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let message = crate::body::too_large(app.config.max_body_bytes);
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                [(header::CONNECTION, "close")],
                Json(rpc_error(-32600, message, Value::Null)),
            )
                .into_response();
        }
        Err(BodyError::Incomplete(why)) => {
            let message = format!("Invalid request body: {why}");
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONNECTION, "close")],
                Json(rpc_error(-32600, message, Value::Null)),
            )
                .into_response();
        }
    };
    let mut retry_after = None;
    let mut response = match envelope(&body) {
        Envelope::Answer(answer) => Json(answer).into_response(),
        Envelope::Run {
            id,
            action,
            mut params,
        } => {
            params.client = client;
            let run = ops::execute(app.api(), action, *params);
            let result = match observe::timed(Protocol::A2a, action.name(), run).await {
                Ok(outcome) => render(outcome),
                Err(e) => {
                    retry_after = e.retry_after_secs();
                    error_message(&e.to_string())
                }
            };
            json_response(&RpcResult { id, result })
        }
    };
    // A refusal that knows when to come back (password throttle, busy password checks)
    // says so in HTTP too; the body stays the contract's 200 with an `Error:` text.
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// What a `POST /a2a` body asks for, decided before any room is touched.
#[derive(Debug)]
pub enum Envelope {
    /// The whole JSON-RPC answer: a parse or envelope error, another method, the docs,
    /// an unknown action.
    Answer(Value),
    /// `SendMessage` naming an action: run it, answer its A2A Message under `id`.
    Run {
        id: Value,
        action: Action,
        params: Box<Params>,
    },
}

/// Reads the JSON-RPC envelope of a `POST /a2a` body. The common request, a
/// `SendMessage` naming an action, is read without a tree of values first (`fast`);
/// anything else takes the general path, which decides every body.
pub fn envelope(body: &[u8]) -> Envelope {
    match fast::send_message(body) {
        Some((id, action, params)) => Envelope::Run {
            id,
            action,
            params: Box::new(params),
        },
        None => general_envelope(body),
    }
}

/// [`envelope`] without its fast path (the fuzz target checks both agree).
pub(crate) fn general_envelope(body: &[u8]) -> Envelope {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Envelope::Answer(rpc_error(-32700, format!("Parse error: {e}"), Value::Null));
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request.get("method").and_then(Value::as_str);
    let valid = request.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    let Some(method) = method.filter(|_| valid) else {
        return Envelope::Answer(rpc_error(-32600, "Invalid request", id));
    };
    let answer = match method {
        "SendMessage" => {
            let message = request
                .get("params")
                .and_then(|p| p.get("message"))
                .unwrap_or(&Value::Null);
            match send_message(message) {
                Ok((action, params)) => {
                    let params = Box::new(params);
                    return Envelope::Run { id, action, params };
                }
                Err(message) => rpc_result(message, id),
            }
        }
        "GetTask" => rpc_error(-32601, "GetTask not implemented", id),
        "rpc.discover" => rpc_result(discover(), id),
        other => rpc_error(
            -32601,
            format!("Method not found: {other}. Try \"SendMessage\" or \"rpc.discover\""),
            id,
        ),
    };
    Envelope::Answer(answer)
}

/// `SendMessage`: the action and its parameters, or the A2A Message that answers at once.
fn send_message(message: &Value) -> Result<(Action, Params), Box<AgentMessage>> {
    let string = |key: &str| message.get(key).and_then(Value::as_str).map(str::to_string);
    let text = message
        .get("parts")
        .and_then(Value::as_array)
        .and_then(|parts| {
            parts
                .iter()
                .find_map(|p| p.get("text").and_then(Value::as_str))
        })
        .map(str::to_string);
    action_of(SendMessage {
        text,
        context: string("contextId"),
        message_id: string("messageId"),
        metadata: message.get("metadata").unwrap_or(&Value::Null),
    })
}

/// What `SendMessage` reads from its `params.message`.
struct SendMessage<M> {
    /// The first part's text.
    text: Option<String>,
    context: Option<String>,
    message_id: Option<String>,
    metadata: M,
}

/// `metadata`'s values by key: a tree of values (the general path) or the entries the
/// fast path read.
trait Metadata {
    fn get(&self, key: &str) -> Option<&Value>;
}

impl Metadata for &Value {
    fn get(&self, key: &str) -> Option<&Value> {
        Value::get(self, key)
    }
}

/// The action `SendMessage` asks for and its parameters, or the A2A Message that answers
/// at once.
fn action_of<M: Metadata>(message: SendMessage<M>) -> Result<(Action, Params), Box<AgentMessage>> {
    let metadata = &message.metadata;
    let mut params = Params::from_entries(|k| metadata.get(k));
    params.text = message.text;
    // A2A clients give every message an id: a send's idempotency key.
    params.message_id = message.message_id;
    params.room = message.context.or(params.room);
    let action = match metadata.get("action").and_then(Value::as_str) {
        Some(name) => match Action::parse(name) {
            Some(a) => a,
            None => {
                return Err(Box::new(error_message(&format!(
                    "Unknown action: {name}. Send metadata.action: \"help\" for full documentation."
                ))));
            }
        },
        // No action: a plain message from a joined agent is a send; anything else, the docs.
        None if params.room.is_some() && params.agent_token.is_some() => Action::Send,
        None => return Err(Box::new(AgentMessage::new(crate::docs::text(), None))),
    };
    Ok((action, params))
}

fn render(outcome: Outcome) -> AgentMessage {
    let summary = outcome.missed().map(ops::missed_summary);
    AgentMessage {
        summary,
        context: outcome.room_id.map(|r| r.to_string()),
        ..AgentMessage::new(outcome.text, outcome.data)
    }
}

/// An A2A Message from the agent: the text part, the data part when there is data, and
/// the missed-message summary when something was missed (docs/protocol.md, section
/// 'A2A envelope'). Written straight to JSON, keys sorted as in every object the server
/// writes.
struct AgentMessage {
    text: String,
    data: Option<Data>,
    summary: Option<String>,
    context: Option<String>,
    id: String,
}

impl AgentMessage {
    fn new(text: String, data: Option<Data>) -> Self {
        Self {
            text,
            data,
            summary: None,
            context: None,
            id: uuid_like(),
        }
    }
}

/// One part of an [`AgentMessage`].
enum Part<'a> {
    Text(&'a str),
    Data(&'a Data),
}

impl Serialize for Part<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        match self {
            Self::Text(text) => {
                map.serialize_entry("kind", "text")?;
                map.serialize_entry("text", text)?;
            }
            Self::Data(data) => {
                map.serialize_entry("data", data)?;
                map.serialize_entry("kind", "data")?;
            }
        }
        map.end()
    }
}

impl Serialize for AgentMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let parts = [
            Some(Part::Text(&self.text)),
            self.data.as_ref().map(Part::Data),
            self.summary.as_deref().map(Part::Text),
        ];
        let mut map = s.serialize_map(None)?;
        if let Some(context) = &self.context {
            map.serialize_entry("contextId", context)?;
        }
        map.serialize_entry("kind", "message")?;
        map.serialize_entry("messageId", &self.id)?;
        map.serialize_entry("parts", &parts.iter().flatten().collect::<Vec<_>>())?;
        map.serialize_entry("role", "agent")?;
        map.end()
    }
}

fn error_message(message: &str) -> AgentMessage {
    AgentMessage::new(format!("Error: {message}"), None)
}

fn uuid_like() -> String {
    huddle_core::RoomId::new_random().to_string()
}

/// Base URL clients should use: configured, or from the request's Host.
pub fn base_url(app: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &app.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:3000");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{proto}://{host}")
}

fn discover() -> Value {
    let methods = json!([
        {"name": "SendMessage", "description": "Run a room action: metadata.action selects it (send \"help\" for the list)."},
        {"name": "rpc.discover", "description": "This description."},
    ]);
    json!({
        "name": "Huddle",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Shared rooms for AI agents: create or join a room, talk by broadcast or DM, receive messages live.",
        "methods": methods,
        "actions": crate::docs::structured()["actions"].clone(),
        "endpoints": {
            "a2a": "POST /a2a",
            "mcp": "POST /mcp",
            "agentCard": "GET /.well-known/agent-card.json",
            "sse": "GET /api/messages/:roomId/sse",
        },
    })
}

pub async fn agent_card(State(app): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let base = base_url(&app, &headers);
    let skills: Vec<Value> = crate::docs::ACTIONS
        .iter()
        .map(|a| json!({"id": a.action, "name": a.title, "description": a.description, "tags": [a.group]}))
        .collect();
    Json(json!({
        "name": "Huddle",
        "description": "Shared rooms for AI agents: create or join a room, talk by broadcast or DM, receive messages live (SSE, A2A push).",
        "url": format!("{base}/a2a"),
        "version": env!("CARGO_PKG_VERSION"),
        "protocolVersion": "0.3.0",
        "documentationUrl": format!("{base}/docs"),
        "provider": {"name": "Huddle", "url": base},
        "capabilities": {"streaming": true, "pushNotifications": true},
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["text/plain", "application/json"],
        "skills": skills,
    }))
}

pub async fn docs_page(headers: HeaderMap) -> Response {
    crate::web::text_or_html(&headers, "Huddle A2A", crate::docs::text())
}

#[cfg(test)]
mod tests {
    use super::*;
    use huddle_core::{MemberId, Message, Missed, RoomId, Sent, Seq, Timestamp};

    fn message(seq: u64, to: Option<&str>) -> Message {
        Message {
            seq: Seq::new(seq),
            id: format!("m{seq}"),
            room_id: RoomId::new_random(),
            from: "alice".into(),
            from_member: MemberId::new(1),
            to: to.map(str::to_string),
            to_member: to.map(|_| MemberId::new(2)),
            body: format!("body \"{seq}\""),
            timestamp: Timestamp(1_700_000_000_000 + seq as i64),
            key: None,
        }
    }

    /// The answer to a send is written straight to JSON, not built as a tree of values.
    /// Clients have always received the keys of every object sorted: the bytes must be
    /// exactly those of the same answer built as JSON values.
    #[test]
    fn a_send_answer_is_byte_for_byte_the_json_object_it_always_was() {
        let room = RoomId::new_random();
        for has_more in [false, true] {
            let missed = [message(3, None), message(4, Some("bob"))];
            let sent = Sent {
                seq: Seq::new(5),
                missed: Missed {
                    messages: missed.iter().cloned().map(Into::into).collect(),
                    has_more,
                },
            };
            let answer = RpcResult {
                id: json!(7),
                result: render(crate::render::sent(room, sent)),
            };
            let written: Value =
                serde_json::from_str(&serde_json::to_string(&answer).unwrap()).unwrap();
            let mut data = json!({
                "seq": 5,
                "missedCount": 2,
                "missedMessages": missed.iter().map(Message::to_json).collect::<Vec<_>>(),
            });
            if has_more {
                data["missedHasMore"] = true.into();
            }
            let expected = json!({
                "jsonrpc": "2.0",
                "id": 7,
                "result": {
                    "kind": "message",
                    "messageId": written["result"]["messageId"],
                    "role": "agent",
                    "contextId": room.to_string(),
                    "parts": [
                        {"kind": "text", "text": "Message sent"},
                        {"kind": "data", "data": data},
                        {"kind": "text", "text":
                            "\n--- 2 missed message(s) ---\n[alice] body \"3\"\n[alice -> bob] body \"4\""},
                    ],
                },
            });
            assert_eq!(
                serde_json::to_string(&answer).unwrap(),
                expected.to_string()
            );
        }
    }

    /// Nothing missed: no `missed*` keys and no summary part.
    #[test]
    fn a_send_that_missed_nothing_has_two_parts() {
        let room = RoomId::new_random();
        let sent = Sent {
            seq: Seq::new(1),
            missed: Missed::default(),
        };
        let written = serde_json::to_value(render(crate::render::sent(room, sent))).unwrap();
        assert_eq!(
            written["parts"],
            json!([
                {"kind": "text", "text": "Message sent"},
                {"kind": "data", "data": {"seq": 1}},
            ])
        );
    }
}
