//! The `streams` scenario: what idle SSE streams cost a node. Creates `--rooms` rooms and
//! loads each (a `room.info`, so its actor runs before streams are counted), opens one SSE
//! stream per room (the creator's), strictly one at a time, holds them idle, then closes
//! them all. Reports the time to open a stream (request sent → response headers, a fresh
//! connection each) and the server's resident memory (`--server-pid`): at the start, with
//! the rooms loaded, with every stream open, and after they closed. Run the server with a
//! `--room-idle-secs` longer than the run, so that rooms stay loaded throughout and the
//! difference is the streams' alone.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;

use super::BenchArgs;
use super::report::{self, Latency, Memory};
use crate::client::A2aClient;

/// Room creates in flight at once (setup only; not measured).
const CREATES_IN_FLIGHT: usize = 32;
/// File descriptors the bench needs besides one per stream.
const SPARE_FDS: u64 = 64;
/// How long to wait for the server's memory to come back once the streams closed, in
/// multiples of `--grace-ms` (at least a second, at most half a minute).
const SETTLE_GRACES: u32 = 10;

#[derive(Debug, Serialize)]
struct StreamsReport {
    scenario: &'static str,
    url: String,
    streams: u32,
    open_secs: f64,
    open_latency_us: Latency,
    /// `None` without `--server-pid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<MemoryReport>,
}

#[derive(Debug, Serialize)]
struct MemoryReport {
    /// The server before this run.
    start_kib: u64,
    /// With the rooms created and loaded, before any stream.
    rooms_kib: u64,
    open_kib: u64,
    closed_kib: u64,
    /// (open - rooms) / streams: what one idle stream costs.
    per_stream_bytes: u64,
    /// (closed - rooms) / rooms, in percent: what closing the streams did not give back.
    closed_over_rooms_pct: f64,
    /// `per_stream_bytes` × 100,000, in MiB.
    per_100k_streams_mib: f64,
}

pub async fn run(args: &BenchArgs, client: A2aClient, run_id: &str) -> anyhow::Result<()> {
    let streams = args.rooms;
    check_fd_limit(u64::from(streams))?;
    let rss = || args.server_pid.and_then(Memory::of_pid).map(|m| m.rss_kib);
    let start = rss();

    let rooms: Vec<_> = futures::stream::iter(0..streams)
        .map(|i| {
            let client = client.clone();
            let name = format!("bench-{run_id}-s{i}");
            async move {
                client
                    .create_room(Some(&name), "owner", serde_json::Value::Null)
                    .await
                    .with_context(|| format!("creating room {name}"))
            }
        })
        .buffer_unordered(CREATES_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    futures::stream::iter(&rooms)
        .map(|room| {
            let info = json!({"agentToken": room.agent_token});
            client.action("room.info", None, Some(&room.room_id), info)
        })
        .buffer_unordered(CREATES_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .context("loading the rooms (room.info)")?;
    tokio::time::sleep(Duration::from_millis(args.grace_ms)).await;
    let with_rooms = rss();

    let mut latency = report::new_histogram();
    let mut open = Vec::with_capacity(rooms.len());
    let started = Instant::now();
    for room in &rooms {
        let t = Instant::now();
        let stream = client
            .subscribe(&room.room_id, &room.agent_token, None)
            .await
            .with_context(|| format!("opening stream #{} (room {})", open.len(), room.room_id))?;
        report::record(&mut latency, t.elapsed());
        open.push(stream);
    }
    let open_took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(args.grace_ms)).await;
    let with_streams = rss();

    drop(open);
    let patience = (Duration::from_millis(args.grace_ms) * SETTLE_GRACES)
        .clamp(Duration::from_secs(1), Duration::from_secs(30));
    let closed = settle(&rss, with_rooms, patience).await;

    let memory = match (start, with_rooms, with_streams, closed) {
        (Some(start), Some(rooms_kib), Some(open_kib), Some(closed_kib)) => {
            let per_stream_bytes = open_kib.saturating_sub(rooms_kib) * 1024 / u64::from(streams);
            Some(MemoryReport {
                start_kib: start,
                rooms_kib,
                open_kib,
                closed_kib,
                per_stream_bytes,
                closed_over_rooms_pct: pct(closed_kib, rooms_kib),
                per_100k_streams_mib: (per_stream_bytes * 100_000) as f64 / (1024.0 * 1024.0),
            })
        }
        _ => None,
    };
    let report = StreamsReport {
        scenario: "streams",
        url: args.url.clone(),
        streams,
        open_secs: open_took.as_secs_f64(),
        open_latency_us: Latency::of(&latency),
        memory,
    };
    if args.json {
        return report::print_json(&report);
    }
    println!(
        "streams: {} idle SSE streams on {} loaded rooms, opened one at a time in {:.1} s",
        report.streams, report.streams, report.open_secs
    );
    println!("  open latency   {}", report.open_latency_us.human());
    match &report.memory {
        Some(m) => {
            println!(
                "  server RSS     start {} KiB, rooms {} KiB, open {} KiB, closed {} KiB",
                m.start_kib, m.rooms_kib, m.open_kib, m.closed_kib
            );
            println!(
                "  per stream     {} bytes (100k streams: {:.0} MiB); after closing: {:+.1} % of rooms",
                m.per_stream_bytes, m.per_100k_streams_mib, m.closed_over_rooms_pct
            );
        }
        None => println!("  server RSS     (give --server-pid to measure it)"),
    }
    Ok(())
}

/// The server's RSS once it is back within 10 % of `start` (before the streams), or after
/// `patience`.
async fn settle(
    rss: &impl Fn() -> Option<u64>,
    start: Option<u64>,
    patience: Duration,
) -> Option<u64> {
    let deadline = Instant::now() + patience;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss()?;
        let back = start.is_none_or(|s| pct(now, s) <= 10.0);
        if back || Instant::now() >= deadline {
            return Some(now);
        }
    }
}

fn pct(now: u64, start: u64) -> f64 {
    (now as f64 - start as f64) * 100.0 / start.max(1) as f64
}

/// Each stream holds a connection: the bench needs a descriptor per stream.
fn check_fd_limit(streams: u64) -> anyhow::Result<()> {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return Ok(());
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok());
    match soft {
        Some(soft) if soft < streams + SPARE_FDS => anyhow::bail!(
            "{streams} streams need {} open files, the soft limit is {soft}: raise it (ulimit -n) \
             for the bench and the server",
            streams + SPARE_FDS
        ),
        _ => Ok(()),
    }
}
