#!/usr/bin/env python3
"""`footprint summary` of torchvision resnet50 in training mode (forward, loss, backward on the
meta device), whole process, at batch 1 and batch 256; and in the same run, a real CPU forward of
the same model at batch 256 in python3-torch (eval, no_grad), the cost footprint avoids.

    summary_cli.py FOOTPRINT MODEL_DIR [RUNS]

MODEL_DIR holds resnet50.pt (tests/gen/make_models.py writes it; ./dev.sh bench makes it).
"""
import os
import resource
import statistics
import subprocess
import sys
import time


def measure(cmd, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def real_forward(batch):
    import torch
    import torchvision
    torch.set_num_threads(os.cpu_count())
    model = torchvision.models.resnet50().eval()
    x = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        t = time.perf_counter()
        model(x)
        return time.perf_counter() - t, torch.get_num_threads()


def main():
    footprint, models = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    model = os.path.join(models, "resnet50.pt")
    results = {}
    for batch in (1, 256):
        cmd = [footprint, "summary", model, "--input", f"{batch}x3x224x224", "--train"]
        results[batch] = measure(cmd, runs)
        med, worst, rss = results[batch]
        print(f"footprint summary --train, batch {batch:3}: median {med:6.3f} s  max {worst:6.3f} s  peak RSS {rss:6.1f} MiB")
    real, threads = real_forward(256)
    print(f"python3-torch CPU forward only, batch 256 ({threads} threads): {real:6.2f} s")
    print(f"ratio batch 256 / batch 1 (median wall): {results[256][0] / results[1][0]:.2f}")
    print(f"ratio real CPU forward / footprint training summary at batch 256: {real / results[256][0]:.1f}")


if __name__ == "__main__":
    main()
