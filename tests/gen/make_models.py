#!/usr/bin/env python3
"""Writes the real-model test files and what PyTorch itself says about them.

Run at test time with the pinned torch / torchvision (dev.sh's virtual environment; ctest
fixture `models`):
    python tests/gen/make_models.py OUTDIR

For each model: NAME.pt (torch.jit.script), NAME.pth (torch.save state_dict) and
NAME.safetensors (written here: 8-byte length, JSON header, raw bytes; Debian has no safetensors
package). expected.json holds, per file, the numbers PyTorch computes: sum(p.numel()) over
parameters(), trainable ones, sum(b.numel()) over buffers(), tensor counts, bytes, and the same per
top-level child. Nothing here is copied from footprint's output.
"""
import json
import os
import pickle
import subprocess
import sys
import zipfile

import hashlib

import torch
import torch.nn as nn
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
from hybrid_network import HybridNetwork, save_safetensors  # noqa: E402  the seed's model, as written there

torch.manual_seed(0)
torch.set_num_threads(1)

def unique_state_dict(model):
    """state_dict without the repeats of tied tensors, as Hugging Face's save_model writes it."""
    seen, out = set(), {}
    for k, v in model.state_dict().items():
        key = (v.data_ptr(), v.dtype, tuple(v.shape), tuple(v.stride()))
        if key not in seen:
            seen.add(key)
            out[k] = v
    return out


def numbers(model):
    """What PyTorch says: parameters() and buffers() dedupe tied tensors."""
    params = list(model.parameters())
    buffers = list(model.buffers())
    return {
        "params": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
        "buffers": sum(b.numel() for b in buffers),
        "param_tensors": len(params),
        "buffer_tensors": len(buffers),
        "bytes": sum(t.numel() * t.element_size() for t in params + buffers),
        # state_dict() holds persistent buffers only.
        "persistent_buffers": sum(b.numel() for n, b in model.named_buffers() if n in model.state_dict()),
        "children": {name: [sum(p.numel() for p in c.parameters()), sum(b.numel() for b in c.buffers())]
                     for name, c in model.named_children()},
    }


class TiedLM(nn.Module):
    """An output projection sharing the embedding's weight."""
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.body = nn.Linear(16, 16)
        self.head = nn.Linear(16, 100, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, x):
        return self.head(torch.relu(self.body(self.embed(x))))


class Mixed(nn.Module):
    """ModuleDict, ModuleList, a bare Parameter, a float buffer, a non-persistent buffer and a
    frozen layer: what the name rule cannot tell, and the formats that record it can."""
    def __init__(self):
        super().__init__()
        self.heads = nn.ModuleDict({"a": nn.Linear(3, 4), "b": nn.Linear(4, 5)})
        self.blocks = nn.ModuleList([nn.Linear(5, 5) for _ in range(3)])
        self.scale = nn.Parameter(torch.ones(7))
        self.register_buffer("mask", torch.ones(2, 2))
        self.register_buffer("scratch", torch.ones(3), persistent=False)
        self.blocks[0].weight.requires_grad_(False)

    def forward(self, x):
        x = self.heads["b"](self.heads["a"](x))
        for b in self.blocks:
            x = b(x)
        return x * self.scale[0]


def transformer():
    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)


def frozen_resnet18():
    m = torchvision.models.resnet18()
    for p in list(m.layer1.parameters()) + list(m.conv1.parameters()):
        p.requires_grad_(False)
    return m


class Twice(nn.Module):
    """One Linear called twice, with a functional relu between: two calls, one set of weights."""
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.fc(torch.relu(self.fc(x))))


class MatmulAttention(nn.Module):
    """Self-attention written with functional ops (@, softmax), which module hooks never see."""
    def __init__(self, d=8):
        super().__init__()
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.scale = d ** -0.5

    def forward(self, x):
        q, k, v = self.q(x), self.k(x), self.v(x)
        scores = q @ k.transpose(-2, -1) * self.scale
        return torch.softmax(scores, dim=-1) @ v


class NoMetaKernel(nn.Module):
    """torch.logit has no Meta kernel in C++ LibTorch (1.13 or 2.11), and footprint has no FLOP rule for it."""
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x):
        return self.b(torch.logit(torch.sigmoid(self.a(x))))


class TwoConv(nn.Module):
    """The second seed's model (pytorch_modelsize's article), with the super().__init__() it lacks."""
    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(1, 16, kernel_size=3, padding=5)
        self.conv1 = nn.Conv2d(16, 32, kernel_size=3)

    def forward(self, x):
        h = self.conv0(x)
        h = self.conv1(h)
        return h


class Locals(nn.Module):
    """Python's lifetimes, not TorchScript's: `a` is read once but lives until forward returns;
    each `b` lives until the name is bound again (tests/memory_test.cpp works out the peak)."""
    def forward(self, x):
        a = x * 2
        b = a + 1
        b = b * 3
        b = b * 4
        return b


class SelfAttention(nn.Module):
    """nn.MultiheadAttention, batch first with an even number of heads: in eval and without grad
    PyTorch takes its fast path, _native_multi_head_attention (tests/memory_test.cpp)."""
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


# TorchScript only: the summary and memory tests work their numbers out by hand.
SUMMARY_MODELS = {"twice": Twice, "matmul_attention": MatmulAttention, "no_meta_kernel": NoMetaKernel,
                  "two_conv": TwoConv, "locals": Locals, "self_attention": SelfAttention}

# What a real forward says at 1x3x224x224, for tests/engine_test.cpp.
SUMMARY_CHECKED = ("resnet18", "resnet50", "vgg16", "mobilenet_v2", "densenet121")


