#!/usr/bin/env python3
"""`footprint memory` and `footprint fit` on torchvision resnet50, whole process, against a baseline
in the same run: one real python3-torch training step of the same model on CPU at batch 8 (what
footprint spares the user: measuring by running).

    memory_cli.py FOOTPRINT MODEL_DIR [RUNS]

Targets (issue 4): the training-memory estimate at batch 64 under 2 s; fit under 5 s.
Issue 20: writing --snapshot and --html adds under 20% to that estimate's time, measured against
the same command without them, the two run in turn so that the machine's noise falls on both.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

from summary_cli import measure  # same directory: median and max wall, peak RSS


def real_step(batch):
    import torch
    import torch.nn.functional as F
    import torchvision
    torch.set_num_threads(os.cpu_count())
    model = torchvision.models.resnet50().train()
    opt = torch.optim.AdamW(model.parameters())
    x, y = torch.randn(batch, 3, 224, 224), torch.zeros(batch, dtype=torch.long)
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    return time.perf_counter() - t


def pictures_overhead(mem, runs):
    """Median wall time of `mem` alone and with --snapshot and --html, alternating."""
    plain, pictured = [], []
    with tempfile.TemporaryDirectory() as d:
        with_pictures = mem + ["--snapshot", os.path.join(d, "s.pickle"),
                               "--html", os.path.join(d, "r.html")]
        for _ in range(runs):
            for cmd, times in ((mem, plain), (with_pictures, pictured)):
                t = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                times.append(time.perf_counter() - t)
        sizes = (os.path.getsize(os.path.join(d, "s.pickle")), os.path.getsize(os.path.join(d, "r.html")))
    return statistics.median(plain), statistics.median(pictured), sizes


def main():
    footprint, models = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    model = os.path.join(models, "resnet50.pt")
    mem = [footprint, "memory", model, "--input", "64x3x224x224", "--train", "--gpu", "h100"]
    fit = [footprint, "fit", model, "--input", "3x224x224", "--train", "--gpu", "24GiB"]
    m_med, m_max, rss = measure(mem, runs)
    f_med, f_max, _ = measure(fit, runs)
    print(f"footprint memory resnet50 --train batch 64 (2 iterations, AdamW foreach, H100): "
          f"median {m_med:.3f} s  max {m_max:.3f} s  peak RSS {rss:.0f} MiB  (target < 2 s)")
    print(f"footprint fit resnet50 --train --gpu 24GiB: median {f_med:.3f} s  max {f_max:.3f} s  (target < 5 s)")
    plain, pictured, (snapshot, page) = pictures_overhead(mem, max(runs, 5))
    print(f"footprint memory resnet50 --train batch 64 with --snapshot and --html: median "
          f"{pictured:.3f} s against {plain:.3f} s without, ratio {pictured / plain:.3f} "
          f"(target < 1.2); snapshot {snapshot / 2**20:.1f} MiB, HTML {page / 2**20:.2f} MiB")
    real = real_step(8)
    print(f"python3-torch: one real CPU training step of resnet50 at batch 8: {real:.2f} s")
    print(f"ratio real step at batch 8 / footprint memory at batch 64: {real / m_med:.1f}")


if __name__ == "__main__":
    main()
