//! The delivery scenarios (`load` over A2A + SSE, `grpc` over gRPC) without the wire: a
//! [`Transport`] creates rooms, joins agents, sends and subscribes; this module runs the
//! run, stamps and reads the message bodies, accounts for every delivery and reports.
//!
//! Setup (rooms, agents, streams) is not measured; then S closed-loop senders run for D
//! seconds while every agent's stream receiver stamps what arrives. Accounting happens
//! after the run, from per-task results (no shared maps on the hot path):
//! - each sender keeps the keys of its acknowledged sends (increasing, so sorted);
//! - each receiver keeps the set of keys it got; a second copy of a key is a duplicate;
//! - lost = for every acknowledged send, the members of its room other than its agent
//!   whose set lacks the key. A key received but never acknowledged (the send timed out
//!   or failed after the server stored it) is "unconfirmed", neither lost nor expected.
//!
//! The body of each message is `huddle-bench <run> <key> <t>`: `key` = sender << 40 |
//! n, `t` = microseconds since the bench's clock at the send's start. Any receiver in
//! this process can compute the delivery latency from it; other bodies are ignored.
//!
//! A stream that ends resubscribes after the last seq it got (at most
//! [`MAX_RESUBSCRIBES`] times a run), so a resume that lost or repeated anything shows up
//! in those counts.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::BenchArgs;
use super::ceiling::Ceiling;
use super::report::{self, ErrorCount, ErrorTally, Latency, Memory};

const STAMP: &str = "huddle-bench";
/// Messages from this sender are room notices, never bench traffic.
const ROOM_BOT: &str = "room-bot";
/// A receiver whose stream ends resubscribes at most this many times in a run.
const MAX_RESUBSCRIBES: u32 = 20;
/// Pause after a send failure that suggests the server is gone, so it is not spun against.
const SEND_FAILURE_PAUSE: Duration = Duration::from_millis(10);

/// What a transport calls things, in the report. Its JSON stays what each scenario's
/// report was before they shared this module.
#[derive(Debug, Clone, Copy)]
pub struct Labels {
    /// The scenario, in the JSON `scenario` field and the human header: `load`, `grpc`.
    pub scenario: &'static str,
    /// The streams, in the human header and setup errors: `SSE`, `Subscribe`.
    pub streams: &'static str,
    /// The JSON key of "streams were open": `sse`, `subscribe`.
    pub streams_key: &'static str,
    /// The sends line of the human report: `sends`, `SendMessage`.
    pub sends: &'static str,
    /// Whether the JSON has `stream_errors`: the `grpc` report never had it (its stream
    /// errors are only in `errors`), and scripts may compare key sets.
    pub stream_errors_field: bool,
}

/// One joined agent; `C` is what the transport authenticates it with.
#[derive(Debug, Clone)]
pub struct Agent<C> {
    pub room: usize,
    /// Its place in the room's join order (the creator is 0).
    pub index: usize,
    pub name: String,
    pub room_id: String,
    pub credential: C,
}

/// An agent as the server let it in (the server may change the name).
pub struct Member<C> {
    pub name: String,
    pub credential: C,
}

/// A send acknowledged by the server, or why not.
pub type Acked = Result<(), SendFailure>;

/// A send the server did not acknowledge.
pub struct SendFailure {
    /// What the report counts it under (`<kind>: <message>`).
    pub error: String,
    /// The server may be gone (connection refused, unavailable): pause before the next.
    pub pause: bool,
}

/// What a stream gave the receiver.
pub enum StreamItem {
    Message {
        /// The room's sequence number, when the transport carries one (resumes after it).
        seq: Option<u64>,
        from: String,
        body: String,
    },
    /// An error the stream goes on after.
    Error(String),
    /// The stream ended, with the error that ended it if any: the receiver resubscribes.
    Ended(Option<String>),
}

