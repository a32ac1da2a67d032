#!/usr/bin/env bash
# Instructions per echo round trip, under callgrind (repeatable whatever
# else the machine is doing, unlike wall time), for one or more server
# binaries measured in the same run:
#   scripts/callgrind-echo.sh target/release/palisade /tmp/palisade-before
# Each binary serves two echo runs (10 connections, 3 s and 9 s, on a fresh
# server each); the marginal cost is (Ir_9 - Ir_3) / (acks_9 - acks_3), so
# start-up (the dev users' password hashing) cancels out.
# Needs valgrind and a release build of palisade-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/listening.sh
[ $# -ge 1 ] || { echo "usage: $0 SERVER_BINARY..." >&2; exit 2; }
cargo build --release --quiet -p palisade-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run BIN SECONDS: prints "Ir acks" for one echo run on a fresh server.
run() {
  local bin=$1 secs=$2 dir pid url=""
  dir=$(mktemp -d -p "$work")
  "$bin" token --data "$dir/pd" --sub warmup >/dev/null
  PALISADE_LOG=error valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
    "$bin" serve --dev --config bench/palisade.toml --data "$dir/pd" 2>"$dir/log" >/dev/null &
  pid=$!
  url=$(listening_url "$dir/log" "callgrind-echo: $bin") || exit 1
  target/release/palisade-bench --url "$url" --secret-file "$dir/pd/dev-secret" --origin http://localhost:3000 \
    --json "$dir/echo.json" echo --connections 10 --seconds "$secs" >/dev/null
  kill -INT "$pid"; wait "$pid" || true
  local ir acks
  ir=$(grep -m1 '^summary:' "$dir/cg.out" | awk '{print $2}')
  acks=$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['values']['acks_per_sec'] * $secs))" "$dir/echo.json")
  echo "$ir $acks"
}

for bin in "$@"; do
  read -r ir3 acks3 < <(run "$bin" 3)
  read -r ir9 acks9 < <(run "$bin" 9)
  echo "$bin: $(( (ir9 - ir3) / (acks9 - acks3) )) instructions per round trip ($acks3 and $acks9 acks)"
done
