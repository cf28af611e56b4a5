//! `huddle serve`: the flags (each with its `HUDDLE_*` fallback), turned into a
//! [`NodeConfig`]; the listeners bound; the node started with [`Node::start`] until
//! SIGTERM or ctrl-c. Composing the node and its graceful shutdown is `huddle_node`'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use huddle_core::Limits;
use huddle_gateway::GatewayConfig;
use huddle_node::telemetry::LogFormat;
use huddle_node::{Addrs, ClusterConfig, Listeners, Node, NodeConfig, PostgresConfig};
use huddle_rooms::{PasswordsConfig, RoomsConfig};
use huddle_store::{Durability, EmbeddedOptions, PostgresOptions};

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (HTTP, SSE, A2A).
    #[arg(long, env = "HUDDLE_LISTEN", default_value = "0.0.0.0:3000")]
    listen: String,

    /// Also serve gRPC (alone) on this address; it is always served on --listen too (h2c).
    #[arg(long, env = "HUDDLE_GRPC_LISTEN")]
    grpc_listen: Option<String>,

    /// Only the port to listen on (overrides the port of --listen; PaaS convention).
    #[arg(long, env = "PORT", hide = true)]
    port: Option<u16>,

    /// Directory of the embedded store (default: ~/.huddle).
    #[arg(long, env = "HUDDLE_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// Allow A2A push endpoints on loopback/private addresses (in-cluster agents, tests).
    #[arg(long, env = "HUDDLE_ALLOW_PRIVATE_ENDPOINTS")]
    allow_private_endpoints: bool,

    /// fsync every group commit: acknowledged writes survive power loss, not only a crash.
    #[arg(long, env = "HUDDLE_FSYNC")]
    fsync: bool,

    /// Largest message text, in bytes.
    #[arg(long, env = "HUDDLE_MAX_MESSAGE_BYTES", default_value_t = 65536)]
    max_message_bytes: usize,

    /// Largest HTTP request body, in bytes.
    #[arg(long, env = "HUDDLE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,

    /// Longest room or agent name, in characters.
    #[arg(long, env = "HUDDLE_MAX_NAME_CHARS", default_value_t = 100)]
    max_name_chars: usize,

    /// Most agents in one room: a newcomer past it is refused ("Room is full"); agents
    /// reconnecting are always let in. At least 1.
    #[arg(long, env = "HUDDLE_MAX_AGENTS_PER_ROOM", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_agents_per_room: u32,

    /// Requests in flight across all rooms before new ones get "Server busy".
    #[arg(long, env = "HUDDLE_MAX_IN_FLIGHT", default_value_t = 4096)]
    max_in_flight: usize,

    /// Live streams (SSE, gRPC Subscribe, MCP notification feeds) open at once on this
    /// node; beyond it new ones are refused, naming the limit.
    #[arg(long, env = "HUDDLE_MAX_STREAMS", default_value_t = 50_000)]
    max_streams: usize,

    /// Seconds without requests after which a room is unloaded from memory.
    #[arg(long, env = "HUDDLE_ROOM_IDLE_SECS", default_value_t = 300)]
    room_idle_secs: u64,

    /// Rooms held in memory at once (~13 kB each); beyond it the least recently used
    /// ones are unloaded before their idle time (they load again on their next request).
    #[arg(long, env = "HUDDLE_MAX_LOADED_ROOMS", default_value_t = 20_000)]
    max_loaded_rooms: usize,

    /// MiB the loaded rooms' recent messages (kept in memory for fast reads) may take
    /// together; past it, rooms that write keep only what is not committed yet and read
    /// the rest from the store.
    #[arg(long, env = "HUDDLE_MAX_TAIL_MIB", default_value_t = 256)]
    max_tail_mib: usize,

    /// MiB the node may hold for streams that have not read their messages yet, all
    /// rooms together; past it, the rooms holding most drop their oldest pending
    /// messages and their slowest streams resume from the store.
    #[arg(long, env = "HUDDLE_MAX_STREAM_BACKLOG_MIB", default_value_t = 256)]
    max_stream_backlog_mib: usize,

    /// Microseconds a room's commit may wait for the callers its last commit answered,
    /// when it answered several (fewer, bigger commits under load; a lone caller never
    /// waits, nor a commit after a wait that ran out). 0 turns the wait off; at most
    /// 100000 (100 ms).
    #[arg(
        long,
        env = "HUDDLE_GROUP_COMMIT_WAIT_US",
        default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(0..=100_000)
    )]
    group_commit_wait_us: u64,

    /// Seconds between SSE `event: ping` keep-alives (join.cloud: 15).
    #[arg(long, env = "HUDDLE_SSE_KEEP_ALIVE_SECS", default_value_t = 15)]
    sse_keep_alive_secs: u64,

    /// Base URL advertised in the Agent Card (default: from the request's Host header).
    #[arg(long, env = "HUDDLE_PUBLIC_URL")]
    public_url: Option<String>,

    /// Also serve MCP (`/mcp`) on this address, for configs written for join.cloud's
    /// separate MCP port (it is always on the main port too).
    #[arg(long, env = "HUDDLE_MCP_LISTEN")]
    mcp_listen: Option<String>,

    /// Host names the MCP endpoint answers (comma-separated, `host` or `host:port`; `*`
    /// for any). Default: loopback names when every listener is on loopback (protection
    /// against DNS rebinding), any host otherwise (behind a load balancer).
    #[arg(long, env = "HUDDLE_MCP_ALLOWED_HOSTS")]
    mcp_allowed_hosts: Option<String>,

    /// Browser origins allowed to call the MCP endpoint (comma-separated
    /// `scheme://host[:port]`). Default: no Origin check.
    #[arg(long, env = "HUDDLE_MCP_ALLOWED_ORIGINS", value_delimiter = ',')]
    mcp_allowed_origins: Vec<String>,

    /// Seconds without requests (and without an open GET stream) after which an MCP
    /// session ends; a later request with its id starts a fresh session.
    #[arg(long, env = "HUDDLE_MCP_SESSION_IDLE_SECS", default_value_t = 3600)]
    mcp_session_idle_secs: u64,

    /// Most MCP sessions at once; beyond it a request that would start one gets 503
    /// (`Too many MCP sessions: the limit is N`) until sessions end.
    #[arg(long, env = "HUDDLE_MCP_MAX_SESSIONS", default_value_t = 10_000)]
    mcp_max_sessions: usize,

    /// Most rooms one MCP session remembers (rooms it left included), and most rooms one
    /// `subscriptions/listen` follows.
    #[arg(long, env = "HUDDLE_MCP_MAX_SESSION_ROOMS", default_value_t = 100)]
    mcp_max_session_rooms: usize,

    /// Log format: text (coloured only on a terminal) or json (with trace and span ids).
    #[arg(long, env = "HUDDLE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,

    /// A2A pushes queued or being delivered on this node at once (all agents); beyond it
    /// a new push is dropped, counted and logged, and the message stays unread.
    #[arg(long, env = "HUDDLE_MAX_QUEUED_PUSHES", default_value_t = 10_000)]
    max_queued_pushes: usize,

    /// Seconds a shutdown (SIGTERM, ctrl-c) may take: streams end at once, requests in
    /// flight finish, rooms commit; what is still open after this is cut and the node
    /// exits anyway (0: cut at once).
    #[arg(long, env = "HUDDLE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,

    /// Seconds without requests (and without an open GET stream) after which an MCP
    /// session in no room ends (at most `--mcp-session-idle-secs`): such sessions are
    /// made by any POST without a session, and cost their client nothing to lose.
    #[arg(long, env = "HUDDLE_MCP_ANONYMOUS_IDLE_SECS", default_value_t = 30)]
    mcp_anonymous_idle_secs: u64,

    /// The store: `sqlite` (the embedded one under --data-dir) or a `postgres://` URL
    /// (shared by the nodes of a cluster).
    #[arg(long, env = "HUDDLE_STORE", default_value = "sqlite", value_parser = StoreArg::parse)]
    store: StoreArg,

    /// Pooled PostgreSQL connections for reads and creations (with --store postgres://).
    #[arg(long, env = "HUDDLE_STORE_POOL", default_value_t = huddle_store::postgres::DEFAULT_POOL)]
    store_pool: usize,

    /// PostgreSQL writer lanes (with --store postgres://), each on its own connection:
    /// one commits everything queued at a time, the others start beside a commit that
    /// has run 20 ms. At most --store-pool.
    #[arg(long, env = "HUDDLE_STORE_WRITERS", default_value_t = huddle_store::postgres::DEFAULT_WRITERS)]
    store_writers: usize,

    /// Reader connections of the embedded store (default: the number of cores, at least 2).
    #[arg(long, env = "HUDDLE_STORE_READERS")]
    store_readers: Option<usize>,

    /// Store reads that may wait for a reader; beyond them a request gets `Server busy`
    /// naming the limit (readers plus this queue).
    #[arg(long, env = "HUDDLE_STORE_READ_QUEUE", default_value_t = huddle_store::DEFAULT_READ_QUEUE)]
    store_read_queue: usize,

    /// Room password hashes (argon2) run at once on this node (default: the number of
    /// cores).
    #[arg(long, env = "HUDDLE_PASSWORD_HASH_THREADS")]
    password_hash_threads: Option<usize>,

    /// Password checks waiting for a hashing thread; beyond it `Server busy`.
    #[arg(long, env = "HUDDLE_PASSWORD_HASH_QUEUE", default_value_t = 32)]
    password_hash_queue: usize,

    /// Failed room-password attempts per minute from one client address (a burst of this
    /// many, refilled at this rate; an IPv6 client counts by its /64); 0: unlimited.
    #[arg(
        long,
        env = "HUDDLE_PASSWORD_ATTEMPTS_PER_MINUTE",
        default_value_t = 10
    )]
    password_attempts_per_minute: u32,

    /// Failed password attempts per minute on one room, from all clients; 0: unlimited.
    #[arg(
        long,
        env = "HUDDLE_ROOM_PASSWORD_ATTEMPTS_PER_MINUTE",
        default_value_t = 60
    )]
    room_password_attempts_per_minute: u32,

    /// Most rooms of one name (a password given with a name is checked against each).
    #[arg(long, env = "HUDDLE_MAX_ROOMS_PER_NAME", default_value_t = 16)]
    max_rooms_per_name: usize,

    /// Seconds between SIGTERM and the drain: `/readyz` fails (gRPC health
    /// NOT_SERVING) while everything is still served, so load balancers take the node
    /// out before it stops accepting (0: drain at once).
    #[arg(long, env = "HUDDLE_SHUTDOWN_DELAY_SECS", default_value_t = 0)]
    shutdown_delay_secs: u64,

    /// Also serve `GET /metrics` (alone) on this address; it is always on --listen too.
    #[arg(long, env = "HUDDLE_METRICS_LISTEN")]
    metrics_listen: Option<String>,

    /// Cluster mode: the Redis holding the cluster's membership
    /// (`redis://[:password@]host:port[/db]`). Needs `--store postgres://…`.
    #[arg(long, env = "HUDDLE_REDIS")]
    redis: Option<String>,

    /// This node's name in the cluster (default: the hostname).
    #[arg(long, env = "HUDDLE_NODE_ID")]
    node_id: Option<String>,

    /// Address of the internal node service (cluster mode).
    #[arg(long, env = "HUDDLE_NODE_LISTEN", default_value = "0.0.0.0:7000")]
    node_listen: String,

    /// `host:port` where the other nodes reach this node's internal service (default:
    /// --node-listen).
    #[arg(long, env = "HUDDLE_ADVERTISE")]
    advertise: Option<String>,

    /// The secret every internal call between the nodes carries (cluster mode; required).
    #[arg(long, env = "HUDDLE_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,

    /// Seconds a node's lease in Redis lasts without renewal (renewed every third of it).
    #[arg(long, env = "HUDDLE_LEASE_TTL_SECS", default_value_t = 10)]
    lease_ttl_secs: u64,

    /// Check the flags and environment (and that the store takes writes), print the
    /// reasons of any failure, and exit: 0 when the node would start.
    #[arg(long, env = "HUDDLE_CHECK_CONFIG")]
    pub(crate) check_config: bool,
}

