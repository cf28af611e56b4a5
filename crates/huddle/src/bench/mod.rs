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
//! - `spread`     — `--url A,B,C`: the same wire spread over the nodes of one cluster.
//! - `grpc`       — the `grpc` scenario's wire: Huddle's gRPC API (tonic client),
//!   `SendMessage` calls and `Subscribe` streams.
//! - `creates`    — the `creates` scenario: N room creates then M joins, one at a time.
//! - `mcp`        — the `mcp` scenario: MCP sessions calling `sendMessage`, GET-stream listeners.
//! - `ceiling`    — `--ceiling` and the `ceiling` scenario: the same senders against a
//!   trivial in-process server that answers every `POST /a2a` with a fixed reply.
//! - `streams`    — the `streams` scenario: what idle SSE streams cost the server.
//! - `report`     — latency summaries, error tallies, server RSS sampling, JSON output.

mod ceiling;
mod creates;
mod deliveries;
mod grpc;
mod load;
mod mcp;
mod report;
mod spread;
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
  ceiling         Scenario 2 of BENCHMARKS.md (1 room x 2 agents, 16 senders, no SSE; the
                  --rooms/--agents-per-room/--senders/--no-sse flags are ignored) against
                  --url, then its ceiling: the same senders against a trivial in-process
                  server on 127.0.0.1 that answers every POST /a2a with a fixed reply.
                  Prints `ceiling: N req/s` and `scenario 2 = X % of ceiling`. The load
                  scenario does the same with --ceiling, whatever its shape. With
                  --ceiling-rounds N, then N alternations of both in slices of
                  duration/N: the ratio under the same conditions, on a machine that
                  drifts.
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
  huddle bench --url http://node-a:3000,http://node-b:3000,http://node-c:3000 --senders 12
  huddle bench --senders 16 --no-sse --duration-secs 600 --interval-secs 60 --server-pid PID
  huddle bench --scenario ceiling --duration-secs 8
  huddle bench --scenario creates --creates 100 --joins 200 --json";

/// Measure a join.cloud-compatible server over A2A + SSE (see the scenarios below).
#[derive(Args, Debug, Clone)]
#[command(after_long_help = SCENARIOS_HELP)]
pub struct BenchArgs {
    /// Base URL of the server. [load] Several, comma-separated (`A,B,C`): the nodes of
    /// one cluster; creates, joins, senders and streams are spread over them.
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

    /// [load] Then measure the ceiling: the same senders, sends only, for the same
    /// duration, against a trivial in-process server (see the ceiling scenario).
    #[arg(long)]
    pub ceiling: bool,

    /// [load] With --ceiling: then N more alternations of the run and its ceiling, each
    /// of duration/N seconds, and their ratio (all sends over all ceiling requests). On a
    /// machine whose speed drifts within minutes, alternating slices relate the two
    /// under the same conditions; one run after the other may not. 0: none.
    #[arg(long, default_value_t = 0)]
    pub ceiling_rounds: u32,

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
    /// Scenario 2 (1 room × 2 agents, 16 senders, no SSE), then its ceiling.
    Ceiling,
    /// Idle SSE streams, one per room: open latency and server memory per stream.
    Streams,
}

impl BenchArgs {
    fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout_secs)
    }

    /// Whether the run measures a ceiling, whose server [`run`] starts.
    fn wants_ceiling(&self) -> bool {
        self.scenario == Scenario::Ceiling || (self.scenario == Scenario::Load && self.ceiling)
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    // The bench runs on a runtime of its own (by default single-threaded: far fewer
    // cross-thread wake-ups per request than the binary's multi-threaded one).
    let threads = args.threads as usize;
    // The ceiling's server stays on this (the binary's multi-threaded) runtime, as a
    // server process would have its own; it stops when dropped, after the run.
    let ceiling = if args.wants_ceiling() {
        Some(ceiling::Server::start().await?)
    } else {
        None
    };
    let ceiling_url = ceiling.as_ref().map(|s| s.url().to_owned());
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
                Ok(runtime) => runtime.block_on(run_here(args, ceiling_url)),
                Err(e) => Err(anyhow::Error::new(e).context("starting the bench runtime")),
            };
            let _ = done_tx.send(result);
        })
        .context("starting the bench thread")?;
    let result = done_rx.await.context("the bench thread panicked");
    drop(ceiling);
    result?
}

