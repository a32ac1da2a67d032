#!/usr/bin/env bash
# Release builds for the scripts that run the server beside the bench:
#   scripts/build-release.sh palisade-bench [OTHER_PACKAGE...]
# builds target/release/palisade exactly as the README's `cargo run
# --release` does, then the packages named, each apart. One build naming
# them all would resolve features over all of them (the bench's wss://
# turns on TLS in tungstenite), compile the server a second time, and
# leave a binary that is not the one the README (and scripts/test.sh)
# runs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
for package in "$@"; do
  cargo build --release --quiet -p "$package"
done
