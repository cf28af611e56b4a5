//! Cluster mode's core path, with real `huddle serve` processes on one PostgreSQL and
//! one Redis: an operation reaching a node that does not own the room (over A2A, gRPC or
//! MCP) is forwarded to the owner (and runs only there), the internal service refuses strangers, other
//! versions and calls for rooms the node does not own, and `--redis` needs a shared
//! store.

use std::time::Duration;

use huddle_cluster::placement::{NodeId, Peer, View};
use huddle_cluster::testing::TestRedis;
use huddle_core::RoomId;
use huddle_proto::internal::node_client::NodeClient;
use huddle_proto::internal::{CallRequest, call_reply};
use huddle_store::testing::TestPostgres;
use huddle_testkit::{Server, eventually, free_port, huddle_command};
use tonic::Code;

const SECRET: &str = "test-cluster-secret";
const WITHIN: Duration = Duration::from_secs(20);

/// A node of the test cluster and where its internal service listens.
struct Node {
    server: Server,
    id: &'static str,
    internal: String,
}

async fn node(id: &'static str, store: &str, redis: &str) -> Node {
    let internal = format!("127.0.0.1:{}", free_port());
    let server = Server::builder()
        .args(&[
            "--store",
            store,
            "--redis",
            redis,
            "--node-id",
            id,
            "--node-listen",
            &internal,
            "--cluster-secret",
            SECRET,
            "--lease-ttl-secs",
            "3",
        ])
        .start()
        .await;
    Node {
        server,
        id,
        internal,
    }
}

/// Two nodes, `a` and `b`, each ready and seeing the other.
async fn two_nodes() -> (TestPostgres, TestRedis, Node, Node) {
    let pg = TestPostgres::start();
    let redis = TestRedis::start_own();
    let store = pg.database();
    let a = node("a", &store, redis.url()).await;
    let b = node("b", &store, redis.url()).await;
    for n in [&a, &b] {
        eventually(WITHIN, "both nodes see each other", || async {
            // A room `b` owns: `a` sees `b` once it refuses it, and the other way round.
            let other = if n.id == "a" { "b" } else { "a" };
            let room = room_owned_by(other);
            let reply = call(&n.internal, SECRET, "1", room, "Info", b"{}").await;
            match reply.ok()?.result? {
                call_reply::Result::NotOwner(o) if o.owner == other => Some(()),
                _ => None,
            }
        })
        .await;
    }
    (pg, redis, a, b)
}

/// Whether `owner` owns `room` when `a` and `b` are live (rendezvous hashing over the
/// node ids: what every node computes).
fn owns(owner: &str, room: RoomId) -> bool {
    let peer = |id: &str| Peer {
        id: NodeId::new(id),
        addr: "unused:0".into(),
        version: 1,
    };
    let view = View::new(vec![peer("a"), peer("b")]);
    view.owner(room).is_some_and(|p| p.id.as_str() == owner)
}

/// A room id (of no room) whose owner among `a` and `b` is `owner`.
fn room_owned_by(owner: &str) -> RoomId {
    std::iter::repeat_with(RoomId::new_random)
        .find(|r| owns(owner, *r))
        .unwrap()
}

/// One internal `Call` with the given secret and version.
async fn call(
    addr: &str,
    secret: &str,
    version: &str,
    room: RoomId,
    op: &str,
    payload: &[u8],
) -> Result<huddle_proto::internal::CallReply, tonic::Status> {
    let mut client = NodeClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(CallRequest {
        room_id: room.to_string(),
        op: op.into(),
        payload: payload.to_vec(),
    });
    let metadata = request.metadata_mut();
    metadata.insert("authorization", format!("Bearer {secret}").parse().unwrap());
    metadata.insert("huddle-internal-version", version.parse().unwrap());
    client.call(request).await.map(|r| r.into_inner())
}

