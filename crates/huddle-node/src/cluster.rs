//! Cluster mode of a node (`huddle serve --redis …`): the Redis membership, the rooms
//! placed by it, the [`ClusterRouter`], the internal listener's routes (the node service
//! and the MCP route serving sessions forwarded from other nodes), and the node's
//! life in the cluster:
//!
//! - it registers in Redis only once its listeners serve and its store takes writes
//!   (readiness waits for that), so a joining node is given rooms only when ready;
//! - on every new view it hands over the active rooms it no longer owns (commit, stop)
//!   and forgets the channels of nodes that left;
//! - on shutdown, before anything else, it deregisters (its rooms go to the others),
//!   hands over every room, then drains as a single node does.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use huddle_cluster::node_service::NodeService;
use huddle_cluster::peers::{Peers, Timeouts};
use huddle_cluster::placement::membership::{MembershipConfig, RedisMembership};
use huddle_cluster::placement::{NodeId, Placement};
use huddle_cluster::{ClusterRouter, Placed};
use huddle_gateway::mcp::ClusterMcp;
use huddle_gateway::ready::Readiness;
use huddle_rooms::{RoomDirectory, RoomsConfig};
use huddle_store::RoomStore;
use tokio_util::sync::CancellationToken;

use crate::NodeError;

/// How a node joins its cluster. `Debug` leaves the Redis URL (it may hold a password)
/// and the secret out: configurations are logged.
#[derive(Clone)]
pub struct ClusterConfig {
    /// `redis://[:password@]host:port[/db]` (`--redis`).
    pub redis_url: String,
    /// This node's name (`--node-id`).
    pub node_id: String,
    /// Where the other nodes reach this node's internal listener (`--advertise`).
    pub advertise: String,
    /// The secret every internal call carries (`--cluster-secret`).
    pub secret: String,
    /// How long this node's lease lasts without renewal (`--lease-ttl-secs`).
    pub lease_ttl: Duration,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_url", &"<not shown>")
            .field("node_id", &self.node_id)
            .field("advertise", &self.advertise)
            .field("secret", &"<not shown>")
            .field("lease_ttl", &self.lease_ttl)
            .finish()
    }
}

/// A node's cluster parts, built before anything is served.
pub(crate) struct Clustered {
    pub(crate) membership: Arc<RedisMembership>,
    pub(crate) rooms: RoomDirectory,
    pub(crate) router: Arc<ClusterRouter>,
    secret: String,
}

impl Clustered {
    /// Connects to Redis (without registering) and builds the rooms and the router.
    pub(crate) async fn connect(
        config: &ClusterConfig,
        store: Arc<dyn RoomStore>,
        rooms: RoomsConfig,
    ) -> Result<Self, NodeError> {
        let membership = RedisMembership::connect(MembershipConfig {
            redis_url: config.redis_url.clone(),
            node_id: NodeId::new(config.node_id.as_str()),
            advertise: config.advertise.clone(),
            lease_ttl: config.lease_ttl,
        })
        .await
        .map_err(|source| NodeError::Cluster {
            what: "joining the cluster",
            source: Box::new(source),
        })?;
        let membership = Arc::new(membership);
        let placement: Arc<dyn Placement> = membership.clone();
        let rooms = RoomDirectory::clustered(
            store,
            rooms,
            Arc::new(Placed::new(placement.clone(), config.lease_ttl)),
        );
        let peers = Peers::new(&config.secret, Timeouts::default()).map_err(|source| {
            NodeError::Cluster {
                what: "--cluster-secret",
                source: Box::new(source),
            }
        })?;
        let router = Arc::new(ClusterRouter::new(rooms.clone(), placement, peers.clone()));
        tokio::spawn(follow_views(membership.clone(), rooms.clone(), peers));
        Ok(Self {
            membership,
            rooms,
            router,
            secret: config.secret.clone(),
        })
    }

    /// The internal listener's routes: the node service (its messages bounded by
    /// `max_message`); the node adds the MCP endpoint's internal route.
    pub(crate) fn internal_routes(&self, max_message: usize) -> axum::Router {
        let placement: Arc<dyn Placement> = self.membership.clone();
        NodeService::new(self.rooms.clone(), placement).routes(&self.secret, max_message)
    }

