//! What refused stream requests may leave behind on a node: nothing. An SSE request for
//! an unknown room or with a bad token, a gRPC `Subscribe` and an MCP
//! `subscriptions/listen` with the token of no room are refused without holding memory,
//! so the node's resident memory stays flat over thousands of them. And an idle SSE
//! stream that is open costs the node little: not its connection's buffers. The recent
//! messages rooms keep in memory stay within the node's budget, however large and
//! however many rooms fill them, and so do the messages waiting for streams whose
//! clients stopped reading.

use futures::StreamExt;
use huddle_proto::v1::SubscribeRequest;
use huddle_proto::v1::room_service_client::RoomServiceClient;
use serde_json::json;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use huddle_testkit::*;

/// Requests in flight at once.
const CONCURRENCY: usize = 16;
/// Growth of the node's resident memory allowed over all the refused requests: generous,
/// since a refused request should hold nothing once answered (a node that kept a room's
/// broadcast buffer per request grew by about 200 kB each, i.e. over 700 MB here).
const BOUND_KB: u64 = 30 * 1024;

/// A token of a room that does not exist (the token format: room id, a dot, a secret).
fn ghost_token() -> String {
    format!("{}.c2VjcmV0c2VjcmV0c2VjcmV0", Uuid::new_v4().simple())
}

/// The ways to be refused a stream; each asserts its refusal.
#[derive(Clone, Copy, Debug)]
enum Refused {
    SseUnknownRoom,
    SseBadToken,
    GrpcSubscribe,
    McpListen,
}

async fn refuse(s: &Server, real_room: &str, grpc: &RoomServiceClient<Channel>, how: Refused) {
    match how {
        Refused::SseUnknownRoom => {
            let ghost = Uuid::new_v4().to_string();
            let resp = s.sse_request(&ghost, Some("x"), Resume::Live).await;
            assert_eq!(resp.status(), 404, "{how:?}");
        }
        Refused::SseBadToken => {
            let resp = s
                .sse_request(real_room, Some(&ghost_token()), Resume::After(0))
                .await;
            assert_eq!(resp.status(), 403, "{how:?}");
        }
        Refused::GrpcSubscribe => {
            let request = SubscribeRequest {
                room_id: String::new(),
                agent_token: Some(ghost_token()),
                from_seq: Some(0),
            };
            let refused = grpc.clone().subscribe(request).await.err();
            // The token's room is gone: to the client, a bad token.
            assert_eq!(
                refused.map(|status| status.code()),
                Some(tonic::Code::Unauthenticated),
                "{how:?}"
            );
        }
        Refused::McpListen => {
            let uri = format!(
                "huddle://rooms/{}/messages?agentToken={}&after=0",
                Uuid::new_v4(),
                ghost_token()
            );
            let method = "subscriptions/listen";
            let version = "2026-07-28";
            let body = json!({
                "jsonrpc": "2.0",
                "id": 1,
                "method": method,
                "params": {
                    "notifications": {"resourceSubscriptions": [uri]},
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": version,
                        "io.modelcontextprotocol/clientCapabilities": {},
                        "io.modelcontextprotocol/clientInfo": {"name": "probe", "version": "1"},
                    },
                },
            });
            let resp = s
                .http
                .post(s.url("/mcp"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", version)
                .header("mcp-method", method)
                .json(&body)
                .send()
                .await
                .expect("POST /mcp");
            let text = resp.text().await.expect("MCP answer");
            assert!(
                text.contains("\"error\"") && text.contains("Room not found"),
                "{how:?} was not refused: {text:.300}"
            );
        }
    }
}

/// `counts` requests of each kind, interleaved, `CONCURRENCY` at a time.
async fn refuse_many(
    s: &Server,
    real_room: &str,
    grpc: &RoomServiceClient<Channel>,
    counts: [(Refused, usize); 4],
) {
    let longest = counts.iter().map(|&(_, n)| n).max().unwrap_or(0);
    let order = (0..longest).flat_map(|i| {
        counts
            .iter()
            .filter(move |&&(_, n)| i < n)
            .map(|&(how, _)| how)
    });
    futures::stream::iter(order)
        .for_each_concurrent(CONCURRENCY, |how| refuse(s, real_room, grpc, how))
        .await;
}

#[tokio::test]
async fn refused_stream_requests_hold_no_memory() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let channel = Endpoint::from_shared(s.base.clone())
        .expect("gRPC endpoint")
        .connect()
        .await
        .expect("gRPC connects");
    let grpc = RoomServiceClient::new(channel);

    // Warm up first: thread caches, connection pools and the store's pages settle.
    let warm_up = [
        (Refused::SseUnknownRoom, 200),
        (Refused::SseBadToken, 50),
        (Refused::GrpcSubscribe, 50),
        (Refused::McpListen, 50),
    ];
    refuse_many(&s, &alice.room_id, &grpc, warm_up).await;
    let before = s.rss_kb();

    let attack = [
        (Refused::SseUnknownRoom, 3000),
        (Refused::SseBadToken, 500),
        (Refused::GrpcSubscribe, 500),
        (Refused::McpListen, 300),
    ];
    refuse_many(&s, &alice.room_id, &grpc, attack).await;
    let after = s.rss_kb();
    eprintln!("refused stream requests: RSS {before} kB -> {after} kB");
    assert!(
        after.saturating_sub(before) < BOUND_KB,
        "4,300 refused stream requests grew the node from {before} kB to {after} kB \
         (allowed: {BOUND_KB} kB)"
    );

    // The node still serves streams.
    let mut stream = s.sse(&alice, Resume::Live).await;
    s.say(&alice, "still here").await;
    assert_eq!(bodies(&stream.take(1, SECOND * 10).await), ["still here"]);
}

