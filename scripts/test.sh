#!/usr/bin/env bash
# The whole test suite, on a fresh machine with only the Rust toolchain,
# Python and apt: installs what is missing, then checks formatting and lints,
# runs every Rust test, runs the README's first commands as a newcomer types
# them (a release build), and runs the Autobahn conformance suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh clone (CI) has nothing to reuse: incremental caches would only
# cost disk and time there.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0
fi

# kosoku drives the Autobahn|Testsuite cases (conformance step below).
if ! command -v kosoku >/dev/null 2>&1; then
  echo "test.sh: installing kosoku (pip)"
  python3 -m pip install --quiet --disable-pip-version-check kosoku==0.1.0
  hash -r
  command -v kosoku >/dev/null 2>&1 || export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
fi

# schemathesis checks the admin API against its OpenAPI document
# (crates/palisade-server/tests/admin_api_schemathesis.rs).
if ! command -v schemathesis >/dev/null 2>&1; then
  echo "test.sh: installing schemathesis (pip)"
  python3 -m pip install --quiet --disable-pip-version-check schemathesis==4.32.5
  hash -r
  command -v schemathesis >/dev/null 2>&1 || export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
fi

# websockets runs the naive server palisade scan is tested against
# (crates/palisade-scan/tests/naive.rs; under CI=true that test fails
# without it).
if ! python3 -c 'import websockets' >/dev/null 2>&1; then
  echo "test.sh: installing websockets (pip)"
  python3 -m pip install --quiet --disable-pip-version-check websockets==15.0.1
fi

# mmdb-writer builds the country database tests/threat_geo.rs checks geo
# rules against (under CI=true that test fails without it).
if ! python3 -c 'import mmdb_writer' >/dev/null 2>&1; then
  echo "test.sh: installing mmdb-writer (pip)"
  python3 -m pip install --quiet --disable-pip-version-check mmdb-writer==0.2.7
fi

# Node's ws runs the second naive server (crates/palisade-scan/tests/naive.rs;
# under CI=true that test fails without it); ws is pinned in its package.json.
if ! command -v node >/dev/null 2>&1; then
  echo "test.sh: installing nodejs and npm (apt)"
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -d crates/palisade-scan/tests/fixtures/node/node_modules/ws ]; then
  echo "test.sh: installing ws (npm)"
  (cd crates/palisade-scan/tests/fixtures/node && npm install --silent --no-audit --no-fund --no-package-lock)
fi

# Gateway mode's tests start a ws and a Socket.IO backend
# (crates/palisade-server/tests/gateway.rs; under CI=true they fail
# without them); the versions are pinned in the fixture's package.json.
if [ ! -d crates/palisade-server/tests/fixtures/gateway/node_modules/socket.io ]; then
  echo "test.sh: installing ws and socket.io (npm)"
  (cd crates/palisade-server/tests/fixtures/gateway && npm install --silent --no-audit --no-fund --no-package-lock)
fi

# Cluster mode's tests start their own redis-server on a free port (never
# the machine's shared one; crates/palisade-server/tests/cluster_redis.rs;
# under CI=true they fail without it).
if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: installing redis-server (apt)"
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi

# The TLS tests drive `openssl s_client` to show TLS 1.1 is refused.
if ! command -v openssl >/dev/null 2>&1; then
  echo "test.sh: installing openssl (apt)"
  apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi

# The JavaScript client's suites (crates/palisade-server/tests/js_client.rs)
# need Node >= 20 with npm (on the machine) and, for the browser suite,
# Debian's chromium; under CI=true they fail without them.
if [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: installing chromium (apt)"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d clients/js/node_modules ] && command -v npm >/dev/null 2>&1; then
  echo "test.sh: npm ci (clients/js)"
  (cd clients/js && npm ci --no-audit --no-fund --silent)
fi

echo "test.sh: cargo fmt --check"
cargo fmt --all -- --check
echo "test.sh: cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Includes the fuzz smoke: every fuzz target's body over its seed corpus,
# its regressions and 5,000 seeded mutations, on stable
# (crates/palisade-fuzz-targets/tests/smoke.rs; libFuzzer runs are
# scripts/fuzz.sh).
echo "test.sh: cargo test"
cargo test --workspace --all-targets
echo "test.sh: README commands"
scripts/readme-check.sh
echo "test.sh: conformance"
CONFORMANCE_SERVER=target/debug/palisade scripts/conformance.sh
# About 80 s plus palisade-bench's release build: Palisade under honest and
# hostile clients, failing on RSS growth or an honest p99 collapse
# (docs/BENCHMARKS.md, "Soak"; scripts/soak.sh for the 30-minute run).
echo "test.sh: soak (short)"
scripts/soak.sh --short
