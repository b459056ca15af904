// The transformer families of footprint llm as LibTorch C++ modules: llama (also mistral and
// qwen2), gpt2 and bert. Each follows Hugging Face transformers 5's modeling code op for op,
// with its parameter names, so that the parameter tensors and the op sequence match; the tensors
// are made on the meta device at once, so a 70B model costs no memory.
//
// Beyond the reference code, for the questions footprint answers:
//   - a static KV cache for inference (StaticCache's: made in the prefill's first update of each
//     layer; k_cache and v_cache buffers for a decode step), and the DynamicCache transformers
//     builds in a training forward;
//   - gradient checkpointing per decoder layer (torch.utils.checkpoint's: forward without grad,
//     the layer recomputed in backward);
//   - LoRA adapters on chosen projections (PEFT's: base frozen, A then B, scaled, added);
//   - tensor parallelism: one rank's shard (heads, key/value heads, MLP width and vocabulary
//     divided by the degree, as Megatron-LM splits them);
//   - attention as eager (the matrices of scores) or SDPA (F.scaled_dot_product_attention).
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <vector>

#include "footprint/hf_config.h"

namespace footprint::lm {

enum class AttentionKernel { kEager, kSdpa };

struct BuildOptions {
  c10::ScalarType dtype = at::kFloat;  // of the parameters
  AttentionKernel attention = AttentionKernel::kSdpa;
  int64_t tp = 1;    // tensor-parallel degree: this is rank 0's shard
  bool cuda = true;  // the target: dropout runs CUDA's fused kernel, else PyTorch 1.13's CPU one
  bool checkpointing = false;
  int64_t lora_rank = 0;  // 0: no LoRA
  double lora_alpha = 16;
  std::vector<std::string> lora_targets;  // module names: q_proj, v_proj, ...
  // A static KV cache of batch x cache_len positions per layer (inference); 0: none.
  int64_t cache_batch = 0;
  int64_t cache_len = 0;
  // The prefill's StaticCache: made in each layer's first update (StaticLayer.lazy_initialization:
  // zeros for the keys and the values, the cumulative length moved to the device), not before the
  // run; held by the model after it, as the caller's cache object holds them. Else buffers.
  bool lazy_cache = false;
  // Training: the DynamicCache transformers 5's forward builds when use_cache is true (not under
  // gradient checkpointing): each layer's keys and values concatenated onto empty tensors and
  // attended from there, held in CausalModel::output_held until the caller drops the output.
  bool dynamic_cache = false;
};

// A built model. forward's inputs are token ids [batch, tokens] (int64) and, for training, the
// labels [batch, tokens] (int64): then it returns the loss (the causal-LM loss: logits in fp32,
// cross-entropy against the next token; bert: the mean square of its last hidden states, as
// ../shared/MEASUREMENT.md's loss for a non-classifier). Without labels it returns the logits of
// the last position (bert: the pooled output), as generate() asks for them. `position` is the
// first token's position (decode: the cache's last slot).
class CausalModel : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;
  virtual torch::Tensor forward(const std::vector<torch::Tensor>& inputs, int64_t position) = 0;
  // What the last training forward's output (CausalLMOutputWithPast) holds besides the loss:
  // the logits and the DynamicCache's tensors (BuildOptions::dynamic_cache). The caller keeps
  // them as long as the output, until after backward.
  std::vector<torch::Tensor> output_held;
};

std::shared_ptr<CausalModel> build(const TransformerConfig& config, const BuildOptions& options);

}  // namespace footprint::lm
