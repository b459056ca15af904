// footprint/memory.h: the peak memory of inference and of a training step, read from a Model and a
// Trace: live bytes per category over time, the peak with where it happens, and what a device's
// allocator makes of the same sequence (the CUDA caching allocator, footprint/allocator.h).
//
//   footprint::Trace t = footprint::capture(module, options);   // footprint/engine.h
//   footprint::MemoryReport r = footprint::analyze_memory(model, t, {});
//   std::cout << footprint::print_memory(r, {});
//
// docs/memory.md explains the categories, the training step and what was checked against real
// runs.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "footprint/allocator.h"
#include "footprint/devices.h"
#include "footprint/model.h"
#include "footprint/report.h"
#include "footprint/summary.h"
#include "footprint/trace.h"

namespace footprint {

// The optimizers of Python's torch.optim, allocating as its Python code does (not LibTorch's C++
// optimizers, which allocate differently).
enum class OptimizerKind { kSgd, kAdam, kAdamW, kAdagrad, kRmsprop };
enum class OptimizerImpl {
  kForLoop,  // one parameter at a time (foreach=False; PyTorch 1.13's default on CPU)
  kForeach,  // _foreach_* over the whole group (PyTorch 2.x's default on CUDA)
  kFused,    // one fused kernel (fused=True): state, no temporaries
};

struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::kAdamW;
  OptimizerImpl impl = OptimizerImpl::kForeach;
  double momentum = 0;      // SGD, RMSprop
  bool nesterov = false;    // SGD
  double weight_decay = 0;  // AdamW's default 0.01 is set by parse_optimizer
  bool amsgrad = false;     // Adam, AdamW
  bool centered = false;    // RMSprop
};

// The optimizers' names, the implementation's `auto` and the training plan: footprint/plan.h.
std::string optimizer_name(const OptimizerSpec& o);  // "AdamW (foreach)"

// How the training step runs: MEASUREMENT.md's, with the choices a user has.
enum class LossKind {
  kAuto,          // cross-entropy for a 2-D floating output (a classifier), else mean square
  kCrossEntropy,  // F.cross_entropy(y, labels)
  kMeanSquare,    // y.float().square().mean()
  kOutput,        // the forward returns its own loss (footprint llm's models)
};

// Mixed precision: the floating parameters' dtype, and autocast around forward and loss.
enum class PrecisionMode { kFp32, kFp16, kBf16, kBf16Amp, kFp16Amp };

enum class Category {
  kParameters,
  kBuffers,
  kGradients,
  kOptimizerState,
  kActivations,  // saved by forward ops for backward
  kTransient,    // workspaces and temporaries freed within their phase
  kInput,        // the inputs (and labels)
  kOutput,       // what the forward returns (and the loss), alive at the end
  kCount
};
std::string_view category_name(Category c);  // "parameters", ..., "optimizer state"
constexpr int kCategories = int(Category::kCount);
using CategoryBytes = std::array<int64_t, kCategories>;

enum class Target { kCuda, kCpu };

struct MemoryOptions {
  Target target = Target::kCuda;
  AllocatorConfig allocator;         // the CUDA caching allocator's settings
  std::optional<DeviceProfile> gpu;  // for the device total and whether it fits
  std::optional<int64_t> capacity;   // bytes, overrides the profile's (--gpu 24GiB)
  bool timeline = false;             // record MemoryReport::timeline (--snapshot, --html)
};

// The sharding pass's plan: sharded data parallelism (ZeRO, FSDP) as seen by one rank. Each
// category's bytes are divided by its divisor, rounded up, allocation by allocation; `gathered`
// bytes are held throughout besides (the parameters gathered for the layers being computed and
// their gradients before the reduce-scatter). With `drop_weight_casts`, autocast's copies of the
// weights count nothing: under ZeRO-3/FSDP mixed precision the gathered 16-bit parameters (in
// `gathered`) take their place and are freed after each layer. The default plan shards nothing.
struct ShardPlan {
  CategoryBytes divisor{1, 1, 1, 1, 1, 1, 1, 1};
  int64_t gathered = 0;
  bool drop_weight_casts = false;
};

