#!/usr/bin/env python3
"""Wall time and peak RSS of the `footprint params` command on the sharded LLaMA-7B checkpoint and
on LLaMA-7B as a 4.3 GB Q4_K_M-like GGUF file (sparse; issue 21's target: under 20 ms), against `cat` of
the index in the same run (process start-up and a small read: the floor any command pays).

    params_cli.py FOOTPRINT DIR [RUNS]
"""
import resource
import statistics
import subprocess
import sys
import time


def measure(cmd, runs):
    times, rss = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
        rss.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    # ru_maxrss of children is the largest of any child so far, in KiB.
    return statistics.median(times), max(times), max(rss) / 1024.0


def main():
    footprint, folder = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    index = folder + "/model.safetensors.index.json"
    base = measure(["cat", index], runs)
    fp = measure([footprint, "params", index], runs)
    print(f"cat index (floor):  median {base[0] * 1000:7.2f} ms  max {base[1] * 1000:7.2f} ms  peak RSS {base[2]:6.1f} MiB")
    print(f"footprint params:   median {fp[0] * 1000:7.2f} ms  max {fp[1] * 1000:7.2f} ms  peak RSS {fp[2]:6.1f} MiB")
    print(f"ratio footprint/floor (median wall): {fp[0] / base[0]:.2f}")
    gguf = measure([footprint, "params", folder + "/llama-7b-q4_k.gguf"], runs)
    print(f"footprint params on the 4.3 GB GGUF:  median {gguf[0] * 1000:7.2f} ms  max "
          f"{gguf[1] * 1000:7.2f} ms  peak RSS {gguf[2]:6.1f} MiB  (target < 20 ms; "
          f"ratio to the floor {gguf[0] / base[0]:.2f})")


if __name__ == "__main__":
    main()
