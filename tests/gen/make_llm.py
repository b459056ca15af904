#!/usr/bin/env python3
"""A scaled-down llama, written in plain PyTorch after transformers 4.48's modeling_llama.py (eager
attention, a static KV cache for inference), run by the pinned torch on CPU: the ground truth for
footprint llm's C++ modules (tests/llm_test.cpp). The functions and their local variables are
transformers', so tensors live as long as they do there (a Python local holds its tensor until the
function returns or the name is rebound): inputs_embeds through all layers, the eager attention
weights until the decoder layer returns, the unrotated q and k until both are rotated.

    python tests/gen/make_llm.py OUT_DIR

Writes OUT_DIR/tiny-llama.json (the config) and OUT_DIR/tiny-llama.reference.json:
  - parameters: the count, each tensor once;
  - forward_ops: the top-level aten ops of one training forward, in order, views included, with
    their tensor inputs' shapes (the profiler's record_shapes; a list or scalar shows no shape);
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


def apply_rotary_pos_emb(q, k, cos, sin):
    cos = cos.unsqueeze(1)
    sin = sin.unsqueeze(1)
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed


def repeat_kv(x, n_rep):
    b, kv, n, d = x.shape
    if n_rep == 1:
        return x
    x = x[:, :, None, :, :].expand(b, kv, n_rep, n, d)
    return x.reshape(b, kv * n_rep, n, d)


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0):
    key_states = repeat_kv(key, module.heads // module.kv)
    value_states = repeat_kv(value, module.heads // module.kv)
    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    if attention_mask is not None:
        causal_mask = attention_mask[:, :, :, : key_states.shape[-2]]
        attn_weights = attn_weights + causal_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value_states)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


class Attention(nn.Module):
    def __init__(self, c, cache):
        super().__init__()
        h, self.heads, self.kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.d = h // self.heads
        self.scaling = self.d ** -0.5
        self.attention_dropout = c.get("attention_dropout", 0.0)
        self.q_proj = nn.Linear(h, self.heads * self.d, bias=False)
        self.k_proj = nn.Linear(h, self.kv * self.d, bias=False)
        self.v_proj = nn.Linear(h, self.kv * self.d, bias=False)
        self.o_proj = nn.Linear(self.heads * self.d, h, bias=False)
        if cache:
            self.register_buffer("k_cache", torch.zeros(cache[0], self.kv, cache[1], self.d))
            self.register_buffer("v_cache", torch.zeros(cache[0], self.kv, cache[1], self.d))
        self.cache = cache

    def update(self, k, v, position):
        """A static cache: writes this step at `position`, returns every key and value so far."""
        s = k.shape[2]
        self.k_cache.narrow(2, position, s).copy_(k)
        self.v_cache.narrow(2, position, s).copy_(v)
        return self.k_cache.narrow(2, 0, position + s), self.v_cache.narrow(2, 0, position + s)

    def forward(self, hidden_states, position_embeddings, attention_mask, position):
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.d)
        query_states = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        key_states = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
        if self.cache:
            key_states, value_states = self.update(key_states, value_states, position)
        attn_output, attn_weights = eager_attention_forward(
            self, query_states, key_states, value_states, attention_mask, scaling=self.scaling,
            dropout=0.0 if not self.training else self.attention_dropout)
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        attn_output = self.o_proj(attn_output)
        return attn_output, attn_weights


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

    def forward(self, hidden_states, attention_mask, position_embeddings, position):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states, self_attn_weights = self.self_attn(hidden_states, position_embeddings,
                                                          attention_mask, position)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        hidden_states = residual + hidden_states
        return (hidden_states,)


class Rotary(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d)), persistent=False)
        self.attention_scaling = 1.0

    @torch.no_grad()
    def forward(self, x, position_ids):
        inv_freq_expanded = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        position_ids_expanded = position_ids[:, None, :].float()
        with torch.autocast(device_type="cpu", enabled=False):
            freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos = emb.cos()
            sin = emb.sin()
        cos = cos * self.attention_scaling
        sin = sin * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def causal_mask_with_cache_position(sequence_length, target_length, dtype, cache_position, batch_size):
    """_prepare_4d_causal_attention_mask_with_cache_position, with no attention_mask given."""
    min_dtype = torch.finfo(dtype).min
    causal_mask = torch.full((sequence_length, target_length), fill_value=min_dtype, dtype=dtype)
    if sequence_length != 1:
        causal_mask = torch.triu(causal_mask, diagonal=1)
    causal_mask *= torch.arange(target_length) > cache_position.reshape(-1, 1)
    causal_mask = causal_mask[None, None, :, :].expand(batch_size, 1, -1, -1)
    return causal_mask


class Body(nn.Module):
    """LlamaModel."""

    def __init__(self, c, cache):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Layer(c, cache) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.rotary_emb = Rotary(c["hidden_size"] // c["num_attention_heads"])
        self.cache = cache

    def forward(self, input_ids, position):
        inputs_embeds = self.embed_tokens(input_ids)
        cache_position = torch.arange(position, position + inputs_embeds.shape[1])
        position_ids = cache_position.unsqueeze(0)
        # _update_causal_mask: a static cache's length, else past + sequence + 1
        s = inputs_embeds.shape[1]
        target_length = self.cache[1] if self.cache else position + s + 1
        causal_mask = causal_mask_with_cache_position(s, target_length, inputs_embeds.dtype,
                                                      cache_position, inputs_embeds.shape[0])
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        for decoder_layer in self.layers:
            layer_outputs = decoder_layer(hidden_states, causal_mask, position_embeddings, position)
            hidden_states = layer_outputs[0]
        hidden_states = self.norm(hidden_states)
        return (hidden_states,)


def causal_lm_loss(logits, labels, vocab_size, ignore_index=-100):
    """ForCausalLMLoss (transformers.loss.loss_utils)."""
    logits = logits.float()
    labels = F.pad(labels, (0, 1), value=ignore_index)
    shift_labels = labels[..., 1:].contiguous()
    logits = logits.view(-1, vocab_size)
    shift_labels = shift_labels.view(-1)
    shift_labels = shift_labels.to(logits.device)
    return F.cross_entropy(logits, shift_labels, ignore_index=ignore_index, reduction="mean")


class LlamaForCausalLM(nn.Module):
    def __init__(self, c, cache=None):
        super().__init__()
        self.model = Body(c, cache)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        self.vocab_size = c["vocab_size"]

    def forward(self, input_ids, labels=None, position=0):
        logits_to_keep = 0 if labels is not None else 1  # generate() passes 1
        outputs = self.model(input_ids, position)
        hidden_states = outputs[0]
        slice_indices = slice(-logits_to_keep, None)
        logits = self.lm_head(hidden_states[:, slice_indices, :])
        if labels is None:
            return logits
        return causal_lm_loss(logits, labels, self.vocab_size)


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
        model(ids, labels)
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
