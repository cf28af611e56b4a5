//! MCP sessions behind a load balancer (docs/cluster.md, section 'MCP sessions behind a
//! load balancer').
//!
//! A session lives in one node's memory (rmcp's worker, our delivery state), but in
//! cluster mode a client's next request may reach any node. So a session's id names the
//! node that holds it (`<node-id>.<random>`), and a node that receives a request for a
//! session held elsewhere forwards it, once, to that node's internal listener
//! (`/internal/v1/mcp`), relaying the answer (SSE streams included) as it comes. When
//! the home node is gone (not in the view, or unreachable), the request is served here,
//! where the session is unknown: the usual recovery applies (a POST runs in a fresh
//! session; GET and DELETE answer `Session not found`).
//!
//! Layout:
//! - [`ClusterMcp`] (this file) — what cluster mode needs: this node, the live nodes'
//!   addresses, the cluster secret, the hop's time bounds; [`validate_node_id`].
//! - [`proxy`]    — forwarding a request to the session's home node.
//! - [`internal`] — the internal route that serves forwarded requests: the cluster
//!   secret, the internal version, never a second hop.

pub mod internal;
pub mod proxy;

use std::sync::Arc;
use std::time::Duration;

use huddle_cluster::placement::Placement;
pub use huddle_cluster::placement::{NodeIdError, validate_node_id};

/// Path of the internal route that serves forwarded MCP requests, on `--node-listen`.
pub const INTERNAL_PATH: &str = "/internal/v1/mcp";

/// Header carrying the internal protocol version on every node-to-node request.
pub const VERSION_HEADER: &str = "huddle-internal-version";

/// The internal protocol version this node speaks.
pub const INTERNAL_VERSION: u32 = 1;

/// Why cluster mode of the MCP endpoint cannot be configured as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterMcpError {
    #[error(transparent)]
    NodeId(#[from] NodeIdError),
    #[error("The cluster secret is empty")]
    EmptySecret,
}

/// Cluster mode of the MCP endpoint (`McpConfig::cluster`; `None`: one node, session
/// ids without a node name, nothing forwarded).
#[derive(Clone)]
pub struct ClusterMcp {
    /// This node (`me`, which names the sessions made here) and the live nodes with
    /// their internal addresses (`--advertise`), to find a session's home node.
    pub placement: Arc<dyn Placement>,
    /// The cluster's shared secret: sent to the home node, and required by this node's
    /// internal route.
    pub secret: Arc<str>,
    /// Bound on connecting to a home node: past it, the node counts as gone.
    pub connect_timeout: Duration,
    /// Bound on the home node's answer head (status and headers), the non-streaming part
    /// of the hop; a streamed body is bounded by its keep-alives instead (`proxy`).
    pub answer_timeout: Duration,
}

impl ClusterMcp {
    /// Cluster mode for the node `placement.me()` with the default time bounds (connect
    /// 2 s, answer head 10 s). Refuses a node id that cannot name sessions and an empty
    /// secret.
    pub fn new(
        placement: Arc<dyn Placement>,
        secret: impl Into<Arc<str>>,
    ) -> Result<Self, ClusterMcpError> {
        validate_node_id(placement.me().as_str())?;
        let secret = secret.into();
        if secret.is_empty() {
            return Err(ClusterMcpError::EmptySecret);
        }
        Ok(Self {
            placement,
            secret,
            connect_timeout: Duration::from_secs(2),
            answer_timeout: Duration::from_secs(10),
        })
    }

    /// This node's id (the prefix of the session ids it makes).
    pub fn node_id(&self) -> &str {
        self.placement.me().as_str()
    }
}

impl std::fmt::Debug for ClusterMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterMcp")
            .field("node", &self.placement.me())
            .field("secret", &"<not shown>")
            .field("connect_timeout", &self.connect_timeout)
            .field("answer_timeout", &self.answer_timeout)
            .finish()
    }
}

/// The node a session id names (`<node-id>.<random>`); `None` for an id of a node
/// outside cluster mode (no dot).
pub fn home_of(session: &str) -> Option<&str> {
    // The random part is a UUID (no dot); a node id may have dots (a hostname).
    session.rsplit_once('.').map(|(node, _)| node)
}

/// A fresh session id naming `node`.
pub(crate) fn session_id(node: &str) -> String {
    format!("{node}.{}", uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_names_its_node_before_the_last_dot() {
        let id = session_id("huddle-1");
        assert_eq!(home_of(&id), Some("huddle-1"));
        let id = session_id("pod-3.nodes.example.com");
        assert_eq!(home_of(&id), Some("pod-3.nodes.example.com"));
        // Ids made outside cluster mode name no node.
        assert_eq!(home_of("0b6c1f0e-7d38-4b8a-9a55-2f0f5c8f9c11"), None);
    }
}
