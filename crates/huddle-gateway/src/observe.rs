//! Requests seen by the node's operators: one span per request, its metrics, the W3C
//! trace context a client sent.
//!
//! Each protocol records in one place: A2A and MCP where they run an action
//! ([`timed`]), gRPC in a layer over its routes ([`grpc_layer`]: the RPC is the path),
//! SSE where a stream opens. The span of an HTTP request ([`http_span`]) is opened
//! once for every route, with the client's `traceparent` as its parent; the adapters
//! fill in `action`, `room.id` and `outcome` as they learn them. Tokens and passwords
//! never go into a span or a label.

use std::future::Future;
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use huddle_core::RoomError;
use huddle_metrics::{Outcome, Protocol};
use tracing::Instrument;

/// The span fields every request span has (recorded as they become known). Its target
/// says whether the node's sampler keeps the request's trace
/// ([`TRACED`](huddle_cluster::trace::TRACED)) or not
/// ([`UNTRACED`](huddle_cluster::trace::UNTRACED): the trace exporter never sees it, so
/// an unsampled request costs what it costs on a node without traces).
macro_rules! request_span {
    (traced, $protocol:expr, $route:expr) => {
        request_span!(@ huddle_cluster::trace::TRACED, $protocol, $route)
    };
    (untraced, $protocol:expr, $route:expr) => {
        request_span!(@ huddle_cluster::trace::UNTRACED, $protocol, $route)
    };
    (@ $target:expr, $protocol:expr, $route:expr) => {
        tracing::info_span!(
            target: $target,
            "request",
            otel.kind = "server",
            protocol = $protocol,
            route = $route,
            action = tracing::field::Empty,
            room.id = tracing::field::Empty,
            outcome = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        )
    };
}

/// How the node traces incoming requests, set by its telemetry when spans are recorded;
/// left unset, request spans are local (logs only).
#[derive(Clone, Copy)]
pub struct TraceHooks {
    /// Whether the trace of a request with these headers is kept (the node's sampler,
    /// which honours a `traceparent`'s sampled flag). Decided once, before the request's
    /// span exists, so an unkept request records nothing for the exporter.
    pub sampled: fn(&HeaderMap) -> bool,
    /// Called on every request's span with that decision: a kept one becomes the child of
    /// the headers' trace context; either may get ids for log lines.
    pub adopt: fn(&HeaderMap, &tracing::Span, bool),
}

static HOOKS: std::sync::OnceLock<TraceHooks> = std::sync::OnceLock::new();

/// Sets how requests are traced. Set once per process; later calls are ignored.
pub fn set_trace_hooks(hooks: TraceHooks) {
    let _ = HOOKS.set(hooks);
}

/// The protocol of a path, for the request span.
fn protocol_of(headers: &HeaderMap, path: &str) -> &'static str {
    let grpc = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/grpc"));
    if grpc {
        "grpc"
    } else if path.starts_with("/a2a") {
        "a2a"
    } else if path.starts_with("/mcp") {
        "mcp"
    } else if path.starts_with("/api/messages/") {
        "sse"
    } else {
        "http"
    }
}

/// The route of a path without its variable parts (a room id, a session), for the span.
fn route_of(path: &str) -> &'static str {
    match path {
        "/a2a" => "/a2a",
        "/mcp" => "/mcp",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        p if p.starts_with("/api/messages/") => "/api/messages/{room}/sse",
        p if p.starts_with("/huddle.v1.RoomService/") => "huddle.v1.RoomService",
        p if p.starts_with("/grpc.") => "grpc",
        _ => "other",
    }
}

/// axum middleware: the request's span, child of the client's trace context when its
/// trace is kept.
pub async fn http_span(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let (protocol, route) = (protocol_of(request.headers(), path), route_of(path));
    let span = match HOOKS.get() {
        Some(hooks) => {
            let sampled = (hooks.sampled)(request.headers());
            let span = if sampled {
                request_span!(traced, protocol, route)
            } else {
                request_span!(untraced, protocol, route)
            };
            (hooks.adopt)(request.headers(), &span, sampled);
            span
        }
        // No trace exporter and text logs: no layer records the span anyway.
        None => request_span!(traced, protocol, route),
    };
    next.run(request).instrument(span).await
}

/// Runs one action of `protocol`, counting it and its latency under `action` (the
/// contract's name), and noting the outcome on the request's span.
pub async fn timed<T>(
    protocol: Protocol,
    action: &'static str,
    call: impl Future<Output = Result<T, RoomError>>,
) -> Result<T, RoomError> {
    let span = tracing::Span::current();
    span.record("action", action);
    let started = Instant::now();
    let result = call.await;
    let outcome = huddle_app::observe::outcome(&result);
    finish(&span, protocol, action, outcome, started);
    result
}

fn finish(
    span: &tracing::Span,
    protocol: Protocol,
    action: &'static str,
    outcome: Outcome,
    started: Instant,
) {
    let elapsed = started.elapsed();
    span.record("outcome", outcome_label(outcome));
    huddle_metrics::requests::record(protocol, action, outcome, elapsed);
    // At debug level, a line per request (with the span's trace id in JSON logs; the
    // action is repeated here because text lines do not carry the span's fields).
    tracing::debug!(
        protocol = protocol.as_str(),
        action,
        outcome = outcome_label(outcome),
        elapsed_us = elapsed.as_micros() as u64,
        "answered"
    );
}

fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Error => "error",
        Outcome::Refused(_) => "refused",
        Outcome::Unavailable => "unavailable",
    }
}

/// The RPCs of `huddle.v1.RoomService`, as labels (a path that is none of them is
/// `other`: labels never come from client input).
const RPCS: &[&str] = &[
    "CreateRoom",
    "JoinRoom",
    "LeaveRoom",
    "GetRoom",
    "ListRooms",
    "SendMessage",
    "GetHistory",
    "GetUnread",
    "Promote",
    "Demote",
    "Kick",
    "UpdateRoom",
    "Subscribe",
];

/// axum middleware over the gRPC routes: each RoomService call counted by RPC, its
/// outcome from the `grpc-status` of the response head (a unary error is a
/// trailers-only response; an answered call has none there yet).
pub async fn grpc_layer(request: Request, next: Next) -> Response {
    let Some(method) = request.uri().path().strip_prefix("/huddle.v1.RoomService/") else {
        return next.run(request).await;
    };
    let rpc: &'static str = RPCS
        .iter()
        .find(|r| **r == method)
        .copied()
        .unwrap_or("other");
    let span = tracing::Span::current();
    span.record("action", rpc);
    let started = Instant::now();
    let response = next.run(request).await;
    let outcome = match response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
    {
        None | Some("0") => Outcome::Ok,
        // RESOURCE_EXHAUSTED: a limit (the status's text names it).
        Some("8") => Outcome::Refused("grpc_resource_exhausted"),
        Some("14") => Outcome::Unavailable,
        Some(_) => Outcome::Error,
    };
    finish(&span, Protocol::Grpc, rpc, outcome, started);
    response
}