impl ServeArgs {
    fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        let mut addr: SocketAddr = self.listen.parse().with_context(|| {
            format!(
                "--listen {:?} is not an address like 0.0.0.0:3000",
                self.listen
            )
        })?;
        if let Some(p) = self.port {
            addr.set_port(p);
        }
        Ok(addr)
    }

    /// The internal listener: only in cluster mode.
    fn node_listen_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        if self.redis.is_none() {
            return Ok(None);
        }
        optional_addr("--node-listen", Some(&self.node_listen), "0.0.0.0:7000")
    }

    /// Cluster mode's settings (`None` without `--redis`), or why they cannot work.
    pub(crate) fn cluster_config(&self) -> anyhow::Result<Option<ClusterConfig>> {
        let Some(redis_url) = self.redis.clone() else {
            return Ok(None);
        };
        if self.store.0.is_none() {
            anyhow::bail!(
                "--redis (cluster mode) needs a store shared by the nodes: add --store postgres://…"
            );
        }
        let secret = self
            .cluster_secret
            .clone()
            .filter(|s| !s.is_empty())
            .context("--redis (cluster mode) needs --cluster-secret (or HUDDLE_CLUSTER_SECRET)")?;
        let node_id = match &self.node_id {
            Some(id) => id.clone(),
            None => hostname().context("--node-id not given and the hostname is unknown")?,
        };
        Ok(Some(ClusterConfig {
            redis_url,
            node_id,
            advertise: self
                .advertise
                .clone()
                .unwrap_or_else(|| self.node_listen.clone()),
            secret,
            lease_ttl: Duration::from_secs(self.lease_ttl_secs),
        }))
    }

    fn grpc_listen_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        optional_addr(
            "--grpc-listen",
            self.grpc_listen.as_deref(),
            "0.0.0.0:50051",
        )
    }

    fn mcp_listen_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        optional_addr("--mcp-listen", self.mcp_listen.as_deref(), "0.0.0.0:3003")
    }

    fn metrics_listen_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        optional_addr(
            "--metrics-listen",
            self.metrics_listen.as_deref(),
            "0.0.0.0:9090",
        )
    }

    /// The listeners these flags ask for.
    pub(crate) fn addrs(&self) -> anyhow::Result<Addrs> {
        Ok(Addrs {
            http: self.listen_addr()?,
            grpc: self.grpc_listen_addr()?,
            mcp: self.mcp_listen_addr()?,
            metrics: self.metrics_listen_addr()?,
            node: self.node_listen_addr()?,
        })
    }

    fn mcp_config(
        &self,
        listen: SocketAddr,
        mcp_listen: Option<SocketAddr>,
    ) -> huddle_gateway::mcp::McpConfig {
        use huddle_gateway::mcp::{HostPolicy, McpConfig};
        let listeners: Vec<SocketAddr> = std::iter::once(listen).chain(mcp_listen).collect();
        McpConfig {
            allowed_hosts: match &self.mcp_allowed_hosts {
                Some(list) => HostPolicy::parse(list),
                None => HostPolicy::auto(&listeners),
            },
            allowed_origins: self.mcp_allowed_origins.clone(),
            session_idle: Duration::from_secs(self.mcp_session_idle_secs.max(1)),
            anonymous_idle: Duration::from_secs(self.mcp_anonymous_idle_secs.max(1)),
            max_body_bytes: self.max_body_bytes,
            max_sessions: self.mcp_max_sessions.max(1),
            max_session_rooms: self.mcp_max_session_rooms.max(1),
            ..McpConfig::default()
        }
    }

    /// The node these flags describe; `addrs` are the listeners asked for (the MCP host
    /// policy depends on whether they are all on loopback).
    pub(crate) fn node_config(&self, addrs: &Addrs) -> NodeConfig {
        let durability = if self.fsync {
            Durability::Power
        } else {
            Durability::Process
        };
        let store_defaults = EmbeddedOptions::new(durability);
        NodeConfig {
            data_dir: self.data_dir(),
            store: EmbeddedOptions {
                readers: self.store_readers.unwrap_or(store_defaults.readers).max(1),
                read_queue: self.store_read_queue,
                ..store_defaults
            },
            rooms: RoomsConfig {
                limits: Limits {
                    max_message_bytes: self.max_message_bytes,
                    max_name_chars: self.max_name_chars,
                    max_agents: self.max_agents_per_room as usize,
                    ..Limits::default()
                },
                idle_timeout: Duration::from_secs(self.room_idle_secs.max(1)),
                max_loaded_rooms: self.max_loaded_rooms.max(1),
                max_tail_bytes: self.max_tail_mib.saturating_mul(1 << 20),
                max_stream_backlog_bytes: self
                    .max_stream_backlog_mib
                    .max(1)
                    .saturating_mul(1 << 20),
                group_commit_wait: Duration::from_micros(self.group_commit_wait_us),
                max_in_flight: self.max_in_flight,
                max_streams: self.max_streams,
                allow_private_endpoints: self.allow_private_endpoints,
                push: huddle_rooms::PushConfig {
                    max_queued: self.max_queued_pushes.max(1),
                    ..Default::default()
                },
                max_rooms_per_name: self.max_rooms_per_name.max(1),
                passwords: self.passwords_config(),
                ..RoomsConfig::default()
            },
            gateway: GatewayConfig {
                max_body_bytes: self.max_body_bytes,
                public_url: self.public_url.clone(),
                sse_keep_alive: Duration::from_secs(self.sse_keep_alive_secs.max(1)),
            },
            postgres: self.store.0.clone().map(|url| PostgresConfig {
                url,
                options: PostgresOptions {
                    pool: self.store_pool.max(1),
                    read_queue: self.store_read_queue,
                    writers: self.store_writers.max(1),
                },
            }),
            mcp: self.mcp_config(addrs.http, addrs.mcp),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            drain_delay: Duration::from_secs(self.shutdown_delay_secs),
            // Set by `cluster_config`, which can fail.
            cluster: None,
        }
    }

    fn passwords_config(&self) -> PasswordsConfig {
        let defaults = PasswordsConfig::default();
        PasswordsConfig {
            hash_threads: self
                .password_hash_threads
                .unwrap_or(defaults.hash_threads)
                .max(1),
            hash_queue: self.password_hash_queue,
            attempts_per_address: self.password_attempts_per_minute,
            attempts_per_room: self.room_password_attempts_per_minute,
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".huddle")
        })
    }
}

