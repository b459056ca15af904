#!/usr/bin/env python3
"""The first seed's HybridNetwork in PyTorch, as its article writes it, and an exporter:

    python examples/hybrid_network.py OUTDIR

writes OUTDIR/hybrid_network.pt (TorchScript), .pth (state_dict) and .safetensors, for
`footprint params`. tests/gen/make_models.py imports the model from here.
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


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



def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = HybridNetwork()
    torch.jit.save(torch.jit.script(model), os.path.join(out, "hybrid_network.pt"))
    torch.save(model.state_dict(), os.path.join(out, "hybrid_network.pth"))
    save_safetensors(model.state_dict(), os.path.join(out, "hybrid_network.safetensors"))
    # The seed's approach 1, for comparison: sum(p.numel()) x 4 bytes.
    n = sum(p.numel() for p in model.parameters())
    print(f"PyTorch: Total Parameters: {n:,}  Total Memory: {n * 4 / 1024**2:.2f} MB (1 MB = 1024^2 bytes)")


if __name__ == "__main__":
    main()
