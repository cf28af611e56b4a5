//! One Huddle node, composed: the store (embedded, or PostgreSQL when configured), the
//! room directory, the local router, the gateway (A2A, SSE, MCP, gRPC) served on
//! already-bound listeners, and the graceful shutdown that ends them all.
//!
//! `huddle serve`, the in-process test harnesses and anything else that needs a node
//! start it the same way, so what a test runs is what production runs:
//!
//! ```no_run
//! # async fn demo() -> Result<(), huddle_node::NodeError> {
//! use huddle_node::{Listeners, Node, NodeConfig};
//! let listeners = Listeners::loopback().await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let node = Node::start(NodeConfig::new("/tmp/huddle"), listeners, async {
//!     let _ = stopped.await;
//! })
//! .await?;
//! println!("serving on http://{}", node.addrs().http);
//! let _ = stop.send(());
//! node.wait().await
//! # }
//! ```
//!
//! Why a library of its own: the test harnesses of the gateway (and of any crate above
//! it) need a whole node in-process, and the gateway cannot depend on the `huddle`
//! binary crate. The node is the only composition root; the binary is flags on top.
//!
//! Layout:
//! - `config`    — [`NodeConfig`]: every part's options, in one value.
//! - `cluster`   — cluster mode: membership, placed rooms, the forwarding router, the
//!   internal listener, registering when ready, leaving first on shutdown.
//! - `listeners` — [`Listeners`] (bound sockets) and [`Addrs`] (where they are).
//! - `node`      — [`Node::start`] and [`RunningNode`] (addresses, state, `wait`).
//! - `ops`       — `/metrics` and the readiness checks of `/readyz`.
//! - [`telemetry`] — logs (text or JSON), OpenTelemetry traces, trace context.
//! - `serve`     — accepting connections, HTTP/1.1 or HTTP/2 on one port, idle SSE
//!   streams without hyper's buffers.
//! - `shutdown`  — the one shutdown trigger, the servers it waits for, the grace.
//! - `error`     — [`NodeError`]: binding, opening the store, a server that stopped.

mod cluster;
mod config;
mod error;
mod listeners;
mod node;
mod ops;
mod serve;
mod shutdown;
pub mod telemetry;

pub use cluster::{ClusterConfig, check_cluster};
pub use config::{NodeConfig, PostgresConfig};
pub use error::NodeError;
pub use listeners::{Addrs, Listeners};
pub use node::{Node, RunningNode, open_store};
