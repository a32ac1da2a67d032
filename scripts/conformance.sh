#!/usr/bin/env bash
# Runs the Autobahn|Testsuite cases (via kosoku) against the conformance
# echo endpoint and compares the outcome with conformance/expected-results.json.
#   scripts/conformance.sh            run and compare
#   scripts/conformance.sh --update   run and rewrite the expectations
# CONFORMANCE_SERVER=path runs that palisade binary instead of building one
# (scripts/test.sh passes the one `cargo test --workspace` just built: a
# `-p palisade-server` build resolves features for that crate alone and
# would compile the server a second time).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kosoku >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    echo "conformance: kosoku is not installed (scripts/test.sh installs it)" >&2
    exit 1
  fi
  echo "conformance: SKIPPED: kosoku is not installed (pip install kosoku)" >&2
  exit 0
fi

server=${CONFORMANCE_SERVER:-}
if [ -z "$server" ]; then
  cargo build --quiet -p palisade-server --bin palisade
  server=target/debug/palisade
fi
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

PALISADE_LOG=warn "$server" serve --dev --config conformance/palisade.toml --data "$work/data" \
  2>"$work/server.log" &
server_pid=$!

# The server prints its address once bound (port 0 picks a free one).
addr=""
for _ in $(seq 1 100); do
  addr=$(sed -n 's|.*listening on ws://\([0-9.:]*\)/ws.*|\1|p' "$work/server.log" | head -n1)
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "conformance: server did not start" >&2; cat "$work/server.log" >&2; exit 1; }

cases=(-i '1.*' -i '2.*' -i '3.*' -i '4.*' -i '5.*' -i '6.*' -i '7.*' -i '9.*' -i '10.*')
timeout 900 kosoku "${cases[@]}" -p 4 -o "$work/reports" "$addr/conformance/echo" >"$work/kosoku.log" 2>&1 || {
  echo "conformance: kosoku failed" >&2; tail -n 20 "$work/kosoku.log" >&2; exit 1;
}
python3 conformance/compare.py "$work/reports" conformance/expected-results.json "$@"
