//! Cluster membership in Redis: [`RedisMembership`], the [`Placement`] of cluster mode.
//!
//! Each node holds one lease in Redis: a member of the sorted set [`NODES_KEY`] whose
//! score is its expiry (Redis server milliseconds, stamped by a script with Redis's
//! `TIME`), and its `addr|version` in the hash [`ADDR_KEY`]. A heartbeat renews it every
//! third of the TTL with one script call that also answers the live members, so one
//! round trip both renews and refreshes the view; the cost grows with nodes, never with
//! rooms. Readers ignore members whose expiry has passed (and the script prunes them).
//!
//! Nothing else goes to Redis: no room, no token, no message. Redis is advice on who is
//! alive; the store's epochs decide who may write a room. So losing Redis loses nothing:
//! renewals fail (logged once per outage), the last view is kept (nothing rebalances
//! while Redis is down) and this node's lease deadline passes, after which its rooms
//! check their epoch in the store before answering reads. When Redis comes back, even
//! empty, the next renewal registers the node again by itself (the script upserts).
//!
//! Layout: `roster` (the script and the bounded decoding of its answer), `heartbeat`
//! (the renewal task, the lease deadline and the outage log).

mod heartbeat;
mod roster;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{INTERNAL_VERSION, NodeId, Peer, Placement, View};
use heartbeat::Shared;

/// The sorted set of live nodes (member: node id, score: lease expiry in Redis ms). The
/// `{huddle}` hash tag puts every membership key in one slot of a Redis Cluster.
pub const NODES_KEY: &str = "{huddle}:nodes";
/// The hash of node id → `addr|version`.
pub const ADDR_KEY: &str = "{huddle}:node-addr";
/// The most live nodes a view holds: a Redis stuffed with more (a hostile or broken
/// writer) yields a view of this many plus a logged refusal naming the limit.
pub const MAX_NODES: usize = 1024;
pub use super::MAX_NODE_ID_LEN;
/// The longest advertised address accepted, here and from Redis.
pub const MAX_ADDR_LEN: usize = 255;
/// The shortest lease TTL: below it a renewal every third of it would be a busy loop.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(1);

/// How to join the cluster.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// `redis://[:password@]host:port[/db]` (`--redis`).
    pub redis_url: String,
    /// This node's name (`--node-id`).
    pub node_id: NodeId,
    /// Where peers reach this node's internal service (`--advertise`), `host:port`.
    pub advertise: String,
    /// How long a lease lasts without renewal (`--lease-ttl-secs`).
    pub lease_ttl: Duration,
}

/// Why membership could not be set up or a call to Redis failed. Redis URLs appear
/// only as `scheme://host:port/db`: never with their password.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("invalid cluster setting: {0}")]
    Config(String),
    #[error("the Redis URL is not valid ({0})")]
    InvalidUrl(String),
    #[error("could not connect to Redis at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("Redis at {url} failed the membership call: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis at {url} answered the membership call with {what}, not a member list")]
    Garbled { url: String, what: String },
}

/// Where a node is in its membership's life.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Connected, not registered: the node is not ready yet.
    Idle = 0,
    /// `register` was called; no renewal has succeeded yet.
    Joining = 1,
    /// At least one renewal succeeded (Redis outages since do not undo it).
    Registered = 2,
    /// Deregistered: leaving for good.
    Left = 3,
}

impl Stage {
    fn load(a: &AtomicU8) -> Self {
        match a.load(Ordering::Acquire) {
            0 => Self::Idle,
            1 => Self::Joining,
            2 => Self::Registered,
            _ => Self::Left,
        }
    }
}

