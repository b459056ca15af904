#!/usr/bin/env python3
"""What a torch-free engine would cost (docs/versions.md, "The design"): footprint.memory of a
training step against the same step on meta with nothing watching (the baseline) and under a
TorchDispatchMode that only records each op's name and its outputs' sizes, the least a capture
through torch's public Python APIs would do (design (b) of issue 35). Alternately, median of N,
in one process, with the torch of the Python that runs it.

    python bench/capture_design.py [N]
"""
import statistics
import sys
import time

import torch
import torchvision
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import footprint


class Record(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        sizes = [t.untyped_storage().nbytes() for t in tree_flatten(out)[0]
                 if isinstance(t, torch.Tensor)]
        self.ops.append((func.name(), sizes))
        return out


def step(model, x, mode=None):
    """One AdamW training step on meta (forward, loss, backward, step), as footprint runs it."""
    opt = torch.optim.AdamW(model.parameters(), foreach=True)
    if mode is not None:
        with mode:
            model(x).float().square().mean().backward()
            opt.step()
    else:
        model(x).float().square().mean().backward()
        opt.step()
    opt.zero_grad(set_to_none=True)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with torch.device("meta"):
        meta_model = torchvision.models.resnet50()
        x = torch.empty(64, 3, 224, 224)
    model = torchvision.models.resnet50()
    runs = {
        "meta step, nothing watching (baseline)": lambda: step(meta_model, x),
        "meta step under a recording TorchDispatchMode": lambda: step(meta_model, x, Record()),
        "footprint.memory (train, AdamW, one step x2 + replay)": lambda: footprint.memory(
            model, (64, 3, 224, 224), train=True, optimizer="adamw"),
    }
    for f in runs.values():
        f()  # warm: imports, kernels' first calls
    times = {k: [] for k in runs}
    for _ in range(n):
        for k, f in runs.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    base = statistics.median(times[next(iter(runs))])
    print(f"torch {torch.__version__}, resnet50 batch 64, median of {n}")
    print("| run | seconds | / baseline |\n|---|---:|---:|")
    for k, ts in times.items():
        m = statistics.median(ts)
        print(f"| {k} | {m:.3f} | {m / base:.2f} |")


if __name__ == "__main__":
    main()
