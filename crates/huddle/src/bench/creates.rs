//! The `creates` scenario: N `room.create` then M `room.join` spread round-robin over
//! the new rooms, strictly one request at a time. Measures the total wall time (the
//! target is the sum) and each kind's latency.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::BenchArgs;
use super::report::{self, Latency, Memory};
use crate::client::A2aClient;

#[derive(Debug, Serialize)]
struct CreatesReport {
    scenario: &'static str,
    url: String,
    creates: u32,
    joins: u32,
    total_secs: f64,
    creates_secs: f64,
    joins_secs: f64,
    creates_per_sec: f64,
    joins_per_sec: f64,
    create_latency_us: Latency,
    join_latency_us: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_memory: Option<Memory>,
}

pub async fn run(args: &BenchArgs, client: A2aClient, run_id: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.creates > 0 || args.joins == 0,
        "--joins needs rooms: give --creates > 0"
    );
    let mut create_latency = report::new_histogram();
    let mut join_latency = report::new_histogram();
    let mut rooms = Vec::with_capacity(args.creates as usize);

    let started = Instant::now();
    for i in 0..args.creates {
        let name = format!("bench-{run_id}-c{i}");
        let t = Instant::now();
        let created = client
            .create_room(Some(&name), "owner", serde_json::Value::Null)
            .await
            .with_context(|| format!("create #{i} (room {name})"))?;
        report::record(&mut create_latency, t.elapsed());
        rooms.push(created.room_id);
    }
    let creates_done = started.elapsed();
    for j in 0..args.joins as usize {
        let room = &rooms[j % rooms.len()];
        let name = format!("joiner-{j}");
        let t = Instant::now();
        client
            .join_room(room, &name, serde_json::Value::Null)
            .await
            .with_context(|| format!("join #{j} ({name} to room {room})"))?;
        report::record(&mut join_latency, t.elapsed());
    }
    let total = started.elapsed();
    let joins_took = total - creates_done;

    let report = CreatesReport {
        scenario: "creates",
        url: args.url.clone(),
        creates: args.creates,
        joins: args.joins,
        total_secs: secs(total),
        creates_secs: secs(creates_done),
        joins_secs: secs(joins_took),
        creates_per_sec: report::rate(u64::from(args.creates), creates_done.as_secs_f64()),
        joins_per_sec: report::rate(u64::from(args.joins), joins_took.as_secs_f64()),
        create_latency_us: Latency::of(&create_latency),
        join_latency_us: Latency::of(&join_latency),
        server_memory: args.server_pid.and_then(Memory::of_pid),
    };
    if args.json {
        report::print_json(&report)?;
    } else {
        println!(
            "huddle bench creates: {} — {} creates + {} joins, one at a time: {:.3} s total",
            report.url, report.creates, report.joins, report.total_secs
        );
        println!(
            "  creates {:>8.3} s {:>10.1} /s   {}",
            report.creates_secs,
            report.creates_per_sec,
            report.create_latency_us.human()
        );
        println!(
            "  joins   {:>8.3} s {:>10.1} /s   {}",
            report.joins_secs,
            report.joins_per_sec,
            report.join_latency_us.human()
        );
        if let Some(m) = report.server_memory {
            println!("  server memory  {}", m.human());
        }
    }
    Ok(())
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
