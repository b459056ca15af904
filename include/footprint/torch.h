// footprint/torch.h: the same reports from LibTorch modules, in one call.
//   footprint::ParamReport r = footprint::params(*my_module);
// Parameters are told from buffers as the module registered them; trainable means requires_grad;
// tensors sharing storage (tied weights) are counted once.
#pragma once

#include <torch/nn/module.h>
#include <torch/script.h>

#include "footprint/footprint.h"

namespace footprint {

Model model_from(const torch::nn::Module& module);
Model model_from(const torch::jit::Module& module);

inline ParamReport params(const torch::nn::Module& module, const ParamOptions& options = {}) {
  return params(model_from(module), options);
}
inline ParamReport params(const torch::jit::Module& module, const ParamOptions& options = {}) {
  return params(model_from(module), options);
}

}  // namespace footprint
