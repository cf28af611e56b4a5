#!/usr/bin/env bash
# Cluster mode on one machine (BENCHMARKS.md, section 'Cluster'): a throwaway PostgreSQL
# and Redis, then scenario 3's load (10 rooms x 10 agents, 10 senders, SSE on) against
# one cluster node, then against three nodes with `huddle bench --url A,B,C` (senders
# and streams spread over the nodes: most sends are forwarded to their room's owner and
# most streams follow their room from another node).
# Usage: scripts/bench-cluster.sh [seconds per run]   (default 10; everything is stopped
# at the end; HUDDLE_BENCH_BIN runs another build).
# All nodes share the same 2 cores here: the figures give the cost of the forwarded hop
# and the throughput per node, not a speed-up.
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
  [ -f "$tmp/redis.pid" ] && kill "$(cat "$tmp/redis.pid")" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "no PostgreSQL: run \`make test-deps\`" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "no redis-server: run \`make test-deps\`" >&2; exit 1; }
as=()
if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); chown postgres "$tmp"; fi
pg_port=$(free_port)
"${as[@]}" "$pgbin/initdb" -D "$tmp/pg" -A trust -U huddle >/dev/null
pg_stop=("${as[@]}" "$pgbin/pg_ctl" -D "$tmp/pg" -m immediate -w stop)
"${as[@]}" "$pgbin/pg_ctl" -D "$tmp/pg" -l "$tmp/pg.log" -w \
  -o "-p $pg_port -k $tmp -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$tmp/redis.pid" --dir "$tmp" >/dev/null
export HUDDLE_CLUSTER_SECRET=bench-cluster-secret

# cluster DB NODES REDIS_DB: starts NODES nodes on database DB and Redis database
# REDIS_DB (one cluster per Redis database: nodes sharing one would form one cluster);
# sets $urls (comma-separated).
cluster() {
  local db=$1 n=$2 redis_db=$3 i
  "$pgbin/psql" "postgres://huddle@127.0.0.1:$pg_port/postgres" -qc "CREATE DATABASE $db"
  urls=""
  for i in $(seq "$n"); do
    local name="$db-n$i" node_port
    node_port=$(free_port)
    mkdir -p "$tmp/$name"
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$tmp/$name" \
      --store "postgres://huddle@127.0.0.1:$pg_port/$db?sslmode=disable" \
      --redis "redis://127.0.0.1:$redis_port/$redis_db" \
      --node-id "$name" --node-listen "127.0.0.1:$node_port" --lease-ttl-secs 3 \
      >"$tmp/$name.out" 2>"$tmp/$name/server.log" &
    pids+=("$!")
    for _ in $(seq 300); do grep -q '^huddle listening on' "$tmp/$name.out" && break; sleep 0.1; done
    local url
    url=$(grep '^huddle listening on' "$tmp/$name.out" | grep -o 'http://[0-9.:]*' | head -1)
    [ -n "$url" ] || { cat "$tmp/$name/server.log"; echo "node $name did not start" >&2; exit 1; }
    for _ in $(seq 100); do curl -fs "$url/readyz" >/dev/null && break; sleep 0.1; done
    urls="${urls:+$urls,}$url"
  done
  # Every node's view holds the whole cluster before the load starts.
  for u in ${urls//,/ }; do
    for _ in $(seq 100); do
      curl -fs "$u/metrics" | grep -q "^huddle_cluster_nodes $n\$" && break; sleep 0.1
    done
  done
  echo "cluster $db: $urls"
}
load=(--rooms 10 --agents-per-room 10 --senders 10 --duration-secs "$secs")
cluster one 1 1
echo; echo "== scenario 3's load, one cluster node"
"$bin" bench --url "$urls" "${load[@]}"
cluster three 3 2
echo; echo "== scenario 3's load, three nodes (senders and streams spread over them)"
"$bin" bench --url "$urls" "${load[@]}"
