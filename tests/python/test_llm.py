"""footprint.llm: language models from config.json, built by the installed transformers on meta.

- Parameter counts of twelve architectures at their published sizes: each equals num_parameters()
  of the same class built apart, and, where the figure is published (the model card's or by hand
  below), that figure. Mixtures of experts also give the parameters active per token.
- The three configs issue 22 found the C++ path wrong on: a mistral config without
  num_key_value_heads (transformers' default is 8), an untied GPT-2 head, a BERT with an MLM head.
- Scaled-down models against real CPU runs in this process (tests/python/real.py,
  MEASUREMENT.md's protocol): prefill and an AdamW step with the model's own loss, within 1%.
"""
import json
import os
import subprocess
import sys

import pytest
import torch
import transformers

import footprint
from figures import record
import real
from real import measure

# Published configs (the fields that set the shapes; every other field is transformers' default).
LLAMA31_8B = dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=4096,
                  intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072,
                  rope_theta=500000.0, tie_word_embeddings=False,
                  rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192, "rope_type": "llama3"})
# Mistral-7B-v0.1's config.json without num_key_value_heads: MistralConfig's default is 8.
MISTRAL_7B_NO_KV = dict(model_type="mistral", architectures=["MistralForCausalLM"],
                        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                        num_attention_heads=32, vocab_size=32000, sliding_window=4096)
QWEN2_7B = dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=3584,
                intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False)
QWEN3_8B = dict(model_type="qwen3", architectures=["Qwen3ForCausalLM"], hidden_size=4096,
                intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False)
GEMMA2_9B = dict(model_type="gemma2", architectures=["Gemma2ForCausalLM"], hidden_size=3584,
                 intermediate_size=14336, num_hidden_layers=42, num_attention_heads=16,
                 num_key_value_heads=8, head_dim=256, vocab_size=256000, sliding_window=4096,
                 attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
PHI3_MINI = dict(model_type="phi3", architectures=["Phi3ForCausalLM"], hidden_size=3072,
                 intermediate_size=8192, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, vocab_size=32064, tie_word_embeddings=False)
GPT2 = dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_embd=768, n_layer=12, n_head=12,
            vocab_size=50257, n_positions=1024)
GPT2_UNTIED = dict(GPT2, tie_word_embeddings=False)
BERT_MLM = dict(model_type="bert", architectures=["BertForMaskedLM"], hidden_size=768,
                intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                vocab_size=30522, max_position_embeddings=512, type_vocab_size=2)
T5_SMALL = dict(model_type="t5", architectures=["T5ForConditionalGeneration"], d_model=512,
                d_ff=2048, d_kv=64, num_layers=6, num_heads=8, vocab_size=32128)
MIXTRAL_8X7B = dict(model_type="mixtral", architectures=["MixtralForCausalLM"], hidden_size=4096,
                    intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                    num_key_value_heads=8, vocab_size=32000, num_local_experts=8,
                    num_experts_per_tok=2)
QWEN3_30B_A3B = dict(model_type="qwen3_moe", architectures=["Qwen3MoeForCausalLM"],
                     hidden_size=2048, moe_intermediate_size=768, intermediate_size=6144,
                     num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4,
                     head_dim=128, vocab_size=151936, num_experts=128, num_experts_per_tok=8,
                     tie_word_embeddings=False)
# DeepSeek-V3 scaled down (4 layers, the first dense; 16 routed experts, 2 shared): MLA's low-rank
# q and kv projections and the routed and shared experts, no published count.
DEEPSEEK_V3_SMALL = dict(model_type="deepseek_v3", architectures=["DeepseekV3ForCausalLM"],
                         hidden_size=256, intermediate_size=512, moe_intermediate_size=128,
                         num_hidden_layers=4, first_k_dense_replace=1, num_attention_heads=8,
                         num_key_value_heads=8, q_lora_rank=96, kv_lora_rank=64,
                         qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
                         n_routed_experts=16, n_shared_experts=2, num_experts_per_tok=4,
                         n_group=4, topk_group=2, vocab_size=1000, tie_word_embeddings=False)

