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
import copy
import gc
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
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
        if kind == "mixtral":
            # A small mixture of experts: 8 experts, 2 per token, grouped-query attention.
            return transformers.MixtralForCausalLM(transformers.MixtralConfig(
                hidden_size=512, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=8,
                num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2, vocab_size=32000))
        if kind == "qwen3":
            # Qwen3's shape at 4 layers: head dim 128, q/k RMSNorm, grouped-query attention.
            return transformers.Qwen3ForCausalLM(transformers.Qwen3Config(
                hidden_size=1024, intermediate_size=3072, num_hidden_layers=4, num_attention_heads=16,
                num_key_value_heads=8, head_dim=128, vocab_size=32000))
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
    """A hand-written attention block calling F.scaled_dot_product_attention, as most 2.x code does.
    mask: None (is_causal), "bool" (a [T, T] lower-triangular boolean mask made in forward) or
    "float" (the same as an additive [T, T] float mask); dropout applies in training only."""
    def __init__(self, dim=256, heads=8, mask=None, dropout=0.0):
        super().__init__()
        self.heads = heads
        self.mask = mask
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        if self.mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        else:
            keep = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            if self.mask == "float":
                keep = torch.zeros(t, t, dtype=q.dtype, device=x.device).masked_fill(~keep, float("-inf"))
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p)
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


def timm_model(name):
    def build():
        import timm
        return timm.create_model(name, pretrained=False)
    return build


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
    "swin_t": (vision("swin_t"), (3, 224, 224), "image", True),
    "regnet_y_400mf": (vision("regnet_y_400mf"), (3, 224, 224), "image", True),
    "timm_vit_base_patch16_224": (timm_model("vit_base_patch16_224"), (3, 224, 224), "image", True),
    "timm_convnext_tiny": (timm_model("convnext_tiny"), (3, 224, 224), "image", True),
    "timm_efficientnet_b0": (timm_model("efficientnet_b0"), (3, 224, 224), "image", True),
    "channels_last_convs": (ChannelsLastConvs, (16, 32, 32), "image", True),
    # PyTorch 2.x's fused paths and kernels that 1.13's meta run missed (issue 15).
    "transformer_encoder": (transformer_encoder, (64, 256), "image", True),
    "multihead_attention": (SelfAttention, (64, 256), "image", False),
    "lstm": (lambda: SequenceModel(nn.LSTM(128, 256, num_layers=2, batch_first=True), 256, True), (64, 128), "image", True),
    "gru": (lambda: SequenceModel(nn.GRU(128, 256, num_layers=2, batch_first=True), 256, True), (64, 128), "image", True),
    "sdpa_block": (SdpaBlock, (128, 256), "image", False),
    # scaled_dot_product_attention's CUDA backends by head dim, mask and dropout (issue 15).
    "sdpa_d128": (lambda: SdpaBlock(1024, 8), (256, 1024), "image", False),
    "sdpa_d256": (lambda: SdpaBlock(1024, 4), (256, 1024), "image", False),
    "sdpa_bool_mask": (lambda: SdpaBlock(512, 8, mask="bool"), (256, 512), "image", False),
    "sdpa_float_mask": (lambda: SdpaBlock(512, 8, mask="float"), (256, 512), "image", False),
    "sdpa_dropout": (lambda: SdpaBlock(512, 8, dropout=0.1), (256, 512), "image", False),
    "interpolate_conv": (InterpolateConv, (3, 64, 64), "image", False),
    "r3d_18": (video("r3d_18"), (3, 4, 64, 64), "image", True),
    "aspp_head": (aspp_head, (256, 32, 32), "image", False),
    "gpt2": (transformers_model("gpt2"), (128,), "tokens", False),
    "bert_base": (transformers_model("bert"), (128,), "tokens", False),
    "llama_1b": (transformers_model("llama"), (128,), "tokens", False),
    # Held-out shapes for the rules fitted to the sequence plan (cuDNN RNN workspaces, reductions'
    # staging buffers, masks whose rows are not 16-aligned): measured after the rules were written.
    "lstm_h512_t32_l1": (lambda: SequenceModel(nn.LSTM(64, 512, num_layers=1, batch_first=True), 512, True), (32, 64), "image", True),
    "lstm_h1024_t128_l3": (lambda: SequenceModel(nn.LSTM(256, 1024, num_layers=3, batch_first=True), 1024, True), (128, 256), "image", True),
    "gru_h512_t32_l1": (lambda: SequenceModel(nn.GRU(64, 512, num_layers=1, batch_first=True), 512, True), (32, 64), "image", True),
    "gru_h1024_t128_l3": (lambda: SequenceModel(nn.GRU(256, 1024, num_layers=3, batch_first=True), 1024, True), (128, 256), "image", True),
    "sdpa_mask_t200": (lambda: SdpaBlock(768, 12, mask="bool"), (200, 768), "image", False),
    "mlp_odd": (lambda: nn.Sequential(nn.Linear(1000, 3000), nn.GELU(), nn.Dropout(0.1), nn.Linear(3000, 1000)), (77, 1000), "image", False),
    "mixtral_small": (transformers_model("mixtral"), (128,), "tokens", False),
    "qwen3_small": (transformers_model("qwen3"), (128,), "tokens", False),
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


