//! Cluster mode (docs/cluster.md, section 'MCP sessions behind a load balancer'): nodes
//! in-process on one PostgreSQL, registered in a real Redis (each test its own
//! `redis-server`: the membership keys are fixed), each serving its internal route on a
//! listener of its own at the address it advertises. A session lives on the node that
//! made it; its requests reach it through any node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use huddle_cluster::placement::membership::{MembershipConfig, RedisMembership};
use huddle_cluster::placement::{NodeId, Placement, View};
use huddle_cluster::testing::TestRedis;
use huddle_gateway::mcp::ClusterMcp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::harness::{Node, WAIT, post_raw};

const SECRET: &str = "cluster-secret-for-tests";

/// One database and one Redis: the shared state of a test cluster.
struct Shared {
    db: String,
    redis: TestRedis,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            db: huddle_testkit::shared_postgres().database(),
            redis: TestRedis::start_own(),
        }
    }

    /// Registers `id` at `advertise` in the membership (a node's lease, whether or not
    /// a node serves there).
    async fn register(&self, id: &str, advertise: SocketAddr) -> Arc<RedisMembership> {
        let membership = RedisMembership::connect(MembershipConfig {
            redis_url: self.redis.url().to_string(),
            node_id: NodeId::new(id),
            advertise: advertise.to_string(),
            lease_ttl: Duration::from_secs(3),
        })
        .await
        .unwrap();
        membership.register().await.unwrap();
        Arc::new(membership)
    }

    /// Starts node `id`, registered at `advertise`, its internal route served on
    /// `internal` (the advertised address, unless the test makes it unreachable).
    /// `answer_timeout`: its hop's bound on an answer.
    async fn member(
        &self,
        id: &str,
        internal: TcpListener,
        advertise: SocketAddr,
        answer_timeout: Duration,
    ) -> Member {
        let membership = self.register(id, advertise).await;
        let mut cluster = ClusterMcp::new(membership.clone(), SECRET).unwrap();
        cluster.answer_timeout = answer_timeout;
        let url = self.db.clone();
        let node = Node::start_configured(move |c| {
            c.mcp.cluster = Some(cluster);
            c.postgres = Some(huddle_node::PostgresConfig {
                url,
                options: huddle_store::PostgresOptions::default(),
            });
        })
        .await;
        let internal_addr = internal.local_addr().unwrap();
        let routes = node.mcp.internal_routes();
        tokio::spawn(async move { axum::serve(internal, routes).await });
        Member {
            node,
            internal: internal_addr,
            membership,
        }
    }

    /// A node serving where it advertises.
    async fn node(&self, id: &str, answer_timeout: Duration) -> Member {
        let listener = bind().await;
        let addr = listener.local_addr().unwrap();
        self.member(id, listener, addr, answer_timeout).await
    }
}

/// A node of the test cluster.
struct Member {
    node: Node,
    /// Where its internal route is served.
    internal: SocketAddr,
    membership: Arc<RedisMembership>,
}

impl Member {
    fn internal_url(&self) -> String {
        format!("http://{}/internal/v1/mcp", self.internal)
    }

    /// Waits until this node's view satisfies `ok` (membership is renewed every
    /// second here).
    async fn sees(&self, what: &str, ok: impl Fn(&View) -> bool) {
        let mut changes = self.membership.changes();
        tokio::time::timeout(WAIT, changes.wait_for(|v| ok(v)))
            .await
            .unwrap_or_else(|_| panic!("{}'s view: {what}", self.membership.me()))
            .unwrap();
    }
}

fn has(view: &View, id: &str) -> bool {
    view.nodes().iter().any(|p| p.id.as_str() == id)
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// An address where a node was but nothing listens any more.
async fn vacant() -> SocketAddr {
    bind().await.local_addr().unwrap()
}

/// A node that accepts connections and never answers; counts the connections.
async fn silent() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (addr, accepted)
}

