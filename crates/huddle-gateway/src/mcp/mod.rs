//! MCP over Streamable HTTP at `/mcp` (docs/protocol.md, section 'MCP').
//!
//! Built on the official Rust SDK (rmcp): rmcp speaks the protocol, including the
//! sessionless 2026-07-28 revision; what Huddle's rooms and sessions need beyond it
//! (docs/protocol.md, section 'Sessions and recovery') is here.
//!
//! Layout:
//! - [`Mcp`] (this file) — the endpoint: rmcp's service, the sessions, their expiry,
//!   session recovery, and the axum routes.
//! - [`config`]    — [`McpConfig`]: Host/Origin policy, session idle expiry (shorter for
//!   sessions in no room), limits.
//! - [`http`]      — the transport around rmcp: POST (recovery, notifications ahead of the
//!   result), GET (the live stream), DELETE.
//! - [`manager`]   — rmcp's session manager kept in step with [`sessions`]'s table; the
//!   session cap, and eviction of an idle session when the table is full.
//! - [`server`]    — rmcp's `ServerHandler`: info + instructions, tools, resources, listen.
//! - [`tools`]     — the twelve tools: descriptions, input schemas, annotations.
//! - [`call`]      — one tool call: which agent, the room action (`ops`), the result text.
//! - [`session`]   — one session: its rooms, idle time and delivery state.
//! - [`sessions`]  — the table of sessions: cap, expiry, which one gives way.
//! - [`joined`]    — the rooms a session joined: tokens and delivery positions.
//! - [`delivery`]  — room messages as `notifications/message`, on the rooms' seq cursors:
//!   the one owner of a session's delivery state (GET stream, POST-path feeds).
//! - [`cursor`]    — the GET stream's event ids (one seq per joined room).
//! - [`resources`] — rooms as resources and `subscriptions/listen` (2026-07-28).
//! - [`listen_gate`] — a listen's acknowledgement held back until its feeds are open.
//! - [`cluster`]   — cluster mode: session ids that name their node, requests for a
//!   session held elsewhere forwarded there, the internal route serving them.

pub mod call;
pub mod cluster;
pub mod config;
pub mod cursor;
pub mod delivery;
pub mod http;
pub mod joined;
pub mod listen_gate;
pub mod manager;
pub mod resources;
pub mod server;
pub mod session;
pub mod sessions;
pub mod tools;

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router as Http;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::any;
use huddle_cluster::Router;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use cluster::{ClusterMcp, ClusterMcpError, NodeIdError, validate_node_id};
pub use config::{HostPolicy, McpConfig};
use manager::Manager;
use server::{RoomServer, SESSION_HEADER, Shared};
use session::{Session, Sessions};

/// The MCP endpoint; cheap to clone (the main port and `--mcp-listen` share one).
#[derive(Clone)]
pub struct Mcp {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: McpConfig,
    shared: Arc<Shared>,
    sessions: Arc<Sessions>,
    service: StreamableHttpService<RoomServer, Manager>,
    manager: Arc<Manager>,
    /// Cluster mode: forwarding to the node that holds a session (`None`: one node).
    proxy: Option<cluster::proxy::Proxy>,
    /// Serialises session recovery, so that concurrent requests with the same lost id
    /// land in one fresh session.
    recovering: tokio::sync::Mutex<std::collections::HashMap<String, String>>,
    /// The idle-session sweeper starts with the first request (inside a runtime).
    sweeper: std::sync::Once,
}

impl Mcp {
    /// The endpoint over `router`. Its idle-session sweeper (a tokio task that ends with
    /// the last clone of this value) starts with the first request. Its live streams
    /// (GET, `subscriptions/listen`) end when `shutdown` is cancelled.
    pub fn new(router: Arc<dyn Router>, config: McpConfig, shutdown: CancellationToken) -> Mcp {
        let sessions = Arc::new(Sessions::new(config.max_sessions, config.max_session_rooms));
        let shared = Arc::new(Shared {
            router,
            sessions: sessions.clone(),
            max_listen_rooms: config.max_session_rooms,
            shutdown,
        });
        let mut local = LocalSessionManager::default();
        // Expiry is ours (an open GET stream keeps a session alive; rmcp sees only POSTs).
        local.session_config.keep_alive = None;
        let node = config.cluster.as_ref().map(|c| c.node_id().to_string());
        let manager = Arc::new(Manager::new(local, sessions.clone(), node));
        let proxy = config
            .cluster
            .clone()
            .map(|c| cluster::proxy::Proxy::new(c, config.keep_alive, shared.shutdown.clone()));
        let rmcp_config = StreamableHttpServerConfig::default()
            // Host/Origin are checked before rmcp, for every method (`config`).
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_sse_keep_alive(Some(config.keep_alive))
            .with_max_request_body_bytes(config.max_body_bytes);
        let factory_shared = shared.clone();
        let service = StreamableHttpService::new(
            move || Ok(RoomServer::new(factory_shared.clone())),
            manager.clone(),
            rmcp_config,
        );
        let inner = Arc::new(Inner {
            config,
            shared,
            sessions,
            service,
            manager,
            proxy,
            recovering: tokio::sync::Mutex::new(std::collections::HashMap::new()),
            sweeper: std::sync::Once::new(),
        });
        Mcp { inner }
    }