/// The `huddle_rooms_active` gauge of a node: how many room actors it runs.
async fn active_rooms(n: &Node) -> u64 {
    let text = reqwest::get(n.server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("huddle_rooms_active "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Creates rooms on `on` until one is owned by `owner`; its creator.
async fn room_of(on: &Node, owner: &str, name: &str) -> huddle_testkit::Agent {
    for i in 0.. {
        let agent = on.server.create_room(&format!("{name}-{i}"), "alice").await;
        if owns(owner, agent.room_id.parse().unwrap()) {
            return agent;
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_sent_to_a_node_that_does_not_own_the_room_run_on_its_owner() {
    let (_pg, _redis, a, b) = two_nodes().await;
    let alice = room_of(&a, "b", "forwarded").await;
    // A2A through `a`: join and send, on a room `b` owns.
    let bob = a.server.join(&alice.room_id, "bob").await;
    a.server.say(&bob, "hello through a").await.ok();
    // gRPC through `a`.
    let mut grpc =
        huddle_proto::v1::room_service_client::RoomServiceClient::connect(a.server.base.clone())
            .await
            .unwrap();
    grpc.send_message(huddle_proto::v1::SendMessageRequest {
        agent_token: Some(alice.token.clone()),
        text: "hello over grpc".into(),
        ..Default::default()
    })
    .await
    .expect("gRPC send through a non-owner");
    // MCP through `a`.
    let joined = a
        .server
        .mcp_tool(
            &reqwest::Client::new(),
            "joinRoom",
            serde_json::json!({"roomId": alice.room_id, "agentName": "carol"}),
        )
        .await;
    assert!(joined.starts_with("Joined room"), "{joined}");
    // Everything ran on `b`: the room is active there, not on `a`.
    assert_eq!(active_rooms(&a).await, 0, "the non-owner held no room");
    assert!(active_rooms(&b).await >= 1, "the owner ran the room");
    let seen = b.server.history_all(&alice).await;
    let bodies: Vec<_> = seen.iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(
        bodies,
        vec![
            "bob joined the room",
            "hello through a",
            "hello over grpc",
            "carol joined the room"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_service_refuses_strangers_other_versions_and_rooms_it_does_not_own() {
    let (_pg, _redis, a, _b) = two_nodes().await;
    let room = room_owned_by("b");
    let wrong = call(&a.internal, "not-the-secret", "1", room, "Info", b"{}").await;
    assert_eq!(wrong.unwrap_err().code(), Code::Unauthenticated);
    let newer = call(&a.internal, SECRET, "2", room, "Info", b"{}")
        .await
        .unwrap_err();
    assert_eq!(newer.code(), Code::FailedPrecondition);
    assert!(
        newer.message().contains("version 2") && newer.message().contains("version 1"),
        "{}",
        newer.message()
    );
    let reply = call(&a.internal, SECRET, "1", room, "Info", b"{}")
        .await
        .unwrap();
    match reply.result {
        Some(call_reply::Result::NotOwner(o)) => assert_eq!(o.owner, "b"),
        other => panic!("expected NotOwner, got {other:?}"),
    }
    let mine = room_owned_by("a");
    let unknown = call(&a.internal, SECRET, "1", mine, "Teleport", b"{}")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unimplemented);
    let garbage = call(&a.internal, SECRET, "1", mine, "Info", b"not json")
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument);
}

#[test]
fn cluster_mode_without_a_shared_store_is_refused() {
    let out = huddle_command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--redis",
        "redis://127.0.0.1:1",
        "--cluster-secret",
        SECRET,
    ])
    .env_remove("HUDDLE_STORE")
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--redis") && err.contains("--store postgres://"),
        "{err}"
    );
}

#[test]
fn check_config_reaches_redis() {
    let out = huddle_command(&[
        "serve",
        "--check-config",
        "--store",
        "postgres://huddle@127.0.0.1:1/huddle",
        "--redis",
        "redis://127.0.0.1:1",
        "--cluster-secret",
        SECRET,
        "--lease-ttl-secs",
        "1",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("huddle: configuration: cluster mode") && err.contains("Redis at"),
        "{err}"
    );
}
