#!/usr/bin/env bash
# Instructions per authenticated handshake, under callgrind (repeatable
# whatever else the machine is doing, unlike wall time), for Palisade
# binaries and the bare floor measured in the same run:
#   scripts/callgrind-connect.sh target/release/palisade /tmp/palisade-before
#   BARE=target/release/bare-peer scripts/callgrind-connect.sh target/release/palisade
# Each server gets a warm-up of WARM handshakes, then its counters are
# zeroed and TOTAL more are counted (`palisade-bench connect`, 16 in
# flight, as scripts/bench.sh runs it), so start-up (the dev users'
# password hashing, loading the revocation list) drops out. Palisade runs
# on a data directory prepared as scripts/bench.sh prepares it (1,000
# revoked token ids, 100 revoked users). The profiles stay in OUT (default
# target/callgrind-connect) for callgrind_annotate.
# Needs valgrind and release builds of palisade-bench (and bare-peer).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/listening.sh
[ $# -ge 1 ] || [ -n "${BARE:-}" ] || { echo "usage: [BARE=bare-peer] $0 SERVER_BINARY..." >&2; exit 2; }
warm=${WARM:-200}
total=${TOTAL:-2000}
out=${OUT:-target/callgrind-connect}
mkdir -p "$out"
cargo build --release --quiet -p palisade-bench
# Set here, not on the command: valgrind must start the server itself.
export PALISADE_LOG=error
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

# A revocation list of bench.sh's size, made once with the first binary
# and copied for each server (one CLI call per entry).
prepare() {
  local bin=$1
  "$bin" token --data "$work/pd" --sub warmup >/dev/null
  local pcli=(--config bench/palisade.toml --data "$work/pd")
  seq 1 1000 | xargs -P 4 -I{} "$bin" revoke token "t_bench{}" "${pcli[@]}" >/dev/null
  seq 1 100 | xargs -P 4 -I{} "$bin" revoke user "gone{}" "${pcli[@]}" >/dev/null
}

# measure NAME SECRET CMD...: starts CMD under callgrind, warms it up,
# counts TOTAL handshakes, prints the instructions per handshake.
measure() {
  local name=$1 secret=$2; shift 2
  local log="$work/$name.log" url="" cg="$out/$name.cg"
  rm -f "$cg" "$cg".*
  valgrind --tool=callgrind --callgrind-out-file="$cg" "$@" 2>"$log" >/dev/null &
  pid=$!
  url=$(listening_url "$log" "callgrind-connect: $name") || exit 1
  local b=(target/release/palisade-bench --url "$url" --secret-file "$secret" --origin http://localhost:3000)
  "${b[@]}" connect --total "$warm" --concurrency 16 >/dev/null
  callgrind_control -z "$pid" >/dev/null
  "${b[@]}" --json "$work/$name.json" connect --total "$total" --concurrency 16 >/dev/null
  # Let the last connections' tasks finish their closes before the dump.
  sleep 1
  callgrind_control -d "$pid" >/dev/null
  kill -INT "$pid"; wait "$pid" || true
  pid=""
  local ir done_
  ir=$(cat "$cg".* | awk '/^summary:/ {s += $2} END {print s}')
  done_=$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['values']['handshakes']))" "$work/$name.json")
  echo "$name: $(( ir / done_ )) instructions per handshake ($done_ handshakes; profile $cg.*)"
}

if [ $# -ge 1 ]; then
  prepare "$1"
  for bin in "$@"; do
    rm -rf "$work/run" && cp -a "$work/pd" "$work/run"
    measure "$(basename "$bin")" "$work/run/dev-secret" \
      "$bin" serve --dev --config bench/palisade.toml --data "$work/run"
  done
fi
if [ -n "${BARE:-}" ]; then
  [ -f "$work/pd/dev-secret" ] || { mkdir -p "$work/pd"; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/pd/dev-secret"; }
  measure bare "$work/pd/dev-secret" "$BARE" --listen 127.0.0.1:0 --small-buffers
fi
