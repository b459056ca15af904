#!/usr/bin/env python3
"""A sharded safetensors checkpoint shaped like LLaMA-7B, at full size, as sparse files.

    python3 tests/gen/make_llama7b.py OUTDIR

Writes OUTDIR/model.safetensors.index.json and the shards it names, split at 10 GB as
transformers' save_pretrained(max_shard_size="10GB") does, in float16 as the published
checkpoint is. Only the headers are written; truncate() extends each shard to its full size
(13.5 GB in all) without using the disk. Parameter count, by hand:
  embed_tokens and lm_head: 2 x 32,000 x 4,096                      =   262,144,000
  per layer: q, k, v, o 4 x 4,096^2 + gate, up, down 3 x 4,096 x 11,008
             + 2 RMSNorm weights of 4,096                            =   202,383,360
  32 layers                                                          = 6,476,267,520
  final norm                                                         =         4,096
  total                                                              = 6,738,415,616
"""
import json
import os
import struct
import sys

HIDDEN, INTER, LAYERS, VOCAB = 4096, 11008, 32, 32000
MAX_SHARD = 10 * 10**9


def tensors():
    yield "model.embed_tokens.weight", [VOCAB, HIDDEN]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            yield p + f"self_attn.{n}.weight", [HIDDEN, HIDDEN]
        yield p + "mlp.gate_proj.weight", [INTER, HIDDEN]
        yield p + "mlp.up_proj.weight", [INTER, HIDDEN]
        yield p + "mlp.down_proj.weight", [HIDDEN, INTER]
        yield p + "input_layernorm.weight", [HIDDEN]
        yield p + "post_attention_layernorm.weight", [HIDDEN]
    yield "model.norm.weight", [HIDDEN]
    yield "lm_head.weight", [VOCAB, HIDDEN]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    shards, current, size = [], [], 0
    for name, shape in tensors():
        nbytes = 2 * shape[0] * (shape[1] if len(shape) > 1 else 1)
        if current and size + nbytes > MAX_SHARD:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape, nbytes))
        size += nbytes
    shards.append(current)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name, shape, nbytes in shard:
            header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = fname
        text = json.dumps(header).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        with open(os.path.join(out, fname), "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text)
            f.truncate(8 + len(text) + offset)
        total += offset
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


if __name__ == "__main__":
    main()
