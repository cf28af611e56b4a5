#!/usr/bin/env bash
# What traces cost: scenarios 2 and 3 of scripts/bench.sh without trace export, then
# with OTLP export to a local collector that counts what it gets
# (crates/huddle/examples/otlp_sink.rs): every span sampled, then one trace in ten
# (the ratio a busy node is advised in docs/deploy.md). Metrics are on in every run
# (they always are).
# Usage: scripts/bench-telemetry.sh [seconds per scenario]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
cargo build --release -p huddle --example otlp_sink
sink_out=$(mktemp)
target/release/examples/otlp_sink >"$sink_out" &
sink=$!
trap 'kill $sink 2>/dev/null; wait $sink 2>/dev/null; rm -f "$sink_out"' EXIT
for _ in $(seq 100); do grep -q 'otlp sink on' "$sink_out" && break; sleep 0.1; done
endpoint=$(grep -o 'http://[0-9.:]*' "$sink_out" | head -1)
echo "######## without trace export"
BENCH_ONLY="2 3" scripts/bench.sh "$secs"
echo "######## with OTLP export to $endpoint, every span sampled"
OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint OTEL_TRACES_SAMPLER=always_on \
  BENCH_ONLY="2 3" scripts/bench.sh "$secs"
echo "######## with OTLP export to $endpoint, one trace in ten"
OTEL_EXPORTER_OTLP_ENDPOINT=$endpoint OTEL_TRACES_SAMPLER=parentbased_traceidratio \
  OTEL_TRACES_SAMPLER_ARG=0.1 BENCH_ONLY="2 3" scripts/bench.sh "$secs"
kill "$sink"; wait "$sink" 2>/dev/null || true
cat "$sink_out"
