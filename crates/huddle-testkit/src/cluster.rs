//! [`TestCluster`]: N real `huddle serve` processes in cluster mode, on one PostgreSQL
//! database (the truth) and one Redis (membership), as a deployment runs them, for the
//! tests of what a cluster does when its parts fail.
//!
//! Node `k` is `huddle serve --store <db> --redis <redis> --node-id n<k> --node-listen
//! 127.0.0.1:<free port> --advertise <its link> --cluster-secret <secret>
//! --lease-ttl-secs 2`: its internal listener sits behind a [`LinkProxy`] whose address
//! is what the other nodes are told, so [`TestCluster::cut`] splits the node from its
//! peers while clients still reach it. Each node is a [`Server`] (its output, signals,
//! exit), started in its own data dir.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use huddle_cluster::placement::{NodeId, Peer, View};
use huddle_cluster::testing::TestRedis;
use huddle_core::RoomId;
use huddle_store::testing::TestPostgres;

use crate::a2a::A2a;
use crate::link::LinkProxy;
use crate::process::{Server, ServerBuilder};
use crate::store::shared_postgres;

/// The lease TTL of the test nodes: short, so failovers happen within a test's time.
pub const LEASE_TTL_SECS: u64 = 2;
/// How long a node may take to become ready (debug build, busy machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One node of a [`TestCluster`].
pub struct ClusterNode {
    /// Its `--node-id`.
    pub id: String,
    /// The process.
    pub server: Server,
    /// The link in front of its `--node-listen`, advertised to its peers.
    pub link: LinkProxy,
}

/// The PostgreSQL of a cluster: a database on the shared test server, or a server of
/// its own (for the tests that stop it).
enum Postgres {
    Shared,
    Own(TestPostgres),
}

/// How to start a [`TestCluster`]; [`TestCluster::builder`].
pub struct ClusterBuilder {
    nodes: usize,
    own_postgres: bool,
    args: Vec<String>,
    env: Vec<(String, String)>,
    strict: bool,
    /// Whether `start` waits for every view to hold every node.
    settled: bool,
}

impl ClusterBuilder {
    /// How many nodes (default 3).
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// On a PostgreSQL server of its own, so [`TestCluster::stop_postgres`] works.
    pub fn own_postgres(mut self) -> Self {
        self.own_postgres = true;
        self
    }

    /// Extra `huddle serve` flags for every node.
    pub fn args(mut self, args: &[String]) -> Self {
        self.args.extend(args.iter().cloned());
        self
    }

    /// Extra environment variables for every node.
    pub fn env(mut self, env: &[(String, String)]) -> Self {
        self.env.extend(env.iter().cloned());
        self
    }

    /// Without `--allow-private-endpoints`.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Starts the test as soon as every node is ready, while the nodes' views may still
    /// differ (each learns of the others at its next renewal), as a real rollout does.
    pub fn unsettled(mut self) -> Self {
        self.settled = false;
        self
    }

    /// Starts PostgreSQL (or takes a database on the shared one), Redis and the nodes;
    /// returns once every node answers `/readyz` with 200.
    pub async fn start(self) -> TestCluster {
        let (postgres, store) = if self.own_postgres {
            let pg = TestPostgres::start_own();
            let url = pg.database();
            (Postgres::Own(pg), url)
        } else {
            (Postgres::Shared, shared_postgres().database())
        };
        let mut cluster = TestCluster {
            postgres,
            store,
            redis: TestRedis::start_own(),
            secret: format!("secret-{}", uuid::Uuid::new_v4().simple()),
            nodes: Vec::new(),
            args: self.args,
            env: self.env,
            strict: self.strict,
        };
        for _ in 0..self.nodes {
            cluster.spawn_node().await;
        }
        for i in 0..self.nodes {
            cluster.wait_ready(i).await;
        }
        if self.settled {
            cluster.wait_converged().await;
        }
        cluster
    }
}

/// N `huddle serve` nodes in cluster mode on one PostgreSQL database and one Redis.
pub struct TestCluster {
    postgres: Postgres,
    /// The nodes' `--store`.
    store: String,
    redis: TestRedis,
    secret: String,
    /// Every node ever started, in order (a killed one keeps its index).
    nodes: Vec<ClusterNode>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    strict: bool,
}

