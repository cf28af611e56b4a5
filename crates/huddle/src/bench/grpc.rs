//! The `grpc` scenario: the `load` scenario's shape over Huddle's gRPC API
//! (`huddle.v1.RoomService`, generated tonic client) instead of A2A + SSE. Only a Huddle
//! server has it; `--url` is its main port (gRPC is served there over h2c) or its
//! `--grpc-listen` port.
//!
//! Setup (not measured): --rooms rooms, each with --agents-per-room agents, and one
//! `Subscribe` stream per agent (unless --no-sse), opened live before the senders start.
//! Then --senders closed-loop senders call `SendMessage` for --duration-secs (sender i
//! posts in room i mod R as agent (i div R) mod J), multiplexed over
//! --grpc-connections HTTP/2 connections (sender i on connection i mod C; a gRPC client
//! normally shares one channel, and fewer connections cost both sides less CPU per call),
//! while every stream stamps what arrives. Accounting is the load scenario's: the body
//! `huddle-bench <run> <key> <t>` carries the send's start, so delivery latency is
//! measured from the send's start to receipt on another member's stream; lost = an acknowledged send
//! that a member other than its sender never received; duplicated = a key received twice.
//! A stream that ends (slow consumer, server restart) resumes with `from_seq` = the last
//! seq it got, so a resume that lost or repeated anything shows up in those counts.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use huddle_proto::v1::room_service_client::RoomServiceClient;
use huddle_proto::v1::{
    CreateRoomRequest, JoinRoomRequest, SendMessageRequest, SubscribeRequest, SubscribeResponse,
};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Streaming};

use super::BenchArgs;
use super::report::{self, ErrorCount, ErrorTally, Latency, Memory};

type Client = RoomServiceClient<Channel>;

const STAMP: &str = "huddle-bench";
/// A receiver whose stream ends resubscribes at most this many times in a run.
const MAX_RESUBSCRIBES: u32 = 20;
/// Pause after a transport-level send failure, so a dead server is not spun against.
const SEND_FAILURE_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
struct Agent {
    room: usize,
    index: usize,
    name: String,
    room_id: String,
    /// `Bearer <token>`, ready to be sent as metadata.
    auth: MetadataValue<Ascii>,
}

#[derive(Default)]
struct Live {
    expected: AtomicU64,
    delivered: AtomicU64,
}

struct SenderResult {
    room: usize,
    agent: usize,
    latency: Histogram<u64>,
    /// Keys of acknowledged sends, increasing.
    acked: Vec<u64>,
    errors: ErrorTally,
}

struct ReceiverResult {
    room: usize,
    agent: usize,
    latency: Histogram<u64>,
    seen: HashSet<u64>,
    duplicates: u64,
    resubscribes: u32,
    errors: ErrorTally,
}

#[derive(Debug, Serialize)]
struct GrpcReport {
    scenario: &'static str,
    url: String,
    rooms: u32,
    agents_per_room: u32,
    senders: u32,
    /// Subscribe streams open (one per agent).
    subscribe: bool,
    duration_secs: f64,
    elapsed_secs: f64,
    sends: u64,
    send_errors: u64,
    sends_per_sec: f64,
    send_latency_us: Latency,
    expected_deliveries: u64,
    deliveries: u64,
    deliveries_per_sec: f64,
    delivery_latency_us: Latency,
    lost: u64,
    duplicated: u64,
    unconfirmed: u64,
    stream_resubscribes: u64,
    errors: Vec<ErrorCount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_memory: Option<Memory>,
}

pub async fn run(args: &BenchArgs, run_id: &str) -> anyhow::Result<()> {
    let report = measure(args, run_id).await?;
    if args.json {
        report::print_json(&report)?;
    } else {
        print_human(&report);
    }
    anyhow::ensure!(
        report.send_errors == 0 && report.lost == 0 && report.duplicated == 0,
        "{} send error(s), {} lost and {} duplicated deliveries",
        report.send_errors,
        report.lost,
        report.duplicated
    );
    Ok(())
}