/// Idle streams measured (one connection each; few enough for a 1024-descriptor limit).
const IDLE_STREAMS: u64 = 600;
/// What an idle SSE stream may cost the node: its socket, its task, its place in the
/// room's feed. A node that kept hyper's buffers of the stream's HTTP/1.1 connection (an
/// 8 kB read and an 8 kB write buffer) for as long as the stream is open paid about
/// 30 kB per stream.
const IDLE_STREAM_BOUND_BYTES: u64 = 12 * 1024;

async fn open_idle_streams(s: &Server, agent: &Agent, n: u64) -> Vec<Sse> {
    futures::stream::iter(0..n)
        .map(|_| s.sse(agent, Resume::Live))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

#[tokio::test]
async fn idle_sse_streams_do_not_hold_their_connections_buffers() {
    let s = Server::start().await;
    let alice = s.create_room("idle", "alice").await;
    // Warm up first (thread caches, the allocator's pages), then measure.
    drop(open_idle_streams(&s, &alice, 100).await);
    let before = s.rss_kb();
    let mut streams = open_idle_streams(&s, &alice, IDLE_STREAMS).await;
    let after = s.rss_kb();
    let per_stream = after.saturating_sub(before) * 1024 / IDLE_STREAMS;
    eprintln!(
        "{IDLE_STREAMS} idle SSE streams: RSS {before} kB -> {after} kB, {per_stream} bytes each"
    );
    assert!(
        per_stream < IDLE_STREAM_BOUND_BYTES,
        "an idle SSE stream costs the node {per_stream} bytes \
         (allowed: {IDLE_STREAM_BOUND_BYTES})"
    );

    // The idle streams are live.
    s.say(&alice, "wake up").await;
    for stream in &mut streams {
        assert_eq!(bodies(&stream.take(1, SECOND * 10).await), ["wake up"]);
    }
}

/// Rooms filled with large messages keep at most `--max-tail-mib` of them in memory
/// together (`huddle_rooms_tail_bytes`), and each room's member still reads every one of
/// them, whole, as unread (what left memory comes from the store).
#[tokio::test]
async fn recent_messages_kept_in_memory_stay_within_their_budget_and_none_is_lost() {
    const ROOMS: usize = 12;
    const PER_ROOM: usize = 24;
    const BUDGET_MIB: usize = 2;
    let s = Server::start_with(&["--max-tail-mib", &BUDGET_MIB.to_string()]).await;
    let big = "x".repeat(32 * 1024);
    let mut readers = Vec::new();
    for r in 0..ROOMS {
        let alice = s.create_room(&format!("big-{r}"), "alice").await;
        let bob = s.join(&alice.room_id, "bob").await;
        for i in 0..PER_ROOM {
            s.say(&alice, &format!("{i} {big}")).await;
        }
        readers.push(bob);
    }
    // ~9 MiB sent, all of it committed: the rooms' tails hold at most the budget.
    let held = gauge(&s, "huddle_rooms_tail_bytes").await;
    assert!(
        held <= (BUDGET_MIB << 20) as f64,
        "the rooms' tails hold {held} bytes against a budget of {BUDGET_MIB} MiB"
    );
    assert!(held > 0.0, "under its budget a tail keeps recent messages");

    for bob in &readers {
        let unread = s.unread_all(bob).await;
        let texts: Vec<&str> = unread
            .iter()
            .filter(|m| m["from"] == "alice")
            .filter_map(|m| m["body"].as_str())
            .collect();
        assert_eq!(
            texts.len(),
            PER_ROOM,
            "{} read {:?}",
            bob.room_id,
            texts.len()
        );
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(
                *text,
                format!("{i} {big}"),
                "message {i} of {}",
                bob.room_id
            );
        }
    }
}

