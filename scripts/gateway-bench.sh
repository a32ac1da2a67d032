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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The backend: the tests' echo server, recording nothing.
(cd "$fixture" && exec env GATEWAY_SECRET=bench-identity-secret-0123456789abcdef RECORD=/dev/null node backend.js ws >"$work/backend.out") &
backend=$!; pids+=("$backend")
for _ in $(seq 1 100); do grep -q '^PORT' "$work/backend.out" 2>/dev/null && break; sleep 0.1; done
bport=$(sed -n 's/^PORT //p' "$work/backend.out")

pport=$(free_port)
cat >"$work/palisade.toml" <<TOML
[server]
listen = "127.0.0.1:$pport"
[gateway]
upstream = "ws://127.0.0.1:$bport/"
identity_secret = "bench-identity-secret-0123456789abcdef"
[abuse]
connect_rate = "100000/s"
connection_rate = "100000/s"
user_rate = "100000/s"
ip_rate = "100000/s"
max_connections_per_ip = 100000
max_connections_per_user = 100000
max_pending_per_ip = 100000
[events."chat"]
max_bytes = 512
schema = '{"type":"object","properties":{"content":{"type":"string","maxLength":400}},"required":["content"],"additionalProperties":false}'
sanitize = { "/content" = "html" }
TOML
pcli=(--dev --config "$work/palisade.toml" --data "$work/pd")
PALISADE_LOG=error target/release/palisade serve "${pcli[@]}" 2>"$work/palisade.log" >/dev/null &
palisade=$!; pids+=("$palisade")
for _ in $(seq 1 100); do grep -q 'listening on' "$work/palisade.log" 2>/dev/null && break; sleep 0.1; done
token=$(target/release/palisade token "${pcli[@]}" --sub bench)

client() { (cd "$fixture" && node bench-client.js "$@"); }
echo "== round trips ($trips, one connection, a chat message with a schema and an html sanitizer)"
direct=$(client latency "ws://127.0.0.1:$bport/" "$token" "$trips")
gateway=$(client latency "ws://127.0.0.1:$pport/ws" "$token" "$trips")
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
  exec {HOLD[1]}>&-
  wait "$HOLD_PID" 2>/dev/null || true
  echo "$before $after"
}
echo "== memory ($conns idle connections)"
read -r b0 b1 < <(hold "ws://127.0.0.1:$bport/" "$backend")
echo "backend, direct connections: $(( (b1 - b0) * 1024 / conns )) bytes each (RSS $b0 → $b1 KiB)"
read -r p0 p1 < <(hold "ws://127.0.0.1:$pport/ws" "$palisade")
echo "palisade, gateway pairs:     $(( (p1 - p0) * 1024 / conns )) bytes each (RSS $p0 → $p1 KiB)"
