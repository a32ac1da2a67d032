#!/usr/bin/env bash
# Runs the README's first commands the way a newcomer types them, from the
# repo root: the server command (the first line of the README's first code
# block), then the token command of the tour (`export TOKEN=$(…)`), then the
# tour client (`python3 examples/…`), and stops the server with SIGTERM.
# The commands are read from README.md, so the README cannot drift from what
# works. Any failure (including a missing Python package) exits non-zero.
#
# The server listens on 127.0.0.1:8080, as the README says: if that port is
# taken, the check fails and says so.
#
# READMECHECK_START_TIMEOUT (seconds, default 1200) bounds the release build
# plus the start: a cold release build took over 15 min on 2 busy cores.
set -euo pipefail
cd "$(dirname "$0")/.."

start_timeout="${READMECHECK_START_TIMEOUT:-1200}"
websockets_version="15.0.1"
health_url="http://127.0.0.1:8080/healthz"

fail() {
  echo "readme-check: FAIL: $*" >&2
  exit 1
}

# --- the commands, from README.md -------------------------------------------
serve_cmd=$(awk '/^```/ { if (inblock) exit; inblock = 1; next } inblock { print; exit }' README.md |
  sed -e 's/[[:space:]]*#.*$//' -e 's/[[:space:]]*$//')
token_cmd=$(grep -o 'TOKEN=\$(cargo run[^)]*)' README.md | head -n 1 | sed -e 's/^TOKEN=\$(//' -e 's/)$//')
tour_cmd=$(grep -o 'python3 examples/[A-Za-z0-9_./-]*' README.md | head -n 1)
[[ "$serve_cmd" == "cargo run"* ]] || fail "README's first code block does not start with a 'cargo run' command (found: '$serve_cmd')"
[[ "$token_cmd" == "cargo run"*" token "* ]] || fail "README has no 'export TOKEN=\$(cargo run … token …)' line"
[[ -n "$tour_cmd" ]] || fail "README names no 'python3 examples/…' tour client"
echo "readme-check: server:  $serve_cmd"
echo "readme-check: token:   $token_cmd"
echo "readme-check: client:  $tour_cmd"

# --- what the tour client needs ------------------------------------------------
if ! python3 -c 'import websockets' 2>/dev/null; then
  echo "readme-check: installing websockets==$websockets_version (pip), as the README tells a newcomer"
  python3 -m pip install --quiet --disable-pip-version-check "websockets==$websockets_version" ||
    fail "cannot install websockets, which the README's tour client needs"
  python3 -c 'import websockets' || fail "websockets installed but not importable"
fi

healthy() {
  python3 - "$health_url" <<'EOF' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 and b'"ok"' in r.read() else 1)
EOF
}

if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
  fail "something already listens on 127.0.0.1:8080, where the README's server must start; stop it and re-run"
fi
# The admin listener's default port (docs/CONFIG.md §17d): the server binds
# it too and would not start.
if (exec 3<>/dev/tcp/127.0.0.1/8081) 2>/dev/null; then
  fail "something already listens on 127.0.0.1:8081, where the README's server starts its admin listener; stop it and re-run"
fi

# --- start the server ---------------------------------------------------------
created_data=0
[[ -e palisade-data ]] || created_data=1
log=$(mktemp)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    sleep 1
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -f "$log"
  if [[ "$created_data" == 1 ]]; then rm -rf palisade-data; fi
}
trap cleanup EXIT

started=$(date +%s)
# `cargo run` replaces itself with the binary (exec), so this pid is the
# server's once it runs.
bash -c "exec $serve_cmd" >"$log" 2>&1 </dev/null &
server_pid=$!
until healthy; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -n 30 "$log" >&2
    fail "'$serve_cmd' exited before $health_url answered"
  fi
  if (($(date +%s) - started > start_timeout)); then
    tail -n 30 "$log" >&2
    fail "'$serve_cmd' did not answer on $health_url within ${start_timeout}s"
  fi
  sleep 2
done
echo "readme-check: server healthy after $(($(date +%s) - started))s (build and start)"

# --- mint a token and take the tour -------------------------------------------
token=$(bash -c "$token_cmd") || fail "'$token_cmd' failed"
[[ "$token" =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || fail "'$token_cmd' did not print one JWT: '$token'"

tour_out=$(TOKEN="$token" timeout 60 bash -c "$tour_cmd" 2>&1) || {
  echo "$tour_out" >&2
  fail "'$tour_cmd' failed"
}
for expected in '"type":"welcome"' '"type":"ack","id":"1"' '"event":"chat.message"' '"code":"unknown_event"'; do
  [[ "$tour_out" == *"$expected"* ]] || {
    echo "$tour_out" >&2
    fail "the tour's replies lack $expected"
  }
done
echo "readme-check: the tour got welcome, acks, the event and the refusal"

# --- stop it ------------------------------------------------------------------
kill -TERM "$server_pid"
for _ in $(seq 1 100); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
  fail "the server did not exit within 10s of SIGTERM"
fi
status=0
wait "$server_pid" || status=$?
server_pid=""
((status == 0)) || {
  tail -n 30 "$log" >&2
  fail "the server exited with status $status after SIGTERM"
}
echo "readme-check: passed (server stopped cleanly on SIGTERM)"