/// This machine's name (a pod's name in Kubernetes).
fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// The address of an optional listener flag, or why it is not one.
fn optional_addr(
    flag: &str,
    value: Option<&str>,
    example: &str,
) -> anyhow::Result<Option<SocketAddr>> {
    value
        .map(|a| {
            a.parse()
                .with_context(|| format!("{flag} {a:?} is not an address like {example}"))
        })
        .transpose()
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.check_config {
        return crate::check_config::run(&args).await;
    }
    let telemetry = huddle_node::telemetry::init(args.log_format)?;
    let addrs = args.addrs()?;
    let mut config = args.node_config(&addrs);
    config.cluster = args.cluster_config()?;
    tracing::info!(
        listen = %addrs.http,
        data_dir = %config.data_dir.display(),
        durability = ?config.store.durability,
        store = if config.postgres.is_some() { "postgres" } else { "sqlite" },
        store_pool = args.store_pool,
        store_writers = args.store_writers,
        allow_private_endpoints = args.allow_private_endpoints,
        max_message_bytes = args.max_message_bytes,
        max_body_bytes = args.max_body_bytes,
        max_in_flight = args.max_in_flight,
        max_streams = args.max_streams,
        grpc_listen = ?args.grpc_listen,
        mcp_listen = ?args.mcp_listen,
        mcp_allowed_hosts = ?args.mcp_allowed_hosts,
        mcp_session_idle_secs = args.mcp_session_idle_secs,
        mcp_max_sessions = args.mcp_max_sessions,
        mcp_max_session_rooms = args.mcp_max_session_rooms,
        max_queued_pushes = args.max_queued_pushes,
        shutdown_grace_secs = args.shutdown_grace_secs,
        shutdown_delay_secs = args.shutdown_delay_secs,
        mcp_anonymous_idle_secs = args.mcp_anonymous_idle_secs,
        passwords = ?config.rooms.passwords,
        max_rooms_per_name = args.max_rooms_per_name,
        max_loaded_rooms = args.max_loaded_rooms,
        max_tail_mib = args.max_tail_mib,
        max_stream_backlog_mib = args.max_stream_backlog_mib,
        max_agents_per_room = args.max_agents_per_room,
        cluster = ?config.cluster,
        "huddle configuration"
    );
    let listeners = Listeners::bind(&addrs).await?;
    let node = Node::start(config, listeners, shutdown_signal()).await?;
    // The readiness lines, the main port's last: scripts and tests wait for it.
    let bound = node.addrs();
    if let Some(grpc) = bound.grpc {
        println!("huddle grpc listening on http://{grpc}");
    }
    if let Some(mcp) = bound.mcp {
        println!("huddle MCP listening on http://{mcp}/mcp");
    }
    if let Some(metrics) = bound.metrics {
        println!("huddle metrics on http://{metrics}/metrics");
    }
    if let Some(node) = bound.node {
        println!("huddle node service listening on http://{node}");
    }
    println!("huddle listening on http://{}", bound.http);
    let stopped = node.wait().await;
    telemetry.shutdown();
    Ok(stopped?)
}

/// `huddle serve`'s shutdown: SIGTERM (what orchestrators send) or ctrl-c.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}

/// `--store`: `None` for the embedded store, or a PostgreSQL URL. `Debug` leaves the URL
/// out: it may hold a password.
#[derive(Clone)]
struct StoreArg(Option<String>);

impl StoreArg {
    fn parse(s: &str) -> Result<Self, String> {
        if s == "sqlite" {
            return Ok(Self(None));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self(Some(s.to_string())));
        }
        Err("expected sqlite or a postgres:// URL".into())
    }
}

impl std::fmt::Debug for StoreArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "postgres"
        } else {
            "sqlite"
        })
    }
}
