// footprint/plan.h: the planner. Every front end (the command line, the C++ API, `footprint llm`'s
// two paths, the Python package) turns what its user asked into one RunPlan here, and nothing else
// decides run policy:
//   - the vocabularies as tables, each name with its help line (precision, optimizer, its
//     implementation, loss, target, attention, sharding, fit target, zero_grad);
//   - the policies: the training plan, the implementation's `auto`, precision to dtype and
//     autocast, GPU-or-size to device, the sharding plan, the checks of an LLM run;
//   - option names in library messages, written neutrally (`gpu`) and worded by each front end
//     (`--gpu` on the command line, `gpu=` in Python).
//
//   footprint::RunRequest q;                 // names, as a user gives them
//   q.train = true;
//   q.precision = "bf16-amp";
//   q.gpu = "h100";
//   footprint::RunPlan p = footprint::plan_run(q);   // throws OptionError on a bad choice
//
// The fit search (largest_fitting) is in footprint/memory.h. No torch here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "footprint/error.h"
#include "footprint/llm.h"
#include "footprint/memory.h"

namespace footprint {

// ------------------------------------------------------------------ vocabularies

// One name a user can give an option, and the line that explains it.
struct Choice {
  std::string_view name;
  std::string_view help;
};

enum class Vocabulary {
  kPrecision,       // fp32, fp16, bf16, bf16-amp, fp16-amp
  kOptimizer,       // sgd, momentum, ..., rmsprop-centered
  kImplementation,  // auto, for-loop, foreach, fused
  kLoss,            // auto, cross-entropy, mean-square
  kTarget,          // cuda, cpu
  kAttention,       // auto, eager, sdpa
  kSharding,        // none, zero1, zero2, zero3, fsdp
  kFitTarget,       // none, batch, context
  kZeroGrad,        // none, zeros
};
constexpr Vocabulary kVocabularies[] = {
    Vocabulary::kPrecision, Vocabulary::kOptimizer, Vocabulary::kImplementation,
    Vocabulary::kLoss,      Vocabulary::kTarget,    Vocabulary::kAttention,
    Vocabulary::kSharding,  Vocabulary::kFitTarget, Vocabulary::kZeroGrad};

const std::vector<Choice>& choices(Vocabulary v);
std::vector<std::string> choice_names(Vocabulary v);
// The option that takes the vocabulary, named neutrally: "precision", "optimizer", "impl", ...
std::string_view vocabulary_option(Vocabulary v);
// "fp32, fp16, bf16, bf16-amp or fp16-amp"
std::string choice_list(Vocabulary v);
// Every choice with its help: "fp32: ...; fp16: ...", for a --help line or a docstring.
std::string choice_help(Vocabulary v);
// The position of `name` in the table; throws OptionError naming the option and its choices.
int choose(Vocabulary v, std::string_view name);

// The vocabularies' parsers, by name: nullopt for a name the table lacks.
std::optional<PrecisionMode> precision_mode_parse(std::string_view s);  // "fp32", ..., "bf16-amp"
std::string_view precision_mode_name(PrecisionMode p);
std::optional<LossKind> loss_parse(std::string_view s);  // "auto", "cross-entropy", "mean-square"
std::optional<AttentionImpl> attention_parse(std::string_view s);  // "auto", "eager", "sdpa"
std::optional<Sharding> sharding_parse(std::string_view s);        // "none", "zero1", ..., "fsdp"
// "sgd", "momentum" (SGD, momentum 0.9), "nesterov", "adam", "adamw" (weight decay 0.01),
// "amsgrad" (AdamW), "adagrad", "rmsprop", "rmsprop-centered"; impl "for-loop", "foreach" or
// "fused" (plan_optimizer resolves "auto"). Throws OptionError naming the known ones.
OptimizerSpec parse_optimizer(std::string_view name, std::string_view impl = "foreach");

// ------------------------------------------------------------------ option names in messages

// A mistake in what the user asked for, rather than in the model or a file: the command line
// exits with its usage status, Python raises ValueError. Its message names options neutrally.
struct OptionError : Error {
  using Error::Error;
};

// In library messages an option is written between backquotes, `gpu`. Each front end words it as
// its user writes it: the command line `--gpu`, Python `gpu=` (a value after it joins it:
// `gpu` 'x' reads gpu='x'). Names the table does not know are left as they are.
enum class FrontEnd { kCommandLine, kPython };
std::string word_options(std::string_view message, FrontEnd front_end);

// ------------------------------------------------------------------ policies

// Run policy for a training step, for every front end:
// PyTorch 2.x's torch.optim picks foreach where every parameter is on CUDA and the for-loop
// elsewhere (_default_to_fused_or_foreach); two iterations show the optimizer's state appearing
// inside the first step and the steady state after it; the per-parameter step counters are device
// tensors on CPU (on CUDA, host tensors).
struct TrainingPlan {
  OptimizerSpec optimizer;
  int iterations = 2;
  bool counters_on_device = false;
};
TrainingPlan plan_training(Target target, const std::optional<OptimizerSpec>& optimizer);
// The optimizer a user names (parse_optimizer's names), with impl "auto" resolved as above: the
// for-loop on CPU, foreach on CUDA.
OptimizerSpec plan_optimizer(Target target, std::string_view name, std::string_view impl);

// Precision to the floating parameters' (and inputs') dtype and to autocast.
struct PrecisionPlan {
  PrecisionMode mode = PrecisionMode::kFp32;
  std::optional<DType> parameters;  // fp16, bf16: the floating parameters cast; else as stored
  std::optional<DType> autocast;    // bf16-amp, fp16-amp: torch.autocast around forward and loss
  bool amp() const { return autocast.has_value(); }
};
PrecisionPlan plan_precision(PrecisionMode mode);

// The implementation `auto` stands for: torch.optim's _default_to_fused_or_foreach, foreach where
// every parameter is on CUDA and the for-loop elsewhere.
OptimizerImpl default_impl(Target target);
std::string_view impl_name(OptimizerImpl impl);  // "for-loop", "foreach", "fused"

// `auto`'s loss: cross-entropy against the labels for a 2-D floating output (a classifier), else
// the mean of the output's squares (../shared/MEASUREMENT.md).
LossKind resolve_loss(LossKind loss, int output_dims, bool floating, bool labels);

// GPU-or-size to device: a GPU footprint knows (its capacity, context and SMs) or a size. On the
// CPU target a size is the memory to fit in, and a GPU's name is refused. context_mib < 0: the
// profile's own.
MemoryOptions plan_memory(Target target, std::string_view gpu, double context_mib,
                          std::string_view alloc_conf);
// The CUDA kernels' target: compute capability x 10 and streaming multiprocessors, the named
// GPU's, else an H100's (sm 90, 132 SMs).
struct CudaTarget {
  int sm = 90;
  int multiprocessors = 132;
};
CudaTarget cuda_target(const MemoryOptions& memory);

// The sharding pass's plan for one rank of `gpus / tp` data-parallel ranks (footprint/memory.h,
// ShardPlan): ZeRO-1 divides the optimizer's state, ZeRO-2 the gradients too, ZeRO-3 and FSDP
// the parameters too. Besides, one layer's gradients before the reduce-scatter and, with sharded
// parameters, the layer computed and the next one prefetched, gathered (16-bit under autocast,
// whose weight casts they replace). `layer` is one repeated layer's parameters at their dtypes.
struct LayerTensors {
  int64_t numel = 0;            // every parameter, tied ones once
  int64_t bytes = 0;            // at their dtypes
  int64_t trainable_bytes = 0;  // the trainable ones: the gradients
};
ShardPlan plan_sharding(Sharding sharding, int64_t gpus, int64_t tp, bool amp,
                        const LayerTensors& layer);

// The checks of an LLM run that concern its options alone, for footprint::llm and footprint.llm:
// a batch and a context, tensor-parallel groups that divide the GPUs, sharding, LoRA and
// checkpointing only in training, inference weights only in inference, a device for a fit.
void check_llm(const LlmScenario& s);

// ------------------------------------------------------------------ one plan out

// What a front end was asked, as names (each vocabulary's); empty gpu: none.
struct RunRequest {
  bool train = false;
  std::string optimizer = "adamw";
  std::string impl = "auto";
  std::string precision = "fp32";
  std::string loss = "auto";
  std::string zero_grad = "none";
  std::string device = "cuda";
  std::string gpu;
  double context_mib = -1;  // the CUDA context's MiB; < 0: the profile's
  std::string alloc_conf;
  // footprint llm
  std::string sharding = "none";
  int64_t gpus = 1;
  int64_t tp = 1;
  std::string attention = "auto";
  std::string fit = "none";
};

struct RunPlan {
  bool train = false;
  Target target = Target::kCuda;
  MemoryOptions memory;  // target, device profile, capacity, allocator settings
  CudaTarget cuda;
  PrecisionPlan precision;
  std::optional<TrainingPlan> training;  // with train: the optimizer, iterations, counters
  LossKind loss = LossKind::kAuto;
  bool set_to_none = true;
  Sharding sharding = Sharding::kNone;
  int64_t gpus = 1, tp = 1;
  AttentionImpl attention = AttentionImpl::kAuto;
  FitTarget fit = FitTarget::kNone;
};
RunPlan plan_run(const RunRequest& request);

// The plan as the C++ API's scenarios take it; the rest of each (inputs, limits, the LLM's batch
// and context, LoRA) is the front end's to fill in.
MemoryScenario memory_scenario(const RunPlan& plan);
LlmScenario llm_scenario(const RunPlan& plan);

}  // namespace footprint
