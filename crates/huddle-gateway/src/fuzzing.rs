//! The gateway's input parsing under arbitrary bytes: one body per fuzz target
//! (`fuzz/fuzz_targets/`), shared with the test that replays the kept corpus
//! (`tests/fuzz_corpus.rs`). Not a stable API.
//!
//! Each body runs the code a request goes through before any room is touched (that part
//! needs a node; the room itself is fuzzed in `huddle_core::fuzzing`) and checks what the
//! client is promised whatever it sends: an answer, in the envelope's shape.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, Uri};
use huddle_core::{AgentToken, RoomId, Seq};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest};
use serde_json::Value;

use crate::a2a::{self, Envelope};
use crate::mcp::call;
use crate::mcp::cursor::Cursor;
use crate::mcp::http::Peek;
use crate::mcp::resources::{self, RoomUri};
use crate::mcp::session::{Joining, Session, Sessions};
use crate::mcp::tools;
use crate::ops::Action;
use crate::sse;

/// A `POST /a2a` body: the JSON-RPC envelope and `SendMessage`'s action and parameters.
pub fn a2a_envelope(data: &[u8]) {
    let request: Option<Value> = serde_json::from_slice(data).ok();
    let id = request
        .as_ref()
        .and_then(|r| r.get("id").cloned())
        .unwrap_or(Value::Null);
    // The fast path for sends decides as the general path, or leaves the body to it.
    if let Some((fast_id, fast_action, fast_params)) = a2a::fast::send_message(data) {
        match a2a::general_envelope(data) {
            Envelope::Run { id, action, params } => {
                assert_eq!((fast_id, fast_action), (id, action), "fast path differs");
                assert_eq!(format!("{fast_params:?}"), format!("{params:?}"));
            }
            Envelope::Answer(answer) => panic!("fast path ran what was answered: {answer}"),
        }
    }
    match a2a::envelope(data) {
        Envelope::Answer(answer) => {
            assert_eq!(answer["jsonrpc"], "2.0", "answer without jsonrpc 2.0");
            assert_eq!(answer["id"], id, "answer to another id");
            match (answer.get("result"), answer.get("error")) {
                (Some(result), None) => {
                    assert!(result.is_object(), "result is not an object");
                }
                (None, Some(error)) => {
                    let code = error["code"].as_i64().expect("error code");
                    assert!([-32700, -32600, -32601].contains(&code), "code {code}");
                    let message = error["message"].as_str().expect("error message");
                    assert!(!message.is_empty(), "empty error message");
                    assert_eq!(code == -32700, request.is_none(), "parse error mismatch");
                }
                _ => panic!("answer with both or neither of result and error: {answer}"),
            }
            serde_json::to_vec(&answer).expect("the answer serializes");
        }
        Envelope::Run {
            id: run_id, action, ..
        } => {
            let request = request.expect("ran an action of a body that is not JSON");
            assert_eq!(request["method"], "SendMessage", "ran another method");
            assert_eq!(run_id, id, "runs under another id");
            assert_eq!(Action::parse(action.name()), Some(action));
        }
    }
}

/// A `POST /mcp` body: the transport's look at it, rmcp's parse, and for a tool call
/// the action's parameters (sessionless and in a session with rooms); room resource
/// URIs of `resources/read`, `resources/subscribe` and `subscriptions/listen`.
pub fn mcp_message(data: &[u8]) {
    if let Some(peek) = Peek::of(data) {
        let sessionless = peek.is_sessionless(&HeaderMap::new());
        if peek.is_initialize() {
            assert!(!sessionless, "initialize taken for a sessionless request");
        }
        let _ = peek.is_request();
    }
    let Ok(ClientJsonRpcMessage::Request(request)) =
        serde_json::from_slice::<ClientJsonRpcMessage>(data)
    else {
        return;
    };
    match request.request {
        ClientRequest::CallToolRequest(r) => {
            let Some(spec) = tools::find(&r.params.name) else {
                return;
            };
            let args = Value::Object(r.params.arguments.unwrap_or_default());
            let alone = call::params(spec, None, &args);
            let p = alone.expect("a sessionless call always reaches its action");
            if let Some(name) = args.get("agentName").and_then(Value::as_str) {
                assert_eq!(p.agent_name.as_deref(), Some(name), "agentName lost");
            }
            if let Err(text) = call::params(spec, Some(&session()), &args) {
                assert!(text.starts_with("Not joined"), "tool error {text:?}");
            }
        }
        ClientRequest::ReadResourceRequest(r) => room_uri(&r.params.uri),
        ClientRequest::SubscribeRequest(r) => room_uri(&r.params.uri),
        ClientRequest::SubscriptionsListenRequest(r) => {
            let uris = r.params.notifications.resource_subscriptions;
            let uris = uris.unwrap_or_default();
            for uri in resources::acceptable(&uris) {
                assert!(RoomUri::parse(&uri).is_some(), "accepted an unknown URI");
            }
        }
        _ => {}
    }
}

/// A parsed room URI names the same room once formatted again.
fn room_uri(uri: &str) {
    if let Some(parsed) = RoomUri::parse(uri) {
        let again = RoomUri::parse(&RoomUri::format(parsed.room, None)).expect("reparse");
        assert_eq!(again.room, parsed.room, "room URI round trip");
    }
}

/// A session in two rooms (`dev` by name), having left a third.
fn session() -> Arc<Session> {
    let sessions = Sessions::new(1, 4);
    let session = sessions.reserve().expect("a place").fill("fuzz");
    for (n, name) in [(1u128, Some("dev")), (2, None), (3, Some("gone"))] {
        let room = RoomId(uuid::Uuid::from_u128(n));
        let token = AgentToken::from_wire(format!("{}.secret", room.0.simple()));
        let joined = session.join(Joining {
            room_id: room,
            name: name.map(str::to_string),
            token,
            agent_name: "alice".into(),
            baseline: Seq::ZERO,
        });
        joined.expect("within the room limit");
    }
    session.leave(RoomId(uuid::Uuid::from_u128(3)));
    session
}

/// An SSE reconnect: `Last-Event-ID` (the bytes before the first newline; none when
/// empty) and the query string (the rest). Also the MCP GET stream's event ids.
pub fn sse_resume(data: &[u8]) {
    let (head, query) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    if let (false, Ok(v)) = (head.is_empty(), HeaderValue::from_bytes(head)) {
        headers.insert("last-event-id", v);
    }
    let uri = format!("/api/messages/r/sse?{}", String::from_utf8_lossy(query));
    let query: HashMap<String, String> = uri
        .parse::<Uri>()
        .ok()
        .and_then(|uri| Query::try_from_uri(&uri).ok())
        .map(|Query(q)| q)
        .unwrap_or_default();
    let header = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let chosen = header.or(query.get("after").map(String::as_str));
    let after = sse::resume_point(&headers, &query);
    assert_eq!(after, chosen.and_then(|s| s.trim().parse().ok()));
    if let Some(id) = header
        && let Some(cursor) = Cursor::parse(id)
    {
        assert_eq!(
            Cursor::parse(&cursor.encode()),
            Some(cursor),
            "event id round trip"
        );
    }
}