# name -> (config, published total or None, published active per token or None). The totals
# worked out by hand (embeddings, then per layer attention + MLP + norms):
# - Llama 3.1 8B: 2 x 128256 x 4096 + 32 x (2 x 4096^2 + 2 x 4096 x 1024 + 3 x 4096 x 14336
#   + 2 x 4096) + 4096 = 8,030,261,248 (the model card's 8.03B);
# - Mistral 7B: 2 x 32000 x 4096 + 32 x 218,112,000 + 4096 = 7,241,732,096 (7.24B);
# - Qwen2 7B: 2 x 152064 x 3584 + 28 x (2 x 3584^2 + 2 x 3584 x 512 + q, k, v biases 4608
#   + 3 x 3584 x 18944 + 2 x 3584) + 3584 = 7,615,616,512 (7.62B);
# - Qwen3 8B: 2 x 151936 x 4096 + 36 x (41,943,040 + q and k norms 256 + 3 x 4096 x 12288
#   + 8192) + 4096 = 8,190,735,360 (8.19B);
# - Gemma 2 9B (tied): 256000 x 3584 + 42 x (4 x 3584 x 4096 / ... = 44,040,192 + 3 x 3584 x
#   14336 + 4 norms x 3584) + 3584 = 9,241,705,984;
# - Phi-3 mini: 2 x 32064 x 3072 + 32 x (3072 x 9216 + 3072^2 + 3072 x 16384 + 8192 x 3072
#   + 2 x 3072) + 3072 = 3,821,079,552 (3.8B);
# - GPT-2: 124,439,808 (the model card's 124M), untied + 50257 x 768 = 163,037,184;
# - BertForMaskedLM: BertModel's 109,482,240 less the pooler (590,592) plus the MLM transform
#   (590,592 + LayerNorm 1,536) and the decoder's bias (30,522; its weight is the embeddings'):
#   109,514,298;
# - T5-small: 60,506,624;
# - Mixtral 8x7B: 46,702,792,704; the experts 32 x 8 x 3 x 4096 x 14336 = 45,097,156,608, so
#   active 46,702,792,704 - 45,097,156,608 x 6 / 8 = 12,879,925,248 (the "12.9B active");
# - Qwen3-30B-A3B: 2 x 151936 x 2048 + 48 x (18,874,624 attention + router 2048 x 128 + experts
#   128 x 3 x 2048 x 768 + 4096) + 2048 = 30,532,122,624, active 3,353,032,704 ("A3B").
CASES = {
    "llama3.1-8b-rope-scaling": (LLAMA31_8B, 8_030_261_248, None),
    "mistral-7b-no-kv-heads": (MISTRAL_7B_NO_KV, 7_241_732_096, None),
    "qwen2-7b": (QWEN2_7B, 7_615_616_512, None),
    "qwen3-8b": (QWEN3_8B, 8_190_735_360, None),
    "gemma2-9b": (GEMMA2_9B, 9_241_705_984, None),
    "phi3-mini": (PHI3_MINI, 3_821_079_552, None),
    "gpt2": (GPT2, 124_439_808, None),
    "gpt2-untied": (GPT2_UNTIED, 163_037_184, None),
    "bert-mlm": (BERT_MLM, 109_514_298, None),
    "t5-small": (T5_SMALL, 60_506_624, None),
    "mixtral-8x7b": (MIXTRAL_8X7B, 46_702_792_704, 12_879_925_248),
    "qwen3-30b-a3b": (QWEN3_30B_A3B, 30_532_122_624, 3_353_032_704),
    "deepseek-v3-small": (DEEPSEEK_V3_SMALL, None, None),
}


def _built_apart(config):
    cfg = transformers.CONFIG_MAPPING[config["model_type"]].from_dict(dict(config))
    with torch.device("meta"):
        return getattr(transformers, config["architectures"][0])._from_config(cfg)


@pytest.mark.parametrize("name", sorted(CASES))
def test_parameters_equal_transformers(name):
    config, published, active = CASES[name]
    r = footprint.llm(config, context=8, batch=1)
    assert r.architecture == config["architectures"][0]
    assert r.parameters == _built_apart(config).num_parameters()
    if published is not None:
        assert r.parameters == published
    if active is not None:
        assert r.active_parameters == active
    moe = any(k in config for k in ("num_local_experts", "num_experts", "n_routed_experts"))
    assert (r.expert_parameters > 0) == moe
    assert (r.active_parameters < r.parameters) == moe
    assert r.memory.allocated_peak > r.weights_bytes


def test_deepseek_v3_active_parameters_by_hand():
    """Scaled-down DeepSeek-V3: the routed experts of its three MoE layers are 3 x 16 x 3 x 256 x
    128 = 4,718,592 parameters; 4 of 16 per token leaves 3,538,944 of them idle."""
    r = footprint.llm(DEEPSEEK_V3_SMALL, context=8)
    assert r.expert_parameters == 3 * 16 * 3 * 256 * 128
    assert r.parameters - r.active_parameters == 3 * 16 * 3 * 256 * 128 * 12 // 16
    assert r.expert_weights_bytes == 3 * 16 * 3 * 256 * 128 * 2  # bf16, the default


def test_bad_configs_get_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        footprint.llm(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not a JSON config"):
        footprint.llm(str(bad))
    with pytest.raises(ValueError, match="no model_type"):
        footprint.llm({"hidden_size": 8})
    with pytest.raises(ValueError, match="'nonesuch' is not one transformers"):
        footprint.llm({"model_type": "nonesuch"})
    with pytest.raises(ValueError, match="^config: Qwen3ForCausalLM cannot be built from it: "
                                         ".*negative dimension -5"):
        footprint.llm({"model_type": "qwen3", "hidden_size": -5})


# Scaled down so that a real CPU run takes well under a second: two layers, hidden 64.
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=1000, max_position_embeddings=256)
REAL = {
    "llama3.1": dict(LLAMA31_8B, **SMALL, rope_scaling=dict(LLAMA31_8B["rope_scaling"],
                                                            original_max_position_embeddings=64)),
    "gemma2": dict(GEMMA2_9B, **dict(SMALL, head_dim=16, sliding_window=16)),
    "phi3": dict(PHI3_MINI, **SMALL, pad_token_id=0, eos_token_id=1),
    "qwen3_moe": dict(QWEN3_30B_A3B, **dict(SMALL, head_dim=16, moe_intermediate_size=32,
                                            num_experts=8, num_experts_per_tok=2)),
}


def _real_model(config):
    torch.manual_seed(0)
    cfg = transformers.CONFIG_MAPPING[config["model_type"]].from_dict(dict(config))
    return getattr(transformers, config["architectures"][0])._from_config(cfg).eval(), cfg


