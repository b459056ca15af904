#!/usr/bin/env python3
"""Measures real peak memory of PyTorch models, as ../../shared/MEASUREMENT.md defines it, so that
footprint's estimates can be held against it (tests/reference/cuda/<gpu>.json).

    python3 bench/cuda/measure.py --device cuda --out tests/reference/cuda/h100.json --export out/models
    python bench/cuda/measure.py --device cpu --models hybrid_network,resnet18 --quick --out /tmp/cpu.json

Per run it records the allocated peak (and on CUDA the reserved peak and the device total) for
each phase: inference, or per training iteration forward, backward and optimizer step, with
iteration 1 (optimizer state created inside its step) apart from iteration 2 (steady state).
Every run is repeated (--repeat, default 2) and the repeats must agree: allocator numbers are
deterministic for a fixed program, so a difference points to the harness.

CUDA: torch.cuda.max_memory_allocated/max_memory_reserved after reset_peak_memory_stats around each
phase; mem_get_info for the device total; cuBLAS's workspace is warmed up once first and reported
as its own line. CPU: one thread; the profiler's [memory] events, summed in time order, plus the
bytes live when profiling started; phases are marked with torch.ops.profiler._record_function_*,
which allocate nothing.
"""
import argparse
import contextlib
import gc
import json
import os
import platform
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
from hybrid_network import HybridNetwork  # noqa: E402  the first seed's model


# ---------------------------------------------------------------- models

def vision(name):
    import torchvision
    return lambda: getattr(torchvision.models, name)()


def transformers_model(kind):
    """Transformers models from configs with random weights (no download)."""
    def build():
        import transformers
        if kind == "gpt2":
            return transformers.GPT2LMHeadModel(transformers.GPT2Config())
        if kind == "bert":
            return transformers.BertForMaskedLM(transformers.BertConfig())
        # A LLaMA-style model of about 1B parameters (TinyLlama-1.1B's shape).
        cfg = transformers.LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                                       num_attention_heads=32, num_key_value_heads=4, vocab_size=32000)
        return transformers.LlamaForCausalLM(cfg)
    return build


class ChannelsLastConvs(nn.Module):
    """Convolutions over channels-last activations, convnext's layout without its other ops: a
    depthwise 7x7, a depthwise 3x3, a strided dense 3x3 and a 1x1. At batch 1 PyTorch runs the
    last two as THNN, at batch 8 the 3x3 goes to oneDNN (docs/memory.md)."""
    def __init__(self):
        super().__init__()
        self.dw7 = nn.Conv2d(16, 16, 7, padding=3, groups=16)
        self.dw3 = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.conv = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.pw = nn.Conv2d(32, 32, 1)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.pw(self.conv(self.dw3(self.dw7(x))))
        return self.head(x.mean((2, 3)))


class SequenceModel(nn.Module):
    """A recurrent or attention layer over [B, T, F] features, flattened to a 10-way classifier
    head over the last time step, so that every model here trains with cross_entropy."""
    def __init__(self, body, out_features, unpack):
        super().__init__()
        self.body = body
        self.head = nn.Linear(out_features, 10)
        self.unpack = unpack

    def forward(self, x):
        y = self.body(x)
        if self.unpack:
            y = y[0]
        return self.head(y[:, -1])


class SelfAttention(nn.Module):
    """nn.MultiheadAttention as self-attention without weights: the inference fast path."""
    def __init__(self, dim=256, heads=8):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