// The moment of a peak: where it happens and what is live.
struct PeakPoint {
  int64_t bytes = 0;  // the sum of live bytes (CPU: as requested; CUDA: rounded blocks)
  CategoryBytes by_category{};
  Phase phase = Phase::kForward;
  int iteration = 0;   // 0-based
  std::string op;      // the op that allocated at the peak ("aten::conv2d")
  std::string module;  // the module whose call it was in ("layer1.0.conv1"; "" for the model)
};

struct ModuleBytes {
  std::string module;  // path; "" for the model itself
  std::string type;
  int64_t bytes = 0;  // activation and transient bytes it allocated that are live at the peak
};

struct PhasePeak {
  Phase phase = Phase::kForward;
  int iteration = 0;
  int64_t peak = 0;  // the allocated peak within the phase (CUDA: rounded blocks)
};

// The run as a timeline, for pictures of it (footprint/memory_viz.h): what is live after every
// allocation and free of the replay, and every action of the target's allocator. Recorded when
// MemoryOptions::timeline is set.
struct MemoryTimeline {
  struct Step {  // after one allocation or free; the resident tensors come first, in phase setup
    int64_t allocated = 0;  // live bytes as the peak counts them (CUDA: blocks)
    int64_t reserved = 0;   // CUDA: the allocator's segments; CPU: allocated
    CategoryBytes live{};
    Category category = Category::kTransient;  // of the tensor allocated or freed
    bool free = false;
    Phase phase = Phase::kSetup;
    int iteration = 0;
    int op = -1;      // ops[op]: the top-level op, or what a resident tensor is ("parameters")
    int stack = -1;   // stacks[stack]: the ops running, innermost (the one that allocated) first
    int module = -1;  // modules[module]: the module whose call it was in
  };
  struct Module {
    std::string path;  // "" for the model itself
    std::string type;
  };
  // An allocator action and the step it belongs to. On CPU, where no caching allocator sits
  // between the tensors and malloc, each allocation is its own segment. A run that does not fit
  // its device is recorded as it would go with no limit, as its peaks are reported.
  struct Action {
    AllocatorAction action;
    int step = 0;
  };
  std::vector<std::string> ops;
  std::vector<std::vector<int>> stacks;  // of ops, each innermost first, ending at a top-level op
  std::vector<Module> modules;
  std::vector<Step> steps;
  std::vector<Action> actions;
  size_t peak_step = 0;  // the first step at the allocated peak
  bool cuda = true;      // the target: the caching allocator's actions, or malloc's
};

struct MemoryReport {
  std::string source;
  bool train = false;
  std::vector<InputSpec> inputs;
  Target target = Target::kCuda;
  std::string optimizer;  // "AdamW (foreach)"; empty for inference
  std::string precision;  // "fp32"
  bool set_to_none = true;
  int iterations = 1;
  int64_t parameter_count = 0;   // trainable, counted once
  CategoryBytes model_states{};  // parameters, buffers, gradients, optimizer state at steady state

  PeakPoint peak;                       // the overall allocated peak
  std::vector<int64_t> iteration_peak;  // per iteration: [0] is iteration 1, [1] steady state
  std::vector<PhasePeak> phases;
  std::vector<ModuleBytes> modules;  // the largest contributors at the peak, largest first

