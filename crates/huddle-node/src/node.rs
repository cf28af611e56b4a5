//! [`Node::start`]: the store opened, the rooms, the router, the gateway, each listener
//! served, and the shutdown armed; [`RunningNode`] is the handle.

use std::future::Future;
use std::sync::Arc;

use huddle_cluster::{LocalRouter, Router};
use huddle_gateway::AppState;
use huddle_gateway::GatewayConfig;
use huddle_gateway::mcp::Mcp;
use huddle_rooms::RoomDirectory;
use huddle_store::{EmbeddedStore, PostgresStore, RoomStore};
use tokio::task::JoinHandle;

use crate::cluster::Clustered;
use crate::listeners::{GRPC, HTTP, MCP, METRICS, NODE};
use crate::ops;
use crate::shutdown::Shutdown;
use crate::{Addrs, Listeners, NodeConfig, NodeError};

/// A Huddle node (see the crate docs).
pub struct Node;

impl Node {
    /// Starts a node on `listeners`. It serves until `shutdown` resolves (or a server
    /// fails), then shuts down within `config.shutdown_grace`: listeners stop accepting,
    /// live streams end, requests in flight are answered, rooms commit.
    ///
    /// Must run inside a tokio runtime; the node's tasks live on it.
    pub async fn start(
        config: NodeConfig,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<RunningNode, NodeError> {
        // The A2A pusher (reqwest, built without a default TLS provider) needs one for
        // the process; a second install, by us or the embedder, is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let addrs = listeners.addrs()?;
        let store = open_store(&config).await?;
        let clustered = match &config.cluster {
            Some(cluster) => {
                Some(Clustered::connect(cluster, store.clone(), config.rooms.clone()).await?)
            }
            None => None,
        };
        let (rooms, router): (RoomDirectory, Arc<dyn Router>) = match &clustered {
            Some(c) => (c.rooms.clone(), c.router.clone()),
            None => {
                let rooms = RoomDirectory::new(store.clone(), config.rooms);
                (rooms.clone(), Arc::new(LocalRouter::new(rooms)))
            }
        };
        let mut servers = Shutdown::new(config.shutdown_grace).with_drain_delay(config.drain_delay);
        let mut mcp_config = config.mcp;
        if let Some(c) = &clustered {
            mcp_config.cluster = Some(c.mcp()?);
        }
        let mcp = Mcp::new(router.clone(), mcp_config, servers.trigger());
        let mut readiness = ops::readiness(store.clone()).draining_on(servers.draining());
        if let Some(c) = &clustered {
            readiness = c.readiness(readiness);
            servers = servers.leaving_first(c.leave(config.shutdown_grace));
            let internal = listeners.node.ok_or(NodeError::Cluster {
                what: "cluster mode needs the internal listener (--node-listen)",
                source: "no internal listener was bound".into(),
            })?;
            servers.serve(
                NODE,
                internal,
                c.internal_routes(internal_message_limit(&config.gateway))
                    .merge(mcp.internal_routes()),
            );
        }
        let state = AppState {
            router,
            config: Arc::new(config.gateway),
            shutdown: servers.trigger(),
            readiness,
        };
        if let Some(grpc) = listeners.grpc {
            servers.serve(GRPC, grpc, traced(huddle_gateway::grpc::routes(&state)));
        }
        if let Some(metrics) = listeners.metrics {
            servers.serve(METRICS, metrics, ops::metrics_route(&rooms, &mcp));
        }
        if let Some(mcp_only) = listeners.mcp {
            servers.serve(MCP, mcp_only, traced(mcp.routes()));
        }
        servers.serve(
            HTTP,
            listeners.http,
            huddle_gateway::app_with_mcp(state.clone(), mcp.clone())
                .merge(ops::metrics_route(&rooms, &mcp)),
        );
        if let Some(c) = &clustered {
            c.register_when_ready(store, servers.trigger());
        }
        let task = {
            let rooms = rooms.clone();
            tokio::spawn(async move { servers.run(shutdown, &rooms).await })
        };
        Ok(RunningNode {
            addrs,
            state,
            mcp,
            rooms,
            task,
        })
    }
}

/// The largest internal request: an operation carries at most one client request's
/// content, so the client body limit plus room for its envelope.
fn internal_message_limit(gateway: &GatewayConfig) -> usize {
    gateway.max_body_bytes.saturating_add(64 * 1024)
}

/// Routes served on a listener of their own, with the request spans (and the clients'
/// trace context) of the main listener.
fn traced(routes: axum::Router) -> axum::Router {
    routes.layer(axum::middleware::from_fn(
        huddle_gateway::observe::http_span,
    ))
}

/// The embedded store in `data_dir`, or the PostgreSQL store when one is configured
/// (what [`Node::start`] serves; also `huddle serve --check-config`'s store check).
pub async fn open_store(config: &NodeConfig) -> Result<Arc<dyn RoomStore>, NodeError> {
    if let Some(pg) = &config.postgres {
        let store = PostgresStore::connect(&pg.url, pg.options)
            .await
            .map_err(|source| NodeError::ConnectStore { source })?;
        return Ok(Arc::new(store));
    }
    let store = EmbeddedStore::open_with(&config.data_dir, config.store).map_err(|source| {
        NodeError::OpenStore {
            dir: config.data_dir.clone(),
            source,
        }
    })?;
    Ok(Arc::new(store))
}

/// A started node: where it listens, its parts for in-process tests, and [`wait`].
///
/// Dropping it does not stop the node: the shutdown future given to [`Node::start`] does.
///
/// [`wait`]: RunningNode::wait
pub struct RunningNode {
    addrs: Addrs,
    state: AppState,
    mcp: Mcp,
    rooms: RoomDirectory,
    task: JoinHandle<Result<(), NodeError>>,
}

impl RunningNode {
    /// Where the listeners are bound (port 0 resolved).
    pub fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    /// The gateway's state (router, config, shutdown trigger): build more routes on the
    /// same rooms, or call the router directly.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The MCP endpoint (its sessions, its routes for another listener).
    pub fn mcp(&self) -> &Mcp {
        &self.mcp
    }

    /// The rooms of this node.
    pub fn rooms(&self) -> &RoomDirectory {
        &self.rooms
    }

    /// Resolves once the node has stopped: after the shutdown future resolved (or a
    /// server failed), the servers closed and the rooms committed, or the grace ran out.
    ///
    /// Past the grace the servers stop waiting for the connections still open and the
    /// listeners are closed; `huddle serve` then exits, which cuts those connections. In
    /// a process that goes on (a test), such a connection (a client that neither sends
    /// nor reads) lives on until its client leaves or the runtime ends.
    pub async fn wait(self) -> Result<(), NodeError> {
        self.task.await?
    }
}