class SdpaBlock(nn.Module):
    """A hand-written attention block calling F.scaled_dot_product_attention, as most 2.x code does."""
    def __init__(self, dim=256, heads=8):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class InterpolateConv(nn.Module):
    """A 3x3 conv, bilinear upsampling by 2, then a 1x1 conv: a decoder's shape."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1)
        self.pw = nn.Conv2d(32, 16, 1)

    def forward(self, x):
        x = F.interpolate(torch.relu(self.conv(x)), scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.pw(x)


def transformer_encoder():
    layer = nn.TransformerEncoderLayer(d_model=256, nhead=8, dim_feedforward=1024, batch_first=True)
    return SequenceModel(nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False), 256, False)


def aspp_head():
    from torchvision.models.segmentation.deeplabv3 import ASPP
    return ASPP(256, [12, 24, 36], out_channels=64)


def video(name):
    def build():
        import torchvision.models.video
        return getattr(torchvision.models.video, name)()
    return build


# name -> (builder, per-sample input shape, input kind, classifier)
MODELS = {
    # A model whose inference peak is a hand calculation (tests/harness_test.py).
    "linear_256x512": (lambda: nn.Linear(256, 512, bias=False), (256,), "vector", True),
    "hybrid_network": (HybridNetwork, (1, 28, 28), "image", True),
    "resnet18": (vision("resnet18"), (3, 224, 224), "image", True),
    "resnet50": (vision("resnet50"), (3, 224, 224), "image", True),
    "vgg11": (vision("vgg11"), (3, 224, 224), "image", True),
    "vgg16": (vision("vgg16"), (3, 224, 224), "image", True),
    "mobilenet_v2": (vision("mobilenet_v2"), (3, 224, 224), "image", True),
    "densenet121": (vision("densenet121"), (3, 224, 224), "image", True),
    "efficientnet_b0": (vision("efficientnet_b0"), (3, 224, 224), "image", True),
    "vit_b_16": (vision("vit_b_16"), (3, 224, 224), "image", True),
    "convnext_tiny": (vision("convnext_tiny"), (3, 224, 224), "image", True),
    "channels_last_convs": (ChannelsLastConvs, (16, 32, 32), "image", True),
    # PyTorch 2.x's fused paths and kernels that 1.13's meta run missed (issue 15).
    "transformer_encoder": (transformer_encoder, (64, 256), "image", True),
    "multihead_attention": (SelfAttention, (64, 256), "image", False),
    "lstm": (lambda: SequenceModel(nn.LSTM(128, 256, num_layers=2, batch_first=True), 256, True), (64, 128), "image", True),
    "gru": (lambda: SequenceModel(nn.GRU(128, 256, num_layers=2, batch_first=True), 256, True), (64, 128), "image", True),
    "sdpa_block": (SdpaBlock, (128, 256), "image", False),
    "interpolate_conv": (InterpolateConv, (3, 64, 64), "image", False),
    "r3d_18": (video("r3d_18"), (3, 4, 64, 64), "image", True),
    "aspp_head": (aspp_head, (256, 32, 32), "image", False),
    "gpt2": (transformers_model("gpt2"), (128,), "tokens", False),
    "bert_base": (transformers_model("bert"), (128,), "tokens", False),
    "llama_1b": (transformers_model("llama"), (128,), "tokens", False),
}


def make_optimizer(name, impl, params):
    kwargs = {}
    if impl == "foreach":
        kwargs["foreach"] = True
    elif impl == "fused":
        kwargs["fused"] = True
    elif impl == "forloop":
        kwargs["foreach"] = False
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01, **kwargs), {"lr": 0.01}
    if name == "momentum":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, **kwargs), {"lr": 0.01, "momentum": 0.9}
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3, **kwargs), {"lr": 1e-3}
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, **kwargs), {"lr": 1e-3, "weight_decay": 0.01}
    raise ValueError(name)


def make_input(shape, kind, batch, device):
    g = torch.Generator().manual_seed(0)
    if kind == "tokens":
        return torch.randint(0, 1000, (batch,) + tuple(shape), generator=g).to(device)
    return torch.randn((batch,) + tuple(shape), generator=g).to(device)


def output_tensor(y):
    if isinstance(y, torch.Tensor):
        return y
    if hasattr(y, "logits"):
        return y.logits
    return y[0]


# ---------------------------------------------------------------- meters

class CudaMeter:
    """Peaks per phase from the CUDA caching allocator's own statistics."""

    def __init__(self, device):
        self.device = device

    def start(self):
        torch.cuda.synchronize()
        self.phases = {}
        self.free_before = torch.cuda.mem_get_info(self.device)[0]

    @contextlib.contextmanager
    def phase(self, name):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        yield
        torch.cuda.synchronize()
        self.phases[name] = {
            "allocated_before": before,
            "allocated_after": torch.cuda.memory_allocated(self.device),
            "allocated_peak": torch.cuda.max_memory_allocated(self.device),
            "reserved_peak": torch.cuda.max_memory_reserved(self.device),
        }

    def finish(self):
        free, total = torch.cuda.mem_get_info(self.device)
        return {"phases": self.phases,
                "allocated_peak": max(p["allocated_peak"] for p in self.phases.values()),
                "reserved_peak": max(p["reserved_peak"] for p in self.phases.values()),
                "device_used_after": total - free, "device_total": total}


