#!/usr/bin/env bash
# Runs the benchmarks on a built tree: ./bench/run.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
py=${FOOTPRINT_PYTHON:-python3}  # the pinned torch (dev.sh bench passes its virtual environment)
data=$build/bench/llama7b
"$py" "$here/tests/gen/make_llama7b.py" "$data"
echo "== params on sharded LLaMA-7B (13.5 GB of sparse shards, $(du -sh "$data" | cut -f1) on disk)"
"$build/bench/params_bench" "$data" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
"$py" "$here/bench/params_cli.py" "$build/footprint" "$data" 30
echo "== summary of resnet50 in training mode"
"$py" "$here/tests/gen/make_models.py" "$build/tests/models" > /dev/null
"$py" "$here/bench/summary_cli.py" "$build/footprint" "$build/tests/models" 5
echo "== memory and fit of resnet50 in training"
"$py" "$here/bench/memory_cli.py" "$build/footprint" "$build/tests/models" 5
echo "== llm on Llama-2-70B"
"$py" "$here/bench/llm_cli.py" "$build/footprint" "$here" 5
