#!/usr/bin/env bash
# Gateway mode's cost (docs/BENCHMARKS.md, "gateway mode"), in one run: the
# round-trip latency (p50/p99) of an echo through a Node `ws` backend,
# directly and through Palisade in gateway mode, and the memory of a held
# connection pair (client↔Palisade↔backend) in Palisade against a
# connection held directly by the backend. Loopback only; about a minute.
#   scripts/gateway-bench.sh [round-trips] [connections]   (default 5000 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
trips=${1:-5000}
conns=${2:-1000}
fixture=crates/palisade-server/tests/fixtures/gateway
ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet -p palisade-server --bin palisade
[ -d "$fixture/node_modules/ws" ] || (cd "$fixture" && npm install --silent --no-audit --no-fund --no-package-lock)

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# The backend: the tests' echo server, recording nothing.
(cd "$fixture" && exec env GATEWAY_SECRET=bench-identity-secret-0123456789abcdef RECORD=/dev/null node backend.js ws >"$work/backend.out") &
backend=$!; pids+=("$backend")
for _ in $(seq 1 100); do grep -q '^PORT' "$work/backend.out" 2>/dev/null && break; sleep 0.1; done
bport=$(sed -n 's/^PORT //p' "$work/backend.out")

# The standard bench config (bench/palisade.toml: the shipped chat.message
# with its schema and sanitizers, and guard limits no run reaches), in
# gateway mode in front of the backend.
{ cat bench/palisade.toml
  printf '\n[gateway]\nupstream = "ws://127.0.0.1:%s/"\nidentity_secret = "bench-identity-secret-0123456789abcdef"\n' "$bport"
} >"$work/palisade.toml"
pcli=(--dev --config "$work/palisade.toml" --data "$work/pd")
PALISADE_LOG=error target/release/palisade serve "${pcli[@]}" 2>"$work/palisade.log" >/dev/null &
palisade=$!; pids+=("$palisade")
purl=""
for _ in $(seq 1 100); do
  purl=$(sed -n 's|.*listening on \(ws://[0-9.:]*/ws\).*|\1|p' "$work/palisade.log" | head -n1)
  [ -n "$purl" ] && break; sleep 0.1
done
[ -n "$purl" ] || { echo "gateway-bench: palisade did not start" >&2; cat "$work/palisade.log" >&2; exit 1; }
token=$(target/release/palisade token "${pcli[@]}" --sub bench)

client() { (cd "$fixture" && node bench-client.js "$@"); }
echo "== round trips ($trips, one connection, a chat.message: schema, html and profanity sanitizers)"
direct=$(client latency "ws://127.0.0.1:$bport/" "$token" "$trips")
gateway=$(client latency "$purl" "$token" "$trips")
echo "direct:  $direct"
echo "gateway: $gateway"

# hold URL PID: RSS of PID before and with $conns connections held, KiB.
hold() {
  local before after
  before=$(rss_kib "$2")
  coproc HOLD { cd "$fixture" && exec node bench-client.js hold "$1" "$token" "$conns"; }
  read -r line <&"${HOLD[0]}"
  [ "$line" = OPEN ] || { echo "hold: $line" >&2; exit 1; }
  sleep 1
  after=$(rss_kib "$2")
  eval "exec ${HOLD[1]}>&-"
  wait "$HOLD_PID" 2>/dev/null || true
  echo "$before $after"
}
echo "== memory ($conns idle connections)"
read -r b0 b1 < <(hold "ws://127.0.0.1:$bport/" "$backend")
echo "backend, direct connections: $(( (b1 - b0) * 1024 / conns )) bytes each (RSS $b0 → $b1 KiB)"
read -r p0 p1 < <(hold "$purl" "$palisade")
echo "palisade, gateway pairs:     $(( (p1 - p0) * 1024 / conns )) bytes each (RSS $p0 → $p1 KiB)"
