#!/usr/bin/env python3
"""A scaled-down llama, written in plain PyTorch after transformers 4.4x's modeling_llama.py (eager
attention, a static KV cache for inference), run by python3-torch on CPU: the ground truth for
footprint llm's C++ modules (tests/llm_test.cpp).

    /usr/bin/python3 tests/gen/make_llm.py OUT_DIR

Writes OUT_DIR/tiny-llama.json (the config) and OUT_DIR/tiny-llama.reference.json:
  - parameters: the count, each tensor once;
  - forward_ops: the top-level aten ops of one training forward, in order, with their tensor
    inputs' shapes (the profiler's record_shapes);
  - train: the allocated peak of a training step per ../shared/MEASUREMENT.md (AdamW, for-loop,
    fp32, one thread; the profiler's [memory] events), iterations 1 and 2;
  - prefill: the allocated peak of an inference prefill of the whole context into the cache.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "cuda"))
from measure import CpuMeter, tensor_bytes  # noqa: E402  the harness of issue 4

CONFIG = {
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
    "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
    "hidden_act": "silu", "torch_dtype": "float32",
}
BATCH, TOKENS = 2, 32


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        input_dtype = x.dtype
        h = x.to(torch.float32)
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + self.eps)
        return self.weight * h.to(input_dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    if n_rep == 1:
        return x
    b, kv, n, d = x.shape
    return x[:, :, None, :, :].expand(b, kv, n_rep, n, d).reshape(b, kv * n_rep, n, d)


class Attention(nn.Module):
    def __init__(self, c, cache):
        super().__init__()
        h, self.heads, self.kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.d = h // self.heads
        self.q_proj = nn.Linear(h, self.heads * self.d, bias=False)
        self.k_proj = nn.Linear(h, self.kv * self.d, bias=False)
        self.v_proj = nn.Linear(h, self.kv * self.d, bias=False)
        self.o_proj = nn.Linear(self.heads * self.d, h, bias=False)
        if cache:
            self.register_buffer("k_cache", torch.zeros(cache[0], self.kv, cache[1], self.d))
            self.register_buffer("v_cache", torch.zeros(cache[0], self.kv, cache[1], self.d))
        self.cache = cache

    def forward(self, x, cos, sin, mask, position):
        b, s = x.shape[:2]
        q = self.q_proj(x).view(b, s, -1, self.d).transpose(1, 2)
        k = self.k_proj(x).view(b, s, -1, self.d).transpose(1, 2)
        v = self.v_proj(x).view(b, s, -1, self.d).transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q = (q * cos) + (rotate_half(q) * sin)
        k = (k * cos) + (rotate_half(k) * sin)
        if self.cache:
            self.k_cache.narrow(2, position, s).copy_(k)
            self.v_cache.narrow(2, position, s).copy_(v)
            k = self.k_cache.narrow(2, 0, position + s)
            v = self.v_cache.narrow(2, 0, position + s)
        k = repeat_kv(k, self.heads // self.kv)
        v = repeat_kv(v, self.heads // self.kv)
        w = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(self.d))
        w = w + mask.narrow(-1, 0, k.shape[-2])
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(w, v)
        out = out.transpose(1, 2).contiguous().reshape(b, s, -1).contiguous()
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c, cache):
        super().__init__()
        self.self_attn = Attention(c, cache)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, cos, sin, mask, position):
        residual = x
        h = self.self_attn(self.input_layernorm(x), cos, sin, mask, position)
        h = residual + h
        residual = h
        h = self.mlp(self.post_attention_layernorm(h))
        return residual + h


class Rotary(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d)), persistent=False)


class Body(nn.Module):
    def __init__(self, c, cache):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Layer(c, cache) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.rotary_emb = Rotary(c["hidden_size"] // c["num_attention_heads"])


class LlamaForCausalLM(nn.Module):
    def __init__(self, c, cache=None):
        super().__init__()
        self.model = Body(c, cache)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)

    def forward(self, ids, labels=None, position=0):
        b, s = ids.shape
        h = self.model.embed_tokens(ids)
        cache_position = torch.arange(position, position + s)
        position_ids = cache_position.unsqueeze(0)
        t = position + s
        mask = torch.full((s, t), torch.finfo(h.dtype).min, dtype=h.dtype)
        if s != 1:
            mask = torch.triu(mask, diagonal=1)
        mask *= torch.arange(t) > cache_position.reshape(-1, 1)
        mask = mask[None, None, :, :].expand(b, 1, -1, -1)
        inv = self.model.rotary_emb.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        pos = position_ids[:, None, :].float()
        freqs = (inv.float() @ pos.float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = (emb.cos() * 1.0).to(h.dtype)
        sin = (emb.sin() * 1.0).to(h.dtype)
        for layer in self.model.layers:
            h = layer(h, cos, sin, mask, position)
        h = self.model.norm(h)
        if labels is None:
            h = h.narrow(1, s - 1, 1)
        logits = self.lm_head(h)
        if labels is None:
            return logits
        logits = logits.float()  # ForCausalLMLoss
        padded = F.pad(labels, (0, 1), value=-100)
        shift = padded[..., 1:].contiguous()
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), shift.view(-1), ignore_index=-100)


def forward_ops(model, ids, labels):
    """Top-level aten ops of one training forward, with their tensor inputs' shapes."""
    # The legacy profiler: Kineto's microsecond times tie and lose parents now and then.
    with torch.autograd.profiler.profile(use_kineto=False, record_shapes=True) as prof:
        model(ids, labels)
    ops = []
    for e in prof.function_events:
        if e.cpu_parent is not None or not e.name.startswith("aten::"):
            continue
        shapes = [list(s) for s in e.input_shapes if s]
        # 1.13 loses linear's link to its matmul (input @ weight.t()): that matmul is linear's.
        if (e.name == "aten::matmul" and ops and ops[-1][0] == "aten::linear" and len(shapes) == 2
                and shapes[0] == ops[-1][1][0] and shapes[1] == ops[-1][1][1][::-1]):
            continue
        ops.append([e.name, shapes])
    return ops


