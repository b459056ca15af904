// footprint/engine.h: run a model's own code on PyTorch's meta device and record every op and
// every allocation (a Trace), then summarise it. Needs LibTorch; docs/engine.md says how it works.
//
//   torch::jit::Module m = torch::jit::load("resnet50.pt");
//   footprint::SummaryOptions o;
//   o.inputs = footprint::parse_inputs("1x3x224x224");
//   footprint::Summary s = footprint::summary(m, o);      // m's tensors are now on meta
//   std::cout << footprint::print_summary(s, {});
//
// The module's parameters and buffers are moved to the meta device in place (their values are
// gone afterwards): pass a copy when you still need the weights. A C++ module is run through the
// forward you give; its ops are attributed to the module whose parameters they use.
#pragma once

#include <torch/nn/module.h>
#include <torch/script.h>

#include <functional>
#include <memory>
#include <string>

#include "footprint/llm.h"
#include "footprint/memory.h"
#include "footprint/summary.h"
#include "footprint/trace.h"

namespace footprint {

enum class CaptureDevice {
  kMeta,  // shapes only: exact bytes, no data, no time
  kCpu,   // real tensors on CPU with a tracking allocator: the ground truth meta is checked against
};

struct CaptureOptions {
  std::vector<InputSpec> inputs;
  // train(), forward, the loss, backward; else eval() and no_grad. The loss is
  // ../shared/MEASUREMENT.md's: cross-entropy against class 0 for a 2-D floating output (a
  // classifier), else output.float().square().mean().
  bool train = false;
  std::optional<DType> dtype;
  CaptureDevice device = CaptureDevice::kMeta;
  // Autocast to this dtype (kFloat16 or kBFloat16) around forward and the loss, as
  // torch.autocast("cuda", dtype) does, with fp32 weights (src/torch/autocast.h).
  std::optional<DType> autocast;
  // Training only. With an optimizer, each iteration is zero_grad, forward, loss, backward (then
  // the output and loss are dropped), and the optimizer's step, as ../shared/MEASUREMENT.md runs
  // it.
  std::optional<OptimizerSpec> optimizer;
  int iterations = 1;       // 2 shows the optimizer's steady state
  bool set_to_none = true;  // zero_grad(set_to_none=...)
  LossKind loss = LossKind::kAuto;
  // The optimizer's per-parameter step counters are device tensors: true for a CPU run; on CUDA
  // they are host tensors except with fused.
  bool counters_on_device = false;
  // The device whose kernels the run stands for. Where meta would take another path than the real
  // kernel (scaled_dot_product_attention's backend, docs/engine.md), it takes this target's.
  Target target = Target::kCuda;
  int cuda_sm = 90;                // the CUDA target's compute capability x 10 (DeviceProfile::sm)
  int cuda_multiprocessors = 132;  // its streaming multiprocessors (DeviceProfile::multiprocessors)
  EngineLimits limits;             // what the model's code may do (the sandbox)

  // The CUDA target's kernel choices follow this GPU: its compute capability and SM count.
  void target_gpu(const DeviceProfile& gpu) {
    cuda_sm = gpu.sm;
    cuda_multiprocessors = gpu.multiprocessors;
  }
};

// For a process that supervises this one (footprint's CLI runs its engine as a child): each op
// names itself in `page` as it starts (NUL-terminated, at most size - 1 bytes), so that if this
// process dies, the supervisor can say what it was running.
void report_ops_to(char* page, size_t size);

// For a process that ends once its report is written (the footprint command), as clang's
// -disable-free: each run's trace and modules are left to the process's exit rather than freed one
// allocation at a time (about 0.1 s of a Llama-2-70B training estimate, docs/llm.md). Off by
// default: a library caller keeps its memory.
void leave_runs_to_exit(bool on);

// A C++ module's forward, called with the input tensors: a tensor, or a tuple whose first tensor
// is the output (the loss is taken from it) and whose other elements live as long as it, as a
// Python model's output does (dropped after backward).
using ForwardFn = std::function<c10::IValue(const std::vector<torch::Tensor>&)>;

Trace capture(torch::jit::Module& module, const CaptureOptions& options);
Trace capture(torch::nn::Module& module, const ForwardFn& forward, const CaptureOptions& options);

// A capture whose run is driven from outside, on this thread: the Python package runs the
// model's own Python code between the constructor and finish(). While the session lives, every
// allocation on meta is recorded (the sandbox's limits hold too); from the first phase after
// kSetup, every aten op as well. What is allocated in kSetup (the inputs) is the input category.
// A module call marked with enter_module holds the top-level forward ops until exit_module;
// backward ops take the module of the forward op that made their autograd node. `options`' train,
// target, cuda_sm, autocast and limits apply (limits.cpu_bytes 0: real CPU memory is not bounded,
// and the process's CPU allocator is left alone); the driver makes the inputs and runs the
// optimizer.
class CaptureSession {
 public:
  CaptureSession(const CaptureOptions& options, const std::string& root_type);
  ~CaptureSession();
  CaptureSession(const CaptureSession&) = delete;
  CaptureSession& operator=(const CaptureSession&) = delete;
  void phase(Phase phase, int iteration);
  void enter_module(const std::string& path, const std::string& type);  // "" is the model
  void exit_module();
  // footprint's replay of torch.autocast("cuda", options.autocast) on this thread, on or off.
  void autocast(bool on);
  // torch.autocast(enabled=False) inside the model's code: autocast paused (its cache of cast
  // weights kept, as torch keeps it in a nested block), or resumed.
  void pause_autocast(bool paused);
  // The trace of the run. `error`, when the run failed: its message. A refused op or a limit is
  // reported as such; an op with no meta kernel ends the trace there (Trace::stopped); any other
  // error is thrown back as footprint::Error.
  Trace finish(const std::string& error = "");

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The same data as `footprint summary`.
Summary summary(torch::jit::Module& module, const SummaryOptions& options);
Summary summary(torch::nn::Module& module, const ForwardFn& forward, const SummaryOptions& options);
// For a module holder whose forward takes one tensor: footprint::summary(net, options).
template <class Holder>
Summary summary(Holder& holder, const SummaryOptions& options) {
  return summary(
      *holder, [&](const std::vector<torch::Tensor>& x) { return holder->forward(x.at(0)); },
      options);
}

// The memory of inference or of a training step (footprint/memory.h), captured on meta.
MemoryReport memory(torch::jit::Module& module, const MemoryScenario& scenario);
MemoryReport memory(torch::nn::Module& module, const ForwardFn& forward,
                    const MemoryScenario& scenario);
// `footprint memory FILE`: a TorchScript file, as summary_file reads it.
MemoryReport memory_file(const std::string& path, const MemoryScenario& scenario);

// The largest batch that fits (FitResult in footprint/memory.h).
FitResult fit_file(const std::string& path, const MemoryScenario& scenario,
                   int64_t max_batch = int64_t(1) << 20);
// The seeds' formulas for `--method seed`: an inference capture of the same module.
SeedEstimate seed_file(const std::string& path, const std::vector<InputSpec>& inputs);

// `footprint llm CONFIG.json`: the model a transformers config describes, built as C++ modules
// and captured on meta (footprint/llm.h).
LlmReport llm(const TransformerConfig& config, const LlmScenario& scenario);
LlmReport llm_file(const std::string& path, const LlmScenario& scenario);

// `footprint summary FILE`: reads a TorchScript file and summarises it. Other files get an error
// that says what the file is and what summary needs.
Summary summary_file(const std::string& path, const SummaryOptions& options);

}  // namespace footprint
