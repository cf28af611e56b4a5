//! Graceful shutdown on SIGTERM: every live stream ends (SSE and MCP — GET and
//! `subscriptions/listen` — cleanly, gRPC
//! `Subscribe` with UNAVAILABLE, health watches after NOT_SERVING), requests in flight are
//! answered, acknowledged messages are in the log after a restart, and the node exits
//! within `--shutdown-grace-secs` even when a connection cannot end.
//!
//! The waits for an exit are liveness bounds (twice the grace and some slack: past them
//! the node is declared hung), not performance assertions.

use std::time::Duration;

use futures::StreamExt;
use huddle_proto::v1::room_service_client::RoomServiceClient;
use huddle_proto::v1::{SubscribeRequest, SubscribeResponse};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use huddle_testkit::*;

const WAIT: Duration = Duration::from_secs(10);
/// The node logs this when the grace runs out and it cuts what is still open.
const CUT: &str = "shutdown grace ran out";
/// The node logs this once the shutdown has begun.
const SHUTTING_DOWN: &str = "shutting down";

/// How long a node with this grace may take to exit before it counts as hung.
fn exit_bound(grace_secs: u64) -> Duration {
    Duration::from_secs(2 * grace_secs + 30)
}

/// Expects the node, sent SIGTERM, to exit with success within the liveness bound.
async fn expect_clean_exit(s: &Server, grace_secs: u64) {
    let bound = exit_bound(grace_secs);
    let status = s
        .wait_exit(bound)
        .await
        .unwrap_or_else(|| panic!("the node still runs {bound:?} after SIGTERM"));
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// A gRPC `Subscribe` of `agent`'s room, live from now.
async fn subscribe(channel: Channel, agent: &Agent) -> Streaming<SubscribeResponse> {
    RoomServiceClient::new(channel)
        .subscribe(SubscribeRequest {
            agent_token: Some(agent.token.clone()),
            ..Default::default()
        })
        .await
        .expect("Subscribe")
        .into_inner()
}

/// An MCP session on `url` (handshake done), its `Mcp-Session-Id`.
async fn mcp_session(s: &Server, url: &str) -> String {
    let post = |body: Value, session: Option<String>| {
        let mut req = s
            .http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body.to_string());
        if let Some(id) = session {
            req = req.header("mcp-session-id", id);
        }
        req.send()
    };
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "blackbox", "version": "1"}},
    });
    let resp = post(init, None).await.expect("POST initialize");
    assert_eq!(resp.status().as_u16(), 200, "initialize");
    let id = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = post(note, Some(id.clone()))
        .await
        .expect("POST initialized");
    assert_eq!(resp.status().as_u16(), 202, "notifications/initialized");
    id
}

/// A sessionless (MCP 2026-07-28) `subscriptions/listen` on `agent`'s room resource, its
/// SSE response open after the acknowledgement.
async fn mcp_listen(s: &Server, url: &str, agent: &Agent) -> Sse {
    const MODERN: &str = "2026-07-28";
    let uri = format!(
        "huddle://rooms/{}/messages?agentToken={}",
        agent.room_id, agent.token
    );
    let body = json!({
        "jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen",
        "params": {
            "notifications": {"resourceSubscriptions": [uri]},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "blackbox", "version": "1"},
            },
        },
    });
    let resp = s
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .timeout(Duration::from_secs(3600))
        .body(body.to_string())
        .send()
        .await
        .expect("POST subscriptions/listen");
    assert_eq!(resp.status().as_u16(), 200, "subscriptions/listen");
    let mut listen = Sse::from_response(resp);
    let ack = listen.next_data(WAIT).await.expect("the acknowledgement");
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    listen
}