def train_peak(model, ids, labels):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, foreach=False)
    meter = CpuMeter(tensor_bytes(list(model.parameters()) + list(model.buffers()) + [ids, labels]))
    meter.start()
    for it in (1, 2):
        with meter.phase(f"iter{it}.zero_grad"):
            opt.zero_grad(set_to_none=True)
        with meter.phase(f"iter{it}.forward"):
            loss = model(ids, labels)
        with meter.phase(f"iter{it}.backward"):
            loss.backward()
        del loss
        with meter.phase(f"iter{it}.step"):
            opt.step()
    r = meter.finish()
    return {"allocated_peak": r["allocated_peak"],
            "iteration_peaks": [max(p["allocated_peak"] for k, p in r["phases"].items() if k.startswith(f"iter{i}."))
                                for i in (1, 2)]}


def prefill_peak(model, ids):
    model.eval()
    meter = CpuMeter(tensor_bytes(list(model.parameters()) + list(model.buffers()) + [ids]))
    meter.start()
    with meter.phase("inference"), torch.no_grad():
        y = model(ids)
    del y
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
    model = LlamaForCausalLM(CONFIG).train()
    ref = {"batch": BATCH, "tokens": TOKENS,
           "parameters": sum(p.numel() for p in model.parameters()),
           "forward_ops": forward_ops(model, ids, labels),
           "train": train_peak(model, ids, labels),
           "prefill": prefill_peak(LlamaForCausalLM(CONFIG, cache=(BATCH, TOKENS)), ids),
           "torch": torch.__version__}
    with open(os.path.join(out, "tiny-llama.reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    print(f"tiny-llama: {ref['parameters']} parameters, {len(ref['forward_ops'])} forward ops, "
          f"training peak {ref['train']['allocated_peak']} B, prefill peak {ref['prefill']} B")


if __name__ == "__main__":
    main()
