#!/usr/bin/env python3
"""footprint's Python package beside the tools a user would pick instead, on the same models and
against the same real CPU runs (tests/python/real.py: MEASUREMENT.md's profiler protocol, one
thread), and its speed against each in the same run.

    PYTHONPATH=build/python python bench/python_versus.py [--out bench/python_versus.md]

Per model, an AdamW training step (two iterations, the for-loop: PyTorch's CPU default) and
inference, at batch 8:
- footprint.memory(model, ..., device="cpu");
- PyTorch's MemTracker (torch.distributed._tools.mem_tracker) with the model, optimizer and input
  made under FakeTensorMode, the same two iterations, in this process;
- torch-kitsune's predict_memory(model, input_shape, batch_size, optimizer="adamw").
Each tool's error is against the real run; its time is the median of three calls. Then the speed
bars of the issue: footprint.memory(resnet50, (64, 3, 224, 224), train=True, optimizer="adamw")
in process, against MemTracker + FakeTensorMode on the same, and `import footprint` after torch.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
import real  # noqa: E402
import zoo  # noqa: E402

import footprint  # noqa: E402

MODELS = ["tv_resnet18", "tv_resnet50", "tv_mobilenet_v2", "tv_vit_b_16", "tv_convnext_tiny",
          "timm_vit_tiny_patch16_224", "hf_gpt2", "hf_llama"]
BATCH = 8


def timed(fn, repeat=3):
    times, value = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return value, statistics.median(times)


def input_data(name, batch):
    args, kwargs = zoo.inputs(name, batch)
    return args, kwargs


def footprint_peak(name, train, batch=BATCH):
    model = zoo.build(name)
    args, kwargs = input_data(name, batch)
    return lambda: footprint.memory(model, input_data=list(args) if args else dict(kwargs),
                                    train=train, optimizer="adamw", impl="for-loop",
                                    device="cpu").allocated_peak


def memtracker_peak(name, train, batch=BATCH):
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    def run():
        with FakeTensorMode():
            model = zoo.build(name)
            args, kwargs = input_data(name, batch)
            args = [torch.empty_like(a) if a.is_floating_point() else torch.zeros_like(a) for a in args]
            labels = torch.zeros(batch, dtype=torch.long)
            opt = torch.optim.AdamW(model.parameters(), foreach=False) if train else None
            tracker = MemTracker()
            tracker.track_external(model, *([opt] if opt else []), *args)
            with tracker:
                if not train:
                    model.eval()
                    with torch.inference_mode():
                        model(*args, **kwargs)
                else:
                    model.train()
                    for it in range(2):
                        if it:  # MemTracker refuses a second call of a module otherwise
                            tracker.reset_mod_stats()
                        opt.zero_grad(set_to_none=True)
                        y = model(*args, **kwargs)
                        t = y if isinstance(y, torch.Tensor) else y.logits
                        loss = F.cross_entropy(t, labels) if t.dim() == 2 else t.float().square().mean()
                        loss.backward()
                        del y, t, loss
                        opt.step()
            snapshot = tracker.get_tracker_snapshot("peak")
            return max(v.get("Total", 0) for v in snapshot.values())
    return run


def kitsune_peak(name, train, batch=BATCH):
    from kitsune.predict.estimator import predict_memory
    model = zoo.build(name)
    args, _ = input_data(name, batch)
    shape = tuple(args[0].shape[1:]) if args else (32,)
    dtype = torch.float32

    def run():
        r = predict_memory(model, input_shape=shape, batch_size=batch, dtype=dtype,
                           optimizer="adamw" if train else "none", training=train)
        return r.param_bytes + r.gradient_bytes + r.optimizer_bytes + r.activation_bytes + r.overhead_bytes
    return run


def measured(name, train, batch=BATCH):
    model = zoo.build(name)
    args, kwargs = input_data(name, batch)
    return real.real_run(model, args, kwargs, train)[0]


def pct(est, ref):
    return f"{100 * (est - ref) / ref:+.1f}%"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None, help="write the markdown table here too")
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    lines = ["| model | mode | real (B) | footprint | MemTracker + FakeTensorMode | torch-kitsune | "
             "footprint time | MemTracker time (ratio) | kitsune time (ratio) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in args.models.split(","):
        for train in (False, True):
            ref = measured(name, train)
            cells = [name, "AdamW step" if train else "inference", f"{ref:,}"]
            results = {}
            for tool, make in (("footprint", footprint_peak), ("memtracker", memtracker_peak),
                               ("kitsune", kitsune_peak)):
                try:
                    results[tool] = timed(make(name, train))
                except Exception as e:  # a tool that cannot run the model says so in the table
                    results[tool] = (None, None)
                    print(f"{tool} on {name}: {type(e).__name__}: {str(e).splitlines()[0][:120]}",
                          file=sys.stderr)
            for tool in ("footprint", "memtracker", "kitsune"):
                value, _ = results[tool]
                cells.append("fails" if value is None else pct(value, ref))
            base = results["footprint"][1]
            cells.append(f"{1000 * base:.0f} ms")
            for tool in ("memtracker", "kitsune"):
                t = results[tool][1]
                cells.append("—" if t is None else f"{1000 * t:.0f} ms ({t / base:.1f}x)")
            lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)

    # The speed bars, in the same run.
    model = zoo.build("tv_resnet50")
    _, ours = timed(lambda: footprint.memory(model, (64, 3, 224, 224), train=True, optimizer="adamw"))
    _, theirs = timed(memtracker_peak("tv_resnet50", True, batch=64), repeat=1)
    code = ("import time, torch; t = time.perf_counter(); import footprint; "
            "print(time.perf_counter() - t)")
    imports = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(3)]
    lines += ["", f"footprint.memory(resnet50, (64, 3, 224, 224), train=True, optimizer='adamw'): "
              f"{1000 * ours:.0f} ms in process; MemTracker + FakeTensorMode on the same step: "
              f"{1000 * theirs:.0f} ms ({theirs / ours:.0f}x footprint's time)",
              f"import footprint after import torch: {1000 * statistics.median(imports):.0f} ms "
              f"(median of 3)"]
    print("\n".join(lines[-3:]))
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
