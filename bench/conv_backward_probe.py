#!/usr/bin/env python3
"""What a CPU convolution's backward holds beyond its results, for writing docs/memory.md's kernel
rules: the profiler's [memory] events of one `y.backward(g)` at one thread (docs/measurement.md's
CPU protocol), summed in time order. Prints the peak, what is left after (the gradients), the
transient (peak - after) and the sizes a rule is made of: the weight, the output, the input, and
one sample's unfolded columns (C x kernel volume x output positions, fp32).

    python bench/conv_backward_probe.py 3,768,16,16,0,224          Conv2d(3, 768, 16, stride 16), 1x3x224x224
    python bench/conv_backward_probe.py 512,512,3,1,1,1x4x4 --batch 8 --grad-input
    python bench/conv_backward_probe.py 3,64,7,2,3,224 --batch 1,2,4

Each shape is C,OC,KERNEL,STRIDE,PADDING,SPATIAL, SPATIAL being 224 (2-D, square) or DxHxW (3-D).
The rule for ViT's patchifying stem (4 x weight + one sample's input + 256) was found this way.
"""
import argparse

import torch
from torch.profiler import ProfilerActivity, profile


def probe(C, OC, k, s, p, spatial, N, grad_input):
    dims = len(spatial)
    conv = (torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d)(C, OC, k, s, p)
    x = torch.randn(N, C, *spatial, requires_grad=grad_input)
    y = conv(x)
    g = torch.randn_like(y)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        y.backward(g)
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    positions = y[0, 0].numel()
    return {"peak": peak, "after": live, "transient": peak - live,
            "weight": conv.weight.numel() * 4, "output": y.numel() * 4, "input": x.numel() * 4,
            "columns_per_sample": C * k ** dims * positions * 4}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shapes", nargs="+", help="C,OC,KERNEL,STRIDE,PADDING,SPATIAL")
    ap.add_argument("--batch", default="1", help="comma-separated batch sizes")
    ap.add_argument("--grad-input", action="store_true", help="the input requires grad too")
    a = ap.parse_args()
    torch.set_num_threads(1)
    for shape in a.shapes:
        C, OC, k, s, p, sp = shape.split(",")
        spatial = [int(v) for v in sp.split("x")] if "x" in sp else [int(sp)] * 2
        for N in (int(b) for b in a.batch.split(",")):
            r = probe(int(C), int(OC), int(k), int(s), int(p), spatial, N, a.grad_input)
            print(f"{shape} batch {N}: " + ", ".join(f"{key} {v:,}" for key, v in r.items()) +
                  f"; transient / weight {r['transient'] / r['weight']:.3f}")


if __name__ == "__main__":
    main()