def _real_inference(model, live_bytes, **kwargs):
    """The allocated peak of one forward under inference_mode, as real.py measures it: the
    profiler's events at one thread plus the bytes live before (the weights, the inputs and
    the cache; counted, not held, so that the step frees the cache tensors it replaces)."""
    torch.set_num_threads(1)
    meter = measure.CpuMeter(measure.tensor_bytes(list(model.parameters()) +
                                                  list(model.buffers())) + live_bytes)
    meter.start()
    with meter.phase("inference"), torch.inference_mode():
        y = model(**kwargs)
    del y
    return meter.finish()["allocated_peak"]


@pytest.mark.parametrize("run", ["prefill", "decode", "decode-static", "adamw",
                                 "adamw-checkpointing"])
@pytest.mark.parametrize("name", sorted(REAL))
def test_scaled_down_model_against_a_real_cpu_run(name, run):
    """As generate() runs them: prefill of 32 tokens with logits for the last one only; one decode
    step after 31 with the DynamicCache the model makes (Gemma 2's has sliding layers) or a
    StaticCache of 32; and two AdamW steps with the model's own loss, also with the model's
    gradient checkpointing on (measured within 0.012%, but Gemma 2's -0.32%). Batch 2."""
    config = REAL[name]
    train = run.startswith("adamw")
    checkpointing = run == "adamw-checkpointing"
    r = footprint.llm(config, context=32, batch=2, train=train, precision="fp32",
                      impl="for-loop", device="cpu", weights=None if train else "float32",
                      cache="static" if run == "decode-static" else "dynamic",
                      checkpointing=checkpointing)
    for phase, report in r.runs.items():
        record(f"scaled-down {name} {run} {phase}", report.allocated_peak)
    model, cfg = _real_model(config)
    ids = torch.randint(0, 1000, (2, 32), generator=torch.Generator().manual_seed(0))
    keep = {"logits_to_keep": 1}
    if train:
        ours = r.train.allocated_peak
        if checkpointing:
            model.gradient_checkpointing_enable()
        measured, _ = real.real_run(model, [], {"input_ids": ids, "labels": ids}, True)
    elif run == "prefill":
        ours = r.prefill.allocated_peak
        measured = _real_inference(model, measure.tensor_bytes([ids]), input_ids=ids,
                                   use_cache=True, **keep)
    else:
        # The cache is made inside the profiled window (the profiler cannot see the free of a
        # block allocated before it began, and the step frees the cache tensors it replaces);
        # the decode step's peak is its phase's.
        static = run == "decode-static"
        ours = r.decode.allocated_peak
        torch.set_num_threads(1)
        meter = measure.CpuMeter(measure.tensor_bytes(list(model.parameters()) +
                                                      list(model.buffers()) + [ids]))
        meter.start()
        with torch.inference_mode():
            with meter.phase("prefill"):
                cache = transformers.StaticCache(config=cfg, max_cache_len=32) if static else None
                cache = model(input_ids=ids[:, :31], use_cache=True, past_key_values=cache,
                              **keep).past_key_values
            step, position = ids[:, 31:], torch.arange(31, 32)
            with meter.phase("decode"):
                y = model(input_ids=step, past_key_values=cache, use_cache=True,
                          cache_position=position, **keep)
            del y
        measured = meter.finish()["phases"]["decode"]["allocated_peak"]
    error = (ours - measured) / measured
    print(f"{name} {run}: footprint {ours:,} real {measured:,} error {100 * error:+.3f}%")
    assert abs(error) <= 0.01


# `footprint llm` through the C++ command: a family the C++ modules do not build goes to the python
# path, which the report names; options the python path does not have are refused in one line.
HERE = os.path.dirname(os.path.abspath(__file__))
FOOTPRINT = os.environ.get("FOOTPRINT_BIN", os.path.join(HERE, "..", "..", "build", "footprint"))
EXAMPLE = os.path.join(HERE, "..", "..", "examples", "llm", "qwen3-30b-a3b.json")


