//! A node in the test's own process: [`huddle_node::Node::start`] on 127.0.0.1:0 with
//! its store in a temporary dir, exactly as `huddle serve` composes it, minus the
//! process. For tests that need the node's insides (MCP sessions, the router) or
//! configuration no flag offers (a tiny subscriber buffer).

use std::ops::Deref;

use huddle_node::{Listeners, Node, NodeConfig, NodeError, RunningNode};
use tokio::sync::oneshot;

use crate::a2a::A2a;

/// A running in-process node; shut down when dropped. Derefs to its [`A2a`] client.
pub struct TestNode {
    client: A2a,
    node: Option<RunningNode>,
    /// The shutdown trigger: sending (or dropping) it starts the node's shutdown.
    stop: Option<oneshot::Sender<()>>,
    /// The store's dir, removed after the node.
    _dir: tempfile::TempDir,
}

impl Deref for TestNode {
    type Target = A2a;

    fn deref(&self) -> &A2a {
        &self.client
    }
}

impl TestNode {
    /// A node with every default (no private push endpoints, as `huddle serve`).
    pub async fn start() -> TestNode {
        Self::start_with(|_| {}).await
    }

    /// A node with the defaults changed by `configure` (its `data_dir` is set already).
    pub async fn start_with(configure: impl FnOnce(&mut NodeConfig)) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = NodeConfig::new(dir.path());
        configure(&mut config);
        let listeners = Listeners::loopback().await.expect("bind 127.0.0.1:0");
        let (stop, stopped) = oneshot::channel::<()>();
        let node = Node::start(config, listeners, async {
            // Sent or dropped: either way the test is done with the node.
            let _ = stopped.await;
        })
        .await
        .expect("start an in-process node");
        TestNode {
            client: A2a::new(&format!("http://{}", node.addrs().http)),
            node: Some(node),
            stop: Some(stop),
            _dir: dir,
        }
    }

    /// The node itself: its addresses, gateway state, MCP endpoint, rooms.
    pub fn node(&self) -> &RunningNode {
        self.node.as_ref().expect("the node is running")
    }

    /// Starts the shutdown and waits until the node has stopped (within its grace).
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.node.take().expect("the node is running").wait().await
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
