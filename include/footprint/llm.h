// footprint/llm.h: a large language model from its config.json alone: parameters, weights at each
// precision (quantized too), the KV cache, and the peak memory of inference (prefill and decode)
// and of a training step (mixed precision, gradient checkpointing, LoRA, ZeRO/FSDP, tensor
// parallelism), per GPU. The architecture is built as LibTorch C++ modules (src/llm/) and run on
// the meta device by the engine (footprint/engine.h: footprint::llm); this header needs no torch.
//
//   auto config = footprint::read_hf_config("examples/llm/llama-7b.json");
//   footprint::LlmScenario s;
//   s.train = true;
//   s.memory.gpu = footprint::device_parse("h100");
//   footprint::LlmReport r = footprint::llm(config, s);   // footprint/engine.h
//   std::cout << footprint::print_llm(r, footprint::Format::kTable);
//
// docs/llm.md explains each number and compares them with the published formulas.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "footprint/hf_config.h"
#include "footprint/memory.h"

namespace footprint {

enum class AttentionImpl {
  kAuto,   // sdpa: transformers' default on PyTorch 2.x, CPU and CUDA alike
  kEager,  // the scores materialized: batch x heads x tokens x tokens
  kSdpa,   // F.scaled_dot_product_attention: the target's fused kernel, no scores kept
};

// Sharded data parallelism over the data-parallel ranks (gpus / tp).
enum class Sharding {
  kNone,
  kZero1,  // optimizer state sharded
  kZero2,  // + gradients
  kZero3,  // + parameters, gathered a layer at a time
  kFsdp,   // PyTorch FSDP, FULL_SHARD: as ZeRO-3
};
std::string_view sharding_name(Sharding s);

enum class FitTarget { kNone, kBatch, kContext };

struct LlmScenario {
  int64_t batch = 1;
  // Tokens: the KV cache's length (inference: a prompt of this length is prefilled and the last
  // slot decoded) or the sequence length (training). 0: the config's max positions, at most 4096.
  int64_t context = 0;
  bool train = false;
  AttentionImpl attention = AttentionImpl::kAuto;

  // Inference: the weights' precision (unset: the config's torch_dtype when 16-bit, else bf16).
  // int8 and int4 are group-quantized projections (GPTQ/AWQ layout: per group of `group_size`
  // input weights one fp16 scale and one zero point at the weight's bits); embeddings, norms and
  // the head stay 16-bit, and activations and the cache run at fp16 (bf16 if the config says).
  std::optional<Precision> weights;
  int64_t group_size = 128;
  // A GGUF file's own tensors (llm_file sets it): inference keeps them as the file stores them,
  // at its quantization, in place of the parameters, and computes at fp16 with an fp16 cache.
  std::shared_ptr<const Model> file_weights;

  // Training.
  PrecisionMode precision = PrecisionMode::kBf16Amp;
  std::optional<OptimizerSpec> optimizer;  // AdamW (foreach on CUDA, for-loop on CPU)
  bool checkpointing = false;              // recompute each layer in backward
  int64_t lora_rank = 0;                   // > 0: LoRA adapters, base frozen
  double lora_alpha = 16;
  std::vector<std::string> lora_targets;  // empty: the family's attention q and v projections
  Sharding sharding = Sharding::kNone;
  int64_t gpus = 1;  // all GPUs: data parallel x tensor parallel
  int64_t tp = 1;    // tensor-parallel degree

  MemoryOptions memory;  // target, GPU profile, allocator settings
  EngineLimits limits;   // each capture's (the model is footprint's own code, but may be huge)
  FitTarget fit = FitTarget::kNone;
  int64_t fit_max = 1 << 20;
  // Called with the final report's traces as they are captured: "prefill", "decode" or "train",
  // for a caller that compares them (tests hold the op sequence to transformers' own code).
  std::function<void(const std::string& run, const Trace& trace)> on_trace;
};

struct LlmPart {
  std::string name;        // "embeddings", "attention", "mlp", "norms", "head"
  int64_t parameters = 0;  // in all layers
  int64_t per_layer = 0;   // one layer's, for the parts inside layers
};

struct WeightBytes {
  Precision precision = Precision::kFp32;
  int64_t bytes = 0;                 // everything at this precision
  int64_t quantized_parameters = 0;  // int8/int4: the projections' weights that are quantized
  int64_t scale_bytes = 0;           // int8/int4: scales and zero points
  double bits_per_parameter = 0;     // bytes * 8 / parameters
};

struct LlmReport {
  TransformerConfig config;
  int64_t parameters = 0;  // counted once (a tied head is the embedding)
  int64_t trainable = 0;   // training: what the optimizer updates (LoRA: the adapters)
  std::vector<LlmPart> parts;
  std::vector<WeightBytes> weights;  // fp32, fp16, bf16, int8, int4
  int64_t group_size = 0;            // of int8/int4's scales
  int64_t batch = 0, context = 0;
  std::string attention;  // "sdpa", "eager"
  std::string setup;      // training: "bf16-amp, AdamW (foreach), ZeRO-3 over 8 GPUs, ..."

  // Inference (decoders): the cache and the two phases, on one GPU (or one tensor-parallel rank).
  std::string weight_format;       // "bf16", "int4 (group 128)"
  int64_t kv_bytes_per_token = 0;  // all layers, keys and values, at the cache's dtype
  int64_t kv_cache_bytes = 0;      // batch x context
  std::optional<MemoryReport> prefill, decode;
  // Training: one step, per GPU.
  std::optional<MemoryReport> train;
  int64_t sharded_working_set = 0;  // ZeRO-3/FSDP gathered parameters and unsharded gradients

  // --fit: the largest batch (or context) that fits: `fit` fits and `fit` + 1 does not, unless
  // `fit` is the search's bound (fit_bound: the positions a model has, a sliding window the C++
  // path goes no further than, or --fit's maximum), where `fit` + 1 is not tried.
  FitTarget fit_target = FitTarget::kNone;
  std::optional<int64_t> fit;
  int64_t fit_bound = 0;
  int captures = 0;
  std::vector<std::string> notes;
};

std::string print_llm(const LlmReport& r, Format format);

}  // namespace footprint