def make_input(shape, kind, batch, device, dtype=None):
    """The input, made where it is used: on CUDA with the device's generator, so that a large
    batch needs no CPU copy (the allocator sees the same one block either way)."""
    size = (batch,) + tuple(shape)
    if device.type == "cuda":
        g = torch.Generator(device).manual_seed(0)
        if kind == "tokens":
            return torch.randint(0, 1000, size, generator=g, device=device)
        return torch.randn(size, generator=g, device=device, dtype=dtype or torch.float32)
    g = torch.Generator().manual_seed(0)
    if kind == "tokens":
        return torch.randint(0, 1000, size, generator=g).to(device)
    x = torch.randn(size, generator=g).to(device)
    return x if dtype is None else x.to(dtype)


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


# ---------------------------------------------------------------- the op trace (CUDA)

def _nested_counts(device):
    stats = torch.cuda.memory_stats_as_nested_dict(device)["allocation"]["all"]
    return stats["allocated"], stats["freed"]


try:
    from torch.utils._python_dispatch import TorchDispatchMode
except ImportError:  # a PyTorch without Python dispatch modes: no op trace
    TorchDispatchMode = object


class OpTrace(TorchDispatchMode):
    """The innermost aten op of every allocation: each op the dispatcher runs below autograd (the
    backward's and the optimizer's too) with the allocated bytes before it, the peak inside it and
    after it, and the allocator's alloc and free counters around it, which place each event of
    torch.cuda.memory._record_memory_history's trace on its op. Run as a pass of its own: the
    measured repeats run without it."""

    def __init__(self, device):
        super().__init__()
        self.device = device
        self.names, self.name_ids, self.ops, self.marks = [], {}, [], []

    def mark(self, name):
        self.marks.append([name, len(self.ops)])

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        a0, f0 = _nested_counts(self.device)
        before = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        out = func(*args, **(kwargs or {}))
        peak = torch.cuda.max_memory_allocated(self.device)
        after = torch.cuda.memory_allocated(self.device)
        a1, f1 = _nested_counts(self.device)
        name = str(func)
        if name not in self.name_ids:
            self.name_ids[name] = len(self.names)
            self.names.append(name)
        self.ops.append((self.name_ids[name], before, peak, after, a0, a1, f0, f1))
        return out


def record_history(enabled):
    record = torch.cuda.memory._record_memory_history
    if not enabled:
        record(enabled=None)
        return
    try:  # the trace alone: no Python or C++ stacks (each event costs nothing to record)
        record(enabled="all", context=None, stacks="python", max_entries=4_000_000, clear_history=True)
    except TypeError:
        record(enabled="all", context=None, stacks="python", max_entries=4_000_000)


EVENT_CODES = {"alloc": 1, "free_completed": 2, "segment_alloc": 3, "segment_free": 4, "oom": 5,
               "segment_map": 6, "segment_unmap": 7}


