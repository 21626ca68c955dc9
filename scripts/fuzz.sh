#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]
#
# Defaults: 60 seconds for each target (`cargo fuzz list`; the bodies are in
# fuzz/targets.rs). Needs cargo-fuzz (installed if
# missing). Not part of the test suite: tests/fuzz_corpus.rs replays the
# committed inputs instead.
#
# Toolchain: the stable compiler with RUSTC_BOOTSTRAP=1 (which allows the
# sanitizer's -Z flags), not nightly: dfdx 0.13's build script switches on
# its unstable `nightly` feature whenever the compiler calls itself nightly,
# and that feature no longer compiles on current nightlies.
#
# Each target starts from its seeds (fuzz/seeds/<target>/) and a working
# corpus that persists between runs (fuzz/corpus/<target>/, not committed).
# A crash stops that target, leaves the input in fuzz/artifacts/<target>/ and
# is reported at the end: copy it to fuzz/regressions/<target>/ (so that
# `cargo test` replays it forever), fix the parser, and rerun.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")

export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

mkdir -p fuzz/logs
cargo fuzz build -O || exit 1

failed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "== $t: ${seconds}s"
  # rss_limit: a parser that allocates from an unchecked length trips it.
  cargo fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
    >"fuzz/logs/$t.log" 2>&1
  status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  echo "{\"target\": \"$t\", \"seconds\": $seconds, \"executions\": ${runs:-0}, \"corpus_files\": $corpus, \"exit\": $status}"
  if [ $status -ne 0 ]; then
    failed+=("$t")
    grep -m 5 -E 'panicked|ERROR|Test unit written' "fuzz/logs/$t.log"
  fi
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/logs/)"
  exit 1
fi
echo "no crashes"
