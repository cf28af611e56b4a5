//! The `load` scenario. Setup (rooms, agents, streams) is not measured; then S
//! closed-loop senders run for D seconds while every agent's SSE receiver stamps what
//! arrives. Accounting happens after the run, from per-task results (no shared maps on
//! the hot path):
//! - each sender keeps the keys of its acknowledged sends (increasing, so sorted);
//! - each receiver keeps the set of keys it got; a second copy of a key is a duplicate;
//! - lost = for every acknowledged send, the members of its room other than its agent
//!   whose set lacks the key. A key received but never acknowledged (the send timed out
//!   or failed after the server stored it) is "unconfirmed", neither lost nor expected.
//!
//! The body of each message is `huddle-bench <run> <key> <t>`: `key` = sender << 40 |
//! n, `t` = microseconds since the bench's clock at the send's start. Any receiver in
//! this process can compute the delivery latency from it; other bodies are ignored.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::BenchArgs;
use super::report::{self, ErrorCount, ErrorTally, Latency, Memory};
use crate::client::{A2aClient, ClientError, MessageStream, RoomMessage};

const STAMP: &str = "huddle-bench";
/// Messages from this sender are room notices, never bench traffic.
const ROOM_BOT: &str = "room-bot";
/// A receiver whose stream ends resubscribes (with `Last-Event-ID` when it knows a seq)
/// at most this many times in a run.
const MAX_RESUBSCRIBES: u32 = 20;
/// Pause after a transport-level send failure, so a dead server is not spun against.
const SEND_FAILURE_PAUSE: Duration = Duration::from_millis(10);

/// One joined agent.
#[derive(Debug, Clone)]
struct Agent {
    room: usize,
    index: usize,
    name: String,
    token: String,
    room_id: String,
}

