//! Forwarding an MCP request to the node that holds its session.
//!
//! One hop, over plain HTTP to the home node's internal listener: the request's method,
//! body and the headers the MCP handler reads go there with the cluster secret, the
//! internal version and the client's trace context; the answer comes back as it is,
//! its body streamed (an SSE stream is relayed event by event, never buffered).
//!
//! What is bounded, and why:
//! - connecting ([`ClusterMcp::connect_timeout`]) and the answer head
//!   ([`ClusterMcp::answer_timeout`]): a home node that is gone or hangs costs the
//!   client a few seconds, then its request is served here (recovery);
//! - a streamed body by silence: the home node sends a keep-alive at least every
//!   `keep_alive`, so a body that stays silent for [`IDLE_KEEP_ALIVES`] of them comes
//!   from a node that is gone, and the relay ends instead of holding a connection
//!   forever;
//! - the body sent: read under the same limit as a local request, before forwarding;
//! - streams and sessions: counted by the home node, which serves them, under its own
//!   limits (one GET stream per session, `--mcp-max-sessions`).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::{Stream, StreamExt};
use huddle_cluster::placement::Peer;
use tokio_util::sync::CancellationToken;

use super::{ClusterMcp, INTERNAL_PATH, INTERNAL_VERSION, VERSION_HEADER, home_of};
use crate::mcp::server::SESSION_HEADER;

/// A relayed body silent for this many keep-alive intervals is from a node that is gone.
pub const IDLE_KEEP_ALIVES: u32 = 3;

/// The request headers the home node's MCP handler reads (`Host` and `Origin` were
/// checked here, and are not checked again there).
const FORWARDED: [&str; 7] = [
    SESSION_HEADER,
    "accept",
    "content-type",
    "last-event-id",
    "mcp-protocol-version",
    "traceparent",
    "tracestate",
];

/// Answer headers that describe one connection, not the answer.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    // The body is re-streamed here; hyper frames it again.
    "content-length",
];

/// Why a request could not be forwarded (it is then served here).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("node {node} at {addr} is unreachable: {source}")]
    Unreachable {
        node: String,
        addr: String,
        source: reqwest::Error,
    },
    #[error("node {node} at {addr} did not answer within {after:?}")]
    TimedOut {
        node: String,
        addr: String,
        after: Duration,
    },
    #[error(
        "node {node} at {addr} refused the forwarded request ({status}): check that every node has the same cluster secret and version"
    )]
    Refused {
        node: String,
        addr: String,
        status: StatusCode,
    },
}

/// The forwarding side of cluster mode (one per MCP endpoint).
pub(crate) struct Proxy {
    config: ClusterMcp,
    client: reqwest::Client,
    /// Silence after which a relayed body ends.
    idle: Duration,
    /// Relayed streams end when this node shuts down, as its own streams do.
    shutdown: CancellationToken,
}

impl Proxy {
    /// `keep_alive`: the SSE keep-alive interval (the same on every node).
    pub(crate) fn new(
        config: ClusterMcp,
        keep_alive: Duration,
        shutdown: CancellationToken,
    ) -> Proxy {
        // reqwest is built without a default TLS provider; the hop is plain HTTP, but
        // building a client needs one installed (a second install is harmless).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .no_proxy()
            .build()
            .expect("an HTTP client with a TLS provider installed");
        Proxy {
            config,
            client,
            // (At least a second: a zero keep-alive would cut every relayed body.)
            idle: (keep_alive * IDLE_KEEP_ALIVES).max(Duration::from_secs(1)),
            shutdown,
        }
    }

    pub(crate) fn config(&self) -> &ClusterMcp {
        &self.config
    }

    /// The session's home node when that is another node of the current view; `None`
    /// when the request names no session, a session of this node, or one of a node that
    /// is no longer live (then it is served here).
    pub(crate) fn home_elsewhere(&self, headers: &HeaderMap) -> Option<Peer> {
        let session = headers.get(SESSION_HEADER)?.to_str().ok()?;
        let node = home_of(session)?;
        if node == self.config.node_id() {
            return None;
        }
        let view = self.config.placement.view();
        let home = view.nodes().iter().find(|p| p.id.as_str() == node).cloned();
        if home.is_none() {
            tracing::debug!(node, "MCP session of a node that is not live: served here");
        }
        home
    }

    /// Sends the request (`parts`, `body`) to `home` and relays its answer.
    pub(crate) async fn forward(
        &self,
        home: &Peer,
        parts: &Parts,
        body: Bytes,
    ) -> Result<Response, ProxyError> {
        let url = format!("http://{}{INTERNAL_PATH}", home.addr);
        let mut request = self
            .client
            .request(parts.method.clone(), url)
            .header(AUTHORIZATION, format!("Bearer {}", self.config.secret))
            .header(VERSION_HEADER, INTERNAL_VERSION.to_string());
        for name in FORWARDED {
            for value in parts.headers.get_all(name) {
                request = request.header(name, value);
            }
        }
        if !body.is_empty() {
            request = request.body(body);
        }
        let node = || home.id.to_string();
        let addr = || home.addr.to_string();
        let answer = match tokio::time::timeout(self.config.answer_timeout, request.send()).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(source)) => {
                return Err(ProxyError::Unreachable {
                    node: node(),
                    addr: addr(),
                    source,
                });
            }
            Err(_) => {
                return Err(ProxyError::TimedOut {
                    node: node(),
                    addr: addr(),
                    after: self.config.answer_timeout,
                });
            }
        };
        let status = answer.status();
        // The MCP handler never answers these: they are the internal route's refusals.
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::PRECONDITION_FAILED {
            return Err(ProxyError::Refused {
                node: node(),
                addr: addr(),
                status,
            });
        }
        Ok(self.relay(answer))
    }

    /// The home node's answer, as this node's.
    fn relay(&self, answer: reqwest::Response) -> Response {
        let mut response = Response::builder().status(answer.status());
        if let Some(headers) = response.headers_mut() {
            for (name, value) in answer.headers() {
                if !HOP_BY_HOP.contains(&name.as_str()) {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
        let body = until_silent(answer.bytes_stream(), self.idle)
            .take_until(self.shutdown.clone().cancelled_owned());
        response
            .body(Body::from_stream(body))
            .expect("a relayed answer is a valid response")
    }
}

/// Why a relayed body ended early.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("the home node sent nothing for {0:?}")]
    Silent(Duration),
    #[error("the home node's answer broke off: {0}")]
    Broken(#[from] reqwest::Error),
}

/// `body`'s chunks until it ends, breaks, or sends nothing for `idle` (then it ends with
/// an error, so the client sees a broken answer rather than a complete one).
fn until_silent(
    body: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, RelayError>> + Send + 'static {
    futures::stream::unfold(Some(Box::pin(body)), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
            Ok(Some(Err(e))) => Some((Err(RelayError::Broken(e)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(RelayError::Silent(idle)), None)),
        }
    })
}