fn timeout(args: &BenchArgs) -> Duration {
    Duration::from_secs_f64(args.request_timeout_secs)
}

/// A client on a connection of its own.
async fn connect(url: &str) -> anyhow::Result<Client> {
    let channel = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("{url} is not a URL"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(RoomServiceClient::new(channel))
}

fn authorized<T>(message: T, agent: &Agent) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", agent.auth.clone());
    request
}

async fn measure(args: &BenchArgs, run_id: &str) -> anyhow::Result<GrpcReport> {
    let per_room = args.agents_per_room as usize;
    let subscribe = !args.no_sse;
    let setup_client = connect(&args.url).await?;
    let agents = setup(&setup_client, args, run_id).await?;
    let clock = Instant::now();
    let live = Arc::new(Live::default());
    let run_tag: Arc<str> = Arc::from(run_id);
    let (stop_tx, stop_rx) = watch::channel(false);

    // Streams share one connection (HTTP/2 multiplexes them); each is in place once its
    // response headers arrive, before any measured send.
    let mut receivers: Vec<JoinHandle<ReceiverResult>> = Vec::new();
    if subscribe {
        let opened = futures::future::join_all(agents.iter().flatten().map(|a| {
            let mut client = setup_client.clone();
            async move { (a, open_stream(&mut client, a, None).await) }
        }))
        .await;
        for (agent, stream) in opened {
            let stream = stream.with_context(|| {
                format!(
                    "opening the Subscribe stream of agent {} in room {}",
                    agent.index, agent.room_id
                )
            })?;
            receivers.push(tokio::spawn(receive(
                setup_client.clone(),
                agent.clone(),
                stream,
                run_tag.clone(),
                clock,
                live.clone(),
                stop_rx.clone(),
            )));
        }
    }

    let connections = args.grpc_connections as usize;
    let mut pool = Vec::with_capacity(connections);
    for _ in 0..connections {
        pool.push(connect(&args.url).await?);
    }
    let senders_clients: Vec<Client> = (0..args.senders as usize)
        .map(|i| pool[i % connections].clone())
        .collect();
    let expect_per_send = if subscribe { per_room as u64 - 1 } else { 0 };
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration_secs);
    let senders: Vec<JoinHandle<SenderResult>> = senders_clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let (room, agent) = (i % agents.len(), (i / agents.len()) % per_room);
            tokio::spawn(send_loop(
                client,
                agents[room][agent].clone(),
                i as u64,
                run_tag.clone(),
                clock,
                deadline,
                timeout(args),
                live.clone(),
                expect_per_send,
            ))
        })
        .collect();
    let mut sent = Vec::with_capacity(senders.len());
    for handle in senders {
        sent.push(handle.await.context("a sender task failed")?);
    }
    let elapsed = started.elapsed();

    if subscribe {
        let grace_end = Instant::now() + Duration::from_millis(args.grace_ms);
        while live.delivered.load(Ordering::Relaxed) < live.expected.load(Ordering::Relaxed)
            && Instant::now() < grace_end
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let _ = stop_tx.send(true);
    let mut received = Vec::with_capacity(receivers.len());
    for handle in receivers {
        received.push(handle.await.context("a receiver task failed")?);
    }
    let server_memory = args.server_pid.and_then(Memory::of_pid);
    Ok(account(args, sent, received, elapsed, server_memory))
}