def hooked_forward(model, shape):
    """Each module's output shapes, per call, from forward hooks on a real eval forward; and the
    conv + linear MACs worked out from each layer's shapes: a Conv2d output element takes
    in_channels / groups x kh x kw MACs, a Linear one in_features."""
    model.eval()
    shapes, macs = {}, [0]

    def hook(name):
        def fn(module, inputs, output):
            if isinstance(output, torch.Tensor):
                shapes.setdefault(name, []).append([list(output.shape)])
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                macs[0] += output.numel() * (module.in_channels // module.groups) * kh * kw
            elif isinstance(module, nn.Linear):
                macs[0] += output.numel() * module.in_features
        return fn

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules()]
    with torch.no_grad():
        model(torch.randn(shape))
    for h in handles:
        h.remove()
    return {"shapes": shapes, "conv_linear_macs": macs[0]}


MODELS = {
    "hybrid_network": HybridNetwork,
    "resnet18": torchvision.models.resnet18,
    "resnet50": torchvision.models.resnet50,
    "vgg16": torchvision.models.vgg16,
    "mobilenet_v2": torchvision.models.mobilenet_v2,
    "densenet121": torchvision.models.densenet121,
    "transformer": transformer,
    "transformer_bf16": lambda: transformer().to(torch.bfloat16),
    "tied": TiedLM,
    "resnet18_frozen": frozen_resnet18,
    "mixed": Mixed,
}


def forward_growth(model, shape):
    """Net bytes a training-mode forward leaves allocated (activations saved for backward, and the
    output), from the profiler's [memory] events on one thread, as ../shared/MEASUREMENT.md
    measures CPU memory. tests/meta_test.cpp holds the meta device to it."""
    model.train()
    x = torch.randn(shape)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        y = model(x)
    del y
    return sum(e.nbytes() for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")


GROWTH_MODELS = ("resnet18", "mobilenet_v2", "vgg16", "densenet121")


def write_sharded(model, out, name):
    """Two shards and an index, as Hugging Face's save_pretrained writes them."""
    sd = model.state_dict()
    keys = list(sd)
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2:]]
    for ext, index_name in (("safetensors", "model.safetensors.index.json"), ("bin", "pytorch_model.bin.index.json")):
        folder = os.path.join(out, f"{name}_sharded_{ext}")
        os.makedirs(folder, exist_ok=True)
        weight_map, total = {}, 0
        for i, part in enumerate(halves):
            shard = f"model-{i + 1:05d}-of-00002.{ext}" if ext == "safetensors" else f"pytorch_model-{i + 1:05d}-of-00002.bin"
            sub = {k: sd[k] for k in part}
            if ext == "safetensors":
                save_safetensors(sub, os.path.join(folder, shard))
            else:
                torch.save(sub, os.path.join(folder, shard))
            for k in part:
                weight_map[k] = shard
                total += sd[k].numel() * sd[k].element_size()
        with open(os.path.join(folder, index_name), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def write_hostile(out):
    """A torch.save-shaped zip whose pickle would run os.system if torch.load executed it."""
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + os.path.join(out, "PWNED"),))
    with zipfile.ZipFile(os.path.join(out, "evil.pth"), "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"weight": Evil()}, protocol=2))
        z.writestr("archive/version", "3\n")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # Skip the work when the files exist and the scripts that made them have not changed.
    digest = hashlib.sha256()
    for script in ("make_models.py", "make_llama7b.py", "../../examples/hybrid_network.py"):
        with open(os.path.join(HERE, script), "rb") as f:
            digest.update(f.read())
    stamp = os.path.join(out, "stamp")
    if os.path.exists(stamp) and open(stamp).read() == digest.hexdigest():
        print(f"{out}: up to date")
        return
    expected = {}
    for name, make in MODELS.items():
        model = make()
        facts = numbers(model)
        expected[name] = facts
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, os.path.join(out, name + ".pt"))
        torch.save(model.state_dict(), os.path.join(out, name + ".pth"))
        save_safetensors(unique_state_dict(model), os.path.join(out, name + ".safetensors"))
        if name in SUMMARY_CHECKED:
            facts["summary_1x3x224x224"] = hooked_forward(model, (1, 3, 224, 224))
        if name in GROWTH_MODELS:
            facts["forward_growth_train_b2"] = forward_growth(model, (2, 3, 224, 224))
        if name == "mixed":
            torch.save(model.state_dict(keep_vars=True), os.path.join(out, "mixed_keepvars.pth"))
        if name == "resnet18":
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            model(torch.randn(2, 3, 64, 64)).sum().backward()
            opt.step()  # creates one momentum buffer per parameter
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3},
                       os.path.join(out, "resnet18_nested.pth"))
            torch.save({"state_dict": model.state_dict(), "epoch": 3}, os.path.join(out, "resnet18_lightning.pth"))
            write_sharded(model, out, name)
        print(f"{name}: {facts['params']:,} parameters, {facts['buffers']:,} buffer elements", flush=True)
    for name, make in SUMMARY_MODELS.items():
        torch.jit.save(torch.jit.script(make()), os.path.join(out, name + ".pt"))
    write_hostile(out)
    # LLaMA-7B's shapes at full size, as sparse shards (headers only on disk).

    subprocess.run([sys.executable, os.path.join(HERE, "make_llama7b.py"), os.path.join(out, "llama7b")], check=True)
    expected["_torch"] = torch.__version__
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    with open(stamp, "w") as f:
        f.write(digest.hexdigest())


if __name__ == "__main__":
    main()