def _cli(*args):
    p = subprocess.run([FOOTPRINT, "llm", *args], capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


def test_the_command_takes_the_python_path_for_other_families():
    rc, out, err = _cli(EXAMPLE, "--context", "16", "--format", "json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["path"] == "python" and r["architecture"] == "Qwen3MoeForCausalLM"
    assert r["parameters"] == 30_532_122_624 and r["active_parameters"] == 3_353_032_704
    assert r["weights_dtype"] == "bfloat16"
    rc, out, err = _cli(EXAMPLE, "--context", "16")
    assert rc == 0 and "the python path" in out and "active per token: 3,353,032,704" in out


def test_the_command_refuses_what_the_python_path_lacks(tmp_path):
    rc, out, err = _cli(EXAMPLE, "--attention", "eager")
    assert rc == 2 and err.strip().splitlines() == [
        "footprint: --attention: the python path (transformers' own code) does not have it; the "
        "C++ path has it for llama, mistral, qwen2, gpt2 and bert"]
    rc, out, err = _cli(EXAMPLE, "--train", "--lora", "8")
    assert rc == 1 and err.strip().splitlines() == [
        f"footprint: {EXAMPLE}: peft 0.21.2 has no default LoRA targets for model_type "
        "'qwen3_moe'; name them (lora_targets / --lora-targets: q_proj,v_proj, or all-linear)"]
    rc, out, err = _cli(EXAMPLE, "--path", "cpp")
    assert rc != 0 and "model_type 'qwen3_moe' is not supported" in err
    config = tmp_path / "gpt2.json"
    config.write_text(json.dumps(GPT2_UNTIED))
    rc, out, err = _cli(str(config), "--path", "python", "--context", "8", "--format", "json")
    assert rc == 0, err
    assert json.loads(out)["parameters"] == 163_037_184


# The C++ path (footprint llm --path cpp: src/llm/transformer.cpp's modules) held to transformers'
# own code (the python path) for each of its families, on the CUDA target (an H100), at batch 2 x
# 64 tokens: the same parameters, and allocated peaks within 0.1% for prefill, decode (bf16
# weights; the C++ cache is preallocated, so the python path's StaticCache) and a bf16-amp AdamW
# step. Measured 2026-11-28 (after the C++ modules took transformers 5's SDPA call and StaticCache
# mask, BERT's function scopes, and an optimizer that holds a tied weight once): every run within
# 0.01%, BERT's forward exact.
FAMILIES = {
    "llama": dict(model_type="llama", architectures=["LlamaForCausalLM"]),
    "mistral": dict(model_type="mistral", architectures=["MistralForCausalLM"]),
    "qwen2": dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"]),
    "gpt2": dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_embd=256, n_layer=2,
                 n_head=8, n_positions=512, bos_token_id=0, eos_token_id=0),
    "bert": dict(model_type="bert", architectures=["BertModel"]),
}


def _small_family(family, tmp_path):
    """A family's config at the size these checks run (hidden 256, 2 layers), and its file."""
    config = dict(FAMILIES[family], vocab_size=1000)
    if family != "gpt2":
        config.update(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=512)
    path = tmp_path / f"{family}.json"
    path.write_text(json.dumps(config))
    return config, path


@pytest.mark.parametrize("train", [False, True], ids=["inference", "train"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_cpp_path_is_held_to_transformers(family, train, tmp_path):
    config, path = _small_family(family, tmp_path)
    args = ["--path", "cpp", "--context", "64", "--batch", "2", "--gpu", "h100", "--format", "json"]
    rc, out, err = _cli(str(path), *args, *(["--train"] if train else ["--weights", "bf16"]))
    assert rc == 0, err
    cpp = json.loads(out)
    ours = footprint.llm(config, context=64, batch=2, train=train, gpu="h100", cache="static",
                         weights=None if train else "bfloat16")
    assert cpp["parameters"] == ours.parameters
    phases = ["train"] if train else ["forward"] if family == "bert" else ["prefill", "decode"]
    for phase in phases:
        mine = ours.runs["prefill" if phase == "forward" else phase].allocated_peak
        record(f"cpp-held {family} {phase}", cpp[phase]["allocated_peak"], mine)
        error = (cpp[phase]["allocated_peak"] - mine) / mine
        print(f"{family} {phase}: C++ {cpp[phase]['allocated_peak']:,} transformers {mine:,} "
              f"error {100 * error:+.3f}%")
        assert -0.001 <= error <= 0.001, f"{family} {phase}: {100 * error:+.3f}%"


# The top-level op sequence of the C++ path's runs against transformers' own, op for op
# (_core.llm_cpp_traces gives the C++ path's traces; the loss is part of BERT's C++ forward, so a
# run's forward and loss are compared together). Held: every family's training step, forward and
# backward (mistral's with DynamicSlidingWindowLayer), and the decoders' decode step with a
# StaticCache (mistral's StaticSlidingWindowLayer and sliding mask), and every family's prefill (a
# decoder's StaticCache made in each layer's first update: zeros, zeros, to).
OP_RUNS = [(f, r) for f in ("llama", "mistral", "qwen2", "gpt2") for r in ("train", "decode",
                                                                         "prefill")] + \
    [("bert", "train"), ("bert", "prefill")]


def _as_on_meta(ops):
    """torch.tensor([], device=...) (DynamicLayer's empty keys and values, made in a pair before
    the cat, or before a sliding layer's window is moved to the device and the cat) runs empty, to,
    lift_fresh, detach_ in a real run (LlmReal holds the C++ path to that, on the CPU); the python
    path on meta records it as empty, detach_. So is eager_mask's torch.tensor(0.0, device=...),
    before its where. A sliding layer's torch.tensor(window), made on the host, is recorded alike
    on both."""
    real = ["aten::empty", "aten::to", "aten::lift_fresh", "aten::detach_"]
    out, i = [], 0
    while i < len(ops):
        after = ops[i + 8:i + 10]
        if ops[i:i + 8] == real * 2 and (after[:1] == ["aten::cat"] or
                                         after == ["aten::to", "aten::cat"]):
            out += ["aten::empty", "aten::detach_"] * 2
            i += 8
        elif ops[i:i + 5] == real + ["aten::where"]:
            out += ["aten::empty", "aten::detach_"]
            i += 4
        else:
            out.append(ops[i])
            i += 1
    return out


@pytest.mark.parametrize("family,run", OP_RUNS)
def test_the_cpp_path_runs_transformers_op_sequence(family, run, tmp_path):
    config, path = _small_family(family, tmp_path)
    train = run == "train"
    cpp = footprint._core.llm_cpp_traces(str(path), 2, 64, train, "" if train else "bf16", "h100")
    ours = footprint.llm(config, context=64, batch=2, train=train, gpu="h100", cache="static",
                         weights=None if train else "bfloat16")
    mine, theirs = cpp[run], ours.runs[run]._capture[1]
    phases = [["forward", "loss"], ["backward"]] if train else [["forward"]]
    for names in phases:
        ops = _as_on_meta([op for p in names for op in mine.top_level_ops(p, 0)])
        expected = [op for p in names for op in theirs.top_level_ops(p, 0)]
        assert len(expected) > 50
        assert ops == expected, f"{family} {run} {names}"


# Both paths of footprint llm take their training plan from the planner (footprint/plan.h): the
# precision's dtypes and autocast, the optimizer, and the sharding plan of one rank of ZeRO/FSDP
# data parallelism, made from each path's own decoder layer at the run's dtypes. Held equal on the
# llama family over the issue 34 matrix: every precision x every sharding x tp 1 and 2, on 4 GPUs.
# Before the planner the python path counted a pure-bf16 layer's gathered parameters and
# gradients at 4 bytes: llama-7b bf16 ZeRO-3 over 8 GPUs was +5.7% (22,666,401,280 B against
# 21,452,100,096 B). Measured 2026-12-07, this loop printing each error: all 40 within
# 0.0014%; in every case the python path holds 1,024 B more (a 512 B block of buffers, rotary's
# original_inv_freq beside inv_freq, and one more 512 B input block), so 0.1% is the bound,
# not a fit to these.
@pytest.mark.parametrize("tp", [1, 2])
@pytest.mark.parametrize("shard", ["none", "zero1", "zero2", "zero3", "fsdp"])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "bf16-amp"])
def test_training_plans_agree_with_the_cpp_path(precision, shard, tp, tmp_path):
    config = dict(FAMILIES["llama"], vocab_size=1000, hidden_size=256, intermediate_size=512,
                  num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                  max_position_embeddings=512)
    path = tmp_path / "llama.json"
    path.write_text(json.dumps(config))
    rc, out, err = _cli(str(path), "--path", "cpp", "--context", "64", "--batch", "2", "--gpu",
                        "h100", "--format", "json", "--train", "--precision", precision,
                        "--shard", shard, "--gpus", "4", "--tp", str(tp))
    assert rc == 0, err
    cpp = json.loads(out)["train"]["allocated_peak"]
    ours = footprint.llm(config, context=64, batch=2, train=True, gpu="h100", shard=shard,
                         gpus=4, tp=tp, precision=precision)
    error = (cpp - ours.train.allocated_peak) / ours.train.allocated_peak
    assert -0.001 <= error <= 0.001, f"{precision} {shard} tp {tp}: {100 * error:+.4f}%"
    if shard != "none":  # one rank holds 1/(4/tp) of the sharded states, by hand below
        whole = footprint.llm(config, context=64, batch=2, train=True, gpu="h100", gpus=4,
                              tp=tp, precision=precision)
        dp = 4 // tp
        states = ours.train.model_states, whole.train.model_states
        # Each allocation is divided and rounded up: within one byte per tensor of the whole.
        tensors = 2 * 9 + 3  # parameters of 2 layers (9 each), the embedding, norm and head
        assert abs(states[0].optimizer_state * dp - states[1].optimizer_state) <= \
            2 * tensors * dp
        assert ours.train.allocated_peak < whole.train.allocated_peak


# Tensor parallelism on the python path: one rank's slice, built by transformers from a config
# with its heads, key/value heads and MLP units divided and its vocabulary padded and divided
# (the C++ path's dims_of), held to the C++ path on the llama family (measured 2026-11-28:
# prefill, decode and training within 0.009%, and with ZeRO-3 over the data-parallel ranks).
@pytest.mark.parametrize("run", ["inference", "train", "train-zero3"])
def test_tensor_parallelism_agrees_with_the_cpp_path(run, tmp_path):
    config = dict(FAMILIES["llama"], vocab_size=1000, hidden_size=256, intermediate_size=512,
                  num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                  max_position_embeddings=512)
    path = tmp_path / "llama.json"
    path.write_text(json.dumps(config))
    train = run.startswith("train")
    gpus, shard = (8, "zero3") if run == "train-zero3" else (2, "none")
    rc, out, err = _cli(str(path), "--path", "cpp", "--context", "64", "--batch", "2", "--gpu",
                        "h100", "--format", "json", "--tp", "2", "--gpus", str(gpus),
                        *(["--train", "--shard", shard] if train else ["--weights", "bf16"]))
    assert rc == 0, err
    cpp = json.loads(out)
    ours = footprint.llm(config, context=64, batch=2, train=train, gpu="h100", cache="static",
                         weights=None if train else "bfloat16", tp=2, gpus=gpus, shard=shard)
    assert ours.parameters == cpp["parameters"]  # the whole model's
    whole = footprint.llm(config, context=64, batch=2, train=train, gpu="h100", cache="static",
                          weights=None if train else "bfloat16")
    assert ours.weights_bytes < whole.weights_bytes
    for phase in ["train"] if train else ["prefill", "decode"]:
        error = (cpp[phase]["allocated_peak"] - ours.runs[phase].allocated_peak) / \
            ours.runs[phase].allocated_peak
        assert abs(error) <= 0.001, f"{run} {phase}: {100 * error:+.3f}%"
    with pytest.raises(ValueError, match="num_attention_heads 8 cannot be split over "
                                         "tensor-parallel degree 3"):
        footprint.llm(config, context=8, tp=3, gpus=3)


# LoRA: peft's get_peft_model on the python path (the model a user trains), and the C++ path's
# adapters (src/llm/transformer.cpp, ProjImpl) held to it: the trainable parameters peft counts,
# with peft's default target_modules per family (kFamilies' lora_default) and with all-linear.
def _peft_model(config, **lora):
    import peft
    return peft.get_peft_model(_built_apart(config), peft.LoraConfig(lora_dropout=0.0, **lora))


@pytest.mark.parametrize("targets", [None, "all-linear"], ids=["default", "all-linear"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_lora_trains_what_peft_makes(family, targets, tmp_path):
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as known
    config, path = _small_family(family, tmp_path)
    assert known[family]  # peft has a default for each C++ family (kFamilies' lora_default)
    trainable, total = _peft_model(config, r=8, target_modules=targets).get_nb_trainable_parameters()
    ours = footprint.llm(config, context=16, train=True, lora=8, lora_targets=targets)
    assert ours.trainable_parameters == trainable
    assert ours.parameters + trainable == total  # the base's, and the adapters
    rc, out, err = _cli(str(path), "--path", "cpp", "--context", "16", "--train", "--lora", "8",
                        "--format", "json", *(["--lora-targets", targets] if targets else []))
    assert rc == 0, err
    assert json.loads(out)["trainable_parameters"] == trainable


# The C++ path's LoRA step against peft's on transformers' code, as above at batch 2 x 64 on an
# H100 with bf16-amp: the allocated peak within 0.1% and the same top-level ops, forward and
# backward. all-linear puts adapters behind o_proj and down_proj, whose bf16 inputs peft casts to
# the adapters' fp32 (_cast_input_dtype).
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_the_cpp_path_lora_is_held_to_peft(family, tmp_path):
    config, path = _small_family(family, tmp_path)
    rc, out, err = _cli(str(path), "--path", "cpp", "--context", "64", "--batch", "2", "--gpu",
                        "h100", "--format", "json", "--train", "--lora", "8", "--lora-targets",
                        "all-linear")
    assert rc == 0, err
    cpp = json.loads(out)["train"]["allocated_peak"]
    ours = footprint.llm(config, context=64, batch=2, train=True, gpu="h100", lora=8,
                         lora_targets="all-linear")
    error = (cpp - ours.train.allocated_peak) / ours.train.allocated_peak
    print(f"{family} LoRA: C++ {cpp:,} peft {ours.train.allocated_peak:,} {100 * error:+.4f}%")
    assert abs(error) <= 0.001
    targets = list(FAMILIES_PROJECTIONS[family])
    traces = footprint._core.llm_cpp_traces(str(path), 2, 64, True, "", "h100", 8, targets)
    theirs = ours.runs["train"]._capture[1]
    for names in (["forward", "loss"], ["backward"]):
        ops = _as_on_meta([op for p in names for op in traces["train"].top_level_ops(p, 0)])
        expected = [op for p in names for op in theirs.top_level_ops(p, 0)]
        assert ops == expected, f"{family} LoRA {names}"


# What peft's all-linear takes in each family (the C++ path's kFamilies projections).
FAMILIES_PROJECTIONS = {"llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                  "down_proj"),
                        "gpt2": ("c_attn", "c_proj", "c_fc")}


def test_lora_against_a_real_cpu_run():
    """Two AdamW steps of peft's LoRA (r 8 on all linear layers) over a scaled-down Llama 3.1, the
    base frozen, against the same steps run for real (MEASUREMENT.md's profiler protocol)."""
    config = REAL["llama3.1"]
    r = footprint.llm(config, context=32, batch=2, train=True, precision="fp32", impl="for-loop",
                      device="cpu", lora=8, lora_targets="all-linear")
    import peft
    model, _ = _real_model(config)
    model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_dropout=0.0,
                                                       target_modules="all-linear"))
    ids = torch.randint(0, 1000, (2, 32), generator=torch.Generator().manual_seed(0))
    measured, _ = real.real_run(model, [], {"input_ids": ids, "labels": ids}, True)
    error = (r.train.allocated_peak - measured) / measured
    print(f"LoRA: footprint {r.train.allocated_peak:,} real {measured:,} {100 * error:+.3f}%")
    assert abs(error) <= 0.01


def test_router_outputs_by_hand():
    """Qwen3MoeTopKRouter returns its logits (tokens x experts, the hidden dtype), the top-k
    weights (cast back to that dtype) and their int64 indices: per MoE layer, in bf16,
    tokens x (2 x experts + 2 x k + 8 x k) bytes."""
    config = REAL["qwen3_moe"]  # 8 experts, 2 per token, 2 layers
    r = footprint.llm(config, context=32, batch=2, weights="bfloat16")
    tokens = 2 * 32
    per_layer = tokens * (2 * 8 + 2 * 2 + 8 * 2)
    assert r.router_outputs["prefill"] == {"layers": 2, "bytes_per_layer": per_layer,
                                           "bytes": 2 * per_layer}
    assert r.router_outputs["decode"]["bytes_per_layer"] == per_layer // tokens * 2  # 2 tokens
    assert "router outputs" in str(r)
    dense = footprint.llm(REAL["llama3.1"], context=8)
    assert dense.router_outputs is None


def test_fit_finds_the_largest_batch_and_context(tmp_path):
    """fit= on the python path: the batch it finds fits, the next does not (each a full
    estimate of its own), on a GPU of 448 MiB (48 MiB beside the CUDA context footprint assumes
    for a size); the context is searched up to max_position_embeddings, raised here."""
    config, path = _small_family("llama", tmp_path)
    config["max_position_embeddings"] = 1 << 16
    path.write_text(json.dumps(config))
    for target, at in (("batch", lambda n: dict(batch=n, context=64)),
                       ("context", lambda n: dict(batch=2, context=n))):
        r = footprint.llm(config, gpu="448MiB", fit=target, **at(1))
        n = r.fit["largest"]
        assert 1 < n < 1 << 16 and r.runs["prefill"].fits() and r.runs["decode"].fits()
        assert r._data[target] == n
        past = footprint.llm(config, gpu="448MiB", **at(n + 1))
        assert not (past.runs["prefill"].fits() and past.runs["decode"].fits()), target
        rc, out, err = _cli(str(path), "--path", "python", "--gpu", "448MiB", "--fit", target,
                            *(["--context", "64"] if target == "batch" else ["--batch", "2"]),
                            "--format", "json")
        assert rc == 0, err
        assert json.loads(out)["fit"]["largest"] == n
    with pytest.raises(ValueError, match="fit= needs a device: pass gpu="):
        footprint.llm(config, fit="batch")


def test_the_python_path_draws_its_memory(tmp_path):
    """--html and --snapshot on the python path: the page of the training step, and a snapshot
    whose segments add up to what the report says was reserved at its peak."""
    import pickle
    html, snap = tmp_path / "step.html", tmp_path / "step.pickle"
    config = tmp_path / "qwen3_moe.json"
    config.write_text(json.dumps(REAL["qwen3_moe"]))
    rc, out, err = _cli(str(config), "--path", "python", "--train", "--context", "16", "--gpu",
                        "h100", "--html", str(html), "--snapshot", str(snap), "--format", "json")
    assert rc == 0, err
    assert html.read_text().lstrip().lower().startswith("<!doctype html>")
    segments = pickle.loads(snap.read_bytes())["segments"]
    assert sum(s["total_size"] for s in segments) <= json.loads(out)["train"]["reserved_peak"]
    assert segments


def test_weights_are_for_inference():
    with pytest.raises(ValueError, match="^weights= is for inference"):
        footprint.llm(REAL["llama3.1"], context=8, train=True, weights="bfloat16")
    with pytest.raises(ValueError, match="lora= and checkpointing=True are for training: add train=True"):
        footprint.llm(REAL["llama3.1"], context=8, lora=8)


def test_an_encoder_has_no_kv_cache(tmp_path):
    """The C++ path's BERT report: its buffers are position and token-type ids, not a cache."""
    _, path = _small_family("bert", tmp_path)
    rc, out, err = _cli(str(path), "--path", "cpp", "--context", "16")
    assert rc == 0, err
    header = next(line for line in out.splitlines() if line.startswith("phase"))
    assert header.split()[:6] == ["phase", "peak", "allocated", "weights", "buffers",
                                  "activations"]


def test_a_real_run_is_measured_after_the_cpp_path_ran(tmp_path):
    """The C++ engine's CPU allocator stays installed for the rest of the process; it reports to
    torch.profiler as PyTorch's own does, so a real run measured afterwards in the same process
    sees its allocations (before, this one measured 0 B, and the LoRA step above 874,320 B of
    2,556,984). By hand: one 256 x 1024 fp32 tensor, 1 MiB."""
    _, path = _small_family("llama", tmp_path)
    footprint._core.llm_cpp_traces(str(path), 1, 8, False, "bf16", None)
    torch.set_num_threads(1)
    meter = measure.CpuMeter(0)
    meter.start()
    with meter.phase("ones"):
        y = torch.ones(256, 1024)
        del y
    assert meter.finish()["allocated_peak"] == 256 * 1024 * 4


def test_mistral_beyond_its_sliding_window_takes_the_python_path(tmp_path):
    """Beyond the window transformers keeps it in sliding cache layers and masks what lies
    outside; the C++ modules build contexts up to the window, and `footprint llm` hands a longer
    one to transformers' code (its StaticSlidingWindowLayer of 16 slots, a quarter of 64)."""
    config = dict(_small_family("mistral", tmp_path)[0], sliding_window=16)
    path = tmp_path / "mistral-window.json"
    path.write_text(json.dumps(config))
    rc, out, err = _cli(str(path), "--context", "64", "--batch", "2", "--cache", "static",
                        "--format", "json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["path"] == "python"
    # 2 layers x keys and values x batch 2 x 2 KV heads x 16 slots x head 32 x bf16, and each
    # layer's int64 cumulative_length
    assert r["kv_cache_bytes"] == 2 * 2 * 2 * 2 * 16 * 32 * 2 + 2 * 8
    rc, out, err = _cli(str(path), "--context", "64", "--path", "cpp")
    assert rc == 1 and "longer than the sliding window of 16" in err
    rc, out, err = _cli(str(path), "--context", "16", "--format", "json")  # within: the C++ path
    assert rc == 0 and json.loads(out).get("path") != "python", err


# --attention eager on the C++ path against transformers 5's eager attention (the config's
# attn_implementation "eager"): eager_attention_forward (its weights held by the caller until the
# layer returns) and eager_mask (sdpa_mask's boolean mask, never skipped, made additive by a
# where), with mistral's sliding mask; BERT's without a mask. Allocated peaks within 0.1% for
# prefill, decode and a bf16-amp AdamW step at batch 2 x 64 on an H100, and the same op sequence.
# Measured 2026-12-06: every run within
# 0.003%, BERT's forward exact; before transformers 5's code, GPT-2's decode was +1.34% (4.x's
# n_positions x n_positions bias buffer per layer) and BERT's forward +0.17% (4.x's extended
# mask, and the scaled scores kept through the softmax).
EAGER_RUNS = [(f, r) for f in ("llama", "mistral", "gpt2") for r in ("prefill", "decode", "train")] \
    + [("bert", "prefill"), ("bert", "train")]


@pytest.mark.parametrize("family,run", EAGER_RUNS)
def test_the_cpp_eager_attention_is_held_to_transformers(family, run, tmp_path):
    config, path = _small_family(family, tmp_path)
    train = run == "train"
    rc, out, err = _cli(str(path), "--path", "cpp", "--context", "64", "--batch", "2", "--gpu",
                        "h100", "--format", "json", "--attention", "eager",
                        *(["--train"] if train else ["--weights", "bf16"]))
    assert rc == 0, err
    cpp = json.loads(out)["forward" if family == "bert" and run == "prefill" else run]
    cpp = cpp["allocated_peak"]
    ours = footprint.llm(dict(config, attn_implementation="eager"), context=64, batch=2,
                         train=train, gpu="h100", cache="static",
                         weights=None if train else "bfloat16")
    mine = ours.runs[run].allocated_peak
    print(f"{family} eager {run}: C++ {cpp:,} transformers {mine:,} {100 * (cpp - mine) / mine:+.4f}%")
    assert abs(cpp - mine) <= 0.001 * mine
    traces = footprint._core.llm_cpp_traces(str(path), 2, 64, train, "" if train else "bf16",
                                            "h100", attention="eager")
    theirs = ours.runs[run]._capture[1]
    for names in ([["forward", "loss"], ["backward"]] if train else [["forward"]]):
        ops = _as_on_meta([op for p in names for op in traces[run].top_level_ops(p, 0)])
        assert ops == [op for p in names for op in theirs.top_level_ops(p, 0)], f"{names}"


def test_qwen2_sliding_window_layers_take_the_python_path(tmp_path):
    """Qwen2Config's use_sliding_window makes the layers from max_window_layers on sliding ones,
    which the C++ modules do not build: the command hands the config to transformers' code."""
    config = dict(_small_family("qwen2", tmp_path)[0], use_sliding_window=True, sliding_window=16,
                  max_window_layers=1)
    path = tmp_path / "qwen2-sliding.json"
    path.write_text(json.dumps(config))
    rc, out, err = _cli(str(path), "--context", "32", "--format", "json")
    assert rc == 0, err
    assert json.loads(out)["path"] == "python"
    rc, out, err = _cli(str(path), "--context", "32", "--path", "cpp")
    assert rc == 1 and "use_sliding_window: the C++ modules do not build qwen2's" in err


# Hub names (`footprint llm org/name`, footprint.llm("org/name")) from a cache laid out as
# huggingface_hub lays it out (its "Understand caching" guide): refs/main holds the commit, the
# snapshot's config.json is a link to a blob. Offline (HF_HUB_OFFLINE=1), in fresh processes, so
# that huggingface_hub reads HF_HUB_CACHE and the offline flag as it would for a user.
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OLD_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def _hub_cache(root):
    repo = root / "models--example-org--tiny-llama"
    for commit, layers in ((COMMIT, 2), (OLD_COMMIT, 3)):
        blob = repo / "blobs" / f"blob{layers}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_text(json.dumps(dict(FAMILIES["llama"], **dict(SMALL, num_hidden_layers=layers))))
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "refs" / "v1").write_text(OLD_COMMIT)
    return repo


def test_hub_names_resolve_from_the_cache_offline(tmp_path):
    repo = _hub_cache(tmp_path / "hub")
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    config = str(repo / "snapshots" / COMMIT / "config.json")

    def cli(*args):
        p = subprocess.run([FOOTPRINT, "llm", *args, "--context", "64", "--format", "json"],
                           capture_output=True, text=True, timeout=600, env=env)
        return p.returncode, p.stdout, p.stderr

    # The command, by name and by the file: the same report but for the file it names.
    for path in ("cpp", "python"):
        rc, by_name, err = cli("example-org/tiny-llama", "--path", path)
        assert rc == 0, err
        rc, by_file, err = cli(config, "--path", path)
        assert rc == 0, err
        assert json.loads(by_name) == json.loads(by_file)
    # A tag: refs/v1 holds the three-layer snapshot's commit; a commit is taken as it is.
    rc, v1, err = cli("example-org/tiny-llama", "--revision", "v1")
    rc2, old, err2 = cli("example-org/tiny-llama", "--revision", OLD_COMMIT)
    assert rc == 0 and rc2 == 0, err + err2
    assert json.loads(v1)["parameters"] == json.loads(old)["parameters"] > json.loads(by_file)["parameters"]
    # A name not in the cache: one line, exit 1, nothing downloaded offline.
    rc, out, err = cli("example-org/no-such-model")
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert "example-org/no-such-model: no such file, and not in huggingface_hub's cache" in err
    assert "HF_HUB_OFFLINE is set" in err

    # The Python package, through huggingface_hub itself.
    script = ("import json, sys, footprint\n"
              "r = footprint.llm(sys.argv[1], context=64, revision=sys.argv[2] or None)\n"
              "print(json.dumps({'parameters': r.parameters, 'peak': r.runs['prefill'].allocated_peak}))\n")
    def py(name, revision=""):
        return subprocess.run([sys.executable, "-c", script, name, revision],
                              capture_output=True, text=True, timeout=600, env=env)
    by_name, by_file = py("example-org/tiny-llama"), py(config)
    assert by_name.returncode == 0 and by_file.returncode == 0, by_name.stderr + by_file.stderr
    assert json.loads(by_name.stdout) == json.loads(by_file.stdout)
    assert json.loads(py("example-org/tiny-llama", "v1").stdout)["parameters"] == json.loads(v1)["parameters"]
    missing = py("example-org/no-such-model")
    assert missing.returncode == 1
    assert "FileNotFoundError: example-org/no-such-model: no such file, and huggingface_hub " \
           "cannot give its config.json" in missing.stderr
