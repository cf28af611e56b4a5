//! What a node is made of, as one value: `huddle serve` builds it from its flags, tests
//! from [`NodeConfig::new`] plus the fields they care about.

use std::path::PathBuf;
use std::time::Duration;

use huddle_gateway::GatewayConfig;
use huddle_gateway::mcp::McpConfig;
use huddle_rooms::RoomsConfig;
use huddle_store::{Durability, EmbeddedOptions, PostgresOptions};

use crate::ClusterConfig;

/// Every option of a node's parts. The listeners are not in it: they are bound before
/// the node starts (see [`crate::Listeners`]), so a caller can bind port 0 and learn the
/// port, or hand over sockets it got elsewhere.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Directory of the embedded store (created when missing).
    pub data_dir: PathBuf,
    /// How the embedded store is opened (durability, readers, read queue).
    pub store: EmbeddedOptions,
    /// The shared PostgreSQL store instead of the embedded one (`--store postgres://…`).
    pub postgres: Option<PostgresConfig>,
    /// The room runtime: limits, idle unloading, streams, pushes, passwords.
    pub rooms: RoomsConfig,
    /// The HTTP gateway: body limit, public URL, SSE keep-alive.
    pub gateway: GatewayConfig,
    /// The MCP endpoint: hosts, origins, sessions.
    pub mcp: McpConfig,
    /// How long a shutdown may take once its future resolved: streams end at once,
    /// requests in flight finish and rooms commit within it; what is still open after
    /// it is cut (zero: cut at once).
    pub shutdown_grace: Duration,
    /// How long before the drain a shutdown fails readiness while still serving
    /// (zero: the drain begins at once).
    pub drain_delay: Duration,
    /// Cluster mode (`--redis`): `None` for a single node. Needs the PostgreSQL store
    /// and the internal listener ([`crate::Listeners::node`]).
    pub cluster: Option<ClusterConfig>,
}

impl NodeConfig {
    /// Defaults for everything, the store in `data_dir` without fsync per commit (what
    /// `huddle serve` does without `--fsync`).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            store: EmbeddedOptions::new(Durability::Process),
            postgres: None,
            rooms: RoomsConfig::default(),
            gateway: GatewayConfig::default(),
            mcp: McpConfig::default(),
            shutdown_grace: Duration::from_secs(10),
            drain_delay: Duration::ZERO,
            cluster: None,
        }
    }
}

/// Where the node's PostgreSQL store is and how it is pooled. `Debug` leaves the URL out:
/// it may hold a password, and configurations are logged.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database[?sslmode=disable|prefer|require]`.
    pub url: String,
    pub options: PostgresOptions,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<not shown>")
            .field("options", &self.options)
            .finish()
    }
}
