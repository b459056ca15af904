#!/usr/bin/env bash
# The engine path's fuzzer for long (fuzz/fuzz_engine.cpp): mutated TorchScript files through
# `summary` in the sandbox, JOBS processes at once with their own random seeds (a run stopped by
# the watchdog sleeps rather than computes, so more processes than cores pay).
#   fuzz/run_engine.sh RUNS [BUILD_DIR]         RUNS in all, split over JOBS (default 4)
# Seeds are written by the pinned PyTorch (fuzz/make_engine_seeds.py); each process's report is in
# BUILD_DIR/fuzz_engine_runs/N.log and its findings in BUILD_DIR/fuzz_engine_runs/N/findings/.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:?usage: fuzz/run_engine.sh RUNS [BUILD_DIR]}
build=${2:-$here/build}
jobs=${JOBS:-4}
python=$(sed -n 's/^FOOTPRINT_PYTHON:[A-Z]*=//p' "$build/CMakeCache.txt")
out=$build/fuzz_engine_runs
rm -rf "$out"
mkdir -p "$out"
"$python" "$here/fuzz/make_engine_seeds.py" "$out/seeds" > /dev/null
cmake --build "$build" --target fuzz_engine > /dev/null
pids=()
for ((j = 0; j < jobs; j++)); do
  n=$(( runs / jobs + (j < runs % jobs ? 1 : 0) ))
  "$build/fuzz_engine" "$out/seeds" "$out/$j" "$n" "$((j + 1))" > "$out/$j.log" 2> "$out/$j.err" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
cat "$out"/[0-9]*.log
[ $status -eq 0 ] && echo "fuzz_engine: no finding" || echo "fuzz_engine: FINDINGS: see $out/*.err"
exit $status