/// This node's membership of the cluster, in Redis (see the module doc).
pub struct RedisMembership {
    shared: Arc<Shared>,
    heartbeat: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl RedisMembership {
    /// Checks the settings and connects to Redis (within the lease TTL), without
    /// registering: a node registers with [`RedisMembership::register`] once it is
    /// ready, so it is given rooms only then.
    pub async fn connect(config: MembershipConfig) -> Result<Self, PlacementError> {
        let MembershipConfig {
            redis_url,
            node_id,
            advertise,
            lease_ttl,
        } = config;
        if let Err(e) = super::validate_node_id(node_id.as_str()) {
            return Err(PlacementError::Config(e.to_string()));
        }
        if !valid_addr(&advertise) {
            return Err(PlacementError::Config(format!(
                "the advertised address {advertise:?} must be host:port, 1 to \
                 {MAX_ADDR_LEN} characters without spaces or '|'"
            )));
        }
        if lease_ttl < MIN_LEASE_TTL {
            return Err(PlacementError::Config(format!(
                "the lease TTL of {lease_ttl:?} is too short: the minimum is {MIN_LEASE_TTL:?}"
            )));
        }
        let client = redis::Client::open(redis_url.as_str())
            .map_err(|e| PlacementError::InvalidUrl(e.to_string()))?;
        let url = redacted(client.get_connection_info());
        let call_timeout = lease_ttl / 3;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(call_timeout))
            .set_response_timeout(Some(call_timeout))
            .set_number_of_retries(1)
            .set_max_delay(call_timeout);
        let connecting = ConnectionManager::new_with_config(client, manager_config);
        let conn = match tokio::time::timeout(lease_ttl, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(source)) => return Err(PlacementError::Connect { url, source }),
            Err(_) => {
                return Err(PlacementError::Timeout {
                    url,
                    timeout: lease_ttl,
                });
            }
        };
        let me = Peer {
            id: node_id,
            addr: Arc::from(advertise),
            version: INTERNAL_VERSION,
        };
        Ok(Self {
            shared: Arc::new(Shared::new(me, url, conn, lease_ttl)),
            heartbeat: tokio::sync::Mutex::new(None),
        })
    }

    /// Registers this node (its first renewal) and starts the heartbeat, which renews
    /// every third of the TTL from now on. The heartbeat starts whatever the outcome:
    /// when this first renewal fails (the error says why), it keeps trying and
    /// [`Placement::registered`] turns true at its first success. Calling it again does
    /// nothing more.
    pub async fn register(&self) -> Result<(), PlacementError> {
        let mut heartbeat = self.heartbeat.lock().await;
        if heartbeat.is_some() || Stage::load(&self.shared.stage) == Stage::Left {
            return Ok(());
        }
        self.shared
            .stage
            .store(Stage::Joining as u8, Ordering::Release);
        let first = self.shared.renew().await;
        *heartbeat = Some(heartbeat::spawn(Arc::clone(&self.shared)));
        first
    }

    /// Leaves the cluster (SIGTERM handover): stops renewing, removes this node from
    /// Redis, and publishes a view without it, so the node's rooms go to the others. Its
    /// lease deadline is now: from here on its rooms confirm their epoch before reads.
    pub async fn deregister(&self) -> Result<(), PlacementError> {
        self.shared
            .stage
            .store(Stage::Left as u8, Ordering::Release);
        if let Some(task) = self.heartbeat.lock().await.take() {
            task.abort();
            // The task ends at its next await; a renewal in flight is dropped.
            let _ = task.await;
        }
        self.shared.end_lease();
        self.shared.publish_without_me();
        self.shared.leave().await
    }

    /// The lease TTL this node registers with.
    pub fn lease_ttl(&self) -> Duration {
        self.shared.ttl
    }
}

impl Drop for RedisMembership {
    fn drop(&mut self) {
        // A dropped membership stops renewing: its lease expires within the TTL.
        if let Some(task) = self.heartbeat.get_mut().take() {
            task.abort();
        }
    }
}

#[async_trait::async_trait]
impl Placement for RedisMembership {
    fn me(&self) -> &NodeId {
        &self.shared.me.id
    }

    fn view(&self) -> Arc<View> {
        self.shared.view.borrow().clone()
    }

    fn changes(&self) -> watch::Receiver<Arc<View>> {
        self.shared.view.subscribe()
    }

    fn lease_deadline(&self) -> Option<Instant> {
        self.shared.lease_deadline()
    }

    fn registered(&self) -> bool {
        Stage::load(&self.shared.stage) == Stage::Registered
    }

    async fn refresh(&self) {
        self.shared.refresh().await;
    }

    fn view_changed_at(&self) -> Option<Instant> {
        *self
            .shared
            .changed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A node id as [`super::validate_node_id`] accepts it.
pub(crate) fn valid_node_id(id: &str) -> bool {
    super::validate_node_id(id).is_ok()
}

/// An advertised address: 1 to [`MAX_ADDR_LEN`] printable characters, no space or `|`
/// (the separator of the `addr|version` entry).
pub(crate) fn valid_addr(addr: &str) -> bool {
    (1..=MAX_ADDR_LEN).contains(&addr.len())
        && addr.bytes().all(|b| b.is_ascii_graphic() && b != b'|')
}

/// `redis://host:port/db`, never the password or the user name.
fn redacted(info: &redis::ConnectionInfo) -> String {
    format!("{}/{}", info.addr(), info.redis_settings().db())
}