impl TestCluster {
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            nodes: 3,
            own_postgres: false,
            args: Vec::new(),
            env: Vec::new(),
            strict: false,
            settled: true,
        }
    }

    /// `n` nodes on a database of the shared test PostgreSQL.
    pub async fn start(n: usize) -> TestCluster {
        Self::builder().nodes(n).start().await
    }

    /// Node `i` (a [`Server`]: its A2A client, output, signals).
    pub fn node(&self, i: usize) -> &Server {
        &self.nodes[i].server
    }

    /// Node `i` with its id and link.
    pub fn member(&self, i: usize) -> &ClusterNode {
        &self.nodes[i]
    }

    /// How many nodes were started (including stopped ones).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The nodes whose process is running, by index.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].server.is_running())
            .collect()
    }

    /// The base URLs of the running nodes.
    pub fn urls(&self) -> Vec<String> {
        self.running()
            .into_iter()
            .map(|i| self.nodes[i].server.base.clone())
            .collect()
    }

    /// The index of the node owning `room_id` when the nodes `live` are the live ones:
    /// rendezvous hashing as the nodes compute it, so a test can aim at a room's owner.
    pub fn owner_among(&self, room_id: &str, live: &[usize]) -> usize {
        let room: RoomId = room_id.parse().expect("a room id is a UUID");
        let peers = live
            .iter()
            .map(|&i| Peer {
                id: NodeId::new(self.nodes[i].id.as_str()),
                addr: self.nodes[i].link.addr().to_string().into(),
                version: 1,
            })
            .collect();
        let view = View::new(peers);
        let owner = view.owner(room).expect("at least one live node");
        live.iter()
            .copied()
            .find(|&i| self.nodes[i].id == owner.id.as_str())
            .expect("the owner is one of the live nodes")
    }

    /// The index of the node owning `room_id` among the running nodes.
    pub fn owner(&self, room_id: &str) -> usize {
        self.owner_among(room_id, &self.running())
    }

    /// An A2A client spreading its requests round-robin over the running nodes.
    pub fn client(&self) -> Arc<A2a> {
        let urls = self.urls();
        let bases: Vec<&str> = urls.iter().map(String::as_str).collect();
        Arc::new(A2a::spread(&bases))
    }

    /// The store every node is on.
    pub fn store_url(&self) -> &str {
        &self.store
    }

    /// The Redis every node is on.
    pub fn redis_url(&self) -> &str {
        self.redis.url()
    }

    /// `kill -9` node `i`.
    pub fn kill9(&self, i: usize) {
        self.nodes[i].server.kill9();
    }

    /// `kill -STOP` node `i`: it stops in its tracks, sockets open, lease running out.
    pub fn sigstop(&self, i: usize) {
        self.nodes[i].server.signal("STOP");
    }

    /// `kill -CONT` node `i`.
    pub fn sigcont(&self, i: usize) {
        self.nodes[i].server.signal("CONT");
    }

    /// `kill -TERM` node `i` and wait (up to 60 s) for it to exit; asserts it did.
    pub async fn sigterm(&self, i: usize) {
        let node = &self.nodes[i].server;
        node.terminate();
        let exited = node.wait_exit(Duration::from_secs(60)).await;
        assert!(
            exited.is_some(),
            "node {} did not exit within 60 s of SIGTERM; output:\n{}",
            self.nodes[i].id,
            node.log_tail()
        );
    }

    /// Cuts node `i`'s internal link: its peers can no longer reach it (clients can).
    pub fn cut(&self, i: usize) {
        self.nodes[i].link.cut();
    }

    /// Heals node `i`'s internal link.
    pub fn heal(&self, i: usize) {
        self.nodes[i].link.heal();
    }

    /// Starts one more node and waits for it to be ready; returns its index.
    pub async fn add_node(&mut self) -> usize {
        let i = self.add_node_unsettled().await;
        self.wait_converged().await;
        i
    }

    /// Starts one more node and returns as soon as it is ready, while the other nodes
    /// may not have seen it yet (they do at their next renewal).
    pub async fn add_node_unsettled(&mut self) -> usize {
        let i = self.spawn_node().await;
        self.wait_ready(i).await;
        i
    }

    /// Waits until every running node's view holds every running node
    /// (`huddle_cluster_nodes` on each node's `/metrics`): a node learns of a newcomer
    /// at its next renewal, and a test that aims at a room's owner must not run before.
    pub async fn wait_converged(&self) {
        let running = self.running();
        let start = Instant::now();
        for &i in &running {
            let node = &self.nodes[i].server;
            let url = format!("{}/metrics", node.base);
            loop {
                let seen = match node.http.get(&url).send().await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                let nodes = seen
                    .lines()
                    .find_map(|l| l.strip_prefix("huddle_cluster_nodes "))
                    .and_then(|v| v.trim().parse::<f64>().ok());
                if nodes == Some(running.len() as f64) {
                    break;
                }
                assert!(
                    start.elapsed() < READY_TIMEOUT,
                    "node {}'s view did not reach {} nodes (it shows {nodes:?})",
                    self.nodes[i].id,
                    running.len()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Kills Redis and starts it again, empty, on the same port.
    pub fn restart_redis_empty(&self) {
        self.redis.restart();
    }

    /// Stops PostgreSQL at once (a crash); needs [`ClusterBuilder::own_postgres`].
    pub fn stop_postgres(&self) {
        self.own_postgres().stop();
    }

    /// Starts PostgreSQL again after [`TestCluster::stop_postgres`].
    pub fn start_postgres(&self) {
        self.own_postgres().restart();
    }

    fn own_postgres(&self) -> &TestPostgres {
        match &self.postgres {
            Postgres::Own(pg) => pg,
            Postgres::Shared => {
                panic!("this cluster is on the shared PostgreSQL: build it with own_postgres()")
            }
        }
    }

    /// Polls node `i`'s `/readyz` until it answers 200; returns how long that took.
    pub async fn wait_ready(&self, i: usize) -> Duration {
        let node = &self.nodes[i].server;
        let url = format!("{}/readyz", node.base);
        let start = Instant::now();
        loop {
            let ok = node
                .http
                .get(&url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200);
            if ok {
                return start.elapsed();
            }
            assert!(
                node.is_running(),
                "node {} exited before it was ready; output:\n{}",
                self.nodes[i].id,
                node.log_tail()
            );
            assert!(
                start.elapsed() < READY_TIMEOUT,
                "node {} not ready within {READY_TIMEOUT:?}; output:\n{}",
                self.nodes[i].id,
                node.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts node `n<len>` (not waiting for readiness); returns its index.
    async fn spawn_node(&mut self) -> usize {
        let i = self.nodes.len();
        let id = format!("n{i}");
        let internal: SocketAddr = ([127, 0, 0, 1], crate::free_port()).into();
        let link = LinkProxy::start(internal);
        let ttl = LEASE_TTL_SECS.to_string();
        let flags = [
            "--store",
            &self.store,
            "--redis",
            self.redis.url(),
            "--node-id",
            &id,
            "--node-listen",
            &internal.to_string(),
            "--advertise",
            &link.addr().to_string(),
            "--cluster-secret",
            &self.secret,
            "--lease-ttl-secs",
            &ttl,
        ]
        .map(str::to_string);
        let server = ServerBuilder::default()
            .strict_if(self.strict)
            .owned_args(flags.into_iter().chain(self.args.iter().cloned()))
            .owned_env(self.env.iter().cloned())
            .start()
            .await;
        self.nodes.push(ClusterNode { id, server, link });
        i
    }

    /// Node 0 as the [`Server`] of a black-box test, its client spread over every
    /// node, the rest of the cluster kept alive inside it.
    pub(crate) fn into_server(mut self) -> Server {
        let urls = self.urls();
        let bases: Vec<&str> = urls.iter().map(String::as_str).collect();
        let client = A2a::spread(&bases);
        let first = self.nodes.remove(0);
        let mut server = first.server;
        server.set_client(client);
        server.keep_alive(Box::new((first.link, self)));
        server
    }
}

impl Drop for TestCluster {
    /// Stops the nodes, then drops the cluster's database on the shared PostgreSQL, so a
    /// suite of clusters does not fill the disk with one database per test (not while
    /// panicking: a failing drop would abort the test process; the server's watcher
    /// removes everything at exit anyway).
    fn drop(&mut self) {
        for node in &self.nodes {
            node.server.kill9();
        }
        if matches!(self.postgres, Postgres::Shared) && !std::thread::panicking() {
            shared_postgres().drop_database(&self.store);
        }
    }
}
