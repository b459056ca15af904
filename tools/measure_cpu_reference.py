#!/usr/bin/env python3
"""Measures the CPU reference runs (tests/reference/cpu/torch-MINOR.json) with the torch of the
Python that runs this script, as tests/reference/cpu/torch-2.11.json was measured: the eighteen
models of bench/cuda/measure.py's CPU plan, then resnet18 under bf16 autocast, one thread, each
measured once, merged into one file in that order. MEASUREMENT.md's protocol repeats each run;
on the CPU the allocations are deterministic (all 190 runs of torch-2.11.json repeated to the
byte, which tests/memory_accuracy_test.py checks), so one pass halves the half hour it takes.

    python tools/measure_cpu_reference.py OUT.json
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MEASURE = os.path.join(HERE, "..", "bench", "cuda", "measure.py")
REFERENCE = os.path.join(HERE, "..", "tests", "reference", "cpu", "torch-2.11.json")
# oneDNN held to AVX-512 with bf16, the instruction set of the CPU that measured torch-2.11.json,
# whose kernels footprint's CPU rules follow. On a CPU with AMX, oneDNN's bf16 convolutions take
# other kernels: resnet18's bf16-autocast inference at batch 8 then peaks at 92,576,000 B against
# 80,514,944 B, with every release from 2.9 to 2.15 (docs/versions.md). fp32 runs do not change.
ENV = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX512_CORE_BF16")


def main():
    out = sys.argv[1]
    reference = json.load(open(REFERENCE))
    # The same models as the 2.11 reference, in its order (its first command names them).
    models = reference["commands"][0].split("# for each of ")[1].split()
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for name, extra in (("models", ["--models", ",".join(models)]),
                            ("bf16", ["--models", "resnet18", "--precisions", "bf16-amp"])):
            path = os.path.join(tmp, name + ".json")
            subprocess.run([sys.executable, MEASURE, "--device", "cpu", "--repeat", "1",
                            "--out", path] + extra,
                           check=True, stdout=subprocess.DEVNULL, env=ENV)
            parts.append(json.load(open(path)))
    merged = {"environment": parts[0]["environment"], "skipped": parts[0]["skipped"],
              "runs": parts[0]["runs"] + parts[1]["runs"], "exports": {},
              "commands": [f"python tools/measure_cpu_reference.py {os.path.basename(out)}",
                           "ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 bench/cuda/measure.py --device cpu --repeat 1 "
                           "--models " + ",".join(models),
                           "ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 bench/cuda/measure.py --device cpu "
                           "--repeat 1 --models resnet18 --precisions bf16-amp"]}
    json.dump(merged, open(out, "w"), indent=1)
    print(f"{out}: {len(merged['runs'])} runs with torch {merged['environment']['torch']}")


if __name__ == "__main__":
    main()
