#!/usr/bin/env bash
# Cluster mode's commit script, measured in Redis's own CPU time per call
# (docs/BENCHMARKS.md): a redis-server of its own on a free loopback port,
# the script loaded from crates/palisade-server/src/cluster/commit.lua, and
# redis-benchmark calling it for three event shapes in one run:
#   plain   no rate, no nonce (a chat message)
#   rate    the event's rate checked (a limiter that never refuses)
#   nonce   a rate and a fresh replay nonce per call (a quiz answer)
# Each shape gets a server of its own, so `INFO commandstats` counts it alone.
#   scripts/commit-cost.sh [CALLS]     (default 100000 calls a shape)
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-100000}
command -v redis-server >/dev/null || { echo "commit-cost: redis-server not found (apt-get install redis-server)" >&2; exit 1; }
command -v redis-benchmark >/dev/null || { echo "commit-cost: redis-benchmark not found (apt-get install redis-tools)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT

now_ms=$(python3 -c 'import time; print(int(time.time() * 1000))')
hour=3600000
frame_before='{"type":"event","room":"lobby","seq":'
frame_after=',"event":"chat.message","from":{"id":"u1","name":"u1"},"data":{"content":"hello"},"ts":1}'
keys=(8 'b:rate:{u1}:e' 'b:nonce:{u1}:set' 'b:nonce:{u1}:ts' b:nonce-users b:nonce-count b:nonce-floor 'b:room:{lobby}' 'b:history:{lobby}')

printf '| shape | Redis CPU per call, µs | calls/s through 10 clients |\n|---|---|---|\n'
for shape in plain rate nonce; do
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  sha=$(redis-cli -p "$port" script load "$(cat crates/palisade-server/src/cluster/commit.lua)")
  case $shape in
    plain) rate=(0 0); nonce=('' 0 0) ;;
    # 1 µs apart with a tolerance of a day: checked and stored, never refused.
    rate) rate=(1 86400000000); nonce=('' 0 0) ;;
    # redis-benchmark puts a random number below 10^9 in place of each
    # __rand_int__: two of them make a repeat among 100,000 calls (which
    # the script refuses as a replay, failing the run) about 1 in 10^8.
    nonce) rate=(1 86400000000); nonce=("n__rand_int__-__rand_int__" "$now_ms" $((now_ms + hour))) ;;
  esac
  out=$(redis-benchmark -p "$port" -n "$calls" -c 10 -r 1000000000 -q evalsha "$sha" "${keys[@]}" \
    "${rate[@]}" 0 "${nonce[@]}" 10000000 100000000 'b:nonce:{' 50 "$hour" 86400000 \
    "$frame_before" "$frame_after" 'b:events:{lobby}' u1 | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1)
  usec=$(redis-cli -p "$port" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:.*usec_per_call=\([0-9.]*\).*/\1/p')
  failed=$(redis-cli -p "$port" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:.*failed_calls=\([0-9]*\).*/\1/p')
  [ "${failed:-0}" = 0 ] || { echo "commit-cost: $shape: $failed calls failed" >&2; exit 1; }
  # Every call must have been accepted (a refusal returns before the room).
  accepted=$(redis-cli -p "$port" eval "local r = redis.call('HMGET', KEYS[1], 'seq', 'seed') return tonumber(r[1]) - tonumber(r[2])" 1 'b:room:{lobby}')
  [ "$accepted" = "$calls" ] || { echo "commit-cost: $shape: $accepted of $calls calls accepted" >&2; exit 1; }
  printf '| %s | %s | %s |\n' "$shape" "$usec" "${out% requests per second}"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
