//! Test kit (dev-only): the one way each test suite starts a node and talks to it.
//!
//! Layout:
//! - `in_process` — [`TestNode`]: `Node::start` on 127.0.0.1:0 with a temporary store;
//!   a handle, its base URL, a shutdown trigger.
//! - `process`    — [`Server`]: the real `huddle serve` binary as a child process
//!   (readiness line, log tail, SIGTERM, `kill -9`, RSS); [`huddle_command`] for the
//!   client commands.
//! - `a2a`        — [`A2a`]: JSON-RPC `SendMessage` with `metadata.action` ([`Call`],
//!   [`Reply`], [`Agent`]) and the room SSE request.
//! - `mcp`        — one MCP tool call in a fresh session ([`A2a::mcp_tool`]).
//! - `sse`        — [`Sse`]: the one SSE reader (room streams, MCP streams).
//! - [`otlp`]     — an OTLP trace collector: the node's exported spans.
//! - `checks`     — message-list assertions, formats, [`eventually`].
//! - `store`      — [`TestStore`]: the store of every [`Server`] (`HUDDLE_TEST_STORE`:
//!   the embedded one, a database on one shared throwaway PostgreSQL, or a cluster).
//! - `cluster`    — [`TestCluster`]: N real `huddle serve` nodes on one PostgreSQL
//!   database and one Redis, each behind a [`LinkProxy`] on its internal link; kill,
//!   stop, terminate, add nodes; restart Redis empty; stop PostgreSQL.
//! - `link`       — [`LinkProxy`]: a TCP forwarder a test can cut and heal.
//! - `ledger`     — [`Ledger`]: what a cluster test acknowledged and streamed, and the
//!   end state every cluster test checks (gapless rooms, every ack once, streams whole).
//!
//! Both nodes deref to their [`A2a`] client, so a test reads the same against either.

mod a2a;
mod checks;
mod cluster;
mod in_process;
mod ledger;
mod link;
mod mcp;
pub mod otlp;
mod process;
mod sse;
mod store;

use std::sync::Once;
use std::time::Duration;

pub use a2a::{A2a, Agent, Call, Reply, Resume};
pub use checks::*;
pub use cluster::{ClusterBuilder, TestCluster};
pub use in_process::TestNode;
pub use ledger::{Ledger, Stream};
pub use link::LinkProxy;
pub use process::{Server, ServerBuilder, huddle_bin, huddle_command};
pub use sse::{Event, Next, Raw, Sse, parse_all};
pub use store::{STORE_VAR, TestStore, shared_postgres};

/// An HTTP client for tests: no proxy, a 30 s request timeout (streams set their own).
pub fn http_client() -> reqwest::Client {
    // reqwest is built with `rustls-no-provider`: install one before building a client.
    static CRYPTO: Once = Once::new();
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build reqwest client")
}

/// A free port on 127.0.0.1 (bound, then released: for flags that need a port number
/// before the process starts), outside the range connections take their ports from
/// (`huddle_store::testing::free_port`).
pub fn free_port() -> u16 {
    huddle_store::testing::free_port().expect("a free loopback port")
}
