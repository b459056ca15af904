#!/usr/bin/env python3
"""Writes the real-model test files and what PyTorch itself says about them.

Run at test time with Debian's python3-torch / python3-torchvision (ctest fixture `models`):
    /usr/bin/python3 tests/gen/make_models.py OUTDIR

For each model: NAME.pt (torch.jit.script), NAME.pth (torch.save state_dict) and
NAME.safetensors (written here: 8-byte length, JSON header, raw bytes; Debian has no safetensors
package). expected.json holds, per file, the numbers PyTorch computes: sum(p.numel()) over
parameters(), trainable ones, sum(b.numel()) over buffers(), tensor counts, bytes, and the same per
top-level child. Nothing here is copied from footprint's output.
"""
import json
import os
import pickle
import struct
import sys
import zipfile

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

torch.manual_seed(0)
torch.set_num_threads(1)

SAFETENSORS_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


def save_safetensors(state_dict, path):
    """The safetensors layout: u64 little-endian header length, JSON header, tensor bytes."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in state_dict.items():
        t = t.detach().contiguous()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


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
        "children": {name: [sum(p.numel() for p in c.parameters()), sum(b.numel() for b in c.buffers())]
                     for name, c in model.named_children()},
    }


# The first seed's HybridNetwork, as its article writes it.
class MultiScaleModule(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.path_1x1 = nn.Conv2d(c, 12, kernel_size=1)
        self.path_3x3_reduce = nn.Conv2d(c, 10, kernel_size=1)
        self.path_3x3_expand = nn.Conv2d(10, 18, kernel_size=3, padding=1)
        self.path_5x5_reduce = nn.Conv2d(c, 8, kernel_size=1)
        self.path_5x5_expand = nn.Conv2d(8, 14, kernel_size=5, padding=2)
        self.path_pool = nn.Conv2d(c, 8, kernel_size=1)

    def forward(self, x):
        a = self.path_1x1(x)
        b = self.path_3x3_expand(self.path_3x3_reduce(x))
        c = self.path_5x5_expand(self.path_5x5_reduce(x))
        d = self.path_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([a, b, c, d], dim=1)


class HybridNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.entry_conv = nn.Conv2d(1, 6, kernel_size=5)
        self.stage_a = MultiScaleModule(6)
        self.transition = nn.Conv2d(52, 12, kernel_size=5)
        self.stage_b = MultiScaleModule(12)
        self.spatial_reduce = nn.MaxPool2d(kernel_size=2)
        self.predictor = nn.Linear(832, 10)

    def forward(self, x):
        batch_dim = x.size(0)
        x = F.relu(self.spatial_reduce(self.entry_conv(x)))
        x = self.stage_a(x)
        x = F.relu(self.spatial_reduce(self.transition(x)))
        x = self.stage_b(x)
        x = x.view(batch_dim, -1)
        return self.predictor(x)


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


def transformer():
    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)


def frozen_resnet18():
    m = torchvision.models.resnet18()
    for p in list(m.layer1.parameters()) + list(m.conv1.parameters()):
        p.requires_grad_(False)
    return m


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
}


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
    expected = {}
    for name, make in MODELS.items():
        model = make()
        facts = numbers(model)
        expected[name] = facts
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, os.path.join(out, name + ".pt"))
        torch.save(model.state_dict(), os.path.join(out, name + ".pth"))
        save_safetensors(unique_state_dict(model), os.path.join(out, name + ".safetensors"))
        if name == "resnet18":
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            model(torch.randn(2, 3, 64, 64)).sum().backward()
            opt.step()  # creates one momentum buffer per parameter
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3},
                       os.path.join(out, "resnet18_nested.pth"))
            torch.save({"state_dict": model.state_dict(), "epoch": 3}, os.path.join(out, "resnet18_lightning.pth"))
            write_sharded(model, out, name)
        print(f"{name}: {facts['params']:,} parameters, {facts['buffers']:,} buffer elements", flush=True)
    write_hostile(out)
    expected["_torch"] = torch.__version__
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main()
