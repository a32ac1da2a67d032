#!/usr/bin/env bash
# Times every view of the dashboard (the admin API reads its panels make,
# docs/OPERATIONS.md "Dashboard") while one server holds N open WebSocket
# connections, and prints a Markdown table (docs/BENCHMARKS.md, "Dashboard
# at scale").
#   scripts/dashboard-scale.sh           19,000 connections
#   scripts/dashboard-scale.sh --short   1,000 connections (a minute)
#   N=5000 RUNS=9 scripts/dashboard-scale.sh
# The server and the load generator (palisade-bench idle) are two processes:
# each may hold just under 20,000 open files here. The connections come from
# 127.0.0.1 … 127.0.0.250 and the server's per-address caps are raised, so no
# cap refuses them; they are spread over 100 rooms (idle-0 … idle-99). A few
# seconds of `palisade-bench mixed` first leave audit records and anomaly
# scores for the security-event and leader views to read.
set -euo pipefail
cd "$(dirname "$0")/.."

conns=19000
[ "${1:-}" = "--short" ] && conns=1000
conns=${N:-$conns}
runs=${RUNS:-5}
ulimit -n "$(ulimit -Hn)"

scripts/build-release.sh palisade-bench
work=$(mktemp -d)
server=""; load=""
# SIGTERM, not SIGINT: a background job of a script ignores SIGINT.
# A process ended by a signal "fails" its wait: not a reason to stop here.
stop() {
  set +e
  [ -n "$load" ] && kill "$load" 2>/dev/null && wait "$load" 2>/dev/null
  [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
  return 0
}
trap stop EXIT

key=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
admin_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/p.toml" <<EOF
[server]
listen = "127.0.0.1:0"
data_dir = "$work/pd"
[admin]
listen = "127.0.0.1:$admin_port"
api_keys = ["$key"]
[limits]
max_connections = 20000
max_pending_handshakes = 4096
[abuse]
connect_rate = "1000000/s"
max_connections_per_ip = 100000
max_connections_per_user = 100000
max_pending_per_ip = 100000
# The mixed run's hostile clients are scored (the leaders view reads the
# scores) but never banned: a ban of one of the 250 addresses would refuse
# the idle connections from it.
restrict_at = 1000000000
disconnect_at = 1000000000
ban_at = 1000000000
[rooms.lobby]
[rooms.mixed]
[rooms."idle-*"]
[roles.user]
permissions = ["chat:send"]
[events."chat.message"]
permission = "chat:send"
schema = '{"type":"object","properties":{"content":{"type":"string","minLength":1,"maxLength":2000}},"required":["content"],"additionalProperties":false}'
sanitize = { "/content" = "html" }
EOF
# The dev profile generates the signing secret the generator signs with.
target/release/palisade token --data "$work/pd" --sub warmup >/dev/null
target/release/palisade serve --dev --config "$work/p.toml" 2>"$work/server.log" >/dev/null &
server=$!
addr=""
for _ in $(seq 1 100); do
  addr=$(sed -n 's|.*listening on ws://\([^/]*\)/ws.*|\1|p' "$work/server.log" 2>/dev/null | head -1 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "dashboard-scale: the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
admin="http://127.0.0.1:$admin_port"
bench=(target/release/palisade-bench --url "ws://$addr/ws" --secret-file "$work/pd/dev-secret" --sources 250)

"${bench[@]}" mixed --honest 20 --hostile 20 --seconds 5 >/dev/null
"${bench[@]}" idle --connections "$conns" --concurrency 64 --rooms 100 --hold-seconds 600 >"$work/idle.log" 2>&1 &
load=$!

open_now() { curl -s -H "authorization: Bearer $key" "$admin/api/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["connections_open"])'; }
started=$(date +%s)
until [ "$(open_now)" -ge "$conns" ]; do
  if [ $(($(date +%s) - started)) -gt 600 ] || ! kill -0 "$load" 2>/dev/null; then
    echo "dashboard-scale: only $(open_now) of $conns connections opened" >&2; cat "$work/idle.log" >&2; exit 1
  fi
  sleep 1
done
opened_in=$(($(date +%s) - started))

# One view: PATH, timed RUNS times. Prints a table row: the view, its
# status, its size, the median and the slowest time in ms.
view() {
  local path=$1 label=$2 times=() status size
  for _ in $(seq 1 "$runs"); do
    read -r status seconds size < <(curl -s -o /dev/null -H "authorization: Bearer $key" \
      -w '%{http_code} %{time_total} %{size_download}\n' "$admin$path")
    times+=("$(python3 -c "print(round($seconds * 1000, 1))")")
  done
  local sorted; sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  local median; median=$(echo "$sorted" | sed -n "$(((runs + 1) / 2))p")
  local slowest; slowest=$(echo "$sorted" | tail -1)
  printf '| %s | `%s` | %s | %s | %s | %s |\n' "$label" "$path" "$status" "$size" "$median" "$slowest"
}

cursor=$(curl -s -H "authorization: Bearer $key" "$admin/api/connections" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["next_cursor"])')
user=$(curl -s -H "authorization: Bearer $key" "$admin/api/connections?room=idle-42" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["user"])')

echo "Dashboard views with $(open_now) connections open (opened in ${opened_in}s), $runs runs each, $(nproc) cores:"
echo
echo "| view | request | status | bytes | median ms | slowest ms |"
echo "|---|---|---|---|---|---|"
view "/api/stats" "overview"
view "/metrics" "overview (metrics)"
view "/api/connections" "connections, first page"
view "/api/connections?cursor=$cursor" "connections, next page"
view "/api/connections?limit=500" "connections, largest page"
view "/api/connections?user=$user" "connections of one user"
view "/api/connections?user=nobody" "connections of an absent user"
view "/api/connections?ip=127.0.0.42" "connections of one address"
view "/api/connections?room=idle-42" "connections in one room"
view "/api/rooms" "rooms"
view "/api/rooms?prefix=idle-4" "rooms by prefix"
view "/api/leaders" "anomaly leaders"
view "/api/bans" "bans"
view "/api/audit" "security events"
view "/api/audit?kind=schema" "security events of a kind"
view "/api/alerts" "alerts"