    /// MCP in cluster mode: session ids naming this node, requests for sessions held
    /// elsewhere forwarded to their node.
    pub(crate) fn mcp(&self) -> Result<ClusterMcp, NodeError> {
        let placement: Arc<dyn Placement> = self.membership.clone();
        ClusterMcp::new(placement, self.secret.as_str()).map_err(|source| NodeError::Cluster {
            what: "MCP sessions in cluster mode",
            source: Box::new(source),
        })
    }

    /// Readiness adds "registered in Redis".
    pub(crate) fn readiness(&self, readiness: Readiness) -> Readiness {
        let membership = self.membership.clone();
        readiness.with(
            "cluster",
            Arc::new(move || {
                let registered = membership.registered();
                Box::pin(async move {
                    if registered {
                        Ok(())
                    } else {
                        Err("not registered in Redis yet".to_string())
                    }
                })
            }),
        )
    }

    /// Registers once the store takes writes (retrying every second until then, or
    /// until `stop`): call once the listeners serve.
    pub(crate) fn register_when_ready(&self, store: Arc<dyn RoomStore>, stop: CancellationToken) {
        let membership = self.membership.clone();
        tokio::spawn(async move {
            let writable = async {
                while let Err(e) = store.check_writable().await {
                    tracing::warn!(error = %e, "not joining the cluster yet: the store does not take writes");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = writable => {}
            }
            match membership.register().await {
                Ok(()) => tracing::info!(node = %membership.me(), "registered in the cluster"),
                Err(e) => {
                    tracing::warn!(error = %e, "first registration failed; retrying with every heartbeat")
                }
            }
        });
    }

    /// What the node does first when it is asked to stop: leave the cluster and hand
    /// every room over (committed, stopped), so the others take them while this node
    /// still forwards what reaches it.
    pub(crate) fn leave(&self, grace: Duration) -> BoxFuture<'static, ()> {
        let (membership, rooms) = (self.membership.clone(), self.rooms.clone());
        Box::pin(async move {
            if let Err(e) = membership.deregister().await {
                tracing::warn!(error = %e, "deregistering failed; this node's lease expires by itself");
            }
            let handed = rooms.hand_over(grace).await;
            tracing::info!(rooms = handed, "left the cluster: rooms handed over");
        })
    }
}

/// On every new view: forget the channels of nodes that left, hand over the rooms this
/// node no longer owns.
async fn follow_views(membership: Arc<RedisMembership>, rooms: RoomDirectory, peers: Peers) {
    let mut changes = membership.changes();
    // The membership outlives the node only in tests; the task ends with its channel.
    drop(membership);
    while changes.changed().await.is_ok() {
        let view = changes.borrow_and_update().clone();
        huddle_metrics::cluster::view_size(view.nodes().len());
        peers.retain(&view);
        let handed = rooms.hand_over(HAND_OVER_TIMEOUT).await;
        if handed > 0 {
            tracing::info!(
                rooms = handed,
                nodes = view.nodes().len(),
                "handed over rooms after a view change"
            );
        }
    }
}

/// How long a room may take to commit and stop when it moves.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(10);

/// `huddle serve --check-config`'s cluster check: the settings are valid and Redis
/// answers (nothing is registered).
pub async fn check_cluster(config: &ClusterConfig) -> Result<(), NodeError> {
    Peers::new(&config.secret, Timeouts::default()).map_err(|source| NodeError::Cluster {
        what: "--cluster-secret",
        source: Box::new(source),
    })?;
    RedisMembership::connect(MembershipConfig {
        redis_url: config.redis_url.clone(),
        node_id: NodeId::new(config.node_id.as_str()),
        advertise: config.advertise.clone(),
        lease_ttl: config.lease_ttl,
    })
    .await
    .map(drop)
    .map_err(|source| NodeError::Cluster {
        what: "joining the cluster",
        source: Box::new(source),
    })
}
