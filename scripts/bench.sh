#!/usr/bin/env bash
# The benchmark scenarios of BENCHMARKS.md against a fresh release server on loopback.
# Usage: scripts/bench.sh [seconds per scenario]   (default 10; the server is stopped at the end)
# The server inherits the environment (OTEL_*: scripts/bench-telemetry.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
bin=target/release/huddle
[ -x "$bin" ] || cargo build --release -p huddle
data=$(mktemp -d)
out=$(mktemp)
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data" >"$out" 2>"$data/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$out"' EXIT
for _ in $(seq 100); do grep -q 'listening on' "$out" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$out" | head -1)
echo "server $url (pid $pid, data $data)"
# BENCH_ONLY="2 3" runs only those scenarios (the label before the colon).
b() {
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" ${1%%:*} "* ]]; then return; fi
  echo; echo "== $1"; shift; "$bin" bench --url "$url" --server-pid "$pid" "$@"
}
b "1: 1 room x 2 agents, 1 sender, SSE on (target: delivery p99 <= 2 ms)" \
  --rooms 1 --agents-per-room 2 --senders 1 --duration-secs "$secs"
b "2: 1 room x 2 agents, 16 senders, no SSE (target: >= 20,000 sends/s); then its ceiling (trivial in-process server)" \
  --rooms 1 --agents-per-room 2 --senders 16 --no-sse --duration-secs "$secs" --ceiling
b "3: 10 rooms x 10 agents, 10 senders, SSE on (target: >= 40,000 deliveries/s, p99 <= 25 ms, 0 lost; RSS <= 100 MB)" \
  --rooms 10 --agents-per-room 10 --senders 10 --duration-secs "$secs"
b "4: 100 creates + 200 joins, one at a time (target: <= 1 s)" \
  --scenario creates --creates 100 --joins 200
b "gRPC: 16 callers" --scenario grpc --rooms 1 --agents-per-room 2 --senders 16 --no-sse --duration-secs "$secs"
b "MCP: 8 callers, 4 GET-stream listeners, closed loops (target: >= 5,000 tool calls/s)" \
  --scenario mcp --senders 8 --mcp-listeners 4 --duration-secs "$secs"
b "MCP: the same paced to 2,500 calls/s (target: notification delivery p99 <= 10 ms)" \
  --scenario mcp --senders 8 --mcp-listeners 4 --mcp-rate 2500 --duration-secs "$secs"
