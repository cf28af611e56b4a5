#!/usr/bin/env bash
# The benchmark scenarios of BENCHMARKS.md against a fresh release server on loopback,
# then scenarios 2 and 3 against a node on PostgreSQL in the same run (BENCHMARKS.md,
# section 'A node on PostgreSQL').
# Usage: scripts/bench.sh [seconds per scenario]   (default 10; servers are stopped at the end;
# HUDDLE_BENCH_BIN runs another build, e.g. a debug one to try the script)
# PostgreSQL: the server at HUDDLE_BENCH_POSTGRES_URL (an empty database), or a throwaway
# one started here from /usr/lib/postgresql/*/bin (fsync on, synchronous_commit on: the
# settings a user gets); BENCH_POSTGRES=0 skips those runs and says so.
# The servers inherit the environment (OTEL_*: scripts/bench-telemetry.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
bin=${HUDDLE_BENCH_BIN:-target/release/huddle}
[ -x "$bin" ] || cargo build --release -p huddle
tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
pg_stop=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ ${#pg_stop[@]} -gt 0 ]; then "${pg_stop[@]}" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# start_node NAME [serve flags...]: sets $url and $pid.
start_node() {
  local name=$1; shift
  mkdir -p "$tmp/$name"
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$tmp/$name" "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name/server.log" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do grep -q 'listening on' "$tmp/$name.out" && break; sleep 0.1; done
  url=$(grep -o 'http://[0-9.:]*' "$tmp/$name.out" | head -1)
  [ -n "$url" ] || { cat "$tmp/$name/server.log"; echo "the $name node did not start" >&2; exit 1; }
  echo "server $url (pid $pid, $name)"
}
# BENCH_ONLY="2 3" runs only those scenarios (the label's first word, before a colon or
# a space: "2 on PostgreSQL" is scenario 2 too).
skipped() { [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" ${1%%[: ]*} "* ]]; }
b() {
  if skipped "$1"; then return; fi
  echo; echo "== $1"; shift; "$bin" bench --url "$url" --server-pid "$pid" "$@"
}
s2=(--rooms 1 --agents-per-room 2 --senders 16 --no-sse --duration-secs "$secs")
s3=(--rooms 10 --agents-per-room 10 --senders 10 --duration-secs "$secs")

start_node embedded
b "1: 1 room x 2 agents, 1 sender, SSE on (target: delivery p99 <= 2 ms)" \
  --rooms 1 --agents-per-room 2 --senders 1 --duration-secs "$secs"
b "2: 1 room x 2 agents, 16 senders, no SSE (target: >= 20,000 sends/s); then its ceiling (trivial in-process server)" \
  "${s2[@]}" --ceiling --ceiling-rounds 4
b "3: 10 rooms x 10 agents, 10 senders, SSE on (target: >= 40,000 deliveries/s, p99 <= 25 ms, 0 lost; RSS <= 100 MB)" \
  "${s3[@]}"
b "4: 100 creates + 200 joins, one at a time (target: <= 1 s)" \
  --scenario creates --creates 100 --joins 200
b "gRPC: 16 callers" --scenario grpc --rooms 1 --agents-per-room 2 --senders 16 --no-sse --duration-secs "$secs"
b "MCP: 8 callers, 4 GET-stream listeners, closed loops (target: >= 5,000 tool calls/s)" \
  --scenario mcp --senders 8 --mcp-listeners 4 --duration-secs "$secs"
b "MCP: the same paced to 2,500 calls/s (target: notification delivery p99 <= 10 ms)" \
  --scenario mcp --senders 8 --mcp-listeners 4 --mcp-rate 2500 --duration-secs "$secs"
b "2 again, embedded, for the side-by-side with PostgreSQL below" "${s2[@]}"

# ---- a node on PostgreSQL ----
if [ "${BENCH_POSTGRES:-1}" = 0 ]; then
  echo; echo "== PostgreSQL runs skipped (BENCH_POSTGRES=0)"; exit 0
fi
store=${HUDDLE_BENCH_POSTGRES_URL:-}
if [ -z "$store" ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$pgbin/initdb" ] || { echo "no PostgreSQL: run \`make test-deps\` or set HUDDLE_BENCH_POSTGRES_URL" >&2; exit 1; }
  as=()
  if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); chown postgres "$tmp"; fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as[@]}" "$pgbin/initdb" -D "$tmp/pg" -A trust -U huddle >/dev/null
  pg_stop=("${as[@]}" "$pgbin/pg_ctl" -D "$tmp/pg" -m immediate -w stop)
  "${as[@]}" "$pgbin/pg_ctl" -D "$tmp/pg" -l "$tmp/pg.log" -w \
    -o "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null
  "$pgbin/psql" "postgres://huddle@127.0.0.1:$port/postgres" -qc "CREATE DATABASE bench"
  store="postgres://huddle@127.0.0.1:$port/bench?sslmode=disable"
fi
start_node postgres --store "$store" ${BENCH_STORE_POOL:+--store-pool "$BENCH_STORE_POOL"}
# Commits and stored messages so far: their deltas over a scenario give the mean batch
# (messages per commit) and, with one append in flight per node, the mean commit time.
pg_counts() {
  sleep 1.5 # the server's statistics reach pg_stat_database within a second
  psql "$store" -At -F ' ' -c "SELECT (SELECT xact_commit FROM pg_stat_database
    WHERE datname = current_database()), (SELECT count(*) FROM messages)"
}
pgb() {
  local before after
  if skipped "$1"; then return; fi
  before=$(pg_counts)
  b "$@"
  after=$(pg_counts)
  read -r c0 m0 <<<"$before"
  read -r c1 m1 <<<"$after"
  awk -v c=$((c1 - c0)) -v m=$((m1 - m0)) -v s="$secs" 'BEGIN {
    printf "  postgres       %d commits (%.0f /s, any kind), %d messages: %.1f messages per commit, %.2f ms per commit\n",
      c, c / s, m, (c ? m / c : 0), (c ? 1000 * s / c : 0) }'
}
pgb "2 on PostgreSQL (target: >= 50 % of the embedded node's figure above)" "${s2[@]}"
pgb "3 on PostgreSQL (target: >= 40,000 deliveries/s, p99 <= 25 ms, 0 lost)" "${s3[@]}"
