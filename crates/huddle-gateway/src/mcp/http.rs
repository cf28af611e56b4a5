//! `POST`/`GET`/`DELETE /mcp`: the Streamable HTTP transport around rmcp.
//!
//! rmcp's `StreamableHttpService` speaks the protocol (JSON-RPC, the `initialize`
//! handshake, the sessionless 2026-07-28 lifecycle with `server/discover` and
//! `subscriptions/listen`). Around it, this layer does what docs/protocol.md (section
//! 'MCP') asks and rmcp does not:
//! - a POST with an unknown or expired session (or none) is run in a fresh session
//!   whose id the response carries, instead of rmcp's 404;
//! - room notifications are written at the head of a POST response's SSE stream when the
//!   session has no GET stream (rmcp sends every server notification to the GET stream
//!   only, and keeps 16 of them when none is open);
//! - the GET stream is served here from the rooms' logs, its event ids being the
//!   session's seq cursor (rmcp's are its own counters over a 16-event replay buffer),
//!   and it ends when the node shuts down;
//! - DELETE answers 404 for an unknown session (rmcp answers 202 whatever the id) and 200
//!   otherwise, and idle sessions expire here (an open GET stream counts as activity);
//! - a request that would start a session beyond [`McpConfig::max_sessions`] when no
//!   idle session can give way (see `sessions`) is refused with 503, `Retry-After` and a
//!   JSON-RPC error naming the limit.
//!
//! [`McpConfig::max_sessions`]: super::McpConfig::max_sessions

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HOST, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::Inner;
use super::cursor::Cursor;
use super::delivery;
use super::listen_gate;
use super::manager;
use super::server::SESSION_HEADER;
use super::session::Session;

const PROTOCOL_HEADER: &str = "mcp-protocol-version";
const SESSIONLESS_VERSION: &str = "2026-07-28";

/// `Retry-After` of a refusal at the session cap (every session has a GET stream open):
/// a place frees when a stream closes and its session can give way, or by DELETE,
/// neither of which can be predicted.
const RETRY_AFTER_SECS: &str = "30";

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

/// GET/DELETE with an unknown session (docs/protocol.md, section 'Sessions and recovery').
fn session_not_found() -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "error": {"code": -32001, "message": "Session not found"},
        "id": null,
    });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// A request that would start a session beyond the cap (`id`: the request's).
pub(super) fn too_many_sessions(limit: usize, id: Option<&Value>) -> Response {
    huddle_metrics::requests::refused("mcp_sessions");
    let body = json!({
        "jsonrpc": "2.0",
        "error": {"code": -32000, "message": manager::too_many_sessions(limit)},
        "id": id.cloned().unwrap_or(Value::Null),
    });
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    r
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            let m = m.split(';').next().unwrap_or("").trim();
            m.eq_ignore_ascii_case(media) || m == "*/*"
        })
}

/// What the transport needs to know of a POST body before rmcp parses it for real.
#[derive(Deserialize, Default)]
pub(crate) struct Peek {
    method: Option<String>,
    id: Option<Value>,
    params: Option<PeekParams>,
}

#[derive(Deserialize, Default)]
struct PeekParams {
    #[serde(rename = "_meta")]
    meta: Option<PeekMeta>,
}

#[derive(Deserialize, Default)]
struct PeekMeta {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    version: Option<IgnoredAny>,
}

impl Peek {
    pub(crate) fn of(body: &[u8]) -> Option<Peek> {
        serde_json::from_slice(body).ok()
    }

    pub(crate) fn is_request(&self) -> bool {
        self.id.is_some() && self.method.is_some()
    }

    pub(crate) fn is_initialize(&self) -> bool {
        self.method.as_deref() == Some("initialize")
    }

    /// A 2026-07-28 request (no session); the rest belongs to a legacy session.
    pub(crate) fn is_sessionless(&self, headers: &HeaderMap) -> bool {
        self.method.as_deref() == Some("server/discover")
            || self
                .params
                .as_ref()
                .and_then(|p| p.meta.as_ref())
                .is_some_and(|m| m.version.is_some())
            || header(headers, PROTOCOL_HEADER).is_some_and(|v| v >= SESSIONLESS_VERSION)
    }
}

