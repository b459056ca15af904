// torch.optim's optimizers as their Python code allocates (PyTorch 2.x, and 1.13 where it is the
// same), replayed with ATen ops so that the capture records every state tensor and temporary.
// Only the allocations are faithful: the arithmetic is what it takes to allocate the same tensors
// in the same order, and runs on meta tensors.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "footprint/memory.h"

namespace footprint::detail {

class PyOptimizer {
 public:
  // Adagrad makes its state here, as its constructor does. counters_on_device: the per-parameter
  // step counters are device tensors (on a CPU target, and for fused on CUDA); else they are host
  // tensors and not recorded.
  PyOptimizer(const OptimizerSpec& spec, std::vector<at::Tensor> params, bool counters_on_device);
  // Optimizer.zero_grad(set_to_none): drops the gradients, or zeroes them in place.
  void zero_grad(bool set_to_none);
  // Optimizer.step(): the state on the first call, then the update.
  void step();

 private:
  struct State {
    bool made = false;
    at::Tensor counter;  // state['step'] when it is a device tensor
    at::Tensor a, b, c;  // exp_avg, exp_avg_sq, max_exp_avg_sq; sum; square_avg, buf, grad_avg
  };
  void make_state(size_t i);
  void step_for_loop(const std::vector<size_t>& live);
  void step_foreach(const std::vector<size_t>& live);

  OptimizerSpec spec_;
  std::vector<at::Tensor> params_;
  bool counters_on_device_;
  std::vector<State> state_;
};

}  // namespace footprint::detail
