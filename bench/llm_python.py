#!/usr/bin/env python3
"""footprint.llm's python path (transformers' own code on meta) against the C++ path, in the same
run: the Llama-2-70B training estimate (bf16-amp AdamW, one H100) by `footprint llm --path cpp`
(the baseline: the whole process) and by `footprint.llm(..., train=True)` (the call, in a process
that has imported torch, transformers and footprint: a user's notebook), and DeepSeek-V3 at its
full 671 B (prefill and decode of 2,048 tokens on an H200) by footprint.llm, with the peak RSS of
a fresh process.

    PYTHONPATH=build/python python bench/llm_python.py FOOTPRINT SOURCE_DIR [RUNS]

Targets (issue 22): Llama-2-70B under 1 s on the C++ path and under 3 s on the python path;
DeepSeek-V3 under 5 s with under 1 GiB of RSS.
"""
import os
import resource
import statistics
import subprocess
import sys
import time

CHILD = """
import resource, sys, time
import footprint
config, train, context, gpu = sys.argv[1], sys.argv[2] == "train", int(sys.argv[3]), sys.argv[4]
times = []
for _ in range(int(sys.argv[5])):
    t = time.perf_counter()
    r = footprint.llm(config, context=context, train=train, gpu=gpu)
    times.append(time.perf_counter() - t)
print(min(times), max(times), r.parameters, r.memory.allocated_peak,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def python_path(config, train, context, gpu, runs):
    out = subprocess.run([sys.executable, "-c", CHILD, config, "train" if train else "infer",
                          str(context), gpu, str(runs)], check=True, capture_output=True,
                         text=True).stdout.split()
    best, worst, params, peak, rss = out[-5:]
    return float(best), float(worst), int(params), int(peak), float(rss)


def main():
    footprint, source = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    llama = os.path.join(source, "examples", "llm", "llama-2-70b.json")
    deepseek = os.path.join(source, "examples", "llm", "deepseek-v3.json")
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([footprint, "llm", llama, "--path", "cpp", "--train", "--gpu", "h100",
                        "--context", "2048"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    cpp = statistics.median(times)
    cpp_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    best, worst, params, peak, rss = python_path(llama, True, 2048, "h100", runs)
    print(f"Llama-2-70B training estimate, C++ path (whole process): {cpp:.2f} s median, "
          f"{cpp_rss:.0f} MiB RSS")
    print(f"Llama-2-70B training estimate, python path (the call): {best:.2f} s best, "
          f"{worst:.2f} s worst, {params:,} parameters, peak {peak / 2**30:.2f} GiB, "
          f"{rss:.0f} MiB RSS; {best / cpp:.2f}x the C++ path")
    best, worst, params, peak, rss = python_path(deepseek, False, 2048, "h200", runs)
    print(f"DeepSeek-V3 prefill and decode, python path (the call): {best:.2f} s best, "
          f"{worst:.2f} s worst, {params:,} parameters, peak {peak / 2**30:.1f} GiB, "
          f"{rss:.0f} MiB RSS (the whole process)")


if __name__ == "__main__":
    main()
