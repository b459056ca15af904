// The Trace's small helpers.
#include "footprint/trace.h"

namespace footprint {

std::string_view phase_name(Phase p) {
  switch (p) {
    case Phase::kForward:
      return "forward";
    case Phase::kLoss:
      return "loss";
    case Phase::kBackward:
      return "backward";
    case Phase::kStep:
      return "step";
    case Phase::kZeroGrad:
      return "zero_grad";
    case Phase::kSetup:
      return "setup";
  }
  return "?";
}

int64_t TensorMeta::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t TensorMeta::bytes() const {
  return precision_bytes(Precision::kStored, dtype, numel());
}

}  // namespace footprint
