// The meta runtime, base of the engine: run a model's own code on PyTorch's meta device, where
// tensors have shapes and no data, and see every allocation with its exact bytes.
//   install_meta_runtime();            // once: the tracking allocator and the missing kernels
//   to_meta(module);                   // parameters and buffers become meta tensors
//   MemoryRecorder rec;                // records while alive
//   module.forward({torch::empty(shape, torch::kMeta)});
//   rec.peak();
// The same recorder on CPU (install_cpu_tracking(), MemoryRecorder(kCpu)) gives the real run's
// allocations, to check meta against.
#pragma once

#include <torch/library.h>
#include <torch/nn/module.h>
#include <torch/script.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "footprint/dtype.h"

namespace footprint::detail {

// Element types both ways (from_module.cpp); an unsupported one throws footprint::Error.
DType dtype_from(c10::ScalarType t);
c10::ScalarType scalar_type_from(DType t);

// Whether the op's Meta kernel was registered from Python (torch/_meta_registrations.py, or a
// torch.library registration): a decomposition, whose temporaries the real kernel never makes.
// Only a process that imported torch in Python has such kernels. footprint's own Meta kernels
// take the place of Python's for the ops it models (meta_kernels.cpp).
bool meta_kernel_is_python(const c10::OperatorHandle& op);

struct AllocEvent {
  uint64_t id;    // the allocation's number; its free carries the same
  int64_t bytes;  // positive for an allocation, negative for a free
  int op;         // MemoryRecorder::current_op when it happened
};

// Records the allocations and frees of one device while it lives. One at a time per device: for
// meta, per thread; for CPU, per process (CPU kernels may allocate on worker threads).
class MemoryRecorder {
 public:
  enum class Device { kMeta, kCpu };
  explicit MemoryRecorder(Device device = Device::kMeta);
  ~MemoryRecorder();
  MemoryRecorder(const MemoryRecorder&) = delete;
  MemoryRecorder& operator=(const MemoryRecorder&) = delete;

  const std::vector<AllocEvent>& events() const { return events_; }
  int64_t live() const { return live_; }  // bytes allocated and not yet freed, since it started
  int64_t peak() const { return peak_; }  // the most that was live at once

  void on_alloc(uint64_t id, int64_t bytes);
  void on_free(uint64_t id, int64_t bytes);
  // Each recorder has its own number, so that a free of memory allocated under an earlier
  // recorder is never counted by a later one at the same address.
  uint64_t generation() const { return generation_; }

  int current_op = -1;  // stamped on each event; the engine's observer keeps it up to date

 private:
  Device device_;
  uint64_t generation_;
  std::vector<AllocEvent> events_;
  int64_t live_ = 0;
  int64_t peak_ = 0;
};

// Installs the meta allocator, registers a shape-only Meta kernel for each aten op that has none
// in C++ LibTorch (2.11 lacks convolution, batch norm, relu, ...), the target kernel models, and
// a guess for every other aten op without a Meta kernel (see take_guessed_op). Idempotent.
void install_meta_runtime();

// resize_ on meta grows a storage by setting its byte count, without the allocator
// (resize_bytes_meta). Called after each aten::resize_, this records what a real resize_
// allocates: the larger block, then the free of the old one. The capture calls it.
void account_meta_resize(const at::Tensor& t);

// Installs a tracking CPU allocator (c10::SetCPUAllocator; it cannot be removed again). It
// records into the live CPU MemoryRecorder, if any. Idempotent.
void install_cpu_tracking();

// From now on, real CPU memory allocated (and still held) counts against `bytes`; an allocation
// that would go past it throws footprint::Error, and take_cpu_limit_violation() returns that
// message once. 0 turns the limit off. Installs the tracking CPU allocator.
void limit_cpu_memory(int64_t bytes);
std::optional<std::string> take_cpu_limit_violation();

// Registers the boxed fallback `make()` for `key`, once per key, when first needed (not at load:
// another library may use the key). footprint borrows keys no PyTorch library registers
// (AutocastIPU for the autocast replay, TESTING_ONLY_GenericMode for the sandbox); when one in
// this process did register a fallback for the key, throws footprint::Error starting with `what`.
void claim_fallback(c10::DispatchKey key, const std::function<torch::CppFunction()>& make,
                    const std::string& what);

// The target whose kernels meta stands for, on this thread (meta_kernels.cpp: the backend of
// scaled_dot_product_attention), the CUDA target's compute capability x 10 and its streaming
// multiprocessors. CUDA sm90 with 132 SMs until set.
void set_cuda_target(bool cuda, int sm = 90, int multiprocessors = 132);

// The CUDA target's reductions (sum, mean) allocate a staging buffer and semaphores when they
// split one output's inputs across thread blocks (Reduce.cuh's global reduce). The sandbox's
// kernel, which sees every op, asks before an op whether it is one (reduction_before keeps its
// input and dims), and after it adds the buffers the kernel would allocate and free.
struct PendingReduction {
  at::Tensor self;
  std::vector<int64_t> dims;  // empty: every dim
  bool keepdim = false;
};
std::optional<PendingReduction> reduction_before(const c10::OperatorHandle& op,
                                                 const std::vector<c10::IValue>& stack);
void reduction_after(const PendingReduction& r, const std::vector<c10::IValue>& stack);

// True when, since the last call on this thread, an op with no Meta kernel ran through the
// fallback, which gives results shaped like the op's inputs (broadcast) and cannot know better.
bool take_guessed_op();

// Replaces every parameter and buffer with a meta tensor of the same shape and requires_grad,
// in place (TensorImpl::shallow_copy_from keeps autograd metadata). With `dtype`,
// floating tensors take it, as module.to(dtype) does.
void to_meta(torch::jit::Module& module, std::optional<c10::ScalarType> dtype = std::nullopt);
void to_meta(torch::nn::Module& module, std::optional<c10::ScalarType> dtype = std::nullopt);

// Makes a TorchScript module free tensors when eager Python would, not at their last use: each
// tensor bound to a Python variable lives until the name is bound again or its function returns
// (python_lifetimes.cpp). Must run before the module's first call; idempotent.
void keep_python_lifetimes(torch::jit::Module& module);

// nn.MultiheadAttention and nn.TransformerEncoderLayer take their inference fast paths
// (aten::_native_multi_head_attention, aten::_transformer_encoder_layer_fwd) only when every tensor
// is on CPU or CUDA (`'cpu' in str(x.device)`, `x.device.type in _supported_device_type`), which
// meta tensors fail. In each graph that calls those ops, str(x.device) and x.device.type read
// "cpu", so that the capture takes the path a real run takes (python_lifetimes.cpp). Before the
// module's first call; idempotent.
void see_cpu_tensors(torch::jit::Module& module);

// A torch.jit.trace bakes in the device it ran on (`cuda:0`, `cpu`) as Device constants, and
// `torch.zeros(..., device=...)` inside the model then makes tensors there. Every such constant
// becomes the meta device, so that a trace made on a GPU or a CPU runs on meta like any other
// (python_lifetimes.cpp). Before the module's first meta call; idempotent.
void map_devices_to_meta(torch::jit::Module& module);

}  // namespace footprint::detail
