#!/usr/bin/env python3
"""A scaled-down llama, transformers' own LlamaForCausalLM (the pinned transformers 5, SDPA
attention, random weights) run by the pinned torch on CPU: the ground truth for footprint llm's C++
modules (tests/llm_test.cpp, LlmReal).

    python tests/gen/make_llm.py OUT_DIR

Writes OUT_DIR/tiny-llama.json (the config) and OUT_DIR/tiny-llama.reference.json:
  - parameters: the count, each tensor once;
  - forward_ops: the top-level aten ops of one training forward (the model's own loss, its
    DynamicCache: use_cache is the config's default), in order, views included, with their tensor
    inputs' shapes (the profiler's record_shapes; a list or scalar shows no shape);
  - train: the allocated peak of a training step per ../shared/MEASUREMENT.md (AdamW, for-loop,
    fp32, one thread; the profiler's [memory] events; the output dropped after backward),
    iterations 1 and 2;
  - prefill: the allocated peak of an inference prefill of the whole context into a StaticCache
    of that length, logits for the last token only, as generate() runs it.
"""
import json
import os
import sys

import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "cuda"))
from measure import CpuMeter, tensor_bytes  # noqa: E402  the harness of issue 4

CONFIG = {
    "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    "intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 128,
    "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "hidden_act": "silu",
    "torch_dtype": "float32",
}
BATCH, TOKENS = 2, 32


def build():
    cfg = transformers.LlamaConfig.from_dict(dict(CONFIG))
    cfg._attn_implementation = "sdpa"
    return transformers.LlamaForCausalLM(cfg), cfg


def forward_ops(model, ids, labels):
    """Top-level aten ops of one training forward, with their tensor inputs' shapes.

    From the legacy profiler's raw records, which come in the order their ranges opened and
    closed on each thread: counting pushes and pops gives each op's depth exactly. (The parsed
    function_events rebuild nesting from microsecond timestamps; in 1.13 ties make linear's
    matmul, a copy_ or a to move in and out of their parents at random.)"""
    from torch.autograd import ProfilerConfig, ProfilerState
    config = ProfilerConfig(ProfilerState.CPU, True, False, False, False, False,  # record_shapes
                            torch._C._profiler._ExperimentalConfig())
    torch.autograd._enable_profiler_legacy(config)
    try:
        model(input_ids=ids, labels=labels)
    finally:
        threads = torch.autograd._disable_profiler_legacy()
    best = []
    for records in threads:
        ops, depth = [], 0
        for r in records:
            if r.kind() == "push":
                if depth == 0 and r.name().startswith("aten::"):
                    ops.append([r.name(), [list(s) for s in r.shapes() if s]])
                depth += 1
            elif r.kind() == "pop":
                depth -= 1
        if len(ops) > len(best):  # the thread that ran the model
            best = ops
    return best


def train_peak(model, ids, labels):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, foreach=False)
    meter = CpuMeter(tensor_bytes(list(model.parameters()) + list(model.buffers()) + [ids, labels]))
    meter.start()
    for it in (1, 2):
        with meter.phase(f"iter{it}.zero_grad"):
            opt.zero_grad(set_to_none=True)
        with meter.phase(f"iter{it}.forward"):
            y = model(input_ids=ids, labels=labels)
        with meter.phase(f"iter{it}.backward"):
            y.loss.backward()
        del y
        with meter.phase(f"iter{it}.step"):
            opt.step()
    r = meter.finish()
    return {"allocated_peak": r["allocated_peak"],
            "iteration_peaks": [max(p["allocated_peak"] for k, p in r["phases"].items() if k.startswith(f"iter{i}."))
                                for i in (1, 2)]}


def prefill_peak(model, cfg, ids):
    model.eval()
    meter = CpuMeter(tensor_bytes(list(model.parameters()) + list(model.buffers()) + [ids]))
    meter.start()
    with meter.phase("inference"), torch.no_grad():
        cache = transformers.StaticCache(config=cfg, max_cache_len=ids.shape[1])
        y = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    del y, cache
    return meter.finish()["allocated_peak"]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with open(os.path.join(out, "tiny-llama.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    ids = torch.randint(0, CONFIG["vocab_size"], (BATCH, TOKENS))
    labels = torch.randint(0, CONFIG["vocab_size"], (BATCH, TOKENS))
    model, cfg = build()
    model.train()
    ref = {"batch": BATCH, "tokens": TOKENS,
           "parameters": sum(p.numel() for p in model.parameters()),
           "forward_ops": forward_ops(model, ids, labels),
           "train": train_peak(model, ids, labels),
           "prefill": prefill_peak(build()[0], cfg, ids),
           "torch": torch.__version__, "transformers": transformers.__version__}
    with open(os.path.join(out, "tiny-llama.reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    print(f"tiny-llama: {ref['parameters']} parameters, {len(ref['forward_ops'])} forward ops, "
          f"training peak {ref['train']['allocated_peak']} B, prefill peak {ref['prefill']} B")


if __name__ == "__main__":
    main()