/// [`run`] on the current runtime; `ceiling_url`: the ceiling's server, when wanted.
async fn run_here(args: BenchArgs, ceiling_url: Option<String>) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.duration_secs.is_finite() && args.duration_secs > 0.0,
        "--duration-secs must be a positive number"
    );
    anyhow::ensure!(
        args.request_timeout_secs.is_finite() && args.request_timeout_secs > 0.0,
        "--request-timeout-secs must be a positive number"
    );
    let urls = spread::urls(&args.url);
    anyhow::ensure!(!urls.is_empty(), "--url names no server");
    // A short unique tag: room names and message stamps of this run.
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    if urls.len() > 1 {
        anyhow::ensure!(
            args.scenario == Scenario::Load && !args.ceiling,
            "--url with several servers is for the load scenario (without --ceiling) only"
        );
        let nodes = urls
            .iter()
            .map(|u| Ok(A2aClient::new(u)?.with_timeout(args.request_timeout())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        return deliveries::run(&args, spread::Spread::new(nodes), &run_id).await;
    }
    let client = A2aClient::new(urls[0])?.with_timeout(args.request_timeout());
    match (args.scenario, ceiling_url) {
        (Scenario::Load | Scenario::Ceiling, Some(url)) => {
            let args = match args.scenario {
                Scenario::Ceiling => ceiling::scenario_two(&args),
                _ => args,
            };
            let report = with_ceiling(&args, client, &run_id, &url).await?;
            deliveries::finish(&args, report)
        }
        (Scenario::Ceiling, None) => anyhow::bail!("the ceiling scenario needs its server"),
        (Scenario::Load, None) => deliveries::run(&args, client, &run_id).await,
        (Scenario::Creates, _) => creates::run(&args, client, &run_id).await,
        (Scenario::Grpc, _) => {
            deliveries::run(&args, grpc::Grpc::connect(&args).await?, &run_id).await
        }
        (Scenario::Mcp, _) => mcp::run(&args, &run_id).await,
        (Scenario::Streams, _) => streams::run(&args, client, &run_id).await,
    }
}

/// The load of `args` against the server, then its ceiling against `ceiling_url`.
async fn with_ceiling(
    args: &BenchArgs,
    client: A2aClient,
    run_id: &str,
    ceiling_url: &str,
) -> anyhow::Result<deliveries::DeliveryReport> {
    let mut report = deliveries::measure(args, client.clone(), run_id).await?;
    let sends_per_sec = report.sends_per_sec;
    let mut ceiling = ceiling::measure(args, ceiling_url, run_id, sends_per_sec).await?;
    if args.ceiling_rounds > 0 {
        ceiling.alternated = Some(ceiling::alternate(args, client, ceiling_url, run_id).await?);
    }
    report.ceiling = Some(ceiling);
    Ok(report)
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

    /// Scenario 2 (with `flags`) against a real node (in-process, `Node::start`), then
    /// its ceiling against the trivial server.
    async fn scenario_two_and_its_ceiling(flags: &str, run_id: &str) -> deliveries::DeliveryReport {
        let node = huddle_testkit::TestNode::start().await;
        let server = ceiling::Server::start().await.unwrap();
        let a = ceiling::scenario_two(&args(&format!(
            "--url {} --scenario ceiling {flags}",
            node.base
        )));
        let client = A2aClient::new(&a.url).unwrap();
        with_ceiling(&a, client, run_id, server.url())
            .await
            .unwrap()
    }

    /// Scenario 2 and its ceiling: the report relates the two and prints both lines.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_ceiling_scenario_reports_scenario_2_as_a_share_of_its_ceiling() {
        let report = scenario_two_and_its_ceiling("--duration-secs 0.3", "t1").await;
        assert_eq!(
            (report.rooms, report.agents_per_room, report.senders),
            (1, 2, 16)
        );
        assert!(!report.streams.open);
        assert_eq!((report.send_errors, report.lost), (0, 0));
        let c = report.ceiling.clone().expect("a ceiling");
        assert_eq!(c.label, "scenario 2");
        assert!(
            c.requests_per_sec > 0.0 && c.percent_of_ceiling > 0.0,
            "{c:?}"
        );
        let text = report.human();
        assert!(
            text.contains("\n  ceiling: ") && text.contains(" req/s"),
            "{text}"
        );
        assert!(
            text.contains("\n  scenario 2 = ") && text.contains(" % of ceiling\n"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert!(
            json["ceiling"]["percent_of_ceiling"].as_f64().is_some(),
            "{json}"
        );
    }

    /// `--ceiling-rounds`: the run and its ceiling again in alternating slices, each
    /// round related on its own and all of them together.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn alternated_rounds_relate_each_slice_to_its_ceiling() {
        let report =
            scenario_two_and_its_ceiling("--duration-secs 0.4 --ceiling-rounds 2", "t2").await;
        let alternated = report
            .ceiling
            .clone()
            .and_then(|c| c.alternated)
            .expect("alternated rounds");
        assert_eq!((alternated.rounds, alternated.slice_secs), (2, 0.2));
        assert_eq!(alternated.per_round.len(), 2);
        let (low, high) = (
            alternated
                .per_round
                .iter()
                .cloned()
                .fold(f64::MAX, f64::min),
            alternated.per_round.iter().cloned().fold(0.0, f64::max),
        );
        // The ratio of the sums lies between the rounds' own ratios.
        assert!(
            low > 0.0
                && low - 0.1 <= alternated.percent_of_ceiling
                && alternated.percent_of_ceiling <= high + 0.1,
            "{alternated:?}"
        );
        let text = report.human();
        assert!(
            text.contains("\n  alternated, 2 rounds of 0.2 s each way: scenario 2 = "),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["ceiling"]["alternated"]["per_round"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
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
    async fn several_urls_are_refused_outside_the_load_scenario() {
        let a = args("--url http://127.0.0.1:1,http://127.0.0.1:2 --scenario creates");
        let e = run(a).await.unwrap_err();
        assert!(format!("{e:#}").contains("for the load scenario"), "{e:#}");
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
            c.send_message(&owner.agent_token, &format!("m{i}"), None, None)
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
        let e = c.send_message("nope", "x", None, None).await.unwrap_err();
        assert!(
            matches!(e, ClientError::Action(ref m) if m == "Invalid agentToken"),
            "{e}"
        );
    }
}
