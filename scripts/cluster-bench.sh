#!/usr/bin/env bash
# Cluster mode's delivery across nodes (docs/BENCHMARKS.md, "Cluster
# mode"): 1, 2 and 3 Palisade nodes on one redis-server this script
# starts on a free loopback port, and one node on its embedded store (the
# peer: no Redis on the path), driven by the same fan-out in one run.
# Publishers connect to the first node; subscribers to the others in turn
# (to the first node too when it is alone), so with 2 and 3 nodes every
# delivery measured crossed Redis to another node.
#   scripts/cluster-bench.sh            500 subscribers, 5 × 20 msg/s (50,000 deliveries/s), 10 s a run
#   scripts/cluster-bench.sh --quick    100 subscribers, 3 s
#   OUT=dir scripts/cluster-bench.sh    where the JSON reports go (default target/bench/cluster-<time>)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
[ "${1:-}" = "--quick" ] && quick=true
if $quick; then secs=3; subs=100; else secs=10; subs=500; fi
out=${OUT:-target/bench/cluster-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)"
command -v redis-server >/dev/null || { echo "cluster-bench: redis-server not found (apt-get install redis-server)" >&2; exit 1; }

scripts/build-release.sh palisade-bench

work=$(mktemp -d)
pids=()
stop_all() {
  # TERM, not INT: a non-interactive shell starts its background jobs
  # with SIGINT ignored.
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
trap 'stop_all; kill "$redis_pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

python3 -c 'import secrets; print(secrets.token_hex(32))' >"$work/secret"
python3 -c 'import secrets; print(secrets.token_hex(32))' >"$work/audit-key"
# One node's config: the bench's, with this node's id and data, the
# shared key, and the cluster's store.
node_config() {
  local id=$1 prefix=$2
  sed -e "/^\[server\]/a node_id = \"$id\"" -e "/^\[server\]/a data_dir = \"$work/$prefix-$id\"" bench/palisade.toml
  cat <<EOF
[origins]
allow = ["http://localhost:3000"]
[audit]
checkpoint_key_file = "$work/audit-key"
[[auth.keys]]
id = "bench"
algorithm = "HS256"
secret_file = "$work/secret"
EOF
  [ "$prefix" = "run0" ] && return 0
  cat <<EOF
[store]
backend = "redis"
redis_url = "redis://127.0.0.1:$port/"
prefix = "$prefix"
timeout = "1s"
EOF
}

# start_node ID PREFIX: starts a node; its ws:// URL is left in $url (not
# printed: a command substitution would lose the pid).
start_node() {
  local id=$1 prefix=$2 log="$work/$2-$1.log"
  node_config "$id" "$prefix" >"$work/$prefix-$id.toml"
  PALISADE_LOG=error target/release/palisade serve --config "$work/$prefix-$id.toml" 2>"$log" >/dev/null &
  pids+=($!)
  for _ in $(seq 1 100); do
    url=$(sed -n 's|.*listening on \(ws://[0-9.:]*/ws\).*|\1|p' "$log" | head -n1)
    [ -n "$url" ] && return 0
    sleep 0.1
  done
  echo "cluster-bench: node $id did not start" >&2; cat "$log" >&2; exit 1
}

# Run 0: one node on its embedded store; runs 1-3: that many on Redis.
for run in 0 1 2 3; do
  n=$((run > 0 ? run : 1))
  # A prefix per run: each starts on a clean slate in the same Redis.
  urls=()
  for id in $(seq 1 "$n"); do start_node "n$id" "run$run"; urls+=("$url"); done
  if [ "$n" -eq 1 ]; then subs_on=${urls[0]}; else subs_on=$(IFS=,; echo "${urls[*]:1}"); fi
  echo "== run $run, $n node(s): publishers on ${urls[0]}, subscribers on $subs_on"
  target/release/palisade-bench --url "${urls[0]}" --secret-file "$work/secret" --origin http://localhost:3000 \
    --json "$out/cluster-$run.json" fanout --subscribers "$subs" --publishers 5 --rate 20 --seconds "$secs" \
    --subscriber-urls "$subs_on"
  stop_all
done

redis_cpu=$(redis-cli -p "$port" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ {t += $2} END {printf "%.2f s", t}')
python3 - "$out" "$redis_cpu" >"$out/summary.md" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| nodes | store | subscribers on | published | delivered/s | delivery ratio | p50 ms | p90 ms | p99 ms | max ms |")
print("|---|---|---|---|---|---|---|---|---|---|")
for run in (0, 1, 2, 3):
    r = json.loads((out / f"cluster-{run}.json").read_text())
    v, lat = r["values"], r["latency"]["publish_to_receive"]
    n = max(run, 1)
    store = "embedded (no Redis)" if run == 0 else "Redis"
    where = "the publishers' node" if n == 1 else f"{n - 1} other node(s)"
    ms = [f"{lat[k] / 1000:.2f}" for k in ("p50_us", "p90_us", "p99_us", "max_us")]
    print(f"| {n} | {store} | {where} | {v['published']:,.0f} | {v['delivered_per_sec']:,.0f} | {v['delivery_ratio']:.3f} | " + " | ".join(ms) + " |")
print(f"\nredis-server CPU time over the three Redis runs: {sys.argv[2]}")
PY
cat "$out/summary.md"
