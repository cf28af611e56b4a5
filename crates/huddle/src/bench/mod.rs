//! `huddle bench`: a load generator for any join.cloud-compatible server. It speaks only
//! plain A2A `SendMessage` + SSE (see `crate::client`), so the same run measures Huddle
//! and join.cloud alike.
//!
//! Layout:
//! - this file    — the command line ([`BenchArgs`]) and [`run`].
//! - `deliveries` — the delivery scenarios (`load`, `grpc`) whatever the wire: rooms and
//!   agents, stream receivers, closed-loop senders, message stamps, delivery accounting
//!   (lost / duplicated / unconfirmed), interval lines, their report and its printing.
//! - `load`       — the `load` scenario's wire (a `deliveries::Transport`): A2A
//!   `SendMessage` + SSE, so any join.cloud-compatible server.
//! - `grpc`       — the `grpc` scenario's wire: Huddle's gRPC API (tonic client),
//!   `SendMessage` calls and `Subscribe` streams.
//! - `creates`    — the `creates` scenario: N room creates then M joins, one at a time.
//! - `mcp`        — the `mcp` scenario: MCP sessions calling `sendMessage`, GET-stream listeners.
//! - `streams`    — the `streams` scenario: what idle SSE streams cost the server.
//! - `report`     — latency summaries, error tallies, server RSS sampling, JSON output.

mod creates;
mod deliveries;
mod grpc;
mod load;
mod mcp;
mod report;
mod streams;

use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::client::A2aClient;
#[cfg(test)]
use crate::client::ClientError;

/// The scenarios, shown after the options by `huddle bench --help`.
const SCENARIOS_HELP: &str = "\
Scenarios:
  load (default)  Creates --rooms rooms with unique names, joins --agents-per-room agents
                  to each (the creator is the first), opens every agent's SSE stream
                  (unless --no-sse), then runs --senders closed-loop senders for
                  --duration-secs: sender i posts in room i mod R as agent (i div R) mod J
                  (message.send, wait for the reply, repeat). After the senders stop it
                  waits up to --grace-ms for in-flight deliveries, then reports sends/s,
                  send latency, deliveries/s, delivery latency (send start -> SSE receipt,
                  from a stamp inside the body), lost deliveries (a member other than the
                  sender never got an acknowledged message) and duplicated deliveries.
                  room-bot notices and other traffic are ignored.
  creates         --creates room creates, then --joins joins spread round-robin over those
                  rooms, strictly one request at a time; reports the total time and the
                  per-request latencies.
  grpc            The load scenario over Huddle's gRPC API (Huddle only).
  mcp             One room over MCP (/mcp): --senders sessions call sendMessage in closed
                  loops (or paced to --mcp-rate calls/s in total), without GET streams, so
                  the room's messages come ahead of their results; --mcp-listeners
                  sessions hold GET streams. Reports tool calls/s and call latency, and
                  notification latency (call start -> GET stream receipt) p50/p99.
  streams         Creates --rooms rooms and opens one idle SSE stream per room, one at a
                  time; reports the open latency and (with --server-pid) the server's RSS
                  per idle stream and after the streams closed.

The load and creates scenarios speak only A2A SendMessage + SSE, so they measure any
join.cloud-compatible server. Latencies are in microseconds in --json output.