class CpuMeter:
    """Peaks per phase from the profiler's [memory] events, in time order."""

    def __init__(self, live_before):
        self.live_before = live_before

    def start(self):
        self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
        self.prof.__enter__()
        self.names = []

    @contextlib.contextmanager
    def phase(self, name):
        handle = torch.ops.profiler._record_function_enter_new("phase::" + name, None)
        yield
        torch.ops.profiler._record_function_exit._RecordFunction(handle)
        self.names.append(name)

    def finish(self):
        self.prof.__exit__(None, None, None)
        events = self.prof.profiler.kineto_results.events()
        memory, ranges = [], {}
        for e in events:  # PyTorch 2.x times kineto's events in ns (1.13: start_us/duration_us)
            if e.name() == "[memory]":
                memory.append((e.start_ns(), e.nbytes()))
            elif e.name().startswith("phase::"):
                ranges[e.name()[7:]] = (e.start_ns(), e.start_ns() + e.duration_ns())
        memory.sort(key=lambda m: m[0])
        live, phases, overall = self.live_before, {}, self.live_before
        running = []
        for t, n in memory:
            live += n
            running.append((t, live))
            overall = max(overall, live)
        for name in self.names:
            start, end = ranges[name]
            before = self.live_before
            for t, v in running:
                if t < start:
                    before = v
            peak, after = before, before
            for t, v in running:
                if start <= t <= end:
                    peak = max(peak, v)
                    after = v
            phases[name] = {"allocated_before": before, "allocated_after": after, "allocated_peak": peak}
        return {"phases": phases, "allocated_peak": overall}


def tensor_bytes(tensors):
    seen, total = set(), 0
    for t in tensors:
        if t is None or t.device.type != "cpu":
            continue
        key = t.untyped_storage().data_ptr() if hasattr(t, "untyped_storage") else t.storage().data_ptr()
        if key in seen:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total


# ---------------------------------------------------------------- one run

def run_once(spec, device):
    builder, shape, kind, classifier = MODELS[spec["model"]]
    torch.manual_seed(0)
    model = builder().to(device)
    x = make_input(shape, kind, spec["batch"], device)
    labels = torch.randint(0, 10, (spec["batch"],), generator=torch.Generator().manual_seed(1)).to(device)
    amp = spec["precision"] == "bf16-amp"
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    opt = None
    if spec["mode"] == "train":
        model.train()
        opt, _ = make_optimizer(spec["optimizer"], spec["impl"], model.parameters())
    else:
        model.eval()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        meter = CudaMeter(device)
    else:
        live = list(model.parameters()) + list(model.buffers()) + [x, labels]
        meter = CpuMeter(tensor_bytes(live))
    meter.start()
    if spec["mode"] == "inference":
        with meter.phase("inference"), torch.inference_mode(), autocast():
            y = model(x)
        del y
    else:
        for it in (1, 2):
            with meter.phase(f"iter{it}.zero_grad"):
                opt.zero_grad(set_to_none=True)
            with meter.phase(f"iter{it}.forward"), autocast():
                y = output_tensor(model(x))
                if classifier:
                    loss = F.cross_entropy(y, labels)
                else:
                    loss = y.float().square().mean()
            with meter.phase(f"iter{it}.backward"):
                loss.backward()
            del y, loss
            with meter.phase(f"iter{it}.step"):
                opt.step()
    result = meter.finish()
    del model, opt, x
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def is_oom(err):
    return isinstance(err, torch.cuda.OutOfMemoryError) if hasattr(torch.cuda, "OutOfMemoryError") else \
        "out of memory" in str(err)


def measure(spec, device, repeat):
    results = []
    for _ in range(repeat):
        try:
            results.append(run_once(spec, device))
        except RuntimeError as e:
            if device.type == "cuda" and is_oom(e):
                gc.collect()
                torch.cuda.empty_cache()
                results.append({"oom": True})
            else:
                raise
        except ValueError as e:  # a run PyTorch refuses (BatchNorm over one value at batch 1)
            results.append({"error": str(e).splitlines()[0]})
    identical = all(json.dumps(r, sort_keys=True) == json.dumps(results[0], sort_keys=True) for r in results)
    return {"spec": spec, "repeats": results, "identical": identical}


# ---------------------------------------------------------------- the plan

def plan(models, device, quick, precisions_arg=None):
    runs = []
    opts = [("momentum", "foreach"), ("adam", "foreach"), ("adamw", "foreach"), ("adamw", "fused")]
    precisions = ["fp32"] if quick else ["fp32", "bf16-amp"]
    batches = [2] if quick else [8, 32]
    if device.type == "cpu":  # the CPU ground truth: PyTorch's CPU default is the for-loop
        opts = [("momentum", "forloop"), ("adamw", "forloop")] if quick else \
            [("sgd", "forloop"), ("momentum", "forloop"), ("adam", "forloop"), ("adamw", "forloop")]
        precisions = ["fp32"]
        batches = [2] if quick else [1, 8]
    if precisions_arg:
        precisions = precisions_arg.split(",")
    for m in models:
        for b in batches:
            for p in precisions:
                runs.append({"model": m, "mode": "inference", "optimizer": None, "impl": None, "precision": p, "batch": b})
                for o, i in opts:
                    runs.append({"model": m, "mode": "train", "optimizer": o, "impl": i, "precision": p, "batch": b})
    return runs


