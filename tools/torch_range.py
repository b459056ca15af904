"""scikit-build-core's in-tree metadata provider (pyproject.toml, [[tool.dynamic-metadata]]):
the package's torch dependency, the range of torch-versions.txt (its first and last lines, by minor
release), so that the table stays the one place that names the supported releases."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))


def torch_range():
    """'torch>=2.9,<2.16' for a table from 2.9.x to 2.15.x."""
    with open(os.path.join(HERE, "..", "torch-versions.txt"), encoding="utf-8") as f:
        minors = [tuple(int(p) for p in m.groups())
                  for m in (re.match(r"(\d+)\.(\d+)\.\d+\s", line) for line in f) if m]
    (lo_major, lo_minor), (hi_major, hi_minor) = minors[0], minors[-1]
    return f"torch>={lo_major}.{lo_minor},<{hi_major}.{hi_minor + 1}"


def dynamic_metadata(settings, project):
    return {"dependencies": [torch_range()]}
