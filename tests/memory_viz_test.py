"""footprint memory --snapshot and --html, read back by the tools that users open them with.

The snapshot is loaded with Python's pickle and handed to PyTorch's own torch.cuda._memory_viz
(the pinned torch): trace_plot and segment_plot render it to HTML, segsum checks that every
segment's blocks add up to it, and trace() walks every event. From the loaded pickle alone, the
largest live total over the trace must equal footprint's peaks, to the byte:
  - with each allocation's block_size: the allocated peak (torch.cuda.max_memory_allocated());
  - with each allocation's size, the size asked for, which is what CUDACachingAllocator.cpp
    records in its trace: the requested peak;
and the segments at the end must add up to the reserved peak (nothing is released without a
limit, rule 6 of src/core/allocator.cpp).

The HTML page is opened in headless Chromium (Debian's chromium, which dev.sh installs): it must
render with no error, and the peak bytes and op read back from its DOM must be the JSON report's.
A screenshot of each page is saved in the output directory.

usage: memory_viz_test.py FOOTPRINT_CLI MODELS_DIR OUT_DIR
"""
import html.parser
import json
import os
import pickle
import shutil
import subprocess
import sys

import torch.cuda._memory_viz as memory_viz

CLI, MODELS, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(OUT, exist_ok=True)
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def run_footprint(name, args):
    """footprint memory ARGS --format json, with the pictures written under OUT."""
    snapshot = os.path.join(OUT, name + ".pickle")
    page = os.path.join(OUT, name + ".html")
    cmd = [CLI, "memory"] + args + ["--format", "json", "--snapshot", snapshot, "--html", page]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}")
    return json.loads(p.stdout), snapshot, page


def live_maxima(trace):
    """The largest live totals over the trace, by requested size and by block size, and the
    index of the event where the block total first peaks."""
    requested = blocks = 0
    max_requested = max_blocks = 0
    at = -1
    block_of = {}
    for i, e in enumerate(trace):
        if e["action"] == "alloc":
            requested += e["size"]
            blocks += e["block_size"]
            block_of[e["addr"]] = e["block_size"]
        elif e["action"] == "free_completed":
            requested -= e["size"]
            blocks -= block_of.pop(e["addr"])
        if blocks > max_blocks:
            max_blocks, at = blocks, i
        max_requested = max(max_requested, requested)
    return max_requested, max_blocks, at


def check_snapshot(name, report, path):
    with open(path, "rb") as f:
        data = pickle.load(f)
    trace = data["device_traces"][0]
    actions = {e["action"] for e in trace}
    check({"alloc", "free_requested", "free_completed"} <= actions and
          bool({"segment_alloc", "segment_map"} & actions),
          f"{name}: the trace has alloc, free_requested, free_completed and segment_alloc "
          f"(or, with expandable segments, segment_map) events ({sorted(actions)})")
    for plot in (memory_viz.trace_plot, memory_viz.segment_plot):
        out = plot(data)
        check(out.startswith("\n<!DOCTYPE html>") and len(out) > 1000,
              f"{name}: torch.cuda._memory_viz.{plot.__name__} renders it ({len(out)} chars)")
    try:
        summary = memory_viz.segsum(data)
        check("total_reserved" in summary, f"{name}: segsum accounts for every segment's blocks")
        check(memory_viz.trace(data).startswith("Device 0"), f"{name}: trace() reads every event")
    except Exception as e:  # noqa: BLE001  PyTorch's own reader refused the file
        check(False, f"{name}: torch.cuda._memory_viz read it: {e!r}")

    max_requested, max_blocks, at = live_maxima(trace)
    check(max_blocks == report["allocated_peak"],
          f"{name}: largest live total of blocks over the trace {max_blocks} == "
          f"footprint's allocated peak {report['allocated_peak']}")
    check(max_requested == report["requested_peak"],
          f"{name}: largest live total requested {max_requested} == requested peak "
          f"{report['requested_peak']}")
    reserved = sum(s["total_size"] for s in data["segments"])
    check(reserved == report["reserved_peak"],
          f"{name}: segments add up to {reserved} == reserved peak {report['reserved_peak']}")
    # The frames of the allocation at the peak name the op, module and phase the report names.
    frames = trace[at]["frames"]
    names = [f["name"] for f in frames]
    peak = report["peak"]
    module = peak["module"] or "model"
    check(peak["op"] in names and frames[-1]["name"] == peak["phase"] and
          frames[-1]["line"] == peak["iteration"] and
          any(f["filename"].split(" (")[0] == module for f in frames),
          f"{name}: the peak's frames {[(f['filename'], f['name']) for f in frames]} name "
          f"{peak['op']} in {module}, {peak['phase']} {peak['iteration']}")


