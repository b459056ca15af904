#!/usr/bin/env bash
# Installs footprint as the README says into a fresh virtual environment that already holds torch
# TORCH (a line of torch-versions.txt) with its torchvision, timm and transformers, and checks the
# installed package from outside the source tree (docs/versions.md):
#   - installing footprint leaves that torch in place (pip list before and after);
#   - every process exits with status 0, and valgrind finds no error in footprint's own code at
#     import, run or exit;
#   - always: footprint.memory of resnet18 and `footprint memory` of a TorchScript file;
#   - --ci and full (the default): the Python accuracy tests (tests/python/test_accuracy.py and
#     test_cpu_kernels.py: real CPU runs with this torch, in the same process);
#   - full: the CPU reference runs re-measured with this torch (tools/measure_cpu_reference.py,
#     written to OUT/torch-MINOR.json) against `footprint memory --device cpu`
#     (tests/memory_accuracy_test.py).
# .ci/run runs it with --ci on the newest release in torch-versions.txt.
# Times and results go to OUT/summary.json (default OUT: /tmp/footprint-torch-TORCH).
#
#   tools/torch_version_check.sh 2.15.0 [--smoke|--ci] [--reference FILE] [--out DIR]
# --reference FILE: hold `footprint memory --device cpu` to FILE instead of re-measuring (a file
# this script wrote before for the same torch).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
TORCH=${1:?usage: tools/torch_version_check.sh TORCH [--smoke] [--reference FILE] [--out DIR]}
shift
MODE=full
REFERENCE=""
OUT=/tmp/footprint-torch-$TORCH
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) MODE=smoke ;;
    --ci) MODE=ci ;;
    --reference) REFERENCE=$(realpath "$2"); shift ;;
    --out) OUT=$2; shift ;;
    *) echo "torch_version_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
VISION=$(awk -v t="$TORCH" '$1 == t { print $2 }' "$SRC/torch-versions.txt")
if [ -z "$VISION" ]; then
  echo "torch_version_check.sh: torch $TORCH is not in torch-versions.txt" >&2
  exit 2
fi
rm -rf "$OUT"
mkdir -p "$OUT/work"
VENV=$OUT/venv
PY=$VENV/bin/python
now() { date +%s.%N; }
seconds() { python3 -c "print(round($2 - $1, 1))"; }

# 1. The user's environment: this torch and its libraries, installed first (requirements.txt's
#    pins for the rest, torch and torchvision from torch-versions.txt).
t0=$(now)
/usr/bin/python3 -m venv "$VENV"
sed -e "s/^torch==.*/torch==$TORCH/" -e "s/^torchvision==.*/torchvision==$VISION/" \
  "$SRC/requirements.txt" | grep -v -E "^(nanobind|scikit-build-core)==" > "$OUT/requirements.txt"
"$PY" -m pip install -q -r "$OUT/requirements.txt"
t1=$(now)
"$PY" -m pip list --format freeze > "$OUT/pip-before.txt"

# 2. footprint, as the README's Python section says: the build tools, then the package built
#    against the torch that is there.
"$PY" -m pip install -q scikit-build-core==1.1.2 nanobind==3.1.0
t2=$(now)
"$PY" -m pip install -q --no-cache-dir --no-build-isolation "$SRC" > "$OUT/install.log" 2>&1 || {
  tail -30 "$OUT/install.log"; exit 1; }
t3=$(now)
"$PY" -m pip list --format freeze > "$OUT/pip-after.txt"
# Only footprint and the two build tools may be new; nothing may change version.
changed=$(diff <(grep -v -i -E "^(footprint|scikit.build.core|nanobind|pathspec|packaging)==" "$OUT/pip-before.txt") \
               <(grep -v -i -E "^(footprint|scikit.build.core|nanobind|pathspec|packaging)==" "$OUT/pip-after.txt") || true)
if [ -n "$changed" ]; then
  echo "torch_version_check.sh: installing footprint changed the environment:"
  echo "$changed"
  exit 1
fi
grep -i "^torch==" "$OUT/pip-after.txt"

# 3. The installed package, from a directory outside the source tree (nothing there to import).
cd "$OUT/work"
status=0
"$PY" -c "import footprint, json; print(json.dumps(footprint.versions()._data))" > "$OUT/versions.json"
"$VENV/bin/footprint" --version
cat > smoke.py <<'EOF'
import torch, torchvision, footprint
r = footprint.memory(torchvision.models.resnet18(), (8, 3, 224, 224), train=True, optimizer="adamw",
                     gpu="h100")