/// The wire of a delivery scenario. Everything else (the run, stamps, accounting, the
/// report) is this module's. The futures are `Send`: senders and receivers are tasks.
pub trait Transport: Send + Sync + 'static {
    /// How an agent proves who it is on each request.
    type Credential: Clone + Send + Sync + 'static;
    /// The client one sender uses.
    type Sender: Send + 'static;
    /// One agent's open stream.
    type Stream: Send + 'static;
    /// Why a stream could not be opened.
    type SubscribeError: std::error::Error + Send + Sync + 'static;

    const LABELS: Labels;

    /// Creates room `name` with `agent` as its first member; returns the room's id.
    fn create_room(
        &self,
        name: &str,
        agent: &str,
    ) -> impl Future<Output = anyhow::Result<(String, Member<Self::Credential>)>> + Send;

    /// Joins `agent` to the room with id `room_id`.
    fn join_room(
        &self,
        room_id: &str,
        agent: &str,
    ) -> impl Future<Output = anyhow::Result<Member<Self::Credential>>> + Send;

    /// The client sender `i` (of `--senders`) sends with.
    fn sender(&self, i: usize) -> Self::Sender;

    /// Sends `body` to the agent's room as the agent; `Ok` once the server acknowledged.
    fn send(
        &self,
        sender: &mut Self::Sender,
        agent: &Agent<Self::Credential>,
        body: &str,
    ) -> impl Future<Output = Acked> + Send;

    /// Opens the agent's stream of its room, resuming after seq `after` when given.
    /// Returns once the subscription is in place.
    fn subscribe(
        &self,
        agent: &Agent<Self::Credential>,
        after: Option<u64>,
    ) -> impl Future<Output = Result<Self::Stream, Self::SubscribeError>> + Send;

    /// The stream's next item (cancel-safe: it is raced against the end of the run).
    fn next(stream: &mut Self::Stream) -> impl Future<Output = StreamItem> + Send;
}

/// What every task of one run shares.
struct Run<T> {
    transport: T,
    /// This run's tag in message bodies.
    run_id: String,
    /// The origin of the stamps' times.
    clock: Instant,
    live: Live,
    /// Deliveries each acknowledged send owes: members − 1, 0 without streams.
    expect_per_send: u64,
}

/// Counters read while the run goes on (grace wait, interval lines).
#[derive(Default)]
struct Live {
    sent_ok: AtomicU64,
    expected: AtomicU64,
    delivered: AtomicU64,
}

pub struct SenderResult {
    pub room: usize,
    pub agent: usize,
    pub latency: Histogram<u64>,
    /// Keys of acknowledged sends, increasing.
    pub acked: Vec<u64>,
    pub errors: ErrorTally,
}

pub struct ReceiverResult {
    pub room: usize,
    pub agent: usize,
    pub latency: Histogram<u64>,
    pub seen: HashSet<u64>,
    pub duplicates: u64,
    pub resubscribes: u32,
    pub errors: ErrorTally,
}

#[derive(Debug, Serialize)]
pub struct Interval {
    /// Seconds since the senders started, at the end of the interval.
    at_secs: f64,
    sends_per_sec: f64,
    /// `None` without streams.
    #[serde(skip_serializing_if = "Option::is_none")]
    deliveries_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_memory: Option<Memory>,
}

/// Whether every agent had a stream open, under the transport's JSON key.
#[derive(Debug)]
pub struct StreamsOpen {
    key: &'static str,
    pub open: bool,
}

impl Serialize for StreamsOpen {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.key, &self.open)?;
        map.end()
    }
}

#[derive(Debug, Serialize)]
pub struct DeliveryReport {
    #[serde(skip)]
    labels: Labels,
    pub scenario: &'static str,
    pub url: String,
    pub rooms: u32,
    pub agents_per_room: u32,
    pub senders: u32,
    #[serde(flatten)]
    pub streams: StreamsOpen,
    pub duration_secs: f64,
    /// From the senders' start to the last sender's last reply.
    pub elapsed_secs: f64,
    pub sends: u64,
    pub send_errors: u64,
    pub sends_per_sec: f64,
    pub send_latency_us: Latency,
    /// Acknowledged sends × (members − 1); 0 without streams.
    pub expected_deliveries: u64,
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    pub delivery_latency_us: Latency,
    pub lost: u64,
    pub duplicated: u64,
    pub unconfirmed: u64,
    pub stream_resubscribes: u64,
    /// `None` when the transport's report has no such field ([`Labels`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_errors: Option<u64>,
    pub errors: Vec<ErrorCount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_memory: Option<Memory>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<Interval>,
    /// The same senders against a trivial server (`--ceiling`), measured after this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<Ceiling>,
}