/// Opens a POST /a2a whose body the test sends later: the node has read the headers and
/// its handler waits for the body (hyper answers `100 Continue` once the handler reads it).
async fn request_awaiting_body(s: &Server, body_len: usize) -> TcpStream {
    let addr = s.base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /a2a HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {body_len}\r\nExpect: 100-continue\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("100 Continue in time")
            .unwrap();
        assert!(n > 0, "connection closed before 100 Continue");
        got.extend_from_slice(&buf[..n]);
    }
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("HTTP/1.1 100"),
        "expected 100 Continue: {got}"
    );
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_every_live_stream_and_the_node_exits_cleanly() {
    const GRACE: u64 = 30;
    let grace = GRACE.to_string();
    let s = Server::start_with(&[
        "--grpc-listen",
        "127.0.0.1:0",
        "--mcp-listen",
        "127.0.0.1:0",
        "--shutdown-grace-secs",
        &grace,
    ])
    .await;
    let grpc_url = s
        .printed("huddle grpc listening on ")
        .expect("the --grpc-listen line");
    let mcp_url = s
        .printed("huddle MCP listening on ")
        .expect("the --mcp-listen line");
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;

    // SSE on the main port.
    let mut sse = s.sse(&bob, Resume::Live).await;
    // gRPC Subscribe and a health watch on the --grpc-listen port.
    let channel = tonic::transport::Endpoint::from_shared(grpc_url)
        .unwrap()
        .connect()
        .await
        .expect("connect to --grpc-listen");
    let mut subscription = subscribe(channel.clone(), &bob).await;
    let mut health = HealthClient::new(channel);
    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .expect("Health/Watch")
        .into_inner();
    let first = watch.message().await.unwrap().expect("a first status");
    assert_eq!(first.status(), ServingStatus::Serving);
    // The MCP GET stream of a session on the --mcp-listen port.
    let session = mcp_session(&s, &mcp_url).await;
    let get = s
        .http
        .get(&mcp_url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .expect("GET /mcp");
    assert_eq!(get.status().as_u16(), 200, "GET /mcp");
    let mut mcp_stream = Box::pin(get.bytes_stream());
    // A sessionless listen on the --mcp-listen port.
    let mut listen = mcp_listen(&s, &mcp_url, &alice).await;

    // Every stream is live.
    s.say(&alice, "before").await;
    assert_eq!(sse.take(1, WAIT).await[0]["body"], "before");
    let got = tokio::time::timeout(WAIT, subscription.message())
        .await
        .expect("a gRPC message in time")
        .unwrap()
        .expect("the subscription is open");
    assert_eq!(got.message.unwrap().body, "before");
    let priming = tokio::time::timeout(WAIT, mcp_stream.next())
        .await
        .expect("the MCP priming event in time");
    assert!(matches!(priming, Some(Ok(_))), "GET /mcp: {priming:?}");
    let update = listen.next_data(WAIT).await.expect("a listen notification");
    assert_eq!(
        update["params"]["_meta"]["huddle/message"]["body"],
        "before"
    );

    s.terminate();
    let bound = exit_bound(GRACE);
    sse.end(bound)
        .await
        .unwrap_or_else(|e| panic!("the SSE stream did not end cleanly: {e}"));
    let status = tokio::time::timeout(bound, subscription.message())
        .await
        .expect("the gRPC subscription ends")
        .expect_err("the subscription ends with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    let draining = tokio::time::timeout(bound, watch.message())
        .await
        .expect("the health watch reports the drain")
        .unwrap()
        .expect("a status before the watch ends");
    assert_eq!(draining.status(), ServingStatus::NotServing);
    let end = tokio::time::timeout(bound, watch.message())
        .await
        .expect("the health watch ends");
    assert!(matches!(end, Ok(None)), "the health watch: {end:?}");
    let rest = tokio::time::timeout(bound, mcp_stream.collect::<Vec<_>>())
        .await
        .expect("the MCP GET stream ends");
    assert!(
        rest.iter().all(Result::is_ok),
        "the MCP GET stream broke instead of ending: {rest:?}"
    );
    // The listen request is answered (its final result), then its stream ends.
    let result = listen
        .next_data(bound)
        .await
        .expect("the listen result before the end");
    assert_eq!(result["id"], 7, "{result}");
    assert!(result["result"].is_object(), "{result}");
    listen
        .end(bound)
        .await
        .unwrap_or_else(|e| panic!("the listen stream did not end cleanly: {e}"));

    expect_clean_exit(&s, GRACE).await;
    let log = s.log_tail();
    assert!(!log.contains(CUT), "streams were cut, not ended:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_acknowledged_around_sigterm_are_in_the_log_after_a_restart() {
    const GRACE: u64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let grace = GRACE.to_string();
    let s = Server::start_in_with(dir.path(), &["--shutdown-grace-secs", &grace]).await;
    let alice = s.create_room("busy", "alice").await;
    let bob = s.join("busy", "bob").await;
    let mut sse = s.sse(&bob, Resume::Live).await;

    // Sends until the node refuses; SIGTERM goes out half-way, with the sends going on.
    let mut acked = Vec::new();
    for i in 0.. {
        if i == 50 {
            s.terminate();
        }
        match s
            .act("message.send")
            .text(format!("m{i}"))
            .token(&alice.token)
            .try_send()
            .await
        {
            Ok(reply) if !reply.is_error() => acked.push(format!("m{i}")),
            _ => break,
        }
    }
    assert!(acked.len() >= 50, "only {} sends acknowledged", acked.len());
    sse.end(exit_bound(GRACE))
        .await
        .expect("the SSE stream ends");
    expect_clean_exit(&s, GRACE).await;
    drop(s);

    let s = Server::start_in(dir.path()).await;
    let history = from_agents(&s.history_all(&alice).await);
    let stored = bodies(&history);
    // Every acknowledged message, in order; an unacknowledged one may follow (its answer
    // was never sent).
    assert_eq!(
        stored.get(..acked.len()),
        Some(&acked[..]),
        "acknowledged messages are missing after the restart"
    );
    assert!(stored.len() <= acked.len() + 1, "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_at_sigterm_is_answered() {
    const GRACE: u64 = 30;
    let grace = GRACE.to_string();
    let s = Server::start_with(&["--shutdown-grace-secs", &grace]).await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let mut sse = s.sse(&bob, Resume::Live).await;
    let body = s
        .act("message.send")
        .text("in flight")
        .token(&alice.token)
        .request()
        .to_string();
    let mut tcp = request_awaiting_body(&s, body.len()).await;

    s.terminate();
    eventually(exit_bound(GRACE), "the shutdown to begin", || async {
        s.log_tail().contains(SHUTTING_DOWN).then_some(())
    })
    .await;
    sse.end(exit_bound(GRACE))
        .await
        .expect("the SSE stream ends");
    tcp.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(exit_bound(GRACE), tcp.read_to_end(&mut answer))
        .await
        .expect("the answer and the connection's end")
        .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Message sent"), "{answer}");

    expect_clean_exit(&s, GRACE).await;
    assert!(!s.log_tail().contains(CUT), "{}", s.log_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_cannot_end_is_cut_when_the_grace_runs_out() {
    const GRACE: u64 = 1;
    /// The HTTP/2 default (hyper's client grants megabytes).
    const WINDOW: u32 = 65_535;
    let grace = GRACE.to_string();
    let s = Server::start_with(&["--shutdown-grace-secs", &grace]).await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    // A gRPC subscriber that stopped reading: once HTTP/2 flow control holds back what
    // the node has sent, the end of its stream cannot reach it either.
    let channel = tonic::transport::Endpoint::from_shared(s.base.clone())
        .unwrap()
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .connect()
        .await
        .expect("connect gRPC to the main port");
    let _stalled = subscribe(channel, &bob).await;
    // Far more than the HTTP/2 windows the client grants and never replenishes.
    let big = "x".repeat(60_000);
    for _ in 0..4 {
        s.say(&alice, &big).await;
    }

    s.terminate();
    expect_clean_exit(&s, GRACE).await;
    let log = s.log_tail();
    assert!(log.contains(CUT), "the cut is not logged:\n{log}");
}
