//! The node's Prometheus metrics: one process-wide registry, rendered on `GET /metrics`.
//!
//! Why a crate of its own: the layers that count (the store's writer, the rooms' pusher,
//! the typed room API, each protocol adapter) sit at different depths of the build, and
//! all of them must reach the same registry. The recorder is installed the first time
//! anything is counted or rendered, so a handle is never registered against "no recorder"
//! (which would count nothing, silently).
//!
//! Why handles: the hot path must not allocate. Every label set is registered once (at
//! first use) and kept; recording is an atomic add on a kept handle.
//!
//! Names follow Prometheus conventions: `huddle_..._total` counters, `_seconds`
//! durations, base units. Layout:
//! - [`requests`] — requests by protocol, action and outcome, with latency histograms;
//!   limit refusals by limit.
//! - [`store`], [`push`], [`streams`] — the store writer, push deliveries, open streams.
//! - [`upstream`] — rooms this node follows from their owner (cluster mode).
//! - gauges sampled at scrape time (active rooms, MCP sessions): [`set_gauge`].
//!
//! - [`cluster`] — cluster mode: forwarded calls, lease renewals and losses, rooms taken
//!   over and handed over, upstream feeds.

pub mod cluster;
pub mod push;
pub mod requests;
pub mod store;
pub mod streams;
pub mod upstream;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub use requests::{Outcome, Protocol};

/// Bucket bounds of every `_seconds` histogram: 100 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Bucket bounds of the store's batch size (operations per commit).
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 2048.0,
];

/// The registry, installed as the process's `metrics` recorder on first use.
///
/// If the embedder installed another recorder first, ours renders only what it was
/// given directly (nothing): the embedder's recorder gets the counts.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                SECONDS_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(store::BATCH_SIZE.into()),
                    BATCH_BUCKETS,
                )
            })
            .expect("bucket bounds are non-empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            // No logger dependency here: this crate sits below every other.
            eprintln!("huddle: another metrics recorder is installed; /metrics shows nothing");
        }
        handle
    })
}

/// The Prometheus text exposition of everything counted so far.
pub fn render() -> String {
    handle().render()
}

/// Sets a gauge sampled at scrape time (a value the node already keeps, such as the
/// number of active rooms): nothing to keep up to date on the hot path.
pub fn set_gauge(name: &'static str, value: f64) {
    handle();
    metrics::gauge!(name).set(value);
}

/// Gauge names sampled at scrape time.
pub mod gauges {
    /// Rooms with a live actor on this node.
    pub const ROOMS_ACTIVE: &str = "huddle_rooms_active";
    /// Bytes the loaded rooms' log tails hold (recent messages kept for fast reads).
    pub const ROOMS_TAIL_BYTES: &str = "huddle_rooms_tail_bytes";
    /// Bytes of messages waiting for streams that have not read them yet.
    pub const STREAMS_BACKLOG_BYTES: &str = "huddle_streams_backlog_bytes";
    /// MCP sessions this node holds.
    pub const MCP_SESSIONS: &str = "huddle_mcp_sessions";
}