/// Runs the scenario over `transport`, prints the report (JSON with `--json`), and fails
/// when a send failed or a delivery was lost or duplicated.
pub async fn run<T: Transport>(args: &BenchArgs, transport: T, run_id: &str) -> anyhow::Result<()> {
    finish(args, measure(args, transport, run_id).await?)
}

/// Prints `report` (JSON with `--json`), and fails when a send failed or a delivery was
/// lost or duplicated.
pub fn finish(args: &BenchArgs, report: DeliveryReport) -> anyhow::Result<()> {
    if args.json {
        report::print_json(&report)?;
    } else {
        print!("{}", report.human());
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

/// Runs the scenario and returns its report (printing is the caller's).
pub async fn measure<T: Transport>(
    args: &BenchArgs,
    transport: T,
    run_id: &str,
) -> anyhow::Result<DeliveryReport> {
    let (rooms, per_room) = (args.rooms as usize, args.agents_per_room as usize);
    let streams = !args.no_sse;
    let agents = setup(&transport, args, run_id).await?;
    let run = Arc::new(Run {
        transport,
        run_id: run_id.to_owned(),
        clock: Instant::now(),
        live: Live::default(),
        expect_per_send: if streams { per_room as u64 - 1 } else { 0 },
    });
    let (stop_tx, stop_rx) = watch::channel(false);

    // Every stream is in place before the first measured send.
    let mut receivers: Vec<JoinHandle<ReceiverResult>> = Vec::new();
    if streams {
        let opened = futures::future::join_all(agents.iter().flatten().map(|a| {
            let run = &run;
            async move { (a, run.transport.subscribe(a, None).await) }
        }))
        .await;
        for (agent, stream) in opened {
            let stream = stream.with_context(|| {
                format!(
                    "opening the {} stream of {} in room {}",
                    T::LABELS.streams,
                    agent.name,
                    agent.room_id
                )
            })?;
            receivers.push(tokio::spawn(receive(
                run.clone(),
                agent.clone(),
                stream,
                stop_rx.clone(),
            )));
        }
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration_secs);
    let senders: Vec<JoinHandle<SenderResult>> = (0..args.senders as usize)
        .map(|i| {
            let (room, agent) = (i % rooms, (i / rooms) % per_room);
            tokio::spawn(send_loop(
                run.clone(),
                run.transport.sender(i),
                agents[room][agent].clone(),
                i as u64,
                deadline,
            ))
        })
        .collect();

    let (ticker_stop_tx, ticker_stop_rx) = watch::channel(false);
    let ticker = (args.interval_secs > 0).then(|| {
        tokio::spawn(intervals(
            run.clone(),
            Duration::from_secs(args.interval_secs),
            started,
            streams,
            args.server_pid,
            ticker_stop_rx,
        ))
    });

    let mut sent = Vec::with_capacity(senders.len());
    for handle in senders {
        sent.push(handle.await.context("a sender task failed")?);
    }
    let elapsed = started.elapsed();
    let _ = ticker_stop_tx.send(true);
    let intervals = match ticker {
        Some(t) => t.await.context("the interval task failed")?,
        None => Vec::new(),
    };

    // Grace: wait for in-flight deliveries, at most grace_ms.
    if streams {
        let live = &run.live;
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

    Ok(account(
        T::LABELS,
        args,
        sent,
        received,
        elapsed,
        intervals,
        server_memory,
    ))
}

/// Creates the rooms (in parallel, each one's joins in order) and returns the agents,
/// `[room][agent]`, the creator first.
async fn setup<T: Transport>(
    transport: &T,
    args: &BenchArgs,
    run_id: &str,
) -> anyhow::Result<Vec<Vec<Agent<T::Credential>>>> {
    let per_room = args.agents_per_room as usize;
    let rooms = (0..args.rooms as usize).map(|room| async move {
        let room_name = format!("bench-{run_id}-{room}");
        let (room_id, creator) = transport
            .create_room(&room_name, &agent_name(0))
            .await
            .with_context(|| format!("creating room {room_name}"))?;
        let mut agents = vec![Agent {
            room,
            index: 0,
            name: creator.name,
            room_id: room_id.clone(),
            credential: creator.credential,
        }];
        for index in 1..per_room {
            let name = agent_name(index);
            let joined = transport
                .join_room(&room_id, &name)
                .await
                .with_context(|| format!("joining {name} to room {room_name}"))?;
            agents.push(Agent {
                room,
                index,
                name: joined.name,
                room_id: room_id.clone(),
                credential: joined.credential,
            });
        }
        anyhow::Ok(agents)
    });
    futures::future::try_join_all(rooms).await
}

fn agent_name(index: usize) -> String {
    format!("agent-{index}")
}

/// One closed-loop sender: send, wait for the acknowledgement, repeat until `deadline`.
async fn send_loop<T: Transport>(
    run: Arc<Run<T>>,
    mut client: T::Sender,
    agent: Agent<T::Credential>,
    sender: u64,
    deadline: Instant,
) -> SenderResult {
    let mut result = SenderResult {
        room: agent.room,
        agent: agent.index,
        latency: report::new_histogram(),
        acked: Vec::new(),
        errors: ErrorTally::default(),
    };
    let mut n: u64 = 0;
    let mut body = String::with_capacity(64);
    loop {
        let start = Instant::now();
        if start >= deadline {
            break;
        }
        let key = sender << 40 | n;
        n += 1;
        body.clear();
        let _ = write!(
            body,
            "{STAMP} {} {key} {}",
            run.run_id,
            start.duration_since(run.clock).as_micros()
        );
        match run.transport.send(&mut client, &agent, &body).await {
            Ok(()) => {
                report::record(&mut result.latency, start.elapsed());
                result.acked.push(key);
                run.live.sent_ok.fetch_add(1, Ordering::Relaxed);
                run.live
                    .expected
                    .fetch_add(run.expect_per_send, Ordering::Relaxed);
            }
            Err(failure) => {
                result.errors.add_text(failure.error);
                if failure.pause {
                    tokio::time::sleep(SEND_FAILURE_PAUSE).await;
                }
            }
        }
    }
    result
}

/// One agent's receiver: stamps what arrives until the run stops, resubscribing when
/// the stream ends.
async fn receive<T: Transport>(
    run: Arc<Run<T>>,
    agent: Agent<T::Credential>,
    mut stream: T::Stream,
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
            item = T::next(&mut stream) => item,
        };
        match item {
            StreamItem::Message { seq, from, body } => {
                last_seq = seq.or(last_seq);
                on_message(&from, &body, &agent.name, &run, &mut result);
            }
            StreamItem::Error(error) => result.errors.add_text(error),
            StreamItem::Ended(error) => {
                if let Some(error) = error {
                    result.errors.add_text(error);
                }
                match resubscribe(&run.transport, &agent, last_seq, &mut stop, &mut result).await {
                    Some(s) => stream = s,
                    None => break,
                }
            }
        }
    }
    result
}

/// Counts a message of this run from another member: its first copy is a delivery (and
/// a latency sample), a second one a duplicate.
fn on_message<T>(from: &str, body: &str, me: &str, run: &Run<T>, result: &mut ReceiverResult) {
    if from == ROOM_BOT || from == me {
        return;
    }
    let Some((key, sent_at_us)) = parse_stamp(body, &run.run_id) else {
        return;
    };
    let now_us = u64::try_from(run.clock.elapsed().as_micros()).unwrap_or(u64::MAX);
    if result.seen.insert(key) {
        report::record_us(&mut result.latency, now_us.saturating_sub(sent_at_us));
        run.live.delivered.fetch_add(1, Ordering::Relaxed);
    } else {
        result.duplicates += 1;
    }
}

/// Reopens a stream that ended, resuming after `last_seq` when known. `None` when the
/// run is stopping or the retries are used up (the misses then show up as lost).
async fn resubscribe<T: Transport>(
    transport: &T,
    agent: &Agent<T::Credential>,
    last_seq: Option<u64>,
    stop: &mut watch::Receiver<bool>,
    result: &mut ReceiverResult,
) -> Option<T::Stream> {
    let mut backoff = Duration::from_millis(20);
    while result.resubscribes < MAX_RESUBSCRIBES {
        if *stop.borrow() {
            return None;
        }
        result.resubscribes += 1;
        match transport.subscribe(agent, last_seq).await {
            Ok(s) => return Some(s),
            Err(e) => result.errors.add_text(format!("resubscribe: {e}")),
        }
        tokio::select! {
            _ = stop.changed() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    result.errors.add_text(format!(
        "stream of {} gave up after {MAX_RESUBSCRIBES} resubscribes",
        agent.name
    ));
    None
}

/// `huddle-bench <run> <key> <t>` → `(key, t)` when `<run>` is ours.
fn parse_stamp(body: &str, run_id: &str) -> Option<(u64, u64)> {
    let mut words = body.split(' ');
    if words.next()? != STAMP || words.next()? != run_id {
        return None;
    }
    let key = words.next()?.parse().ok()?;
    let at = words.next()?.parse().ok()?;
    Some((key, at))
}

/// Every `every` until `stop`: the throughput since the last line, on stderr, and kept
/// for the JSON report.
async fn intervals<T>(
    run: Arc<Run<T>>,
    every: Duration,
    started: Instant,
    streams: bool,
    server_pid: Option<u32>,
    mut stop: watch::Receiver<bool>,
) -> Vec<Interval> {
    let mut out = Vec::new();
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::from_std(started) + every, every);
    let (mut last_sent, mut last_delivered) = (0, 0);
    let mut last_at = started;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ticker.tick() => {}
        }
        let now = Instant::now();
        let (sent, delivered) = (
            run.live.sent_ok.load(Ordering::Relaxed),
            run.live.delivered.load(Ordering::Relaxed),
        );
        let secs = now.duration_since(last_at).as_secs_f64();
        let interval = Interval {
            at_secs: (now.duration_since(started).as_secs_f64() * 10.0).round() / 10.0,
            sends_per_sec: report::rate(sent - last_sent, secs),
            deliveries_per_sec: streams.then(|| report::rate(delivered - last_delivered, secs)),
            server_memory: server_pid.and_then(Memory::of_pid),
        };
        eprintln!(
            "[{:>7.1} s] {:>10.1} sends/s{}{}",
            interval.at_secs,
            interval.sends_per_sec,
            interval
                .deliveries_per_sec
                .map(|d| format!(" {d:>10.1} deliveries/s"))
                .unwrap_or_default(),
            interval
                .server_memory
                .map(|m| format!("  server {}", m.human()))
                .unwrap_or_default()
        );
        out.push(interval);
        (last_sent, last_delivered, last_at) = (sent, delivered, now);
    }
    out
}