def compact_trace(tracer, device):
    """The op trace and the allocator's events, each event as [op index, code, size] (codes:
    EVENT_CODES; op -1: outside any op the dispatcher ran)."""
    snap = torch.cuda.memory._snapshot()
    traces = snap.get("device_traces", [])
    entries = traces[device.index or 0] if traces else []
    ops = tracer.ops
    (alloc_n, free_n), events, ja, jf, pending = tracer.base, [], 0, 0, []

    def owner(k, j, lo, hi):
        while j < len(ops) and ops[j][hi] <= k:
            j += 1
        return j, (j if j < len(ops) and ops[j][lo] <= k < ops[j][hi] else -1)

    last = -1
    for e in entries:
        code = EVENT_CODES.get(e.get("action"))
        if code is None:
            continue
        if code == 1:
            ja, op = owner(alloc_n, ja, 4, 5)
            alloc_n += 1
            for p in pending:  # a segment is mapped for the allocation that follows it
                events.append([op, p[0], p[1]])
            pending = []
        elif code == 2:
            jf, op = owner(free_n, jf, 6, 7)
            free_n += 1
        elif code in (3, 6):
            pending.append((code, e.get("size", 0)))
            continue
        else:
            op = last
        last = op
        events.append([op, code, e.get("size", 0)])
    for p in pending:
        events.append([last, p[0], p[1]])
    return {"names": tracer.names, "ops": [list(o[:4]) for o in ops], "phases": tracer.marks,
            "events": events}


class TraceMeter:
    """The meter of the traced pass: phase boundaries as op indices."""

    def __init__(self, tracer):
        self.tracer = tracer

    def start(self):
        pass

    @contextlib.contextmanager
    def phase(self, name):
        self.tracer.mark(name)
        yield

    def finish(self):
        return {}


# ---------------------------------------------------------------- one run

def clear_cuda(device):
    """Back to a fresh process's state: no cached blocks and no cuBLAS workspaces (a new process
    allocates its workspaces on its first matrix product, inside the user's run)."""
    gc.collect()
    torch.cuda.synchronize(device)
    clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear:
        clear()
    torch.cuda.empty_cache()


def build_model(name, device, cache):
    """The model on CPU with seed 0, as a user builds it, then moved to the device. On CUDA the
    built CPU model is kept and copied for each run (the same weights, no rebuild)."""
    builder = MODELS[name][0]
    if device.type != "cuda":
        torch.manual_seed(0)
        return builder()
    if name not in cache:
        torch.manual_seed(0)
        cache[name] = builder()
    return copy.deepcopy(cache[name])


def run_once(spec, device, cache=None, trace=False):
    _, shape, kind, classifier = MODELS[spec["model"]]
    if device.type == "cuda":
        clear_cuda(device)
    model = build_model(spec["model"], device, cache if cache is not None else {})
    dtype = torch.bfloat16 if spec["precision"] == "bf16" else None
    if dtype is not None:
        model = model.to(dtype)
    model = model.to(device)
    x = make_input(shape, kind, spec["batch"], device, dtype)
    if device.type == "cuda":
        labels = torch.randint(0, 10, (spec["batch"],), generator=torch.Generator(device).manual_seed(1),
                               device=device)
    else:
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
    tracer = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
        if trace:
            tracer = OpTrace(device)
            meter = TraceMeter(tracer)
            record_history(True)
            tracer.base = _nested_counts(device)
        else:
            meter = CudaMeter(device)
    else:
        live = list(model.parameters()) + list(model.buffers()) + [x, labels]
        meter = CpuMeter(tensor_bytes(live))
    meter.start()
    mode = tracer if tracer is not None else contextlib.nullcontext()
    with mode:
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
    if tracer is not None:
        torch.cuda.synchronize(device)
        result = compact_trace(tracer, device)
        record_history(False)
    else:
        result = meter.finish()
    del model, opt, x
    gc.collect()
    if device.type == "cuda":
        clear_cuda(device)
    return result


def is_oom(err):
    return isinstance(err, torch.cuda.OutOfMemoryError) if hasattr(torch.cuda, "OutOfMemoryError") else \
        "out of memory" in str(err)


def same_run(a, b):
    """Repeats agree: every figure but the device's used memory, which other processes sharing
    the GPU change."""
    def key(r):
        return json.dumps({k: v for k, v in r.items() if k != "device_used_after"}, sort_keys=True)
    return key(a) == key(b)


