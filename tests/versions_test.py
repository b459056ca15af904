#!/usr/bin/env python3
"""torch-versions.txt is the one place that names the supported torch releases; what is derived
from it is held to it here:
- the package's dependency (pyproject.toml takes it from tools/torch_range.py at build time) is
  the table's range, torch>=FIRST_MINOR,<LAST_MINOR+1, worked out here by hand;
- requirements.txt pins one of the table's lines (torch and its torchvision);
- the built package's footprint/_build.py (CMake writes it from the table) names the same range.

    python tests/versions_test.py [BUILD_DIR]
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")


def main():
    rows = [line.split() for line in open(os.path.join(ROOT, "torch-versions.txt"))
            if re.match(r"\d+\.\d+\.\d+ ", line)]
    minors = [tuple(int(p) for p in t.split(".")[:2]) for t, _ in rows]
    failures = []
    if minors != sorted(set(minors)):
        failures.append(f"torch-versions.txt: one line per minor release, in order: {minors}")
    low, high = minors[0], minors[-1]
    want = f"torch>={low[0]}.{low[1]},<{high[0]}.{high[1] + 1}"
    pyproject = open(os.path.join(ROOT, "pyproject.toml")).read()
    if 'dynamic = ["dependencies"]' not in pyproject or 'module = "torch_range"' not in pyproject:
        failures.append("pyproject.toml: its dependencies must come from tools/torch_range.py")
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import torch_range
    if torch_range.dynamic_metadata({}, {}) != {"dependencies": [want]}:
        failures.append(f"tools/torch_range.py: {torch_range.torch_range()!r}, expected {want!r}")
    req = open(os.path.join(ROOT, "requirements.txt")).read()
    pins = (re.search(r"^torch==(\S+)", req, re.M).group(1),
            re.search(r"^torchvision==(\S+)", req, re.M).group(1))
    if list(pins) not in [r[:2] for r in rows]:
        failures.append(f"requirements.txt pins torch {pins[0]} and torchvision {pins[1]}, which "
                        "is not a line of torch-versions.txt")
    if len(sys.argv) > 1:
        built = open(os.path.join(sys.argv[1], "python", "footprint", "_build.py")).read()
        for name, value in (("TORCH_MIN", f"{low[0]}.{low[1]}"), ("TORCH_MAX", f"{high[0]}.{high[1]}")):
            if f'{name} = "{value}"' not in built:
                failures.append(f"footprint/_build.py: {name} is not {value}")
    for f in failures:
        print(f)
    print(f"{len(rows)} releases, {want}; requirements.txt pins torch {pins[0]}: "
          f"{'FAILED' if failures else 'ok'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