/// Creates the rooms (in parallel, each one's joins in order): `[room][agent]`.
async fn setup(client: &Client, args: &BenchArgs, run_id: &str) -> anyhow::Result<Vec<Vec<Agent>>> {
    let per_room = args.agents_per_room as usize;
    let limit = timeout(args);
    let rooms = (0..args.rooms as usize).map(|room| {
        let mut client = client.clone();
        async move {
            let name = format!("bench-{run_id}-{room}");
            let created = tokio::time::timeout(
                limit,
                client.create_room(CreateRoomRequest {
                    name: name.clone(),
                    agent_name: "agent-0".into(),
                    ..Default::default()
                }),
            )
            .await
            .context("timed out")
            .and_then(|r| r.map_err(anyhow::Error::from))
            .with_context(|| format!("creating room {name}"))?
            .into_inner();
            let bearer = |token: &str| -> anyhow::Result<MetadataValue<Ascii>> {
                format!("Bearer {token}")
                    .parse()
                    .context("the server's agent token is not valid metadata")
            };
            let mut agents = vec![Agent {
                room,
                index: 0,
                name: created.agent_name,
                room_id: created.room_id.clone(),
                auth: bearer(&created.agent_token)?,
            }];
            for index in 1..per_room {
                let joined = tokio::time::timeout(
                    limit,
                    client.join_room(JoinRoomRequest {
                        room: created.room_id.clone(),
                        agent_name: format!("agent-{index}"),
                        ..Default::default()
                    }),
                )
                .await
                .context("timed out")
                .and_then(|r| r.map_err(anyhow::Error::from))
                .with_context(|| format!("joining agent-{index} to room {name}"))?
                .into_inner();
                agents.push(Agent {
                    room,
                    index,
                    name: joined.agent_name,
                    room_id: created.room_id.clone(),
                    auth: bearer(&joined.agent_token)?,
                });
            }
            anyhow::Ok(agents)
        }
    });
    futures::future::try_join_all(rooms).await
}

async fn open_stream(
    client: &mut Client,
    agent: &Agent,
    from_seq: Option<u64>,
) -> anyhow::Result<Streaming<SubscribeResponse>> {
    let request = authorized(
        SubscribeRequest {
            room_id: agent.room_id.clone(),
            agent_token: None,
            from_seq,
        },
        agent,
    );
    Ok(client.subscribe(request).await?.into_inner())
}

#[allow(clippy::too_many_arguments)]
async fn send_loop(
    mut client: Client,
    agent: Agent,
    sender: u64,
    run_id: Arc<str>,
    clock: Instant,
    deadline: Instant,
    limit: Duration,
    live: Arc<Live>,
    expect_per_send: u64,
) -> SenderResult {
    let mut result = SenderResult {
        room: agent.room,
        agent: agent.index,
        latency: report::new_histogram(),
        acked: Vec::new(),
        errors: ErrorTally::default(),
    };
    let mut n: u64 = 0;
    loop {
        let start = Instant::now();
        if start >= deadline {
            break;
        }
        let key = sender << 40 | n;
        n += 1;
        let text = format!(
            "{STAMP} {run_id} {key} {}",
            start.duration_since(clock).as_micros()
        );
        let request = authorized(
            SendMessageRequest {
                text,
                ..Default::default()
            },
            &agent,
        );
        match tokio::time::timeout(limit, client.send_message(request)).await {
            Ok(Ok(_)) => {
                report::record(&mut result.latency, start.elapsed());
                result.acked.push(key);
                live.expected.fetch_add(expect_per_send, Ordering::Relaxed);
            }
            Ok(Err(status)) => {
                result
                    .errors
                    .add_text(format!("{:?}: {}", status.code(), status.message()));
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
                ) {
                    tokio::time::sleep(SEND_FAILURE_PAUSE).await;
                }
            }
            Err(_) => {
                result
                    .errors
                    .add_text(format!("timeout: no answer within {limit:?}"));
            }
        }
    }
    result
}