def measure(spec, device, repeat, cache=None, trace=False):
    results = []
    for _ in range(repeat):
        oom = False
        try:
            results.append(run_once(spec, device, cache))
        except RuntimeError as e:
            if device.type == "cuda" and is_oom(e):
                oom = True
            else:
                raise
        except ValueError as e:  # a run PyTorch refuses (BatchNorm over one value at batch 1)
            results.append({"error": str(e).splitlines()[0]})
        if oom:  # outside the except block, whose traceback holds the run's tensors
            clear_cuda(device)
            results.append({"oom": True})
    identical = all(same_run(r, results[0]) for r in results)
    out = {"spec": spec, "repeats": results, "identical": identical}
    if trace and device.type == "cuda" and "oom" not in results[0] and "error" not in results[0]:
        try:
            out["trace"] = run_once(spec, device, cache, trace=True)
        except Exception as e:  # noqa: BLE001  the trace is a help, never a reason to lose the run
            record_history(False)
            clear_cuda(device)
            out["trace_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return out


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


# The CUDA plan (issue 17): every optimizer in foreach and fused at fp32; inference and three
# steps under bf16 autocast; batches 1, 8 and 64; pure bf16 for two models.
CUDA_VISION = ["hybrid_network", "resnet18", "resnet50", "vgg16", "mobilenet_v2", "densenet121",
               "efficientnet_b0", "vit_b_16", "convnext_tiny", "swin_t", "regnet_y_400mf",
               "timm_vit_base_patch16_224", "timm_convnext_tiny", "timm_efficientnet_b0"]


def cuda_plan(models, batches):
    runs = []
    fp32 = [(o, i) for o in ("sgd", "momentum", "adam", "adamw") for i in ("foreach", "fused")]
    amp = [("momentum", "foreach"), ("adamw", "foreach"), ("adamw", "fused")]
    for m in models:
        for b in batches:
            for p, opts in (("fp32", fp32), ("bf16-amp", amp)):
                runs.append({"model": m, "mode": "inference", "optimizer": None, "impl": None, "precision": p, "batch": b})
                for o, i in opts:
                    runs.append({"model": m, "mode": "train", "optimizer": o, "impl": i, "precision": p, "batch": b})
    for m in ("resnet50", "vit_b_16"):
        if m in models:
            runs.append({"model": m, "mode": "inference", "optimizer": None, "impl": None, "precision": "bf16", "batch": 64})
            runs.append({"model": m, "mode": "train", "optimizer": "adamw", "impl": "foreach", "precision": "bf16", "batch": 64})
    return runs


# The sequence plan (issue 15's CUDA kernels, and transformers models on the Python path): the
# kernels are the point here, not the optimizers (the vision plan measured them all), so fp32
# inference and AdamW (foreach and fused), bf16 autocast inference and AdamW, and pure bf16
# inference and AdamW.
CUDA_SEQUENCE = ["transformer_encoder", "multihead_attention", "lstm", "gru", "sdpa_block", "sdpa_d128",
                 "sdpa_d256", "sdpa_bool_mask", "sdpa_float_mask", "sdpa_dropout", "interpolate_conv",
                 "aspp_head", "r3d_18", "gpt2", "bert_base", "llama_1b", "mixtral_small", "qwen3_small"]


CUDA_HOLDOUT = ["lstm_h512_t32_l1", "lstm_h1024_t128_l3", "gru_h512_t32_l1", "gru_h1024_t128_l3",
                "sdpa_mask_t200", "mlp_odd"]


def sequence_plan(models, batches):
    runs = []
    per = {"fp32": [None, ("adamw", "foreach"), ("adamw", "fused")],
           "bf16-amp": [None, ("adamw", "foreach")], "bf16": [None, ("adamw", "foreach")]}
    for m in models:
        for b in batches:
            for p, opts in per.items():
                for o in opts:
                    runs.append({"model": m, "mode": "inference" if o is None else "train",
                                 "optimizer": o and o[0], "impl": o and o[1], "precision": p, "batch": b})
    return runs


def limit_spec(model, batch, limit):
    return {"model": model, "mode": "train", "optimizer": "adamw", "impl": "foreach", "precision": "fp32",
            "batch": batch, "limit": limit}


def limit_search(model, device, hint, deadline):
    """The largest batch whose AdamW (foreach, fp32) training step fits, from a hint (footprint's
    own prediction): steps of 12% to bracket it, then bisection. Each try is one run from a clean
    allocator."""
    cache, tries = {}, []

    def fits(batch):
        r = measure(limit_spec(model, batch, "search"), device, 1, cache)["repeats"][0]
        tries.append([batch, "oom" not in r])
        return "oom" not in r

    if ":" in str(hint):
        lo, hi = (int(v) for v in hint.split(":"))
    elif fits(max(1, int(hint))):
        b = lo = max(1, int(hint))
        while time.time() < deadline:
            b = max(lo + 1, int(lo * 1.12))
            if not fits(b):
                break
            lo = b
        hi = b
    else:
        b = hi = max(1, int(hint))
        while time.time() < deadline:
            b = max(1, min(hi - 1, int(hi / 1.12)))
            if fits(b):
                break
            hi = b
        lo = b
    while hi - lo > 1 and time.time() < deadline:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return {"model": model, "largest": lo, "smallest_failing": hi, "tries": tries, "done": hi - lo == 1}


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


def library_versions():
    versions = {}
    for name in ("torchvision", "timm", "transformers", "numpy"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return versions


def environment(device):
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": device.type,
           "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
           "libraries": library_versions()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update({"device_name": torch.cuda.get_device_name(device), "cuda": torch.version.cuda,
                    "cudnn": torch.backends.cudnn.version(), "capability": list(torch.cuda.get_device_capability(device)),
                    "multiprocessors": props.multi_processor_count,
                    "device_total": torch.cuda.mem_get_info(device)[1],
                    "cudnn_benchmark": torch.backends.cudnn.benchmark,
                    "env": {k: os.environ.get(k) for k in ("PYTORCH_CUDA_ALLOC_CONF", "CUBLAS_WORKSPACE_CONFIG",
                                                            "CUDA_MODULE_LOADING") if os.environ.get(k)}})
        try:
            env["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:  # noqa: BLE001
            pass
    return env


def cublas_warmup(device):
    """cuBLAS allocates its workspace through the caching allocator on first use, one per handle
    and stream: the forward's thread and autograd's device thread each get one. Measured here,
    once, as its own line; every measured run starts with the workspaces cleared, as a new
    process does, so that a run's peak holds the workspaces it allocates itself."""
    clear_cuda(device)
    steps, before = {}, torch.cuda.memory_allocated(device)
    a = torch.randn(256, 256, device=device)
    (a @ a).sum().item()
    steps["fp32 matmul"] = torch.cuda.memory_allocated(device) - before
    with torch.autocast("cuda", dtype=torch.bfloat16):
        (a @ a).sum().item()
    steps["and bf16 matmul"] = torch.cuda.memory_allocated(device) - before
    w = torch.randn(256, 256, device=device, requires_grad=True)
    (a @ w).sum().backward()
    del w
    steps["and a backward matmul"] = torch.cuda.memory_allocated(device) - before
    with torch.autocast("cuda", dtype=torch.bfloat16):
        w = torch.randn(256, 256, device=device, requires_grad=True)
        (a @ w).sum().backward()
    del a, w
    torch.cuda.synchronize()
    steps["and a bf16 backward matmul"] = torch.cuda.memory_allocated(device) - before
    out = {"allocated_kept": steps, "reserved": torch.cuda.memory_reserved(device)}
    clear_cuda(device)
    out["allocated_after_clearing"] = torch.cuda.memory_allocated(device) - before
    return out


def context_probe(device):
    """What the CUDA context and the libraries take outside the caching allocator: the device's
    used memory (mem_get_info) less the allocator's reserved bytes, after each first use."""
    def used():
        torch.cuda.synchronize(device)
        free, total = torch.cuda.mem_get_info(device)
        return {"device_used": total - free, "reserved": torch.cuda.memory_reserved(device),
                "outside_allocator": total - free - torch.cuda.memory_reserved(device)}
    steps = {"context": used()}
    x = torch.ones(1, device=device)
    steps["first allocation"] = used()
    a = torch.randn(512, 512, device=device)
    (a @ a).sum().item()
    steps["cuBLAS fp32 matmul"] = used()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        (a @ a).sum().item()
    steps["cuBLASLt bf16 matmul"] = used()
    img = torch.randn(8, 3, 64, 64, device=device, requires_grad=True)
    conv = nn.Conv2d(3, 16, 3).to(device)
    conv(img).sum().backward()
    steps["cuDNN convolution, forward and backward"] = used()
    q = torch.randn(2, 4, 128, 64, device=device, dtype=torch.bfloat16)
    F.scaled_dot_product_attention(q, q, q).sum().item()
    steps["flash attention"] = used()
    del x, a, img, conv, q
    return steps


# ---------------------------------------------------------------- workers (CUDA)

def worker(args, device):
    """Runs a list of specs in this process, one JSON line per run (written as each ends)."""
    torch.set_num_threads(max(1, 16 // args.workers))
    specs = json.load(open(args.worker))
    cache = {}
    with open(args.worker_out, "a") as out:
        for spec in specs:
            t0 = time.time()
            try:
                r = measure(spec, device, args.repeat, cache, trace=not args.no_trace)
            except Exception as e:  # noqa: BLE001  one failed run is a line of its own, not the end
                r = {"spec": spec, "repeats": [{"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}],
                     "identical": True}
                clear_cuda(device)
            r["seconds"] = round(time.time() - t0, 2)
            trace = r.pop("trace", None)
            if trace is not None:  # a gzip member per run: a worker stopped at the deadline leaves whole ones
                with gzip.open(args.worker_out + ".trace.gz", "at") as traces:
                    traces.write(json.dumps({"spec": spec, "trace": trace}, separators=(",", ":")) + "\n")
            out.write(json.dumps(r) + "\n")
            out.flush()
            for m in list(cache):
                if m != spec["model"]:
                    del cache[m]


def spawn(args, specs, tag, workdir, trace=True):
    path = os.path.join(workdir, f"{tag}.specs.json")
    json.dump(specs, open(path, "w"))
    cmd = [sys.executable, os.path.abspath(__file__), "--device", "cuda", "--worker", path,
           "--worker-out", os.path.join(workdir, f"{tag}.jsonl"), "--repeat", str(args.repeat),
           "--workers", str(args.workers)]
    if args.no_trace or not trace:
        cmd.append("--no-trace")
    return subprocess.Popen(cmd)


def wait_all(procs, deadline):
    for p in procs:
        left = deadline - time.time()
        try:
            p.wait(timeout=max(1, left))
        except Exception:  # noqa: BLE001  past the deadline: what was written stays
            p.kill()
            p.wait()


def read_lines(path):
    if not os.path.exists(path):
        return []
    lines = []
    for line in open(path):
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill
            pass
    return lines


def cuda_main(args, models):
    """The CUDA measurement, in processes: a probe alone (context, cuBLAS, versions), the plan in
    --workers processes sharing the GPU, runs that ran out of memory there again alone, then the
    limit searches alone. Writes the report and the traces (gzip'd JSON lines) beside it."""
    start = time.time()
    workdir = tempfile.mkdtemp(prefix="measure-")  # not beside --out: only the report and traces go there
    probe = subprocess.run([sys.executable, os.path.abspath(__file__), "--device", "cuda", "--probe"],
                           capture_output=True, text=True)
    report = {"environment": None, "runs": [], "command": " ".join(sys.argv)}
    try:
        report.update(json.loads(probe.stdout.strip().splitlines()[-1]))
    except (IndexError, json.JSONDecodeError):
        report["probe_error"] = probe.stderr[-2000:]
    print("probe:", json.dumps(report.get("context"), indent=None), flush=True)
    batches = [int(b) for b in args.batches.split(",")]
    runs = sequence_plan(models, batches) if args.plan == "sequence" else cuda_plan(models, batches)
    if args.skip:  # runs an earlier report holds (a plan measured in two calls)
        done_before = {json.dumps(r["spec"], sort_keys=True) for r in json.load(open(args.skip))["runs"]}
        runs = [r for r in runs if json.dumps(r, sort_keys=True) not in done_before]
    if args.max_runs:
        runs = runs[:args.max_runs]
    # Models to workers, largest first, each model's runs in one process (its CPU copy kept).
    by_model = {}
    for r in runs:
        by_model.setdefault(r["model"], []).append(r)
    cost = {"lstm_h1024_t128_l3": 4, "gru_h1024_t128_l3": 4, "llama_1b": 8, "qwen3_small": 4, "r3d_18": 4, "vgg16": 6, "densenet121": 5, "vit_b_16": 5, "timm_vit_base_patch16_224": 5, "swin_t": 5,
            "convnext_tiny": 4, "timm_convnext_tiny": 4, "resnet50": 4}
    queues = [[] for _ in range(args.workers)]
    loads = [0] * args.workers
    for m in sorted(by_model, key=lambda m: -cost.get(m, 2)):
        i = loads.index(min(loads))
        queues[i] += by_model[m]
        loads[i] += cost.get(m, 2) * len(by_model[m])
    procs = [spawn(args, q, f"w{i}", workdir) for i, q in enumerate(queues) if q]
    wait_all(procs, start + args.deadline)
    done = [r for i in range(args.workers) for r in read_lines(os.path.join(workdir, f"w{i}.jsonl"))]
    print(f"plan: {len(done)} of {len(runs)} runs in {time.time() - start:.0f} s", flush=True)
    # A run that ran out of memory beside the others runs again alone.
    again = [r["spec"] for r in done if "oom" in r["repeats"][0] or any("oom" in x for x in r["repeats"])]
    if again and time.time() < start + args.deadline:
        wait_all([spawn(args, again, "alone", workdir)], start + args.deadline)
        alone = {json.dumps(r["spec"], sort_keys=True): r for r in read_lines(os.path.join(workdir, "alone.jsonl"))}
        for r in done:
            key = json.dumps(r["spec"], sort_keys=True)
            if key in alone:
                r.clear()
                r.update(alone[key], alone=True)
    report["runs"] = done
    with open(args.out, "w") as f:  # now, and again with the limits
        json.dump(report, f, indent=1)
    # The limits: each search alone, then the two batches measured in a new process.
    report["limit_searches"] = []
    hints = dict(h.split("=") for h in args.limit_hints.split(",")) if args.limit_hints else {}
    name = (report.get("environment") or {}).get("device_name", "")
    for k, (m, hint) in enumerate(hints.items()):
        if time.time() > start + args.limit_deadline - 30:
            break
        # BATCH, or H100/H200: footprint's predictions for an 80 GB and a 141 GB card.
        # LO:HI, a bracket already measured (LO fits, HI does not), goes straight to bisection.
        small, _, large = hint.partition("/")
        total = (report.get("environment") or {}).get("device_total", 0)
        hint = large if large and total > 100 << 30 else small
        out = os.path.join(workdir, f"limit_{m}.json")
        share = (start + args.limit_deadline - time.time()) / (len(hints) - k)  # each search its share
        budget = time.time() + 0.75 * share
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--device", "cuda", "--limit-search", m,
                                 "--hint", str(hint), "--search-deadline", str(budget - 20), "--out", out])
        wait_all([proc], budget)
        if not os.path.exists(out):
            continue
        found = json.load(open(out))
        report["limit_searches"].append(found)
        specs = [limit_spec(m, found["largest"], "largest that fits"),
                 limit_spec(m, found["smallest_failing"], "smallest that does not")]
        wait_all([spawn(args, specs, f"limit_{m}", workdir, trace=False)], budget + 0.25 * share + 10)
        for r in read_lines(os.path.join(workdir, f"limit_{m}.jsonl")):
            r["alone"] = True
            report["runs"].append(r)
    report["gpu"] = name
    report["seconds"] = round(time.time() - start, 1)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    # The traces: the workers' gzip members joined into files of at most 15 MiB each.
    parts, size, n = [], 0, 0
    for path in sorted(os.listdir(workdir)):
        if not path.endswith(".trace.gz"):
            continue
        data = open(os.path.join(workdir, path), "rb").read()
        if not parts or size + len(data) > 15 << 20:
            n += 1
            parts.append(open(f"{args.out[:-5]}-traces-{n}.jsonl.gz", "wb"))
            size = 0
        parts[-1].write(data)
        size += len(data)
    for p in parts:
        p.close()
    differ = sum(not r["identical"] for r in report["runs"])
    print(f"{len(report['runs'])} runs, {differ} with differing repeats, {n} trace files, "
          f"{report['seconds']} s, written to {args.out}")


def merge(paths, out):
    """One report from the reports of a plan measured in several calls (--skip): the first's
    environment, every run, and each part's command, probe and limit searches."""
    parts = [json.load(open(p)) for p in paths]
    report = {k: v for k, v in parts[0].items() if k not in ("runs", "limit_searches", "command", "seconds")}
    report["parts"] = [{"command": p.get("command"), "seconds": p.get("seconds"), "runs": len(p["runs"]),
                        "context": p.get("context"), "environment": p.get("environment")} for p in parts]
    report["limit_searches"] = [s for p in parts for s in p.get("limit_searches", [])]
    seen, runs = {}, []
    for p in parts:  # a later part's run replaces an earlier one of the same spec (a limit re-measured)
        for r in p["runs"]:
            key = json.dumps(r["spec"], sort_keys=True)
            if key in seen:
                runs[seen[key]] = r
            else:
                seen[key] = len(runs)
                runs.append(r)
    for r in runs:  # repeats compared again by same_run (device_used_after aside)
        r["identical"] = all(same_run(x, r["repeats"][0]) for x in r["repeats"])
    report["runs"] = runs
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"{len(runs)} runs from {len(paths)} reports, {sum(not r['identical'] for r in runs)} with "
          f"differing repeats, written to {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], required="--merge" not in sys.argv)
    ap.add_argument("--out", help="the JSON file to write (required unless --export-only)")
    ap.add_argument("--models", help="comma-separated; default: all (CUDA: the vision plan's)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="one batch, fp32, two optimizers (a harness test)")
    ap.add_argument("--export", help="write each model's TorchScript here")
    ap.add_argument("--precisions", help="comma-separated: fp32, bf16-amp (default: the plan's)")
    ap.add_argument("--export-only", action="store_true", help="only export (with --export); measure nothing")
    cuda = ap.add_argument_group("CUDA")
    cuda.add_argument("--workers", type=int, default=6, help="processes sharing the GPU for the plan")
    cuda.add_argument("--batches", default="1,8,64")
    cuda.add_argument("--plan", choices=["vision", "sequence"], default="vision",
                      help="the runs: issue 17's vision plan, or the sequence plan (attention, RNNs, transformers)")
    cuda.add_argument("--deadline", type=float, default=300, help="seconds for the plan's runs")
    cuda.add_argument("--limit-deadline", type=float, default=420, help="seconds since the start for the limits")
    cuda.add_argument("--limit-hints", help="MODEL=BATCH,...: a limit search from each hint")
    cuda.add_argument("--skip", help="an earlier report: its runs are not run again")
    cuda.add_argument("--max-runs", type=int, help="the plan's first N runs only (a trial)")
    cuda.add_argument("--no-trace", action="store_true", help="no traced pass")
    cuda.add_argument("--merge", nargs="+", help="merge these reports into --out")
    cuda.add_argument("--worker", help=argparse.SUPPRESS)
    cuda.add_argument("--worker-out", help=argparse.SUPPRESS)
    cuda.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    cuda.add_argument("--limit-search", help=argparse.SUPPRESS)
    cuda.add_argument("--hint", help=argparse.SUPPRESS)
    cuda.add_argument("--search-deadline", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.merge:
        merge(args.merge, args.out)
        return
    device = torch.device(args.device)
    if args.probe:
        env = environment(device)
        print(json.dumps({"environment": env, "context": context_probe(device),
                          "cublas_warmup": cublas_warmup(device)}))
        return
    if args.worker:
        worker(args, device)
        return
    if args.limit_search:
        torch.set_num_threads(2)
        found = limit_search(args.limit_search, device, args.hint, args.search_deadline)
        json.dump(found, open(args.out, "w"))
        return
    if not args.out and not args.export_only:
        ap.error("--out is required")
    if device.type == "cpu":
        torch.set_num_threads(1)
    default = (CUDA_SEQUENCE if args.plan == "sequence" else CUDA_VISION) if device.type == "cuda" else list(MODELS)
    models, skipped = [], {}
    for m in (args.models.split(",") if args.models else default):
        if m not in MODELS:
            ap.error(f"unknown model '{m}'; known: {', '.join(MODELS)}")
        try:
            if device.type == "cuda":  # the workers build it; here only whether it imports
                __import__("timm" if m.startswith("timm_") else
                           "transformers" if MODELS[m][2] == "tokens" else "torchvision")
            else:
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
    if device.type == "cuda":
        cuda_main(args, models)
        return
    report = {"environment": environment(device), "skipped": skipped, "runs": [], "exports": {}}
    runs = plan(models, device, args.quick, args.precisions)
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
