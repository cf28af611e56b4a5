//! Why a node could not start or did not stop cleanly. Callers branch on it: `huddle
//! serve` prints it and exits 1, a test harness panics with it. The cause of each is its
//! `source()`, not part of its text, so an error chain (anyhow's `{:#}`) says it once.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A node failure.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listener could not be bound (address in use, no permission, no such address).
    #[error("binding {listener} {addr}")]
    Bind {
        /// Which listener (its `huddle serve` flag).
        listener: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A bound listener could not say its address.
    #[error("reading the address of {listener}")]
    LocalAddr {
        listener: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The embedded store could not be opened (missing permissions, a corrupt or
    /// locked database, an incompatible schema).
    #[error("opening the store in {}", dir.display())]
    OpenStore {
        dir: PathBuf,
        #[source]
        source: huddle_store::StoreError,
    },
    /// The PostgreSQL store could not be reached or its schema is newer than this
    /// node's.
    #[error("connecting to the PostgreSQL store")]
    ConnectStore {
        #[source]
        source: huddle_store::StoreError,
    },
    /// A server stopped before the shutdown was asked for (its listener failed). The
    /// node shut down the rest as it would have on a signal.
    #[error("the {listener} server stopped unexpectedly")]
    ServerStopped { listener: &'static str },
    /// Cluster mode could not be set up: Redis unreachable or refusing, a bad node id,
    /// address, lease TTL or cluster secret (`what` names the step or the flag).
    #[error("cluster mode: {what}")]
    Cluster {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The task that ran the node panicked or was cancelled.
    #[error("the node's task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}