async fn receive(
    mut client: Client,
    agent: Agent,
    mut stream: Streaming<SubscribeResponse>,
    run_id: Arc<str>,
    clock: Instant,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) -> ReceiverResult {
    let mut result = ReceiverResult {
        room: agent.room,
        agent: agent.index,
        latency: report::new_histogram(),
        seen: HashSet::new(),
        duplicates: 0,
        resubscribes: 0,
        errors: ErrorTally::default(),
    };
    let mut last_seq: Option<u64> = None;
    loop {
        let item = tokio::select! {
            biased;
            _ = stop.changed() => break,
            item = stream.message() => item,
        };
        match item {
            Ok(Some(SubscribeResponse {
                message: Some(message),
            })) => {
                last_seq = Some(message.seq);
                // Its own messages are not deliveries to this agent (nor room notices,
                // which carry no stamp).
                if message.from == agent.name {
                    continue;
                }
                let Some((key, at)) = parse_stamp(&message.body, &run_id) else {
                    continue;
                };
                let now = clock.elapsed().as_micros() as u64;
                report::record_us(&mut result.latency, now.saturating_sub(at));
                if result.seen.insert(key) {
                    live.delivered.fetch_add(1, Ordering::Relaxed);
                } else {
                    result.duplicates += 1;
                }
            }
            Ok(Some(SubscribeResponse { message: None })) => {}
            Ok(None) | Err(_) => {
                if let Err(status) = item {
                    result.errors.add_text(format!(
                        "stream: {:?}: {}",
                        status.code(),
                        status.message()
                    ));
                }
                match resubscribe(&mut client, &agent, last_seq, &mut stop, &mut result).await {
                    Some(s) => stream = s,
                    None => break,
                }
            }
        }
    }
    result
}

