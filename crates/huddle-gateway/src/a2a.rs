//! A2A JSON-RPC at `POST /a2a` (docs/protocol.md, section 'A2A envelope'): the envelope,
//! the methods, and the rendering of an action's [`Outcome`] as an A2A Message. Also
//! `GET /a2a` and the Agent Card (section 'Agent Card and discovery').

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AppState;
use crate::body::{BodyError, read_limited};
use crate::observe;
use crate::ops::{self, Action, Outcome, Params};
use crate::render::object;
use huddle_metrics::Protocol;

fn rpc_error(code: i64, message: impl Into<String>, id: Value) -> Value {
    json!({"jsonrpc": "2.0", "error": {"code": code, "message": message.into()}, "id": id})
}

fn rpc_result(result: Value, id: Value) -> Value {
    object([("jsonrpc", "2.0".into()), ("result", result), ("id", id)])
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
    let answer = match envelope(&body) {
        Envelope::Answer(answer) => answer,
        Envelope::Run {
            id,
            action,
            mut params,
        } => {
            params.client = client;
            let run = ops::execute(app.api(), action, *params);
            let message = match observe::timed(Protocol::A2a, action.name(), run).await {
                Ok(outcome) => render(outcome),
                Err(e) => {
                    retry_after = e.retry_after_secs();
                    error_message(&e.to_string())
                }
            };
            rpc_result(message, id)
        }
    };
    let mut response = Json(answer).into_response();
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

/// Reads the JSON-RPC envelope of a `POST /a2a` body.
pub fn envelope(body: &[u8]) -> Envelope {
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
fn send_message(message: &Value) -> Result<(Action, Params), Value> {
    let text = message
        .get("parts")
        .and_then(Value::as_array)
        .and_then(|parts| {
            parts
                .iter()
                .find_map(|p| p.get("text").and_then(Value::as_str))
        })
        .map(str::to_string);
    let context = message
        .get("contextId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let metadata = message.get("metadata").unwrap_or(&Value::Null);
    let mut params = Params::from_json(metadata);
    params.text = text;
    // A2A clients give every message an id: a send's idempotency key.
    params.message_id = message
        .get("messageId")
        .and_then(Value::as_str)
        .map(str::to_string);
    params.room = context.or(params.room);
    let action = match metadata.get("action").and_then(Value::as_str) {
        Some(name) => match Action::parse(name) {
            Some(a) => a,
            None => {
                return Err(error_message(&format!(
                    "Unknown action: {name}. Send metadata.action: \"help\" for full documentation."
                )));
            }
        },
        // No action: a plain message from a joined agent is a send; anything else, the docs.
        None if params.room.is_some() && params.agent_token.is_some() => Action::Send,
        None => return Err(agent_message(crate::docs::text(), None, None, None)),
    };
    Ok((action, params))
}

fn render(outcome: Outcome) -> Value {
    let summary = outcome.missed().map(|m| ops::missed_summary(m));
    agent_message(
        outcome.text,
        outcome.data,
        summary,
        outcome.room_id.map(|r| r.to_string()),
    )
}

fn agent_message(
    text: String,
    data: Option<Value>,
    summary: Option<String>,
    context: Option<String>,
) -> Value {
    let text_part = |text: String| object([("kind", "text".into()), ("text", text.into())]);
    let mut parts = vec![text_part(text)];
    if let Some(d) = data {
        parts.push(object([("kind", "data".into()), ("data", d)]));
    }
    if let Some(s) = summary {
        parts.push(text_part(s));
    }
    let mut m = object([
        ("kind", "message".into()),
        ("messageId", uuid_like().into()),
        ("role", "agent".into()),
        ("parts", Value::Array(parts)),
    ]);
    if let Some(c) = context {
        m["contextId"] = Value::String(c);
    }
    m
}

fn error_message(message: &str) -> Value {
    agent_message(format!("Error: {message}"), None, None, None)
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