/// Nodes "a" and "b", each seeing the other.
async fn pair(shared: &Shared) -> (Member, Member) {
    let a = shared.node("a", WAIT).await;
    let b = shared.node("b", WAIT).await;
    b.sees("a and b", |v| has(v, "a") && has(v, "b")).await;
    a.sees("a and b", |v| has(v, "a") && has(v, "b")).await;
    (a, b)
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

async fn get_status(http: &reqwest::Client, url: &str, session: &str) -> (StatusCode, String) {
    let r = http
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_session_is_served_by_its_home_node_through_any_other_node() {
    let shared = Shared::new();
    let (a, b) = pair(&shared).await;
    let alice = a.node.session().await;
    assert!(alice.id.starts_with("a."), "{}", alice.id);
    let home_id = alice.id.clone();
    let mut alice = alice.at(b.node.url());

    // A tool call through b runs in alice's session on a: it knows her room afterwards.
    let name = unique("lb");
    let created = alice
        .ok("createRoom", json!({"name": name, "agentName": "alice"}))
        .await;
    assert_eq!(alice.id, home_id, "the session stays the one on a");
    let room = created.data()["roomId"].as_str().unwrap().to_string();
    let info = alice.ok("roomInfo", json!({"roomId": room})).await;
    assert!(info.text.contains("alice"), "{}", info.text);
    assert_eq!(
        (a.node.mcp.session_count(), b.node.mcp.session_count()),
        (1, 0)
    );

    // Her GET stream through b is a's stream: what bob sends on a arrives through b.
    let mut live = alice.live(None).await;
    let mut bob = a.node.session().await;
    bob.ok("joinRoom", json!({"roomId": name, "agentName": "bob"}))
        .await;
    bob.ok("sendMessage", json!({"text": "through the balancer"}))
        .await;
    assert_eq!(
        live.bodies(2).await,
        ["bob joined the room", "through the balancer"]
    );
    // Streams count on the home node: a session has one GET stream, so opening another
    // directly on a ends the one relayed by b.
    let direct = alice.at(a.node.url());
    let _direct_live = direct.live(None).await;
    assert!(live.ends_within(WAIT).await, "the relayed stream ended");

    // DELETE through b ends the session on a.
    assert_eq!(alice.delete().await.status(), StatusCode::OK);
    assert_eq!(a.node.mcp.session_count(), 1, "bob's session only");
    let (status, body) = get_status(&a.node.http, &a.node.url(), &home_id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// How the session's home node is gone, as the node the client reached sees it.
#[derive(Debug, Clone, Copy)]
enum Gone {
    /// Not in the view any more.
    Left,
    /// In the view, but nothing listens at its address.
    Unreachable,
    /// In the view, accepting connections but never answering.
    Hung,
}

#[tokio::test]
async fn a_session_whose_home_node_is_gone_recovers_on_the_node_reached() {
    for gone in [Gone::Left, Gone::Unreachable, Gone::Hung] {
        let shared = Shared::new();
        let a = match gone {
            Gone::Left => shared.node("a", WAIT).await,
            Gone::Unreachable => shared.member("a", bind().await, vacant().await, WAIT).await,
            Gone::Hung => {
                let (hung, _) = silent().await;
                shared.member("a", bind().await, hung, WAIT).await
            }
        };
        let b = shared.node("b", Duration::from_secs(1)).await;
        b.sees("a", |v| has(v, "a")).await;
        let mut alice = a.node.session().await;
        let name = unique("gone");
        let created = alice
            .ok("createRoom", json!({"name": name, "agentName": "alice"}))
            .await;
        let token = created.data()["agentToken"].as_str().unwrap().to_string();
        if let Gone::Left = gone {
            a.membership.deregister().await.unwrap();
            b.sees("a gone", |v| !has(v, "a")).await;
        }
        let lost = alice.id.clone();
        let mut client = alice.at(b.node.url());

        // GET and DELETE: what an unknown session gets, not a hang or a 5xx.
        let (status, body) = get_status(&b.node.http, &b.node.url(), &lost).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{gone:?}: {body}");
        assert!(body.contains("Session not found"), "{gone:?}: {body}");
        assert_eq!(
            client.delete().await.status(),
            StatusCode::NOT_FOUND,
            "{gone:?}"
        );
        // A POST runs in a fresh session on b, which knows no room...
        client
            .fails(
                "unreadMessages",
                json!({}),
                "Error: Not joined to any room. Call joinRoom first.",
            )
            .await;
        assert!(client.id.starts_with("b."), "{gone:?}: {}", client.id);
        // ...until the agent's token rejoins it there.
        client
            .ok(
                "joinRoom",
                json!({"roomId": name, "agentName": "alice", "agentToken": token}),
            )
            .await;
        assert_eq!(b.node.mcp.session_count(), 1, "{gone:?}");
    }
}

#[tokio::test]
async fn the_internal_route_wants_the_cluster_secret_and_version() {
    let shared = Shared::new();
    let a = shared.node("a", WAIT).await;
    let http = &a.node.http;
    let url = a.internal_url();
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    });
    let bearer = format!("Bearer {SECRET}");
    let cases: [(&[(&str, &str)], StatusCode); 5] = [
        (
            &[("huddle-internal-version", "1")],
            StatusCode::UNAUTHORIZED,
        ),
        (
            &[
                ("authorization", "Bearer not-the-secret"),
                ("huddle-internal-version", "1"),
            ],
            StatusCode::UNAUTHORIZED,
        ),
        (
            &[("authorization", &bearer)],
            StatusCode::PRECONDITION_FAILED,
        ),
        (
            &[("authorization", &bearer), ("huddle-internal-version", "2")],
            StatusCode::PRECONDITION_FAILED,
        ),
        (
            &[("authorization", &bearer), ("huddle-internal-version", "1")],
            StatusCode::OK,
        ),
    ];
    for (headers, status) in cases {
        let posted = post_raw(http, &url, headers, &init).await;
        assert_eq!(posted.status, status, "{headers:?}: {}", posted.raw);
    }
    assert_eq!(
        a.node.mcp.session_count(),
        1,
        "only the authorized request made one"
    );

    // Outside cluster mode there is no secret: the route refuses everyone.
    let single = Node::start().await;
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    let routes = single.mcp.internal_routes();
    tokio::spawn(async move { axum::serve(listener, routes).await });
    let posted = post_raw(
        http,
        &format!("http://{addr}/internal/v1/mcp"),
        &[
            ("authorization", "Bearer "),
            ("huddle-internal-version", "1"),
        ],
        &init,
    )
    .await;
    assert_eq!(posted.status, StatusCode::UNAUTHORIZED, "{}", posted.raw);
}

#[tokio::test]
async fn a_forwarded_request_is_never_forwarded_again() {
    let shared = Shared::new();
    let (c, reached_c) = silent().await;
    // Node c is live in the membership, at an address that never answers.
    let _c = shared.register("c", c).await;
    let a = shared.node("a", Duration::from_secs(1)).await;
    a.sees("c", |v| has(v, "c")).await;
    let http = &a.node.http;
    let session = "c.0b6c1f0e-7d38-4b8a-9a55-2f0f5c8f9c11";
    let internal = [
        ("authorization", format!("Bearer {SECRET}")),
        ("huddle-internal-version", "1".into()),
        ("mcp-session-id", session.into()),
    ];
    let internal: Vec<(&str, &str)> = internal.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // On the internal route, a session of node c is served on a (unknown there).
    let r = http
        .get(a.internal_url())
        .header("accept", "text/event-stream")
        .headers(headers(&internal))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    let posted = post_raw(http, &a.internal_url(), &internal, &list).await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.raw);
    assert!(posted.session_id().unwrap().starts_with("a."));
    assert_eq!(reached_c.load(Ordering::SeqCst), 0, "c was never asked");

    // Whereas a client's request for it, on the public route, goes to c (which does
    // not answer: then it is served on a).
    let posted = post_raw(http, &a.node.url(), &[("mcp-session-id", session)], &list).await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.raw);
    assert_eq!(reached_c.load(Ordering::SeqCst), 1, "c was asked once");
    let tools: &Value = &posted.response()["result"]["tools"];
    assert_eq!(tools.as_array().unwrap().len(), 12);
}

fn headers(pairs: &[(&str, &str)]) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}
