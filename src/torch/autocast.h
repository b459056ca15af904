// Autocast on the meta device. PyTorch's autocast only casts CUDA (or CPU) tensors, so footprint
// replays its policy itself: a boxed kernel on an autocast dispatch key that no backend of this
// LibTorch uses (AutocastXPU), switched on per thread. The op lists and the cache of cast weights
// follow PyTorch 2.x's CUDA autocast (aten/src/ATen/autocast_mode.cpp).
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <optional>

namespace footprint::detail {

// While alive, ops on this thread run under autocast to `lower` (kHalf or kBFloat16). On leaving,
// the cast weights' cache is cleared, as torch.autocast's exit does. Throws footprint::Error when
// this LibTorch leaves no autocast key free. PyTorch's own autocast flag for the target's device
// (CUDA, or the CPU) is set as well, so that code which asks (torch.is_autocast_enabled():
// nn.MultiheadAttention's and TransformerEncoderLayer's fast paths are refused under autocast)
// takes the path the real run takes; it casts nothing on meta, whose tensors have no autocast key.
class AutocastScope {
 public:
  AutocastScope(c10::ScalarType lower, bool cuda_target);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType device_;
  bool was_enabled_;
  c10::ScalarType was_dtype_;
};

// While alive, autocast casts nothing on this thread (torch.autocast(enabled=False)).
class AutocastPause {
 public:
  AutocastPause();
  ~AutocastPause();
  AutocastPause(const AutocastPause&) = delete;
  AutocastPause& operator=(const AutocastPause&) = delete;

 private:
  bool was_on_;
};

// The dtype autocast casts to on this thread, when it is on (for a recomputation that must run
// under the autocast state of the forward it repeats, as torch.utils.checkpoint does).
std::optional<c10::ScalarType> autocast_lower();
// True while autocast casts a weight (a leaf that requires grad) into its cache: the capture marks
// those copies, which sharded training (ZeRO-3, FSDP) shards with the parameters.
bool in_weight_cast();

}  // namespace footprint::detail
