// The meta runtime, groundwork of the engine (issue 3): run a model's own code on PyTorch's meta
// device, where tensors have shapes and no data, and see every allocation with its exact bytes.
//   install_meta_runtime();            // once: the tracking allocator and the missing kernels
//   to_meta(module);                   // parameters and buffers become meta tensors
//   MetaRecorder rec;                  // records while alive
//   module.forward({torch::empty(shape, torch::kMeta)});
//   rec.peak();
#pragma once

#include <torch/nn/module.h>
#include <torch/script.h>

#include <cstdint>
#include <vector>

namespace footprint::detail {

struct AllocEvent {
  uint64_t id;    // the allocation's number; its free carries the same
  int64_t bytes;  // positive for an allocation, negative for a free
};

// Records the meta allocations and frees made on this thread while it lives. One at a time.
class MetaRecorder {
 public:
  MetaRecorder();
  ~MetaRecorder();
  MetaRecorder(const MetaRecorder&) = delete;
  MetaRecorder& operator=(const MetaRecorder&) = delete;

  const std::vector<AllocEvent>& events() const { return events_; }
  int64_t live() const { return live_; }  // bytes allocated and not yet freed, since it started
  int64_t peak() const { return peak_; }  // the most that was live at once

  void on_alloc(uint64_t id, int64_t bytes);
  void on_free(uint64_t id, int64_t bytes);
  // Each recorder has its own number, so that a free of memory allocated under an earlier
  // recorder is never counted by a later one at the same address.
  uint64_t generation() const { return generation_; }

 private:
  uint64_t generation_;
  std::vector<AllocEvent> events_;
  int64_t live_ = 0;
  int64_t peak_ = 0;
};

// Installs the meta allocator and registers a shape-only Meta kernel for each aten op that has
// none in this LibTorch (1.13 lacks convolution, batch norm, relu, ...). Idempotent.
void install_meta_runtime();

// Replaces every parameter and buffer with a meta tensor of the same shape, dtype and
// requires_grad, in place (TensorImpl::shallow_copy_from: module->to(kMeta) fails in 1.13).
void to_meta(torch::jit::Module& module);
void to_meta(torch::nn::Module& module);

}  // namespace footprint::detail