def fits(model, device, batch):
    spec = {"model": model, "mode": "train", "optimizer": "adamw", "impl": "foreach", "precision": "fp32", "batch": batch}
    return "oom" not in measure(spec, device, 1)["repeats"][0]


def limit_runs(model, device, start):
    """Runs at the largest batch that fits a training step (AdamW, fp32) and the next one up."""
    lo, hi = start, start
    while fits(model, device, hi):
        lo, hi = hi, hi * 2
        if hi > 1 << 16:
            return []
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(model, device, mid) else (lo, mid)
    base = {"model": model, "mode": "train", "optimizer": "adamw", "impl": "foreach", "precision": "fp32"}
    return [dict(base, batch=lo, limit="largest that fits"), dict(base, batch=hi, limit="smallest that does not")]


def export(model_name, out_dir):
    """TorchScript of the measured architecture, from the same PyTorch: scripted (keeps training
    mode) where torch.jit.script can, else traced in train mode."""
    builder, shape, kind, _ = MODELS[model_name]
    torch.manual_seed(0)
    model = builder().train()
    path = os.path.join(out_dir, model_name + ".pt")
    try:
        torch.jit.save(torch.jit.script(model), path)
        return {"file": path, "method": "script"}
    except Exception:  # noqa: BLE001  scripting fails on many transformers models
        x = make_input(shape, kind, 1, torch.device("cpu"))
        traced = torch.jit.trace(model, (x,), strict=False, check_trace=False)
        torch.jit.save(traced, path)
        return {"file": path, "method": "trace (train mode)"}


def environment(device):
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": device.type,
           "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}
    if device.type == "cuda":
        env.update({"device_name": torch.cuda.get_device_name(device), "cuda": torch.version.cuda,
                    "cudnn": torch.backends.cudnn.version(),
                    "device_total": torch.cuda.mem_get_info(device)[1]})
    return env


def cublas_warmup(device):
    """cuBLAS allocates its workspace through the caching allocator on first use: done once here,
    and reported as its own line, so that it lands in no model's numbers by accident."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated(device)
    a = torch.randn(256, 256, device=device)
    (a @ a).sum().item()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        (a @ a).sum().item()
    del a
    torch.cuda.synchronize()
    return {"allocated_kept": torch.cuda.memory_allocated(device) - before,
            "reserved": torch.cuda.memory_reserved(device)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], required=True)
    ap.add_argument("--out", help="the JSON file to write (required unless --export-only)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated; default: all")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="one batch, fp32, two optimizers (a harness test)")
    ap.add_argument("--limits", action="store_true", help="CUDA: add the runs just under and over the GPU's limit")
    ap.add_argument("--export", help="write each model's TorchScript here")
    ap.add_argument("--precisions", help="comma-separated: fp32, bf16-amp (default: the plan's)")
    ap.add_argument("--export-only", action="store_true", help="only export (with --export); measure nothing")
    args = ap.parse_args()

    if not args.out and not args.export_only:
        ap.error("--out is required")
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    models, skipped = [], {}
    for m in args.models.split(","):
        if m not in MODELS:
            ap.error(f"unknown model '{m}'; known: {', '.join(MODELS)}")
        try:
            MODELS[m][0]()
            models.append(m)
        except ImportError as e:
            skipped[m] = f"skipped: {e}"
    if args.export_only:
        os.makedirs(args.export, exist_ok=True)
        for m in models:
            if not os.path.exists(os.path.join(args.export, m + ".pt")):
                export(m, args.export)
        return
    report = {"environment": environment(device), "skipped": skipped, "runs": [], "exports": {}}
    if device.type == "cuda":
        report["cublas_warmup"] = cublas_warmup(device)
    runs = plan(models, device, args.quick, args.precisions)
    if args.limits and device.type == "cuda":
        for m in models:
            runs += limit_runs(m, device, 8)
    for i, spec in enumerate(runs):
        r = measure(spec, device, args.repeat)
        report["runs"].append(r)
        peak = r["repeats"][0].get("allocated_peak", r["repeats"][0].get("error", "OOM"))
        print(f"[{i + 1}/{len(runs)}] {json.dumps(spec)} -> peak {peak}"
              f"{'' if r['identical'] else '  REPEATS DIFFER'}", flush=True)
    if args.export:
        os.makedirs(args.export, exist_ok=True)
        for m in models:
            report["exports"][m] = export(m, args.export)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    differ = sum(not r["identical"] for r in report["runs"])
    print(f"{len(report['runs'])} runs, {differ} with differing repeats, written to {args.out}")


if __name__ == "__main__":
    main()
