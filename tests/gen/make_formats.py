"""GGUF, ONNX and torch.export (.pt2) files made by the formats' own tools, and what the formats'
own readers say of them (expected.json), for tests/formats_test.py. Nothing here is committed.

    make_formats.py OUT_DIR

- GGUF by the gguf package's GGUFWriter: a small llama-shaped model (hidden 256, 2 layers, 4
  heads, 2 KV heads, feed-forward 512, vocabulary 256) at F16, Q8_0 and Q4_K (the output at Q6_K,
  as llama.cpp's Q4_K_M does), norms at F32, with llama.cpp's metadata. Expected: GGUFReader's
  n_elements and n_bytes per tensor, and gguf's GGML_QUANT_SIZES table.
- ONNX by torch.onnx.export: torchvision resnet18 with its weights inside, and a small
  TransformerEncoder with its weights in an external data file. Expected: onnx.load (without the
  external data), each initializer's dims and data type.
- .pt2 by torch.export.save of the same two models. Expected: torch.export.load's state_dict
  numel and bytes, and the graph's call_function targets with their output shapes.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

import gguf
import onnx

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
expected = {}

# ---------------------------------------------------------------------------------------- GGUF
HIDDEN, LAYERS, HEADS, KV_HEADS, FF, VOCAB, CONTEXT = 256, 2, 4, 2, 512, 256, 2048
HEAD_DIM = HIDDEN // HEADS
Q = gguf.GGMLQuantizationType


def llama_tensors():
    """(name, shape in ggml order (ne[0] first), is a norm)."""
    t = [("token_embd.weight", (HIDDEN, VOCAB), False)]
    for i in range(LAYERS):
        b = f"blk.{i}."
        t += [(b + "attn_norm.weight", (HIDDEN,), True),
              (b + "attn_q.weight", (HIDDEN, HIDDEN), False),
              (b + "attn_k.weight", (HIDDEN, KV_HEADS * HEAD_DIM), False),
              (b + "attn_v.weight", (HIDDEN, KV_HEADS * HEAD_DIM), False),
              (b + "attn_output.weight", (HIDDEN, HIDDEN), False),
              (b + "ffn_norm.weight", (HIDDEN,), True),
              (b + "ffn_gate.weight", (HIDDEN, FF), False),
              (b + "ffn_up.weight", (HIDDEN, FF), False),
              (b + "ffn_down.weight", (FF, HIDDEN), False)]
    t += [("output_norm.weight", (HIDDEN,), True), ("output.weight", (HIDDEN, VOCAB), False)]
    return t


def write_gguf(name, qtype, output_type):
    path = os.path.join(OUT, name + ".gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_block_count(LAYERS)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"tok{i}" for i in range(VOCAB)])
    rng = np.random.default_rng(0)
    for tname, shape, norm in llama_tensors():
        t = Q.F32 if norm else output_type if tname == "output.weight" else qtype
        if t == Q.F32:
            w.add_tensor(tname, rng.standard_normal(shape[::-1]).astype(np.float32))
        elif t == Q.F16:
            w.add_tensor(tname, rng.standard_normal(shape[::-1]).astype(np.float16))
        else:
            block, size = gguf.GGML_QUANT_SIZES[t]
            rows = int(np.prod(shape[1:]))
            data = rng.integers(0, 255, size=(rows, shape[0] // block * size), dtype=np.uint8)
            w.add_tensor(tname, data, raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = gguf.GGUFReader(path)
    expected[name + ".gguf"] = {
        "tensors": {t.name: {"numel": int(t.n_elements), "bytes": int(t.n_bytes),
                             "type": t.tensor_type.name} for t in r.tensors},
        "numel": int(sum(t.n_elements for t in r.tensors)),
        "bytes": int(sum(t.n_bytes for t in r.tensors)),
    }


write_gguf("llama_f16", Q.F16, Q.F16)
write_gguf("llama_q8_0", Q.Q8_0, Q.Q8_0)
write_gguf("llama_q4_k", Q.Q4_K, Q.Q6_K)
expected["ggml_quant_sizes"] = {t.name: [int(t.value), b, s]
                               for t, (b, s) in gguf.GGML_QUANT_SIZES.items()}
expected["llama_gguf"] = {"hidden": HIDDEN, "layers": LAYERS, "heads": HEADS,
                          "kv_heads": KV_HEADS, "ff": FF, "vocab": VOCAB, "context": CONTEXT}

# ---------------------------------------------------------------------------------------- ONNX
torch.manual_seed(0)
resnet = torchvision.models.resnet18().eval()
encoder = nn.TransformerEncoder(
    nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, batch_first=True),
    num_layers=2, enable_nested_tensor=False).eval()
MODELS = {"resnet18": (resnet, (torch.randn(1, 3, 224, 224),)),
          "encoder": (encoder, (torch.randn(2, 16, 64),))}
ONNX_DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8,
                    16: 2}

for name, (model, args) in MODELS.items():
    external = name == "encoder"
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(model, args, path, external_data=external, dynamo=True)
    m = onnx.load(path, load_external_data=False)
    inits = {}
    for t in m.graph.initializer:
        numel = int(np.prod(t.dims)) if len(t.dims) else 1
        inits[t.name] = {"dims": [int(d) for d in t.dims], "data_type": int(t.data_type),
                         "numel": numel, "bytes": numel * ONNX_DTYPE_BYTES[t.data_type],
                         "external": t.data_location == onnx.TensorProto.EXTERNAL}
    expected[name + ".onnx"] = {
        "initializers": inits,
        "numel": sum(i["numel"] for i in inits.values()),
        "bytes": sum(i["bytes"] for i in inits.values()),
        "external": sorted({e.value for t in m.graph.initializer for e in t.external_data
                            if e.key == "location"}),
    }

# ------------------------------------------------------------------------------- torch.export
for name, (model, args) in MODELS.items():
    path = os.path.join(OUT, name + ".pt2")
    torch.export.save(torch.export.export(model, args), path)
    ep = torch.export.load(path)
    sd = ep.state_dict
    ops = []
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        val = node.meta.get("val")
        shape = list(val.shape) if isinstance(val, torch.Tensor) else None
        ops.append({"target": str(node.target), "shape": shape})
    expected[name + ".pt2"] = {
        "numel": int(sum(t.numel() for t in sd.values())),
        "bytes": int(sum(t.numel() * t.element_size() for t in sd.values())),
        "parameters": int(sum(p.numel() for p in ep.parameters())),
        "buffers": {k: list(v.shape) for k, v in ep.named_buffers()},
        "ops": ops,
    }

with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
print(f"make_formats.py: {len(expected)} entries in {OUT}/expected.json")