    /// `/mcp` alone: for the `--mcp-listen` port.
    pub fn routes(&self) -> Http {
        Http::new()
            .route("/mcp", any(endpoint))
            .with_state(self.clone())
    }

    /// The internal route serving MCP requests that other nodes forward here (cluster
    /// mode), for the internal listener (`--node-listen`): `POST|GET|DELETE
    /// /internal/v1/mcp`, requiring `authorization: Bearer <cluster secret>` and
    /// `huddle-internal-version: 1`. Outside cluster mode it refuses every request (401).
    pub fn internal_routes(&self) -> Http {
        Http::new()
            .route(cluster::INTERNAL_PATH, any(internal_endpoint))
            .with_state(self.clone())
    }

    /// Serves one `/mcp` request (for mounting inside another router).
    pub async fn handle(&self, req: Request) -> Response {
        self.start_sweeper();
        http::handle(&self.inner, req).await
    }

    fn start_sweeper(&self) {
        self.inner
            .sweeper
            .call_once(|| drop(tokio::spawn(sweep(Arc::downgrade(&self.inner)))));
    }

    /// Live sessions on this node (at most [`McpConfig::max_sessions`]).
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }
}

async fn endpoint(State(mcp): State<Mcp>, req: Request<Body>) -> Response {
    mcp.handle(req).await
}

async fn internal_endpoint(State(mcp): State<Mcp>, req: Request<Body>) -> Response {
    mcp.start_sweeper();
    cluster::internal::handle(&mcp.inner, req).await
}

impl Inner {
    /// The session `id`, if both we and rmcp still have it.
    async fn live_session(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.sessions.get(id)?;
        if self.manager.has_session(&id.into()).await.unwrap_or(false) {
            Some(session)
        } else {
            // rmcp's side ended (e.g. it never saw `notifications/initialized`).
            self.sessions.remove(id);
            None
        }
    }

    /// Starts a fresh session for a request whose session is unknown, expired or absent
    /// (docs/protocol.md, section 'Sessions and recovery'), by running the `initialize`
    /// handshake against rmcp on the client's behalf.
    /// `request_id`: the client's request's, for a refusal (at the session cap).
    async fn recover(
        &self,
        parts: &Parts,
        request_id: Option<&Value>,
    ) -> Result<Arc<Session>, Response> {
        let lost = parts
            .headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut recovering = self.recovering.lock().await;
        if let Some(lost) = &lost
            && let Some(fresh) = recovering.get(lost)
            && let Some(session) = self.live_session(fresh).await
        {
            return Ok(session);
        }
        if self.sessions.is_full() {
            return Err(http::too_many_sessions(self.sessions.max(), request_id));
        }
        let (response, refused) =
            manager::refused(self.service.handle(http::handshake_request(parts, None))).await;
        if refused {
            return Err(http::too_many_sessions(self.sessions.max(), request_id));
        }
        let id = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Made (and registered) by the manager; gone already if its handshake failed.
        let Some(session) = id.as_deref().and_then(|id| self.sessions.get(id)) else {
            tracing::warn!(status = %response.status(), "session recovery: initialize failed");
            return Err(response.map(Body::new));
        };
        let id = session.id.clone();
        let initialized = self
            .service
            .handle(http::handshake_request(parts, Some(&id)))
            .await;
        if !initialized.status().is_success() {
            self.end_session(&id).await;
            return Err(initialized.map(Body::new));
        }
        tracing::debug!(lost = ?lost, fresh = %id, "MCP session recovered");
        if let Some(lost) = lost {
            // Bounded like the sessions the entries lead to.
            if recovering.len() >= self.sessions.max() {
                recovering.clear();
            }
            recovering.insert(lost, id);
        }
        Ok(session)
    }

    /// Ends a session: its GET stream, its subscriptions, and rmcp's side.
    async fn end_session(&self, id: &str) {
        // The manager drops our side too.
        if let Err(e) = self.manager.close_session(&id.into()).await {
            tracing::debug!(session = id, error = %e, "closing rmcp session");
        }
    }
}

/// Ends idle sessions, until the endpoint is dropped.
async fn sweep(inner: Weak<Inner>) {
    let every = match inner.upgrade() {
        Some(i) => (i.config.session_idle.min(i.config.anonymous_idle) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(60)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let config = &inner.config;
        for id in inner
            .sessions
            .expire(config.session_idle, config.anonymous_idle)
        {
            tracing::debug!(session = %id, "MCP session expired");
            if let Err(e) = inner.manager.close_session(&id.as_str().into()).await {
                tracing::debug!(session = %id, error = %e, "closing rmcp session");
            }
        }
    }
}
