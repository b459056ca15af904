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


GGUF_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight":
              "output_norm.weight", "lm_head.weight": "output.weight",
              "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
              "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight":
              "attn_output.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
              "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
              "input_layernorm.weight": "attn_norm.weight",
              "post_attention_layernorm.weight": "ffn_norm.weight"}


def write_gguf(path):
    """The same LLaMA-7B as a GGUF v3 file at Q4_K, with the output, attn_v and ffn_down at Q6_K
    and the norms at F32 (about llama.cpp's Q4_K_M), llama.cpp's metadata and a 32,000-string
    tokenizer: the header only, then truncate() to its full 4.3 GB (a sparse file). Written field by field (gguf.md) so that no
    4 GB of data is written."""
    def s(text):
        b = text.encode()
        return struct.pack("<Q", len(b)) + b
    kv = [(s("general.architecture"), 8, s("llama")), (s("general.name"), 8, s("LLaMA-7B sparse")),
          (s("llama.block_count"), 4, struct.pack("<I", LAYERS)),
          (s("llama.context_length"), 4, struct.pack("<I", 2048)),
          (s("llama.embedding_length"), 4, struct.pack("<I", HIDDEN)),
          (s("llama.feed_forward_length"), 4, struct.pack("<I", INTER)),
          (s("llama.attention.head_count"), 4, struct.pack("<I", 32)),
          (s("llama.attention.head_count_kv"), 4, struct.pack("<I", 32)),
          (s("tokenizer.ggml.tokens"), 9,
           struct.pack("<IQ", 8, VOCAB) + b"".join(s(f"<tok{i}>") for i in range(VOCAB)))]
    infos, offset = [], 0
    for name, shape in tensors():
        if name.startswith("model.layers."):
            i = name.split(".")[2]
            gname = f"blk.{i}." + GGUF_NAMES[name.split(".", 3)[3]]
        else:
            gname = GGUF_NAMES[name]
        ne = shape[::-1]
        numel = 1
        for d in ne:
            numel *= d
        if len(shape) == 1:
            t, nbytes = 0, 4 * numel  # F32
        elif gname == "output.weight" or gname.endswith(("attn_v.weight", "ffn_down.weight")):
            t, nbytes = 14, numel // 256 * 210  # Q6_K, where Q4_K_M keeps more bits
        else:
            t, nbytes = 12, numel // 256 * 144  # Q4_K
        infos.append(s(gname) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
                     + struct.pack("<IQ", t, offset))
        offset += (nbytes + 31) // 32 * 32
    header = b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(kv))
    header += b"".join(k + struct.pack("<I", t) + v for k, t, v in kv) + b"".join(infos)
    header += b"\0" * ((32 - len(header) % 32) % 32)
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + offset)


if __name__ == "__main__":
    main()
    write_gguf(os.path.join(sys.argv[1], "llama-7b-q4_k.gguf"))