class Dom(html.parser.HTMLParser):
    """The text and attributes of the elements with an id, and the body's attributes."""

    def __init__(self):
        super().__init__()
        self.ids, self.text, self.body, self.open = {}, {}, {}, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if "id" in a:
            self.ids[a["id"]] = a
            self.text[a["id"]] = ""
        self.open.append(a.get("id"))

    def handle_endtag(self, tag):
        if self.open:
            self.open.pop()

    def handle_data(self, data):
        for i in self.open:
            if i:
                self.text[i] += data


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("memory_viz_test: no chromium: ./dev.sh installs Debian's chromium package")


def browse(page, *args):
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-dev-shm-usage", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
           *args, "file://" + os.path.abspath(page)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def check_page(name, report, page):
    p = browse(page, "--dump-dom")
    check(p.returncode == 0, f"{name}: chromium opens the page")
    console = [line for line in p.stderr.splitlines()
               if "CONSOLE" in line or "Uncaught" in line]
    check(not console, f"{name}: no console messages or errors {console[:3]}")
    dom = Dom()
    dom.feed(p.stdout)
    check(dom.body.get("data-rendered") == "ok", f"{name}: the page's script ran to its end")
    check(dom.text.get("errors", "").strip() == "",
          f"{name}: no error on the page {dom.text.get('errors', '')!r}")
    shown = dom.ids.get("peak-bytes", {}).get("data-bytes")
    check(shown == str(report["peak"]["bytes"]),
          f"{name}: the page's peak {shown} == the JSON report's {report['peak']['bytes']}")
    op = dom.text.get("peak-op", "")
    check(op == report["peak"]["op"], f"{name}: the page's peak op {op!r} == {report['peak']['op']!r}")
    shot = os.path.join(OUT, name + ".png")
    p = browse(page, "--window-size=1240,1500", "--screenshot=" + shot)
    check(p.returncode == 0 and os.path.getsize(shot) > 10000, f"{name}: screenshot {shot}")


def model(name):
    return os.path.join(MODELS, name + ".pt")


# resnet18's AdamW training step (the issue's case), on CUDA.
report, snapshot, page = run_footprint(
    "resnet18_adamw", [model("resnet18"), "--input", "8x3x224x224", "--train",
                       "--optimizer", "adamw"])
check_snapshot("resnet18_adamw", report, snapshot)
check_page("resnet18_adamw", report, page)

# The seed's HybridNetwork and a transformer training step, the pictures the README shows; the
# transformer also with expandable segments (segment_map in the trace) and a GPU limit.
report, snapshot, page = run_footprint(
    "hybrid_network", [model("hybrid_network"), "--input", "64x1x28x28", "--train"])
check_snapshot("hybrid_network", report, snapshot)
check_page("hybrid_network", report, page)
report, snapshot, page = run_footprint(
    "transformer_train", [model("transformer"), "--input", "64x32x64", "--train", "--gpu", "t4",
                          "--alloc-conf", "expandable_segments:True"])
check_snapshot("transformer_train", report, snapshot)
check_page("transformer_train", report, page)

# A CPU run: each tensor is its own malloc, so blocks are the sizes asked for.
report, snapshot, page = run_footprint(
    "resnet18_cpu", [model("resnet18"), "--input", "2x3x224x224", "--train", "--device", "cpu"])
with open(snapshot, "rb") as f:
    data = pickle.load(f)
max_requested, max_blocks, _ = live_maxima(data["device_traces"][0])
check(max_requested == max_blocks == report["peak"]["bytes"],
      f"resnet18_cpu: largest live total {max_requested} == the CPU peak {report['peak']['bytes']}")
check(memory_viz.segment_plot(data) is not None, "resnet18_cpu: segment_plot renders it")
check_page("resnet18_cpu", report, page)

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