/// Reopens a stream that ended, after the last seq received.
async fn resubscribe(
    client: &mut Client,
    agent: &Agent,
    last_seq: Option<u64>,
    stop: &mut watch::Receiver<bool>,
    result: &mut ReceiverResult,
) -> Option<Streaming<SubscribeResponse>> {
    let mut backoff = Duration::from_millis(20);
    while result.resubscribes < MAX_RESUBSCRIBES {
        if *stop.borrow() {
            return None;
        }
        result.resubscribes += 1;
        match open_stream(client, agent, last_seq).await {
            Ok(s) => return Some(s),
            Err(e) => result.errors.add_text(format!("resubscribe: {e:#}")),
        }
        tokio::select! {
            _ = stop.changed() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    None
}

/// `huddle-bench <run> <key> <t>` → `(key, t)` when `<run>` is ours.
fn parse_stamp(body: &str, run_id: &str) -> Option<(u64, u64)> {
    let mut words = body.split(' ');
    if words.next()? != STAMP || words.next()? != run_id {
        return None;
    }
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

fn account(
    args: &BenchArgs,
    sent: Vec<SenderResult>,
    received: Vec<ReceiverResult>,
    elapsed: Duration,
    server_memory: Option<Memory>,
) -> GrpcReport {
    let per_room = args.agents_per_room as usize;
    let subscribe = !args.no_sse;
    let secs = elapsed.as_secs_f64();
    let mut send_latency = report::new_histogram();
    let mut delivery_latency = report::new_histogram();
    let mut errors = ErrorTally::default();
    let (mut sends, mut expected, mut lost, mut duplicated, mut resubscribes) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut by_member: Vec<Option<&ReceiverResult>> = vec![None; args.rooms as usize * per_room];
    for r in &received {
        by_member[r.room * per_room + r.agent] = Some(r);
    }
    for s in &sent {
        let _ = send_latency.add(&s.latency);
        errors.merge(s.errors.clone());
        sends += s.acked.len() as u64;
        if !subscribe {
            continue;
        }
        for other in (0..per_room).filter(|&a| a != s.agent) {
            expected += s.acked.len() as u64;
            lost += match by_member[s.room * per_room + other] {
                Some(r) => s.acked.iter().filter(|k| !r.seen.contains(k)).count() as u64,
                None => s.acked.len() as u64,
            };
        }
    }
    let (mut deliveries, mut unconfirmed) = (0u64, 0u64);
    for r in &received {
        let _ = delivery_latency.add(&r.latency);
        duplicated += r.duplicates;
        resubscribes += u64::from(r.resubscribes);
        errors.merge(r.errors.clone());
        for key in &r.seen {
            let acked = sent
                .get((key >> 40) as usize)
                .is_some_and(|s| s.acked.binary_search(key).is_ok());
            if acked {
                deliveries += 1;
            } else {
                unconfirmed += 1;
            }
        }
    }
    GrpcReport {
        scenario: "grpc",
        url: args.url.clone(),
        rooms: args.rooms,
        agents_per_room: args.agents_per_room,
        senders: args.senders,
        subscribe,
        duration_secs: args.duration_secs,
        elapsed_secs: (secs * 1000.0).round() / 1000.0,
        sends,
        send_errors: sent.iter().map(|s| s.errors.total()).sum(),
        sends_per_sec: report::rate(sends, secs),
        send_latency_us: Latency::of(&send_latency),
        expected_deliveries: expected,
        deliveries,
        deliveries_per_sec: report::rate(deliveries, secs),
        delivery_latency_us: Latency::of(&delivery_latency),
        lost,
        duplicated,
        unconfirmed,
        stream_resubscribes: resubscribes,
        errors: errors.entries(),
        server_memory,
    }
}

fn print_human(r: &GrpcReport) {
    println!(
        "huddle bench grpc: {} — {} room(s) × {} agent(s), {} sender(s), {:.1} s, Subscribe {}",
        r.url,
        r.rooms,
        r.agents_per_room,
        r.senders,
        r.elapsed_secs,
        if r.subscribe { "on" } else { "off" }
    );
    println!(
        "  SendMessage    {:>10} ok {:>8} errors {:>12.1} /s",
        r.sends, r.send_errors, r.sends_per_sec
    );
    println!("  send latency   {}", r.send_latency_us.human());
    if r.subscribe {
        println!(
            "  deliveries     {:>10} of {} expected {:>12.1} /s",
            r.deliveries, r.expected_deliveries, r.deliveries_per_sec
        );
        println!("  delivery lat.  {}", r.delivery_latency_us.human());
        println!(
            "  lost {}   duplicated {}   unconfirmed {}   stream resubscribes {}",
            r.lost, r.duplicated, r.unconfirmed, r.stream_resubscribes
        );
    }
    if let Some(m) = r.server_memory {
        println!("  server memory  {}", m.human());
    }
    for e in r.errors.iter().take(10) {
        println!("  error ×{:<8} {}", e.count, e.error);
    }
}

#[cfg(test)]
mod tests {
    use huddle_cluster::LocalRouter;
    use huddle_gateway::{AppState, GatewayConfig};
    use huddle_rooms::{RoomDirectory, RoomsConfig};
    use huddle_store::{Durability, EmbeddedStore};

    use super::super::fake;
    use super::*;

    /// The real gateway and room runtime on a socket (the A2A fake speaks no gRPC).
    async fn start_server(dir: &std::path::Path) -> String {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = EmbeddedStore::open(dir, Durability::Process).unwrap();
        let directory = RoomDirectory::new(Arc::new(store), RoomsConfig::default());
        let app = huddle_gateway::app(AppState {
            router: Arc::new(LocalRouter::new(directory)),
            config: Arc::new(GatewayConfig::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_delivery_is_accounted_for_against_the_real_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let url = start_server(dir.path()).await;
        let a = fake::args(&format!(
            "--url {url} --scenario grpc --rooms 2 --agents-per-room 3 --senders 4 --duration-secs 0.5"
        ));
        let r = measure(&a, "g1").await.unwrap();
        assert!(r.sends > 10, "{r:?}");
        assert_eq!(r.send_errors, 0, "{r:?}");
        assert_eq!(r.expected_deliveries, r.sends * 2);
        assert_eq!(r.deliveries, r.expected_deliveries, "{r:?}");
        assert_eq!((r.lost, r.duplicated, r.unconfirmed), (0, 0, 0));
        assert_eq!(r.delivery_latency_us.count, r.deliveries);
    }

    #[test]
    fn stamps_of_other_runs_are_ignored() {
        assert_eq!(parse_stamp("huddle-bench r1 7 99", "r1"), Some((7, 99)));
        assert_eq!(parse_stamp("huddle-bench r2 7 99", "r1"), None);
        assert_eq!(parse_stamp("agent-1 joined the room", "r1"), None);
    }
}
