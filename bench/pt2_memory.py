"""footprint.memory on a torch.export program read by footprint's own reader (footprint.program,
what `footprint memory|fit FILE.pt2` run) against the same call on torch.export.load(...).module()
(the path it replaced, which unpickles the archive's weights and sample inputs and evals its
symbolic sizes: run here on a file this script made itself). Same process, alternately, best of N;
the ratio is what to compare. Where both run, the peaks must be equal, and are checked.

usage: PYTHONPATH=build/python python bench/pt2_memory.py [N]
"""
import os
import sys
import tempfile
import time
import warnings

import torch
import torchvision

import footprint

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5
warnings.simplefilter("ignore")
work = tempfile.mkdtemp()
cases = []
for name, model, shape in (("resnet50", torchvision.models.resnet50(), (8, 3, 224, 224)),
                           ("convnext_tiny", torchvision.models.convnext_tiny(), (8, 3, 224, 224))):
    path = os.path.join(work, name + ".pt2")
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.save(torch.export.export(model.train(), (torch.randn(2, *shape[1:]),),
                                          dynamic_shapes=({0: batch},)), path)
    cases.append((name, path, shape))

print(f"| program | call | torch.export.load (s) | footprint.program (s) | ratio |")
print("|---|---|---:|---:|---:|")
for name, path, shape in cases:
    for label, kw in (("inference", dict(train=False)),
                      ("AdamW step", dict(train=True, optimizer="adamw"))):
        best, peaks, failed = {}, {}, {}
        for _ in range(N):
            for which in ("load", "program"):
                start = time.perf_counter()
                try:
                    m = footprint.program(path) if which == "program" else \
                        torch.export.load(path).module()
                    r = footprint.memory(m, input_size=shape, gpu="h100", **kw)
                except footprint.ModelError as e:
                    failed[which] = str(e).split(": ")[-1][:70]
                    continue
                t = time.perf_counter() - start
                best[which] = min(best.get(which, t), t)
                peaks[which] = (r.allocated_peak, r.reserved_peak)
        assert "program" in best, failed
        if "load" in best:
            assert peaks["load"] == peaks["program"], (name, label, peaks)
            print(f"| {name} | {label} | {best['load']:.3f} | {best['program']:.3f} | "
                  f"{best['program'] / best['load']:.2f} |", flush=True)
        else:
            print(f"| {name} | {label} | fails: {failed['load']} | {best['program']:.3f} | |",
                  flush=True)
