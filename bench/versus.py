#!/usr/bin/env python3
"""Two footprint builds side by side, in one run, on the same commands: whole-process times of
`params` and `summary` (resnet50; training, batch 1 and 256), `memory` (batch 64, AdamW), `fit` (24 GiB) and
`llm` (Llama-2-70B on the C++ path, Llama-7B on the python path), and the in-process time of
footprint.memory (resnet50, batch 64, AdamW) from each build's Python package (BUILD/python, beside
its footprint), each run alternately by the two builds, median of RUNS. Used to compare a build
against another LibTorch (issue 15: the 2.11 build against the last 1.13 one, no command more than
20% slower), or against the commit before a change (issue 34, the planner: none more than 5%).

    versus.py BASE_FOOTPRINT BASE_RESNET50_PT NEW_FOOTPRINT NEW_RESNET50_PT [RUNS]

Run from the source tree (examples/llm). Each resnet50.pt must be saved by the PyTorch its build
links (a 2.11 file does not load in 1.13); a build without a Python package skips that row.
"""
import os
import statistics
import subprocess
import sys
import time

# footprint.memory in process, after the imports and one warm-up call: median of three.
IN_PROCESS = """
import statistics, sys, time, torchvision, footprint
m = torchvision.models.resnet50()
run = lambda: footprint.memory(m, (64, 3, 224, 224), train=True, optimizer="adamw", gpu="h100")
run()
times = []
for _ in range(3):
    t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
print(statistics.median(times))
"""


def commands(footprint, model):
    return {
        "params": [footprint, "params", model],
        "summary, training, batch 1": [footprint, "summary", model, "--input", "1x3x224x224", "--train"],
        "summary, training, batch 256": [footprint, "summary", model, "--input", "256x3x224x224", "--train"],
        "memory, AdamW, batch 64": [footprint, "memory", model, "--input", "64x3x224x224", "--train",
                                    "--optimizer", "adamw", "--gpu", "a100-80gb"],
        "fit, 24 GiB": [footprint, "fit", model, "--input", "3x224x224", "--train", "--gpu", "24GiB"],
        "llm 70B, ZeRO-3 x TP 8, C++": [footprint, "llm", "examples/llm/llama-2-70b.json", "--train",
                                       "--shard", "zero3", "--gpus", "64", "--tp", "8",
                                       "--checkpointing", "--gpu", "h100"],
        "llm 7B, python path": [footprint, "llm", "examples/llm/llama-7b.json", "--path", "python",
                                "--train", "--context", "512", "--gpu", "h100"],
        "footprint.memory, in process": ("python", os.path.join(os.path.dirname(footprint), "python")),
    }


def seconds(cmd):
    if isinstance(cmd, tuple):  # the Python package's own time, in its process
        env = dict(os.environ, PYTHONPATH=cmd[1])
        out = subprocess.run([sys.executable, "-c", IN_PROCESS], check=True, env=env,
                             capture_output=True, text=True).stdout
        return float(out.split()[-1])
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