pub(crate) async fn handle(inner: &Arc<Inner>, req: Request<Body>) -> Response {
    if let Err(reason) = inner.config.check_request(req.headers()) {
        return plain(StatusCode::FORBIDDEN, reason);
    }
    if let Some(proxy) = &inner.proxy
        && matches!(*req.method(), Method::POST | Method::GET | Method::DELETE)
        && let Some(home) = proxy.home_elsewhere(req.headers())
    {
        let (parts, body) = req.into_parts();
        // Read here, under the same limit, so that the request can still be served here
        // if its home node turns out to be gone.
        let body = match parts.method {
            Method::POST => match read_body(inner, body).await {
                Ok(b) => b,
                Err(refusal) => return refusal,
            },
            _ => Bytes::new(),
        };
        match proxy.forward(&home, &parts, body.clone()).await {
            Ok(answer) => return answer,
            Err(e) => {
                tracing::warn!(error = %e, "MCP session's home node is gone: served here");
                return serve(inner, Request::from_parts(parts, Body::from(body))).await;
            }
        }
    }
    serve(inner, req).await
}

/// Serves a request on this node, whatever node its session id names (a request
/// forwarded here is never forwarded again).
pub(crate) async fn serve(inner: &Arc<Inner>, req: Request<Body>) -> Response {
    match *req.method() {
        Method::POST => post(inner, req).await,
        Method::GET => get(inner, req).await,
        Method::DELETE => delete(inner, req).await,
        _ => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            r.headers_mut()
                .insert("allow", HeaderValue::from_static("GET, POST, DELETE"));
            r
        }
    }
}

/// The session a GET/DELETE names, if this node knows it.
async fn known_session(inner: &Inner, headers: &HeaderMap) -> Result<Arc<Session>, Response> {
    let Some(id) = header(headers, SESSION_HEADER) else {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: Mcp-Session-Id header is required",
        ));
    };
    match inner.live_session(id).await {
        Some(session) => Ok(session),
        None => Err(session_not_found()),
    }
}

