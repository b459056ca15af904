#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, AddressSanitizer and UndefinedBehaviorSanitizer, and
# runs each for a while from the tests' hand-built files (fuzz/make_seeds.cpp):
#   fuzz/run.sh SECONDS [BUILD_DIR]      each target for SECONDS, two at a time (2 cores)
#   RUNS=10000000 fuzz/run.sh 0          each target for that many executions instead
#   TARGETS="gguf onnx" fuzz/run.sh 60   only these targets
# The corpus grows in BUILD_DIR/corpus/<target>; a finding is written to BUILD_DIR/artifacts/ and
# makes the script fail. Every finding becomes a case in tests/hostile.cpp once fixed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
build=${2:-$here/build-fuzz}
targets=(${TARGETS:-safetensors zip checkpoint pickle hf_config shape gguf onnx pt2})

cmake -S "$here" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DFOOTPRINT_BUILD_FUZZERS=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j 2
rm -rf "$build/seeds"
mkdir -p "$build/seeds" "$build/artifacts"
"$build/fuzz/make_seeds" "$build/seeds"

limit=(-max_total_time="$secs")
[ -n "${RUNS:-}" ] && limit=(-runs="$RUNS")
fuzz() {
  local t=$1
  mkdir -p "$build/corpus/$t"
  "$build/fuzz/fuzz_$t" "$build/corpus/$t" "$build/seeds/$t" "${limit[@]}" -max_len=65536 \
    -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
    > "$build/fuzz_$t.log" 2>&1
}
status=0
pids=()
for t in "${targets[@]}"; do
  fuzz "$t" &
  pids+=($!)
  if [ ${#pids[@]} -eq 2 ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[1]}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done

for t in "${targets[@]}"; do
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/fuzz_$t.log" | grep -o '[0-9]*$' || echo "?")
  secs_run=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$build/fuzz_$t.log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "?")
  corpus=$(ls "$build/corpus/$t" | wc -l)
  if grep -qE 'ERROR: (AddressSanitizer|libFuzzer|UndefinedBehaviorSanitizer)|runtime error:' "$build/fuzz_$t.log"; then
    echo "fuzz_$t: FINDING after $runs executions; see $build/fuzz_$t.log and $build/artifacts/"
    status=1
  else
    echo "fuzz_$t: $runs executions in ${secs_run}s, no finding (corpus: $corpus inputs)"
  fi
done
exit $status
