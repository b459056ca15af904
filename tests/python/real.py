"""Real CPU runs of a model, in this process, as ../../../shared/MEASUREMENT.md measures them:
one thread; the allocated peak is the running sum of the profiler's [memory] events, in time
order, plus the bytes live when profiling began; inference under torch.inference_mode(); a
training step is zero_grad, forward, loss, backward and the optimizer's step, twice. The loss is
footprint's default: cross-entropy against fixed labels for a 2-D output, else
output.float().square().mean(). Also returns the ops the run called at the top level, per phase,
from the same profile."""
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "cuda"))
import measure  # noqa: E402  the harness's CPU meter (bench/cuda/measure.py)


def _loss(y, labels):
    own = getattr(y, "loss", None)
    if isinstance(own, torch.Tensor):
        return own
    t = measure.output_tensor(y)
    if t.dim() == 2 and t.is_floating_point():
        return F.cross_entropy(t, labels)
    return t.float().square().mean()


def _tensors(x):
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _tensors(v)]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _tensors(v)]
    return []


def real_run(model, args, kwargs, train, optimizer="adamw", impl="forloop"):
    """(allocated peak, {phase: [top-level op names]}) of a real CPU run."""
    torch.set_num_threads(1)
    batch = _tensors(args + list(kwargs.values()))[0].shape[0]
    labels = torch.zeros(batch, dtype=torch.long)  # class 0, as footprint's loss takes it
    opt = None
    if train:
        model.train()
        opt, _ = measure.make_optimizer(optimizer, impl, model.parameters())
    else:
        model.eval()
    live = list(model.parameters()) + list(model.buffers()) + _tensors(args) + \
        _tensors(list(kwargs.values())) + ([labels] if train else [])
    meter = measure.CpuMeter(measure.tensor_bytes(live))
    meter.start()
    if not train:
        with meter.phase("inference"), torch.inference_mode():
            y = model(*args, **kwargs)
        del y
    else:
        for it in (1, 2):
            with meter.phase(f"iter{it}.zero_grad"):
                opt.zero_grad(set_to_none=True)
            with meter.phase(f"iter{it}.forward"):
                y = model(*args, **kwargs)
                loss = _loss(y, labels)
            with meter.phase(f"iter{it}.backward"):
                loss.backward()
            del y, loss
            with meter.phase(f"iter{it}.step"):
                opt.step()
    result = meter.finish()
    ops = top_level_ops(meter.prof)
    del opt
    return result["allocated_peak"], ops


def top_level_ops(prof):
    """The aten ops each phase called directly, in order (the profiler's events whose parent is
    the phase's marker)."""
    events = prof.events()
    out = {}
    for e in events:
        parent = e.cpu_parent
        if parent is not None and parent.name.startswith("phase::"):
            out.setdefault(parent.name[7:], []).append((e.time_range.start, e.name))
    return {k: [n for _, n in sorted(v)] for k, v in out.items()}
