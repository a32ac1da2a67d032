#!/usr/bin/env bash
# The standard benchmark set: Palisade and its peers, driven by the same
# load generator in one run, on this machine (loopback only).
#   scripts/bench.sh            full set (a few minutes)
#   scripts/bench.sh --quick    shorter runs, fewer connections
#   OUT=dir scripts/bench.sh    where the JSON reports go (default target/bench/<time>)
# Peers: bare tokio-tungstenite (default and small buffers) and Node ws +
# jsonwebtoken + joi + sanitize-html (skipped, with a note, if node is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
[ "${1:-}" = "--quick" ] && quick=true
if $quick; then secs=3; idle=2000; fan=200; total=500; else secs=10; idle=10000; fan=500; total=2000; fi
out=${OUT:-target/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

# One process may hold just under 20,000 sockets here (hard limit).
ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet -p palisade-server -p palisade-bench -p palisade-bench-peer-bare
have_node=false
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  (cd bench/peers/node && { [ -d node_modules ] || npm ci --silent --no-audit --no-fund; }) && have_node=true
else
  echo "bench: node not found; the Node peer is skipped" >&2
fi

work=$(mktemp -d)
pid=""
stop_server() { [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap 'stop_server; rm -rf "$work"' EXIT

# Palisade generates the HS256 secret; every peer verifies with the same one.
target/release/palisade token --data "$work/pd" --sub warmup >/dev/null
secret="$work/pd/dev-secret"

# start NAME CMD... : starts a server, waits for its "listening on" line.
start() {
  local name=$1; shift
  "$@" 2>"$work/$name.log" >/dev/null &
  pid=$!
  for _ in $(seq 1 100); do
    url=$(sed -n 's|.*listening on \(ws://[0-9.:]*/ws\).*|\1|p' "$work/$name.log" | head -n1)
    [ -n "$url" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: $name did not start" >&2; cat "$work/$name.log" >&2; exit 1
}

run_set() {
  local name=$1
  # Browsers send an Origin; every server here allows this one.
  local b=(target/release/palisade-bench --url "$url" --secret-file "$secret" --origin http://localhost:3000)
  echo "== $name ($url)"
  "${b[@]}" --json "$out/$name-connect.json" connect --total "$total" --concurrency 16
  "${b[@]}" --json "$out/$name-idle.json" idle --connections "$idle" --server-pid "$pid"
  "${b[@]}" --json "$out/$name-echo.json" echo --connections 100 --seconds "$secs"
  "${b[@]}" --json "$out/$name-fanout.json" fanout --subscribers "$fan" --publishers 5 --rate 20 --seconds "$secs"
  "${b[@]}" --json "$out/$name-mixed.json" mixed --honest 50 --rate 10 --hostile 0 --seconds "$secs"
  "${b[@]}" --json "$out/$name-mixed-hostile.json" mixed --honest 50 --rate 10 --hostile 20 --hostile-rate 20 --seconds "$secs"
}

start palisade env PALISADE_LOG=error target/release/palisade serve --dev --config bench/palisade.toml --data "$work/pd"
run_set palisade; stop_server
start bare target/release/bare-peer --listen 127.0.0.1:0
run_set bare; stop_server
start bare-small target/release/bare-peer --listen 127.0.0.1:0 --small-buffers
run_set bare-small; stop_server
if $have_node; then
  start node env PEER_SECRET="$(cat "$secret")" PEER_ORIGINS=http://localhost:3000 node bench/peers/node/server.js --listen 127.0.0.1:0
  run_set node; stop_server
fi

python3 bench/summarize.py "$out" | tee "$out/summary.md"
