#!/usr/bin/env python3
"""Reads the op traces that measure.py recorded on a GPU (tests/reference/cuda/*-traces-*.jsonl.gz)
and prints one run's ops: the allocated bytes before each, the peak inside it and after it, and
the allocator's events it caused, so that a difference between footprint and the GPU can be traced
to an op on a machine with no GPU.

    python bench/cuda/trace_view.py tests/reference/cuda/h200-vision model=resnet50 batch=64 \\
        mode=train optimizer=adamw impl=fused precision=fp32 [--all] [--phase iter1.backward]

Without --all it prints only the ops that allocate, free or hold a transient (a peak above both
before and after). Each event is +size (alloc), -size (free), S+size / S-size (a segment mapped or
released by the caching allocator).
"""
import glob
import gzip
import json
import sys

CODES = {1: "+", 2: "-", 3: "S+", 4: "S-", 5: "OOM ", 6: "map+", 7: "map-"}


def find(prefix, want):
    for path in sorted(glob.glob(prefix + "-traces-*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            for line in f:
                rec = json.loads(line)
                spec = rec["spec"]
                if all(str(spec.get(k)) == v for k, v in want.items()):
                    return rec
    return None


def main():
    prefix = sys.argv[1]
    want = dict(a.split("=", 1) for a in sys.argv[2:] if "=" in a)
    show_all = "--all" in sys.argv
    phase = sys.argv[sys.argv.index("--phase") + 1] if "--phase" in sys.argv else None
    rec = find(prefix, want)
    if rec is None:
        sys.exit(f"no traced run matches {want} in {prefix}-traces-*.jsonl.gz")
    t = rec["trace"]
    print(json.dumps(rec["spec"]))
    by_op = {}
    for op, code, size in t["events"]:
        by_op.setdefault(op, []).append(CODES.get(code, "?") + f"{size:,}")
    marks = {first: name for name, first in t["phases"]}
    current = None
    for i, (name, before, peak, after) in enumerate(t["ops"]):
        current = marks.get(i, current)
        if phase and current != phase:
            continue
        if i in marks:
            print(f"--- {marks[i]}")
        events = by_op.get(i, [])
        transient = peak - max(before, after)
        if show_all or events or transient > 0:
            print(f"{i:6d} {t['names'][name]:<45} before {before:>14,} peak {peak:>14,} after {after:>14,}"
                  f"{f'  transient {transient:,}' if transient > 0 else ''}  {' '.join(events)}")
    outside = by_op.get(-1, [])
    if outside:
        print(f"outside any op: {' '.join(outside)}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # | head
        sys.stderr.close()
