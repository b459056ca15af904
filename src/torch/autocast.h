// Autocast on the meta device. PyTorch's autocast only casts CUDA (or CPU) tensors, so footprint
// replays its policy itself: a boxed kernel on an autocast dispatch key that no backend of this
// LibTorch uses (AutocastXPU), switched on per thread. The op lists and the cache of cast weights
// follow PyTorch 2.x's CUDA autocast (aten/src/ATen/autocast_mode.cpp).
#pragma once

#include <c10/core/ScalarType.h>

#include <optional>

namespace footprint::detail {

// While alive, ops on this thread run under autocast to `lower` (kHalf or kBFloat16). On leaving,
// the cast weights' cache is cleared, as torch.autocast's exit does. Throws footprint::Error when
// this LibTorch leaves no autocast key free.
class AutocastScope {
 public:
  explicit AutocastScope(c10::ScalarType lower);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;
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