print("resnet18 AdamW batch 8 on an H100:", r.allocated_peak, "B;", r.to_dict()["rules"])
EOF
"$PY" smoke.py
"$PY" -c "
import torch, torchvision
m = torch.jit.script(torchvision.models.resnet18())
m.save('resnet18.pt')"
"$VENV/bin/footprint" memory resnet18.pt --input 8x3x224x224 --train --gpu h100 | tail -4

# valgrind on import, a run and exit. An error counts when footprint's own code makes it: its
# innermost frame is in footprint's objects (libfootprint.so, footprint/_core), or it is an invalid
# read, write or free with footprint's code anywhere on the stack. Leaks at exit are not errors
# (CPython leaves its objects to the OS), and what CPython, the loader and LibTorch report in their
# own code is theirs: summarized, not counted.
t4=$(now)
if [ "$MODE" != smoke ]; then
PYTHONMALLOC=malloc valgrind --tool=memcheck --leak-check=no --track-origins=no --xml=yes \
  --xml-file="$OUT/valgrind.xml" "$PY" -c "
import torch, footprint
r = footprint.memory(torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)),
                     (4, 64), train=True, optimizer='adamw')
print('valgrind run:', r.allocated_peak)" > "$OUT/valgrind.out" 2>&1 || {
  echo "the process under valgrind exited with status $?"; status=1; }
python3 "$SRC/tools/valgrind_errors.py" "$OUT/valgrind.xml" || status=1
fi
t5=$(now)
# The speed bar: footprint.memory of resnet50's AdamW step at batch 64 in process, against the
# bare meta step in the same run (bench/capture_design.py, median of 5).
"$PY" "$SRC/bench/capture_design.py" 5 > "$OUT/speed.md" 2>/dev/null || status=1
cat "$OUT/speed.md"

# 4. Accuracy with this torch (--ci, full): in-process real runs, then (full) the CPU reference.
if [ "$MODE" != smoke ]; then
  t6=$(now)
  "$PY" -m pytest -q -s -p no:cacheprovider -o console_output_style=classic -rx \
    "$SRC/tests/python/test_accuracy.py" "$SRC/tests/python/test_cpu_kernels.py" \
    --rootdir "$OUT/work" 2>&1 | tee "$OUT/pytest.log" | tail -5 || status=1
  grep -q -E "[0-9]+ passed" "$OUT/pytest.log" && ! grep -q -E "[0-9]+ failed" "$OUT/pytest.log" || status=1
  t7=$(now)
fi
if [ "$MODE" = full ]; then
  minor=${TORCH%.*}
  if [ -z "$REFERENCE" ]; then
    REFERENCE=$OUT/torch-$minor.json
    "$PY" "$SRC/tools/measure_cpu_reference.py" "$REFERENCE"
  fi
  t8=$(now)
  FOOTPRINT_CPU_REFERENCE=$REFERENCE "$PY" "$SRC/tests/memory_accuracy_test.py" \
    "$VENV/bin/footprint" "$OUT/work/memory_accuracy" --table "$OUT/cpu-table.md" \
    > "$OUT/memory_accuracy.log" 2>&1 || status=1
  tail -3 "$OUT/memory_accuracy.log"
  t9=$(now)
fi

python3 - "$OUT/summary.json" <<EOF
import json, sys
s = {"torch": "$TORCH", "torchvision": "$VISION", "mode": "$MODE", "passed": $status == 0,
     "venv_seconds": $(seconds "$t0" "$t1"), "build_and_install_seconds": $(seconds "$t2" "$t3"),
     "valgrind_seconds": $(seconds "$t4" "$t5"),
     "memory_resnet50_seconds": float([l for l in open("$OUT/speed.md") if "footprint.memory" in l][0].split("|")[2])}
if "$MODE" != "smoke":
    import re
    s["python_accuracy_seconds"] = $(seconds "${t6:-0}" "${t7:-0}")
    errors = [float(e) for e in re.findall(r"real [0-9,]+ error ([+-][0-9.]+)%", open("$OUT/pytest.log").read())]
    s["python_accuracy_runs"] = len(errors)
    s["python_accuracy_max_error_percent"] = max(map(abs, errors), default=None)
if "$MODE" == "full":
    s.update({"reference_seconds": $(seconds "${t7:-0}" "${t8:-0}"),
              "cpu_accuracy_seconds": $(seconds "${t8:-0}" "${t9:-0}"), "reference": "$REFERENCE"})
json.dump(s, open(sys.argv[1], "w"), indent=1)
print(json.dumps(s))
EOF
exit $status
