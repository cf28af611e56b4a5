//! An OTLP trace collector that only counts spans: the export target of
//! `scripts/bench-telemetry.sh` (not a test).
//!
//! `cargo run --release -p huddle --example otlp_sink` prints `otlp sink on http://ADDR`,
//! then, on ctrl-c or SIGTERM, how many spans it received.

use huddle_testkit::otlp::Collector;

#[tokio::main]
async fn main() {
    let (addr, collector) = Collector::start_counting().await;
    println!("otlp sink on http://{addr}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("otlp sink received {} spans", collector.received());
}
