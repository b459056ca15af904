#!/usr/bin/env python3
"""Holds footprint's CPU memory estimates against real runs: tests/reference/cpu/torch-1.13.json,
measured by bench/cuda/measure.py with python3-torch's profiler as ../shared/MEASUREMENT.md says
(one thread; inference, and training steps with SGD, momentum, Adam and AdamW at batch 1 and 8).

    /usr/bin/python3 tests/memory_cpu_test.py FOOTPRINT OUTDIR [--table docs-table.md]

Exports each measured model to TorchScript from the same code (OUTDIR), runs
`footprint memory --device cpu` for every measured run, and fails when an estimate of the
allocated peak is further from the measurement than TOLERANCE: the largest error reached so far,
which only ever tightens (docs/memory.md has the table).
"""
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.environ.get("FOOTPRINT_CPU_REFERENCE", os.path.join(HERE, "reference", "cpu", "torch-1.13.json"))
TOLERANCE = 0.03
# Runs whose error is known and explained (docs/memory.md, "Where the CPU estimate is off"), held
# to the error they have now so that none gets worse: (model, mode, batch) -> |error| allowed.
KNOWN = {
    # TorchScript frees bottleneck_output at its last use; eager Python keeps the local through
    # conv2 (-3.74% and -10.95% measured).
    ("densenet121", "inference", 1): 0.038,
    ("densenet121", "inference", 8): 0.110,
    # oneDNN's depthwise 7x7 backward scratchpad, not modelled (-3.82 to -6.57%, -2.29 to -2.79%).
    ("convnext_tiny", "train", 1): 0.066,
    # Small oneDNN convolutions' blocked copies in backward, under-counted (-15.42 to -18.28%).
    ("hybrid_network", "train", 8): 0.183,
}


def main():
    footprint, outdir = sys.argv[1], sys.argv[2]
    table_out = sys.argv[sys.argv.index("--table") + 1] if "--table" in sys.argv else None
    ref = json.load(open(REFERENCE))
    models = sorted({r["spec"]["model"] for r in ref["runs"]})
    export = os.path.join(outdir, "cpu_models")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "bench", "cuda", "measure.py"), "--device", "cpu",
                    "--models", ",".join(models), "--export", export, "--export-only"], check=True)
    shapes = {"hybrid_network": "1x28x28"}
    rows, failures = [], []
    for run in ref["runs"]:
        spec = run["spec"]
        if not run["identical"]:
            failures.append(f"{spec}: the measurement's repeats differ")
        measured = run["repeats"][0]["allocated_peak"]
        shape = f'{spec["batch"]}x{shapes.get(spec["model"], "3x224x224")}'
        cmd = [footprint, "memory", os.path.join(export, spec["model"] + ".pt"), "--input", shape,
               "--device", "cpu", "--format", "json", "--precision", spec.get("precision", "fp32")]
        if spec["mode"] == "train":
            cmd += ["--train", "--optimizer", spec["optimizer"], "--impl", "for-loop"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            failures.append(f"{' '.join(cmd)}: exit {out.returncode}: {out.stderr.strip()}")
            continue
        estimate = json.loads(out.stdout)["allocated_peak"]
        error = (estimate - measured) / measured
        rows.append((spec, measured, estimate, error))
        allowed = KNOWN.get((spec["model"], spec["mode"], spec["batch"], spec.get("precision", "fp32")),
                            KNOWN.get((spec["model"], spec["mode"], spec["batch"]), TOLERANCE))
        if abs(error) > allowed:
            failures.append(f"{spec['model']} {spec['mode']} {spec['optimizer']} batch {spec['batch']}: "
                            f"estimate {estimate}, measured {measured}, error {error:+.2%}")
    lines = ["| model | run | precision | batch | measured | footprint | error |",
             "|---|---|---|---:|---:|---:|---:|"]
    for spec, measured, estimate, error in rows:
        run = "inference" if spec["mode"] == "inference" else spec["optimizer"]
        lines.append(f"| {spec['model']} | {run} | {spec.get('precision', 'fp32')} | {spec['batch']} | "
                     f"{measured:,} | {estimate:,} | {error:+.2%} |")
    errors = [abs(r[3]) for r in rows]
    if errors:
        lines.append("")
        lines.append(f"{len(errors)} runs: median |error| {statistics.median(errors):.2%}, max {max(errors):.2%}")
    print("\n".join(lines))
    if table_out:
        with open(table_out, "w") as f:
            f.write("\n".join(lines) + "\n")
    if failures:
        print("\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