  // The CUDA caching allocator's view (target kCuda): what torch.cuda.max_memory_allocated() and
  // max_memory_reserved() would say, and the device.
  AllocatorStats allocator;
  std::optional<DeviceProfile> gpu;
  int64_t capacity = 0;                 // bytes the process may use on the device (0: unknown)
  int64_t device_overhead = 0;          // CUDA context and library workspaces outside the allocator
  std::optional<bool> fits;             // when a capacity is known
  int64_t margin = 0;                   // capacity - (reserved peak + overhead); negative when not
  int64_t unlimited_reserved_peak = 0;  // with a capacity: what it would reserve with no limit
  std::string stopped;                  // the capture stopped early: the numbers are a lower bound
  // As Summary::gaps: one line per op whose output shapes were guessed, and a capture that stopped
  // early. Not exact when not empty (the CLI's exit status 3).
  std::vector<std::string> gaps;
  std::vector<std::string> notes;
  // Where the target's rules were measured, and whether the run's torch is that release or they
  // are carried over to it (footprint/versions.h, rules_line).
  std::string rules;
  std::vector<std::string> warnings;  // Trace::warnings: the run may not be the one asked for
  std::shared_ptr<const MemoryTimeline> timeline;  // with MemoryOptions::timeline
};

MemoryReport analyze_memory(const Model& model, const Trace& trace, const MemoryOptions& options,
                            const ShardPlan& sharding = {});

// What to estimate: the run (footprint/engine.h captures it on meta) and the device.
struct MemoryScenario {
  std::vector<InputSpec> inputs;
  bool train = false;
  std::optional<OptimizerSpec> optimizer;  // training: AdamW (foreach) when unset
  PrecisionMode precision = PrecisionMode::kFp32;
  LossKind loss = LossKind::kAuto;
  bool set_to_none = true;
  MemoryOptions memory;
  EngineLimits limits;
};
// The largest batch that fits: batch fits and batch + 1 does not, both captured in full. The
// batch is the first dimension of every input.
struct FitResult {
  int64_t batch = 0;  // 0: not even batch 1 fits
  MemoryReport fits;  // at batch (at 1 when nothing fits)
  MemoryReport next;  // at batch + 1
  int captures = 0;   // how many batch sizes were tried
};
// The largest n in [1, max] that fits, given a probe that runs (and remembers) the estimate at n:
// aims along a straight line through the last two `need`s and closes the bracket so that n fits
// and n + 1 does not (or n = max). 0 when not even 1 fits. Memory is assumed to grow with n.
int64_t largest_fitting(const std::function<bool(int64_t)>& fits,
                        const std::function<int64_t(int64_t)>& need, int64_t capacity, int64_t max);
// What the fit search aims with, for `fit` and `llm --fit` alike: on CUDA the allocated peak plus
// the device's overhead (the allocated peak grows smoothly with the batch, where what the
// allocator reserves jumps with its segments; the full replay decides the bracket), on CPU the
// peak. And whether a run fits: only when a capacity was given and nothing failed.
int64_t fit_need(const MemoryReport& r);
inline bool fits(const MemoryReport& r) {
  return r.fits.value_or(false);
}

// The seeds' formulas (../shared/seeds/), beside the real estimate: `--method seed`.
struct SeedEstimate {
  // Approach 1 of the first seed: parameters x bytes per element.
  int64_t parameters = 0;
  int64_t parameter_bytes = 0;
  // pytorch_modelsize's SizeEstimator (the second seed), as published: its parameter loop resets
  // its list for every module, so only the last module's parameters count; outputs are every
  // module call's (the root's apart), times 2 for "values and gradients".
  int64_t seed_param_bits = 0;
  int64_t seed_input_bits = 0;
  int64_t seed_output_bits = 0;  // already doubled
  int64_t seed_total_bits = 0;
  double seed_megabytes = 0;  // total_bits / 8 / 1024^2
  // The same formula with the bug fixed: every parameter counted.
  int64_t fixed_total_bits = 0;
};
// From an inference summary of the same model (its rows' output shapes).
SeedEstimate seed_estimate(const Model& model, const Summary& summary, int bits = 32);

struct MemoryPrintOptions {
  Format format = Format::kTable;
  int modules = 8;  // rows of the per-module breakdown
  std::optional<SeedEstimate> seed;
};
std::string print_memory(const MemoryReport& r, const MemoryPrintOptions& o);
std::string print_fit(const FitResult& r, Format format);

}  // namespace footprint
