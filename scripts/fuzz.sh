#!/usr/bin/env bash
# Long libFuzzer runs of every target under fuzz/ (docs/SECURITY.md,
# "Fuzzing"). Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly
# compiler; on a stable-only machine RUSTC_BOOTSTRAP=1 lets stable rustc
# take the nightly flags cargo-fuzz passes (-Zsanitizer=address), which is
# what this script sets unless FUZZ_TOOLCHAIN names a nightly (e.g.
# FUZZ_TOOLCHAIN=nightly runs `cargo +nightly fuzz`).
#
#   scripts/fuzz.sh                 # every target, 10 minutes each
#   scripts/fuzz.sh 3600 pipeline   # one target for an hour
#   FUZZ_JOBS=2 scripts/fuzz.sh     # libFuzzer workers per target
#
# Findings land in fuzz/artifacts/<target>/; copy each into
# fuzz/regressions/<target>/ so the stable smoke
# (crates/palisade-fuzz-targets/tests/smoke.rs) replays it on every
# `cargo test`. Inputs libFuzzer adds to fuzz/corpus/ are ignored by git.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list 2>/dev/null || ls fuzz_targets | sed 's/\.rs$//')
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 2
fi
fuzz=(cargo fuzz)
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
  fuzz=(cargo "+$FUZZ_TOOLCHAIN" fuzz)
else
  export RUSTC_BOOTSTRAP=1
fi

"${fuzz[@]}" build -O
found=0
for target in "${targets[@]}"; do
  echo "fuzz.sh: $target for ${seconds}s"
  start=$(date +%s)
  # The seed corpus first, so a long run starts from every committed case;
  # -rss_limit_mb keeps a leak from taking the machine down (a finding).
  parallel=()
  if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
    parallel=(-fork="$FUZZ_JOBS")
  fi
  # A crash ends that target's run, not the script: the others still run,
  # and the exit status says something was found.
  if "${fuzz[@]}" run -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=8192 "${parallel[@]}" >"artifacts-$target.log" 2>&1; then
    grep -E '^Done [0-9]+ runs' "artifacts-$target.log" || true
  else
    echo "fuzz.sh: $target FAILED: see fuzz/artifacts/$target/ and fuzz/artifacts-$target.log" >&2
    found=1
  fi
  echo "fuzz.sh: $target done in $(( $(date +%s) - start ))s (CPU: ${FUZZ_JOBS:-1} x wall)"
done
exit "$found"
