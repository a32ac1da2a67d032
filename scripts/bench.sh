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
if $quick; then secs=3; idle=2000; fan=200; total=500; logins=200; hist_rooms=20; else secs=10; idle=10000; fan=500; total=2000; logins=1000; hist_rooms=100; fi
# Palisade's revocation list during its runs: the handshake checks every
# token against it (docs/BENCHMARKS.md). Each entry is one CLI call (one
# SQLite open), four at a time: about 3 s for the list below.
revoked_tokens=1000; revoked_users=100
out=${OUT:-target/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

# One process may hold just under 20,000 sockets here (hard limit).
ulimit -n "$(ulimit -Hn)"

scripts/build-release.sh palisade-bench palisade-bench-peer-bare
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

# Palisade's data: the CLI on the data dir and config `serve` uses.
pcli=(--config bench/palisade.toml --data "$work/pd")
# A revocation list of a realistic size, so the handshakes are measured
# with the check looking tokens up in it. No bench token is on it: the
# generator's tokens have ids b0, b1, … and users c*, idle*, echo*, ….
seq 1 "$revoked_tokens" | xargs -P 4 -I{} target/release/palisade revoke token "t_bench{}" "${pcli[@]}" >/dev/null
seq 1 "$revoked_users" | xargs -P 4 -I{} target/release/palisade revoke user "gone{}" "${pcli[@]}" >/dev/null
listed=$(target/release/palisade revoke list "${pcli[@]}" | wc -l)
[ "$listed" -eq $((revoked_tokens + revoked_users)) ] || { echo "bench: $listed revocations, expected $((revoked_tokens + revoked_users))" >&2; exit 1; }
# The login scenario's user (Palisade only: the peers have no login).
pw=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
printf '%s\n' "$pw" >"$work/bench-password"
printf '%s\n' "$pw" | target/release/palisade user add bench --role user "${pcli[@]}" >/dev/null

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

start palisade env PALISADE_LOG=error target/release/palisade serve --dev "${pcli[@]}"
run_set palisade
# Logins: one at a time (the latency a user sees on a quiet server), then
# 16 at once (a crowd; login.max_concurrent_hashes = 4 lets 4 hash at a
# time). Each phase is bounded by --seconds.
lb=(target/release/palisade-bench --url "$url" --origin http://localhost:3000)
lp=(login --user bench --password-file "$work/bench-password" --seconds 60)
"${lb[@]}" --json "$out/palisade-login-serial.json" "${lp[@]}" --total $((logins / 10)) --concurrency 1
"${lb[@]}" --json "$out/palisade-login.json" "${lp[@]}" --total "$logins" --concurrency 16
stop_server
# Rooms' kept events (bench/palisade.toml keeps 100 in hist-*): the memory
# of a fresh server (one that already held 10,000 connections has freed
# memory to reuse) for 100 events of 100 characters in each room.
start palisade-history env PALISADE_LOG=error target/release/palisade serve --dev "${pcli[@]}"
target/release/palisade-bench --url "$url" --secret-file "$secret" --origin http://localhost:3000 \
  --json "$out/palisade-history.json" history --rooms "$hist_rooms" --events 100 --server-pid "$pid"
stop_server
start bare target/release/bare-peer --listen 127.0.0.1:0
run_set bare; stop_server
start bare-small target/release/bare-peer --listen 127.0.0.1:0 --small-buffers
run_set bare-small; stop_server
if $have_node; then
  start node env PEER_SECRET="$(cat "$secret")" PEER_ORIGINS=http://localhost:3000 node bench/peers/node/server.js --listen 127.0.0.1:0
  run_set node; stop_server
fi

python3 bench/summarize.py "$out" >"$out/summary.md"
# Login has no peer to compare with, so it gets its own table here.
python3 - "$out" "$revoked_tokens" "$revoked_users" >>"$out/summary.md" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"Palisade ran with {sys.argv[2]} revoked token ids and {sys.argv[3]} revoked users (every handshake checks the list).\n")
print("### login (Palisade only)\n")
print("| run | request | per s | p50 ms | p90 ms | p99 ms | max ms | ok | errors |")
print("|---|---|---|---|---|---|---|---|---|")
for name in ("login-serial", "login"):
    path = out / f"palisade-{name}.json"
    if not path.exists():
        continue
    r = json.loads(path.read_text())
    run = f"concurrency {r['params']['concurrency']}"
    for kind, plural in (("login", "logins"), ("refresh", "refreshes")):
        lat, v = r["latency"][kind], r["values"]
        ms = [f"{lat[k] / 1000:.1f}" for k in ("p50_us", "p90_us", "p99_us", "max_us")]
        print(f"| {run} | {kind} | {v[plural + '_per_sec']:,.1f} | " + " | ".join(ms) + f" | {v[plural]:,.0f} | {v[kind + '_errors']:,.0f} |")
print()
path = out / "palisade-history.json"
if path.exists():
    r = json.loads(path.read_text())
    p, v = r["params"], r["values"]
    print("### history (Palisade only)\n")
    print("| rooms × events | event frame, bytes | RSS grown, KiB | KiB per room | bytes per kept event |")
    print("|---|---|---|---|---|")
    grown = v.get("server_rss_after_kib", 0) - v.get("server_rss_before_kib", 0)
    print(f"| {p['rooms']} × {p['events']} | {v['event_frame_bytes']:.0f} | {grown:,.0f} | {v.get('server_kib_per_room', 0):.1f} | {v.get('server_bytes_per_event', 0):.0f} |")
    print()
PY
cat "$out/summary.md"
