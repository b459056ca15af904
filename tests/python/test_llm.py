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

import pytest
import torch
import transformers

import footprint
import real

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


@pytest.mark.parametrize("train", [False, True], ids=["prefill", "adamw"])
@pytest.mark.parametrize("name", sorted(REAL))
def test_scaled_down_model_against_a_real_cpu_run(name, train):
    config = REAL[name]
    r = footprint.llm(config, context=32, batch=2, train=train, precision="fp32",
                      impl="for-loop", device="cpu", weights="float32")
    torch.manual_seed(0)
    cfg = transformers.CONFIG_MAPPING[config["model_type"]].from_dict(dict(config))
    model = getattr(transformers, config["architectures"][0])._from_config(cfg).eval()
    ids = torch.randint(0, 1000, (2, 32), generator=torch.Generator().manual_seed(0))
    kwargs = {"input_ids": ids, "labels": ids} if train else {"input_ids": ids}
    measured, _ = real.real_run(model, [], kwargs, train)
    error = (r.memory.allocated_peak - measured) / measured
    print(f"{name} {'adamw' if train else 'prefill'}: footprint {r.memory.allocated_peak:,} "
          f"real {measured:,} error {100 * error:+.3f}%")
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
    rc, out, err = _cli(EXAMPLE, "--train", "--lora", "8")
    assert rc == 2 and err.strip().splitlines() == [
        "footprint: --lora: the python path (transformers' own code) does not have it yet; the "
        "C++ path has it for llama, mistral, qwen2, gpt2 and bert"]
    rc, out, err = _cli(EXAMPLE, "--path", "cpp")
    assert rc != 0 and "model_type 'qwen3_moe' is not supported" in err
    config = tmp_path / "gpt2.json"
    config.write_text(json.dumps(GPT2_UNTIED))
    rc, out, err = _cli(str(config), "--path", "python", "--context", "8", "--format", "json")
    assert rc == 0, err
    assert json.loads(out)["parameters"] == 163_037_184