/// The report of a run, from what its senders and receivers kept.
fn account(
    labels: Labels,
    args: &BenchArgs,
    sent: Vec<SenderResult>,
    received: Vec<ReceiverResult>,
    elapsed: Duration,
    intervals: Vec<Interval>,
    server_memory: Option<Memory>,
) -> DeliveryReport {
    let streams = !args.no_sse;
    let per_room = args.agents_per_room as usize;
    let secs = elapsed.as_secs_f64();
    let mut send_latency = report::new_histogram();
    let mut delivery_latency = report::new_histogram();
    let mut errors = ErrorTally::default();
    let mut stream_errors = ErrorTally::default();
    let (mut sends, mut expected, mut lost, mut duplicated, mut resubscribes) =
        (0u64, 0u64, 0u64, 0u64, 0u64);

    // Receivers by (room, agent) for the loss check.
    let mut by_member: Vec<Option<&ReceiverResult>> = vec![None; args.rooms as usize * per_room];
    for r in &received {
        by_member[r.room * per_room + r.agent] = Some(r);
    }
    for s in &sent {
        let _ = send_latency.add(&s.latency);
        errors.merge(s.errors.clone());
        sends += s.acked.len() as u64;
        if !streams {
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
        stream_errors.merge(r.errors.clone());
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
    let stream_error_count = stream_errors.total();
    errors.merge(stream_errors);

    DeliveryReport {
        labels,
        scenario: labels.scenario,
        url: args.url.clone(),
        rooms: args.rooms,
        agents_per_room: args.agents_per_room,
        senders: args.senders,
        streams: StreamsOpen {
            key: labels.streams_key,
            open: streams,
        },
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
        stream_errors: labels.stream_errors_field.then_some(stream_error_count),
        errors: errors.entries(),
        server_memory,
        intervals,
        ceiling: None,
    }
}

impl DeliveryReport {
    /// The human-readable report, one line each.
    pub(super) fn human(&self) -> String {
        let labels = &self.labels;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "huddle bench {}: {} — {} room(s) × {} agent(s), {} sender(s), {:.1} s, {} {}",
            labels.scenario,
            self.url,
            self.rooms,
            self.agents_per_room,
            self.senders,
            self.elapsed_secs,
            labels.streams,
            if self.streams.open { "on" } else { "off" }
        );
        let _ = writeln!(
            out,
            "  {:<15}{:>10} ok {:>8} errors {:>12.1} /s",
            labels.sends, self.sends, self.send_errors, self.sends_per_sec
        );
        let _ = writeln!(out, "  send latency   {}", self.send_latency_us.human());
        if let Some(ceiling) = &self.ceiling {
            out.push_str(&ceiling.human());
        }
        if self.streams.open {
            let _ = writeln!(
                out,
                "  deliveries     {:>10} of {} expected {:>12.1} /s",
                self.deliveries, self.expected_deliveries, self.deliveries_per_sec
            );
            let _ = writeln!(out, "  delivery lat.  {}", self.delivery_latency_us.human());
            let _ = writeln!(
                out,
                "  lost {}   duplicated {}   unconfirmed {}   stream resubscribes {}",
                self.lost, self.duplicated, self.unconfirmed, self.stream_resubscribes
            );
        }
        if let Some(m) = self.server_memory {
            let _ = writeln!(out, "  server memory  {}", m.human());
        }
        for e in self.errors.iter().take(10) {
            let _ = writeln!(out, "  error ×{:<8} {}", e.count, e.error);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::{fake, grpc, load};
    use super::*;

    const LOAD: Labels = load::LABELS;
    const GRPC: Labels = grpc::LABELS;

    fn sender(agent: usize, acked: &[u64]) -> SenderResult {
        SenderResult {
            room: 0,
            agent,
            latency: report::new_histogram(),
            acked: acked.to_vec(),
            errors: ErrorTally::default(),
        }
    }

    fn receiver(agent: usize, seen: &[u64], duplicates: u64) -> ReceiverResult {
        ReceiverResult {
            room: 0,
            agent,
            latency: report::new_histogram(),
            seen: seen.iter().copied().collect(),
            duplicates,
            resubscribes: 0,
            errors: ErrorTally::default(),
        }
    }

    #[test]
    fn losses_duplicates_and_unacknowledged_receipts_are_told_apart() {
        let a = fake::args("--rooms 1 --agents-per-room 3 --senders 1");
        // Agent 1 got both (and one twice); agent 2 missed key 2 and got unacked key 3.
        let received = vec![receiver(1, &[1, 2], 1), receiver(2, &[1, 3], 0)];
        let r = account(
            LOAD,
            &a,
            vec![sender(0, &[1, 2])],
            received,
            Duration::from_secs(1),
            Vec::new(),
            None,
        );
        assert_eq!(r.sends, 2);
        assert_eq!(r.expected_deliveries, 4);
        assert_eq!(r.deliveries, 3);
        assert_eq!((r.lost, r.duplicated, r.unconfirmed), (1, 1, 1));
    }

    #[test]
    fn stamps_of_other_runs_and_plain_text_are_ignored() {
        assert_eq!(
            parse_stamp("huddle-bench abc 42 1000", "abc"),
            Some((42, 1000))
        );
        assert_eq!(parse_stamp("huddle-bench xyz 42 1000", "abc"), None);
        assert_eq!(parse_stamp("agent-1 joined the room", "abc"), None);
        assert_eq!(parse_stamp("huddle-bench abc 42", "abc"), None);
    }

    fn report_of(labels: Labels, no_sse: bool) -> DeliveryReport {
        let flags = if no_sse { " --no-sse" } else { "" };
        let a = fake::args(&format!(
            "--url http://h --rooms 1 --agents-per-room 2 --senders 1{flags}"
        ));
        let mut tally = ErrorTally::default();
        tally.add_text("http: HTTP 503: busy".into());
        let mut s = sender(0, &[1, 2, 3]);
        s.errors = tally;
        account(
            labels,
            &a,
            vec![s],
            vec![receiver(1, &[1, 2, 3], 0)],
            Duration::from_secs(2),
            Vec::new(),
            None,
        )
    }

    /// The JSON keys each scenario had before the two shared this module, in order.
    #[test]
    fn json_keys_are_each_scenarios_own() {
        let keys = |labels| {
            // As `--json` prints it: the top-level keys are the lines indented once.
            let text = serde_json::to_string_pretty(&report_of(labels, false)).unwrap();
            let keys: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("  \""))
                .filter_map(|l| l.split('"').next())
                .collect();
            keys.join(" ")
        };
        let common_head = "scenario url rooms agents_per_room senders";
        let common_mid = "duration_secs elapsed_secs sends send_errors sends_per_sec \
            send_latency_us expected_deliveries deliveries deliveries_per_sec \
            delivery_latency_us lost duplicated unconfirmed stream_resubscribes";
        assert_eq!(
            keys(LOAD),
            format!("{common_head} sse {common_mid} stream_errors errors")
        );
        assert_eq!(
            keys(GRPC),
            format!("{common_head} subscribe {common_mid} errors")
        );
        let json = serde_json::to_value(report_of(GRPC, true)).unwrap();
        assert_eq!(json["subscribe"], false);
        assert_eq!(json["scenario"], "grpc");
    }

    /// The human report of each scenario, line by line in the formats it had before.
    #[test]
    fn human_lines_carry_the_transports_labels() {
        let load = report_of(LOAD, false).human();
        let lines: Vec<&str> = load.lines().collect();
        assert_eq!(
            lines[0],
            "huddle bench load: http://h — 1 room(s) × 2 agent(s), 1 sender(s), 2.0 s, SSE on"
        );
        assert_eq!(
            lines[1],
            format!(
                "  sends          {:>10} ok {:>8} errors {:>12.1} /s",
                3, 1, 1.5
            )
        );
        assert!(lines[2].starts_with("  send latency   "), "{load}");
        assert_eq!(
            lines[3],
            format!(
                "  deliveries     {:>10} of {} expected {:>12.1} /s",
                3, 3, 1.5
            )
        );
        assert!(lines[4].starts_with("  delivery lat.  "), "{load}");
        assert_eq!(
            lines[5],
            "  lost 0   duplicated 0   unconfirmed 0   stream resubscribes 0"
        );
        assert_eq!(
            lines[6],
            format!("  error ×{:<8} {}", 1, "http: HTTP 503: busy")
        );
        assert_eq!(lines.len(), 7);

        let grpc = report_of(GRPC, true).human();
        let lines: Vec<&str> = grpc.lines().collect();
        assert_eq!(
            lines[0],
            "huddle bench grpc: http://h — 1 room(s) × 2 agent(s), 1 sender(s), 2.0 s, Subscribe off"
        );
        assert_eq!(
            lines[1],
            format!(
                "  SendMessage    {:>10} ok {:>8} errors {:>12.1} /s",
                3, 1, 1.5
            )
        );
        assert!(lines[2].starts_with("  send latency   "), "{grpc}");
        assert_eq!(
            lines[3],
            format!("  error ×{:<8} {}", 1, "http: HTTP 503: busy")
        );
        assert_eq!(lines.len(), 4);
    }
}
