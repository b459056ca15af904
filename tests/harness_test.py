#!/usr/bin/env python3
"""Tests bench/cuda/measure.py on CPU, as issue 7 asks where no GPU is lent: it runs the harness's
quick plan and checks its measurements against hand calculations and its own repeats.

    python tests/harness_test.py OUTDIR
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    out = os.path.join(sys.argv[1], "harness_cpu.json")
    os.makedirs(sys.argv[1], exist_ok=True)
    subprocess.run([sys.executable, os.path.join(HERE, "..", "bench", "cuda", "measure.py"), "--device", "cpu",
                    "--models", "linear_256x512,hybrid_network", "--quick", "--out", out,
                    "--export", os.path.join(sys.argv[1], "harness_models")], check=True)
    report = json.load(open(out))
    failures = []

    def check(what, got, want):
        if got != want:
            failures.append(f"{what}: got {got}, expected {want}")

    runs = {(r["spec"]["model"], r["spec"]["mode"], r["spec"]["optimizer"]): r for r in report["runs"]}
    check("runs", len(report["runs"]), 6)  # 2 models x (inference + SGD + AdamW)
    for key, r in runs.items():
        check(f"{key} repeats identical", r["identical"], True)
        check(f"{key} repeats", len(r["repeats"]), 2)

    # Linear(256, 512, bias=False), batch 2, inference: live before = weight 512*256*4 = 524,288
    # + input 2*256*4 = 2,048 + labels 2*8 = 16 -> 526,352; the forward adds the output 2*512*4 =
    # 4,096 -> peak 530,448.
    inf = runs[("linear_256x512", "inference", None)]["repeats"][0]["phases"]["inference"]
    check("linear inference allocated_before", inf["allocated_before"], 526352)
    check("linear inference allocated_peak", inf["allocated_peak"], 530448)

    # HybridNetwork, batch 2: 33,762 parameters x 4 = 135,048 + input 2*1*28*28*4 = 6,272 + labels 16.
    hyb = runs[("hybrid_network", "train", "momentum")]["repeats"][0]["phases"]
    check("hybrid live before training", hyb["iter1.zero_grad"]["allocated_before"], 141336)
    # SGD with momentum creates one buffer per parameter inside iteration 1's step:
    # the step ends 135,048 bytes higher than it began.
    step = hyb["iter1.step"]
    check("SGD momentum buffers", step["allocated_after"] - step["allocated_before"], 135048)
    # AdamW creates exp_avg and exp_avg_sq (2 x 135,048) plus one 4-byte float32 step per
    # parameter tensor (30 tensors: 120 bytes).
    adam = runs[("hybrid_network", "train", "adamw")]["repeats"][0]["phases"]["iter1.step"]
    check("AdamW state", adam["allocated_after"] - adam["allocated_before"], 2 * 135048 + 30 * 4)

    check("export", report["exports"]["hybrid_network"]["method"], "script")
    check("torch version recorded", "torch" in report["environment"], True)
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print(f"harness on CPU: {len(report['runs'])} runs, all checks passed")


if __name__ == "__main__":
    main()