/// A POST body, read under [`McpConfig::max_body_bytes`]; `Err`: the refusal.
///
/// [`McpConfig::max_body_bytes`]: super::McpConfig::max_body_bytes
async fn read_body(inner: &Inner, body: Body) -> Result<Bytes, Response> {
    match crate::body::read_limited(body, inner.config.max_body_bytes).await {
        Ok(b) => Ok(b),
        Err(crate::body::BodyError::TooLarge) => {
            let message = crate::body::too_large(inner.config.max_body_bytes);
            let body = json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": message}, "id": null});
            let mut r = (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            Err(r)
        }
        Err(crate::body::BodyError::Incomplete(reason)) => {
            tracing::debug!(%reason, "MCP request body incomplete");
            Err(plain(
                StatusCode::BAD_REQUEST,
                "Bad Request: incomplete request body",
            ))
        }
    }
}

async fn post(inner: &Arc<Inner>, req: Request<Body>) -> Response {
    let (mut parts, body) = req.into_parts();
    let body = match read_body(inner, body).await {
        Ok(b) => b,
        Err(refusal) => return refusal,
    };
    let peek = Peek::of(&body).unwrap_or_default();
    let mut session = None;
    let mut recovered = None;
    if peek.method.is_some() && !peek.is_initialize() && !peek.is_sessionless(&parts.headers) {
        let known = match header(&parts.headers, SESSION_HEADER) {
            Some(id) => inner.live_session(id).await,
            None => None,
        };
        let s = match known {
            Some(s) => s,
            // An unknown or expired session is not an error: a fresh one runs it.
            None => match inner.recover(&parts, peek.id.as_ref()).await {
                Ok(s) => {
                    recovered = Some(s.id.clone());
                    s
                }
                Err(response) => return response,
            },
        };
        s.touch();
        parts.headers.insert(
            SESSION_HEADER,
            HeaderValue::from_str(&s.id).expect("session ids are header-safe"),
        );
        session = Some(s);
    }
    // What the session is owed goes ahead of this request's result: the messages
    // committed before the request came, never the request's own effects.
    let flushed = match &session {
        Some(s) if peek.is_request() => {
            s.delivery()
                .flush(inner.shared.router.as_ref(), inner.config.max_notes)
                .await
        }
        _ => delivery::Flushed::default(),
    };
    // A listen is acknowledged once its feeds are open (see `listen_gate`).
    let held = (peek.method.as_deref() == Some("subscriptions/listen")).then(|| {
        let (gate, held) = listen_gate::gate();
        parts.extensions.insert(gate);
        held
    });
    let starts_session = peek.is_initialize() && header(&parts.headers, SESSION_HEADER).is_none();
    if starts_session && inner.sessions.is_full() {
        return too_many_sessions(inner.sessions.max(), peek.id.as_ref());
    }
    // (The session an `initialize` makes is registered by the manager, with rmcp's.)
    let (response, refused) = manager::refused(
        inner
            .service
            .handle(Request::from_parts(parts, Body::from(body))),
    )
    .await;
    if refused {
        // Full since the check above (a concurrent request took the last place).
        return too_many_sessions(inner.sessions.max(), peek.id.as_ref());
    }
    let mut response = response.map(Body::new);
    if let Some(held) = held {
        response = held.hold(response);
    }
    if let Some(id) = recovered {
        response.headers_mut().insert(
            SESSION_HEADER,
            HeaderValue::from_str(&id).expect("session ids are header-safe"),
        );
    }
    if let (Some(session), false) = (session, flushed.is_empty()) {
        let is_sse = response.status() == StatusCode::OK
            && header(response.headers(), CONTENT_TYPE.as_str())
                .is_some_and(|c| c.starts_with("text/event-stream"));
        if is_sse {
            flushed.commit(session.delivery());
            response = prepend(response, flushed.notes);
        } else {
            flushed.abandon(session.delivery()).await;
        }
    }
    response
}

/// Puts `notifications/message` events at the head of an SSE response.
fn prepend(response: Response, notes: Vec<String>) -> Response {
    let (parts, body) = response.into_parts();
    let head: Vec<Result<Bytes, axum::Error>> = notes
        .iter()
        .map(|n| Ok(delivery::sse_message(None, n)))
        .collect();
    let stream = futures::stream::iter(head).chain(body.into_data_stream());
    Response::from_parts(parts, Body::from_stream(stream))
}

async fn get(inner: &Arc<Inner>, req: Request<Body>) -> Response {
    if !accepts(req.headers(), "text/event-stream") {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "Not Acceptable: Client must accept text/event-stream",
        );
    }
    if header(req.headers(), SESSION_HEADER).is_none() {
        // Sessionless clients (2026-07-28) listen with `subscriptions/listen` instead.
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("POST"));
        return r;
    }
    let session = match known_session(inner, req.headers()).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let resume = header(req.headers(), "last-event-id").and_then(Cursor::parse);
    let events = delivery::live(
        inner.shared.router.clone(),
        session.delivery().clone(),
        &session.id,
        resume,
        inner.config.keep_alive,
    )
    // The node shuts down: the stream ends; the client resumes by its event id elsewhere.
    .take_until(inner.shared.shutdown.clone().cancelled_owned());
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(events))
        .expect("valid response")
}

async fn delete(inner: &Arc<Inner>, req: Request<Body>) -> Response {
    let session = match known_session(inner, req.headers()).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    inner.end_session(&session.id).await;
    StatusCode::OK.into_response()
}

/// The session revision a recovered session speaks: the client's `MCP-Protocol-Version`
/// when it names one, else the oldest (which needs no header).
fn recovery_version(parts: &Parts) -> Option<&str> {
    header(&parts.headers, PROTOCOL_HEADER).filter(|v| *v < SESSIONLESS_VERSION)
}

/// A request of the synthetic handshake that starts a fresh session (`session`: the
/// new session's id, once `initialize` made it).
pub(super) fn handshake_request(parts: &Parts, session: Option<&str>) -> Request<Body> {
    let version = recovery_version(parts);
    let body = match session {
        None => json!({
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": version.unwrap_or("2025-03-26"),
                "capabilities": {},
                "clientInfo": {"name": "huddle-session-recovery", "version": env!("CARGO_PKG_VERSION")},
            },
        }),
        Some(_) => json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    };
    let host = parts
        .headers
        .get(HOST)
        .cloned()
        .unwrap_or(HeaderValue::from_static("localhost"));
    let mut r = Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .header(HOST, host)
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json");
    if let Some(v) = version {
        r = r.header(PROTOCOL_HEADER, v);
    }
    if let Some(id) = session {
        r = r.header(SESSION_HEADER, id);
    }
    r.body(Body::from(body.to_string())).expect("valid request")
}
