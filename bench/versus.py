#!/usr/bin/env python3
"""Two footprint builds side by side, in one run, on the same commands: whole-process times of
`summary` (resnet50, training, batch 1 and 256), `memory` (batch 64, AdamW) and `fit` (24 GiB),
each command run alternately by the two builds, median of RUNS. Used to compare a build against
another LibTorch (issue 15: the 2.11 build against the last 1.13 one, no command more than 20%
slower).

    versus.py BASE_FOOTPRINT BASE_RESNET50_PT NEW_FOOTPRINT NEW_RESNET50_PT [RUNS]

Each resnet50.pt must be saved by the PyTorch its build links (a 2.11 file does not load in 1.13).
"""
import statistics
import subprocess
import sys
import time


def commands(footprint, model):
    return {
        "summary, training, batch 1": [footprint, "summary", model, "--input", "1x3x224x224", "--train"],
        "summary, training, batch 256": [footprint, "summary", model, "--input", "256x3x224x224", "--train"],
        "memory, AdamW, batch 64": [footprint, "memory", model, "--input", "64x3x224x224", "--train",
                                    "--optimizer", "adamw", "--gpu", "a100-80gb"],
        "fit, 24 GiB": [footprint, "fit", model, "--input", "3x224x224", "--train", "--gpu", "24GiB"],
    }


def seconds(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    base, base_model, new, new_model = sys.argv[1:5]
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    a, b = commands(base, base_model), commands(new, new_model)
    print(f"{'command':32} {'base (s)':>9} {'new (s)':>9} {'new/base':>9}")
    worst = 0.0
    for name in a:
        ta, tb = [], []
        for _ in range(runs):
            ta.append(seconds(a[name]))
            tb.append(seconds(b[name]))
        ma, mb = statistics.median(ta), statistics.median(tb)
        worst = max(worst, mb / ma)
        print(f"{name:32} {ma:9.3f} {mb:9.3f} {mb / ma:9.2f}")
    print(f"largest ratio: {worst:.2f}")


if __name__ == "__main__":
    main()