/// Counters read while the run goes on (grace wait, interval lines).
#[derive(Default)]
struct Live {
    sent_ok: AtomicU64,
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
struct Interval {
    /// Seconds since the senders started, at the end of the interval.
    at_secs: f64,
    sends_per_sec: f64,
    /// `None` without SSE.
    #[serde(skip_serializing_if = "Option::is_none")]
    deliveries_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_memory: Option<Memory>,
}

#[derive(Debug, Serialize)]
struct LoadReport {
    scenario: &'static str,
    url: String,
    rooms: u32,
    agents_per_room: u32,
    senders: u32,
    sse: bool,
    duration_secs: f64,
    /// From the senders' start to the last sender's last reply.
    elapsed_secs: f64,
    sends: u64,
    send_errors: u64,
    sends_per_sec: f64,
    send_latency_us: Latency,
    /// Acknowledged sends × (members − 1); 0 without SSE.
    expected_deliveries: u64,
    deliveries: u64,
    deliveries_per_sec: f64,
    delivery_latency_us: Latency,
    lost: u64,
    duplicated: u64,
    unconfirmed: u64,
    stream_resubscribes: u64,
    stream_errors: u64,
    errors: Vec<ErrorCount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_memory: Option<Memory>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    intervals: Vec<Interval>,
}

pub async fn run(args: &BenchArgs, client: A2aClient, run_id: &str) -> anyhow::Result<()> {
    let report = measure(args, client, run_id).await?;
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

/// Runs the scenario and returns its report (printing is the caller's).
async fn measure(args: &BenchArgs, client: A2aClient, run_id: &str) -> anyhow::Result<LoadReport> {
    let (rooms, per_room) = (args.rooms as usize, args.agents_per_room as usize);
    let sse = !args.no_sse;
    let agents = setup(&client, args, run_id).await?;
    let clock = Instant::now();
    let live = Arc::new(Live::default());
    let run_tag: Arc<str> = Arc::from(run_id);
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut receivers: Vec<JoinHandle<ReceiverResult>> = Vec::new();
    if sse {
        let opened = futures::future::join_all(agents.iter().flatten().map(|a| {
            let client = &client;
            async move { (a, client.subscribe(&a.room_id, &a.token, None).await) }
        }))
        .await;
        for (agent, stream) in opened {
            let stream = stream.with_context(|| {
                format!(
                    "opening the SSE stream of {} in room {}",
                    agent.name, agent.room_id
                )
            })?;
            receivers.push(tokio::spawn(receive(
                client.clone(),
                agent.clone(),
                stream,
                run_tag.clone(),
                clock,
                live.clone(),
                stop_rx.clone(),
            )));
        }
    }

    let expect_per_send = if sse { per_room as u64 - 1 } else { 0 };
    let duration = Duration::from_secs_f64(args.duration_secs);
    let started = Instant::now();
    let deadline = started + duration;
    let senders: Vec<JoinHandle<SenderResult>> = (0..args.senders as usize)
        .map(|i| {
            let (room, agent) = (i % rooms, (i / rooms) % per_room);
            tokio::spawn(send_loop(
                client.clone(),
                agents[room][agent].clone(),
                i as u64,
                run_tag.clone(),
                clock,
                deadline,
                live.clone(),
                expect_per_send,
            ))
        })
        .collect();

    let (ticker_stop_tx, ticker_stop_rx) = watch::channel(false);
    let ticker = (args.interval_secs > 0).then(|| {
        tokio::spawn(intervals(
            Duration::from_secs(args.interval_secs),
            started,
            sse,
            live.clone(),
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
    if sse {
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
        args,
        sent,
        received,
        elapsed,
        intervals,
        server_memory,
        per_room,
    ))
}

/// Creates the rooms (in parallel, each one's joins in order) and returns the agents,
/// `[room][agent]`, the creator first.
async fn setup(
    client: &A2aClient,
    args: &BenchArgs,
    run_id: &str,
) -> anyhow::Result<Vec<Vec<Agent>>> {
    let per_room = args.agents_per_room as usize;
    let rooms = (0..args.rooms as usize).map(|room| async move {
        let room_name = format!("bench-{run_id}-{room}");
        let creator = agent_name(0);
        let created = client
            .create_room(Some(&room_name), &creator, serde_json::Value::Null)
            .await
            .with_context(|| format!("creating room {room_name}"))?;
        let room_id = created.room_id;
        let mut agents = vec![Agent {
            room,
            index: 0,
            name: created.agent_name,
            token: created.agent_token,
            room_id: room_id.clone(),
        }];
        for index in 1..per_room {
            let name = agent_name(index);
            let joined = client
                .join_room(&room_id, &name, serde_json::Value::Null)
                .await
                .with_context(|| format!("joining {name} to room {room_name}"))?;
            agents.push(Agent {
                room,
                index,
                name: joined.agent_name,
                token: joined.agent_token,
                room_id: room_id.clone(),
            });
        }
        anyhow::Ok(agents)
    });
    futures::future::try_join_all(rooms).await
}

fn agent_name(index: usize) -> String {
    format!("agent-{index}")
}

#[allow(clippy::too_many_arguments)]
async fn send_loop(
    client: A2aClient,
    agent: Agent,
    sender: u64,
    run_id: Arc<str>,
    clock: Instant,
    deadline: Instant,
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
    let mut body = String::with_capacity(64);
    loop {
        let start = Instant::now();
        if start >= deadline {
            break;
        }
        let key = sender << 40 | n;
        n += 1;
        body.clear();
        use std::fmt::Write;
        let _ = write!(
            body,
            "{STAMP} {run_id} {key} {}",
            start.duration_since(clock).as_micros()
        );
        match client.send_message(&agent.token, &body, None).await {
            Ok(_) => {
                report::record(&mut result.latency, start.elapsed());
                result.acked.push(key);
                live.sent_ok.fetch_add(1, Ordering::Relaxed);
                live.expected.fetch_add(expect_per_send, Ordering::Relaxed);
            }
            Err(e) => {
                result.errors.add(&e);
                if !matches!(e, ClientError::Action(_)) {
                    tokio::time::sleep(SEND_FAILURE_PAUSE).await;
                }
            }
        }
    }
    result
}

async fn receive(
    client: A2aClient,
    agent: Agent,
    mut stream: MessageStream,
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
            item = stream.next() => item,
        };
        match item {
            Some(Ok(message)) => {
                last_seq = message.seq.or(last_seq);
                on_message(&message, &agent, &run_id, clock, &live, &mut result);
            }
            Some(Err(e)) => result.errors.add(&e),
            None => match resubscribe(&client, &agent, last_seq, &mut stop, &mut result).await {
                Some(s) => stream = s,
                None => break,
            },
        }
    }
    result
}

fn on_message(
    message: &RoomMessage,
    agent: &Agent,
    run_id: &str,
    clock: Instant,
    live: &Live,
    result: &mut ReceiverResult,
) {
    if message.from == ROOM_BOT || message.from == agent.name {
        return;
    }
    let Some((key, sent_at_us)) = parse_stamp(&message.body, run_id) else {
        return;
    };
    let now_us = u64::try_from(clock.elapsed().as_micros()).unwrap_or(u64::MAX);
    if result.seen.insert(key) {
        report::record_us(&mut result.latency, now_us.saturating_sub(sent_at_us));
        live.delivered.fetch_add(1, Ordering::Relaxed);
    } else {
        result.duplicates += 1;
    }
}

/// Reopens a stream that ended, resuming after `last_seq` when known. `None` when the
/// run is stopping or the retries are used up (the misses then show up as lost).
async fn resubscribe(
    client: &A2aClient,
    agent: &Agent,
    last_seq: Option<u64>,
    stop: &mut watch::Receiver<bool>,
    result: &mut ReceiverResult,
) -> Option<MessageStream> {
    let mut backoff = Duration::from_millis(20);
    while result.resubscribes < MAX_RESUBSCRIBES {
        if *stop.borrow() {
            return None;
        }
        result.resubscribes += 1;
        match client
            .subscribe(&agent.room_id, &agent.token, last_seq)
            .await
        {
            Ok(s) => return Some(s),
            Err(e) => result.errors.add(&e),
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

async fn intervals(
    every: Duration,
    started: Instant,
    sse: bool,
    live: Arc<Live>,
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
            live.sent_ok.load(Ordering::Relaxed),
            live.delivered.load(Ordering::Relaxed),
        );
        let secs = now.duration_since(last_at).as_secs_f64();
        let interval = Interval {
            at_secs: (now.duration_since(started).as_secs_f64() * 10.0).round() / 10.0,
            sends_per_sec: report::rate(sent - last_sent, secs),
            deliveries_per_sec: sse.then(|| report::rate(delivered - last_delivered, secs)),
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

fn account(
    args: &BenchArgs,
    sent: Vec<SenderResult>,
    received: Vec<ReceiverResult>,
    elapsed: Duration,
    intervals: Vec<Interval>,
    server_memory: Option<Memory>,
    per_room: usize,
) -> LoadReport {
    let sse = !args.no_sse;
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
        if !sse {
            continue;
        }
        for other in (0..per_room).filter(|&a| a != s.agent) {
            expected += s.acked.len() as u64;
            match by_member[s.room * per_room + other] {
                Some(r) => lost += s.acked.iter().filter(|k| !r.seen.contains(k)).count() as u64,
                None => lost += s.acked.len() as u64,
            }
        }
    }
    let mut deliveries = 0u64;
    let mut unconfirmed = 0u64;
    for r in &received {
        let _ = delivery_latency.add(&r.latency);
        duplicated += r.duplicates;
        resubscribes += u64::from(r.resubscribes);
        stream_errors.merge(r.errors.clone());
        for key in &r.seen {
            let sender = (key >> 40) as usize;
            let acked = sent
                .get(sender)
                .is_some_and(|s| s.acked.binary_search(key).is_ok());
            if acked {
                deliveries += 1
            } else {
                unconfirmed += 1
            }
        }
    }
    let stream_error_count = stream_errors.total();
    errors.merge(stream_errors);

    LoadReport {
        scenario: "load",
        url: args.url.clone(),
        rooms: args.rooms,
        agents_per_room: args.agents_per_room,
        senders: args.senders,
        sse,
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
        stream_errors: stream_error_count,
        errors: errors.entries(),
        server_memory,
        intervals,
    }
}

fn print_human(r: &LoadReport) {
    println!(
        "huddle bench load: {} — {} room(s) × {} agent(s), {} sender(s), {:.1} s, SSE {}",
        r.url,
        r.rooms,
        r.agents_per_room,
        r.senders,
        r.elapsed_secs,
        if r.sse { "on" } else { "off" }
    );
    println!(
        "  sends          {:>10} ok {:>8} errors {:>12.1} /s",
        r.sends, r.send_errors, r.sends_per_sec
    );
    println!("  send latency   {}", r.send_latency_us.human());
    if r.sse {
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
    use super::super::fake;
    use super::*;

    #[tokio::test]
    async fn every_delivery_is_accounted_for_against_a_fake_server() {
        let url = fake::start().await;
        let a = fake::args(&format!(
            "--url {url} --rooms 2 --agents-per-room 3 --senders 4 --duration-secs 0.5"
        ));
        let client = A2aClient::new(&url).unwrap();
        let r = measure(&a, client, "t1").await.unwrap();
        assert!(r.sends > 10, "{r:?}");
        assert_eq!(r.send_errors, 0);
        assert_eq!(r.expected_deliveries, r.sends * 2);
        assert_eq!(r.deliveries, r.expected_deliveries);
        assert_eq!((r.lost, r.duplicated, r.unconfirmed), (0, 0, 0));
        assert_eq!(r.delivery_latency_us.count, r.deliveries);
    }

    #[test]
    fn losses_duplicates_and_unacknowledged_receipts_are_told_apart() {
        let a = fake::args("--rooms 1 --agents-per-room 3 --senders 1");
        let sender = SenderResult {
            room: 0,
            agent: 0,
            latency: report::new_histogram(),
            acked: vec![1, 2],
            errors: ErrorTally::default(),
        };
        let receiver = |agent, seen: &[u64], duplicates| ReceiverResult {
            room: 0,
            agent,
            latency: report::new_histogram(),
            seen: seen.iter().copied().collect(),
            duplicates,
            resubscribes: 0,
            errors: ErrorTally::default(),
        };
        // Agent 1 got both (and one twice); agent 2 missed key 2 and got unacked key 3.
        let received = vec![receiver(1, &[1, 2], 1), receiver(2, &[1, 3], 0)];
        let r = account(
            &a,
            vec![sender],
            received,
            Duration::from_secs(1),
            Vec::new(),
            None,
            3,
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
    }
}