/// The gauge `name` on the node's `/metrics` (0 while it is not there).
async fn gauge(s: &Server, name: &str) -> f64 {
    let (_, metrics) = super::ops::get(&s.url("/metrics")).await;
    super::ops::sample(&metrics, name)
}

/// An SSE stream whose client sends its request and never reads again (a small receive
/// buffer, so the node's writes stop soon): what a stalled or hostile client does.
async fn stalled_stream(s: &Server, agent: &Agent) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let url = reqwest::Url::parse(&s.url("/")).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut conn = socket.connect(addr.parse().unwrap()).await.unwrap();
    let request = format!(
        "GET /api/messages/{}/sse?agentToken={} HTTP/1.1\r\nHost: x\r\n\
         Accept: text/event-stream\r\n\r\n",
        agent.room_id, agent.token
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    conn
}

/// Streams whose clients stop reading make their rooms' messages wait, at most
/// `--max-stream-backlog-mib` of them for all rooms together
/// (`huddle_streams_backlog_bytes`); a stream of another room that its client reads
/// still gets every message of its room.
#[tokio::test]
async fn messages_waiting_for_stalled_streams_stay_within_their_budget() {
    const BUDGET_MIB: usize = 4;
    const STALLED_ROOMS: usize = 3;
    const PER_ROOM: usize = 300;
    let s = Server::start_with(&["--max-stream-backlog-mib", &BUDGET_MIB.to_string()]).await;
    let big = "x".repeat(32 * 1024);
    let carol = s.create_room("kept-up", "carol").await;
    let dave = s.join(&carol.room_id, "dave").await;
    let mut reading = s.sse(&dave, Resume::Live).await;
    let mut stalled = Vec::new();
    let mut most = 0.0f64;
    for r in 0..STALLED_ROOMS {
        let alice = s.create_room(&format!("stalled-{r}"), "alice").await;
        let bob = s.join(&alice.room_id, "bob").await;
        stalled.push(stalled_stream(&s, &bob).await);
        for i in 0..PER_ROOM {
            s.say(&alice, &format!("{i} {big}")).await;
        }
        s.say(&carol, &format!("after room {r}")).await;
        most = most.max(gauge(&s, "huddle_streams_backlog_bytes").await);
    }
    // ~29 MiB sent to rooms whose streams read nothing: more than the connections'
    // buffers take, so the rest waits in the node, within the budget.
    assert!(
        most <= (BUDGET_MIB << 20) as f64,
        "{most} bytes waited for stalled streams against a budget of {BUDGET_MIB} MiB"
    );
    assert!(
        most >= (BUDGET_MIB << 19) as f64,
        "only {most} bytes waited: the stalled streams did not fill the budget"
    );
    for r in 0..STALLED_ROOMS {
        let (_, data) = reading
            .next_message(std::time::Duration::from_secs(10))
            .await
            .expect("the reading stream gets its room's messages");
        assert_eq!(data["body"], format!("after room {r}"));
    }
    drop(stalled);
}
