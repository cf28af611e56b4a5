//! The wire protocols: each module maps its format onto room operations through the
//! [`Router`](huddle_cluster::Router) and renders the answers, and nothing else. No room
//! state lives here.
//!
//! Layout:
//! - [`app`] (this file) — the axum application and its shared state.
//! - [`ops`]   — the room actions for A2A and MCP: parameters parsed into typed calls of
//!   the room API (`huddle-app`), answers rendered.
//! - [`action`] — action names and aliases; [`params`] — the loose parameters of both
//!   envelopes; [`render`] — typed answers as the contract's text and data.
//! - [`docs`]  — the action documentation (help, rpc.discover, Agent Card, MCP instructions).
//! - [`a2a`]   — `POST /a2a` JSON-RPC, `GET /a2a`, the Agent Card.
//! - [`mcp`]   — MCP Streamable HTTP at `/mcp`: the twelve room tools, live room notifications.
//! - [`body`]  — reading request bodies under a limit (drain, then 413).
//! - [`bearer`] — `Authorization: Bearer <agentToken>` (SSE and gRPC).
//! - [`sse`]   — `GET /api/messages/{roomId}/sse`: live, resumable message streams.
//! - [`handoff`] — an SSE body handed to the connection, so an idle stream does not keep
//!   hyper's buffers; `coalesce` — frames ready together joined into one bounded write.
//! - [`web`]   — landing page, docs, health endpoints.
//! - [`client_kind`] — agent-or-browser detection (plain text vs HTML).
//! - [`observe`] — request spans (with the client's trace context) and request metrics.
//! - [`ready`] — the readiness checks behind `/readyz`.
//! - [`peer`]  — the client's address (the password throttle's key).
//! - [`grpc`]  — `huddle.v1.RoomService`, gRPC health and reflection (h2c, same port).
//! - `fuzzing` — the input parsing above under arbitrary bytes, shared by the fuzz targets
//!   and the tests (hidden: not an API).

pub mod a2a;
pub mod action;
pub mod bearer;
pub mod body;
pub mod client_kind;
mod coalesce;
pub mod docs;
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod handoff;
pub mod mcp;
pub mod observe;
pub mod ops;
pub mod params;
pub mod peer;
pub mod ready;
pub mod render;
pub mod sse;
pub mod web;

use std::sync::Arc;

use axum::Router as Http;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use huddle_cluster::Router;
use tokio_util::sync::CancellationToken;

/// Settings of the HTTP surface.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Largest request body accepted (docs/protocol.md, section 'Limits'); larger gets
    /// 413 naming the limit.
    pub max_body_bytes: usize,
    /// Base URL advertised in the Agent Card; default: derived from the request's Host.
    pub public_url: Option<String>,
    /// Interval of the SSE `event: ping` keep-alive (join.cloud: 15 s). Shorter helps behind
    /// proxies that cut idle connections sooner.
    pub sse_keep_alive: std::time::Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            public_url: None,
            sse_keep_alive: std::time::Duration::from_secs(15),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub router: Arc<dyn Router>,
    pub config: Arc<GatewayConfig>,
    /// Cancelled when the node begins to shut down: every live stream (SSE, gRPC
    /// `Subscribe`, MCP) then ends, so that the servers can finish their in-flight
    /// requests and close; clients resume by seq on any node. A token that is never
    /// cancelled keeps streams open until their clients leave.
    pub shutdown: CancellationToken,
    /// What `/readyz` checks besides draining (none: ready while not draining).
    pub readiness: ready::Readiness,
}

impl AppState {
    /// The typed room API over this node's router.
    pub fn api(&self) -> huddle_app::RoomApi<'_> {
        huddle_app::RoomApi::new(self.router.as_ref())
    }
}

/// The whole HTTP application, testable without a socket.
pub fn app(state: AppState) -> Http {
    let mcp = mcp::Mcp::new(
        state.router.clone(),
        mcp::McpConfig {
            max_body_bytes: state.config.max_body_bytes,
            ..mcp::McpConfig::default()
        },
        state.shutdown.clone(),
    );
    app_with_mcp(state, mcp)
}

/// [`app`] with a given MCP endpoint (its settings; shared with `--mcp-listen`).
pub fn app_with_mcp(state: AppState, mcp: mcp::Mcp) -> Http {
    let limit = state.config.max_body_bytes;
    let grpc = grpc::routes(&state);
    Http::new()
        .route("/a2a", post(a2a::post).get(a2a::docs_page))
        .route("/.well-known/agent-card.json", get(a2a::agent_card))
        .route("/.well-known/agent.json", get(a2a::agent_card))
        .route("/api/messages/{room_id}/sse", get(sse::stream))
        .route("/", get(web::landing))
        .route("/docs", get(web::docs))
        .route("/healthz", get(web::healthz))
        .route("/readyz", get(web::readyz))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
        .merge(mcp.routes())
        // gRPC over h2c on the same port: only its own service paths.
        .merge(grpc)
        .layer(axum::middleware::from_fn(observe::http_span))
}