Exit status: 1 when setup fails (the server's error is printed), or when a send failed or
a delivery was lost or duplicated (after the report).

Examples:
  huddle bench --url http://127.0.0.1:3000 --rooms 10 --agents-per-room 10 --senders 10
  huddle bench --senders 16 --no-sse --duration-secs 600 --interval-secs 60 --server-pid PID
  huddle bench --scenario creates --creates 100 --joins 200 --json";

/// Measure a join.cloud-compatible server over A2A + SSE (see the scenarios below).
#[derive(Args, Debug, Clone)]
#[command(after_long_help = SCENARIOS_HELP)]
pub struct BenchArgs {
    /// Base URL of the server.
    #[arg(long, env = "HUDDLE_URL", default_value = "http://localhost:3000")]
    pub url: String,

    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Load)]
    pub scenario: Scenario,

    /// [load] Number of rooms.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub rooms: u32,

    /// [load] Agents joined to each room (the room's creator counts as one).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub agents_per_room: u32,

    /// [load] Concurrent closed-loop senders.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub senders: u32,

    /// [load] How long the senders run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,

    /// [load] Do not open SSE streams (measures sends only).
    #[arg(long)]
    pub no_sse: bool,

    /// [load] After the senders stop, wait at most this long for in-flight deliveries.
    #[arg(long, default_value_t = 2000)]
    pub grace_ms: u64,

    /// [load] Also report throughput every N seconds (on stderr while running, and in
    /// the JSON report as `intervals`); 0 turns it off.
    #[arg(long, default_value_t = 0)]
    pub interval_secs: u64,

    /// [creates] Number of rooms to create.
    #[arg(long, default_value_t = 100)]
    pub creates: u32,

    /// [creates] Number of joins, spread round-robin over the created rooms.
    #[arg(long, default_value_t = 200)]
    pub joins: u32,

    /// PID of a server on this machine: report its resident memory (VmRSS, VmHWM from
    /// /proc) at the end and at each interval.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Timeout of each request, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub request_timeout_secs: f64,

    /// Threads the bench itself runs on. 1 (default) is a single-threaded runtime, the
    /// cheapest per request, which leaves the most CPU to a server on the same machine.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,

    /// [grpc] HTTP/2 connections the senders share (the Subscribe streams use one more).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub grpc_connections: u32,

    /// [mcp] Sessions holding GET streams (the callers are --senders).
    #[arg(long, default_value_t = 4)]
    pub mcp_listeners: u32,

    /// [mcp] Pace the callers to this many tool calls per second in total (0: closed loops).
    #[arg(long, default_value_t = 0.0)]
    pub mcp_rate: f64,

    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Rooms, agents, SSE streams and closed-loop senders.
    Load,
    /// Room creates then joins, one at a time.
    Creates,
    /// The load scenario over Huddle's gRPC API: SendMessage calls and Subscribe streams.
    Grpc,
    /// MCP sessions calling sendMessage, and sessions holding GET streams (Huddle's /mcp).
    Mcp,
    /// Idle SSE streams, one per room: open latency and server memory per stream.
    Streams,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    // The bench runs on a runtime of its own (by default single-threaded: far fewer
    // cross-thread wake-ups per request than the binary's multi-threaded one).
    let threads = args.threads as usize;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("huddle-bench".into())
        .spawn(move || {
            let runtime = if threads == 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()
            };
            let result = match runtime {
                Ok(runtime) => runtime.block_on(run_here(args)),
                Err(e) => Err(anyhow::Error::new(e).context("starting the bench runtime")),
            };
            let _ = done_tx.send(result);
        })
        .context("starting the bench thread")?;
    done_rx.await.context("the bench thread panicked")?
}

/// [`run`] on the current runtime.
async fn run_here(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.duration_secs.is_finite() && args.duration_secs > 0.0,
        "--duration-secs must be a positive number"
    );
    anyhow::ensure!(
        args.request_timeout_secs.is_finite() && args.request_timeout_secs > 0.0,
        "--request-timeout-secs must be a positive number"
    );
    let client =
        A2aClient::new(&args.url)?.with_timeout(Duration::from_secs_f64(args.request_timeout_secs));
    // A short unique tag: room names and message stamps of this run.
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    match args.scenario {
        Scenario::Load => deliveries::run(&args, client, &run_id).await,
        Scenario::Creates => creates::run(&args, client, &run_id).await,
        Scenario::Grpc => deliveries::run(&args, grpc::Grpc::connect(&args).await?, &run_id).await,
        Scenario::Mcp => mcp::run(&args, &run_id).await,
        Scenario::Streams => streams::run(&args, client, &run_id).await,
    }
}

#[cfg(test)]
mod fake;

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::fake::args;
    use super::*;

    #[tokio::test]
    async fn creates_scenario_runs_against_a_fake_server() {
        let url = fake::start().await;
        let a = args(&format!(
            "--url {url} --scenario creates --creates 3 --joins 5 --json"
        ));
        run(a).await.unwrap();
    }

    #[tokio::test]
    async fn streams_scenario_runs_against_a_fake_server() {
        let url = fake::start().await;
        let pid = std::process::id();
        let a = args(&format!(
            "--url {url} --scenario streams --rooms 3 --grace-ms 10 --server-pid {pid} --json"
        ));
        run(a).await.unwrap();
    }

    #[tokio::test]
    async fn setup_errors_carry_the_servers_text() {
        let a = args("--url http://127.0.0.1:1 --duration-secs 0.1");
        let e = run(a).await.unwrap_err();
        assert!(format!("{e:#}").contains("creating room"), "{e:#}");
    }

    #[tokio::test]
    async fn subscribe_resumes_after_last_event_id() {
        let url = fake::start().await;
        let c = A2aClient::new(&url).unwrap();
        let owner = c
            .create_room(Some("r"), "a", serde_json::Value::Null)
            .await
            .unwrap();
        for i in 0..3 {
            c.send_message(&owner.agent_token, &format!("m{i}"), None)
                .await
                .unwrap();
        }
        let s = c
            .subscribe(&owner.room_id, &owner.agent_token, Some(1))
            .await
            .unwrap();
        let got: Vec<_> = s.take(2).map(|m| m.unwrap()).collect().await;
        assert_eq!(
            got.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [Some(2), Some(3)]
        );
        assert_eq!(got[0].body, "m1");

        let e = c
            .subscribe(&owner.room_id, "nope", None)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, ClientError::Status { status: 403, .. }), "{e}");
        let e = c.send_message("nope", "x", None).await.unwrap_err();
        assert!(
            matches!(e, ClientError::Action(ref m) if m == "Invalid agentToken"),
            "{e}"
        );
    }
}
