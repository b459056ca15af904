// footprint/trace.h: the record of one execution of a model, as the engine captures it on the meta
// device (or on CPU, to check meta against reality). Every analysis reads only a Model and a Trace.
//
// Ops nest: aten::conv2d calls aten::convolution, which calls ... aten::empty. Each op names its
// parent, so an analysis picks the level it wants (FLOPs are counted at the outermost op that has
// a rule; docs/flops.md). Backward ops belong to the module whose forward op created them.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "footprint/dtype.h"

namespace footprint {

// A training step is zero_grad, forward, loss, backward and the optimizer's step; kSetup is what
// comes before the first iteration (the inputs, the labels, state an optimizer makes when built).
enum class Phase { kForward, kLoss, kBackward, kStep, kZeroGrad, kSetup };
std::string_view phase_name(
    Phase p);  // "forward", "loss", "backward", "step", "zero_grad", "setup"

struct TensorMeta {
  std::vector<int64_t> shape;
  DType dtype = DType::kFloat32;
  // 4-D with channels-last strides (PyTorch's suggest_memory_format): CPU convolutions take
  // another path for such inputs, with other scratch (docs/memory.md).
  bool channels_last = false;
  // Dense in that memory format; a permuted or sliced view is not, and a CPU kernel that needs it
  // dense copies it first (a convolution's grad_output, docs/memory.md).
  bool contiguous = true;
  int64_t numel() const;
  int64_t bytes() const;
};

// One argument or result of an op, as far as the analyses need it.
struct OpValue {
  enum class Kind { kNone, kTensor, kTensorList, kInt, kIntList, kDouble, kBool, kString, kOther };
  Kind kind = Kind::kNone;
  std::vector<TensorMeta> tensors;  // kTensor: one; kTensorList: each (undefined ones skipped)
  std::vector<int64_t> ints;        // kInt: one; kIntList: each; kBool: 0 or 1
  double real = 0;                  // kDouble
  std::string text;                 // kString
  bool is_tensor() const { return kind == Kind::kTensor && !tensors.empty(); }
  const TensorMeta& tensor() const { return tensors.front(); }  // only when is_tensor()
};

// A module call: one execution of a module's forward. A module called twice has two.
struct ModuleCall {
  std::string path;  // "layer1.0.conv1"; "" for the root module
  std::string type;  // "Conv2d"; empty when unknown
  int parent = -1;   // the enclosing call; -1 for the root
};

struct TraceOp {
  std::string name;  // "aten::conv2d", "ConvolutionBackward0", "autograd::engine::..."
  Phase phase = Phase::kForward;
  int parent = -1;    // the enclosing op, -1 at the top level
  int call = 0;       // index into Trace::calls
  int64_t seq = -1;   // autograd sequence number: a backward node has its forward op's
  int iteration = 0;  // the training iteration, from 0
  bool node = false;  // an autograd node (ConvolutionBackward0, AccumulateGrad)
  // The op had no kernel for the capture device: its outputs' shapes were guessed from its
  // inputs (docs/engine.md).
  bool guessed = false;
  bool weight_cast = false;  // autocast's copy of a weight into its cache
  // Its meta kernel is a Python decomposition (torch/_meta_registrations.py, in a process that
  // imported torch): what it allocates and frees inside is not the real kernel's, and is dropped
  // from the trace; its outputs stay (docs/engine.md, "Target kernel models").
  bool decomposition = false;
  // The autograd engine's sum of two gradients that a CPU or CUDA run does in place: 0, the
  // operand it writes into (the buffer's old value); -1 for any other op (capture.cpp,
  // subclass_like_adds_in_place).
  int in_place_operand = -1;
  std::vector<OpValue> inputs;   // as the schema lists them
  std::vector<OpValue> outputs;  // as the schema returns them
};

// An allocation (bytes > 0) or a free (bytes < 0) of device memory.
struct MemoryEvent {
  uint64_t id = 0;  // an allocation and its free share it
  int64_t bytes = 0;
  int op = -1;  // the innermost op running when it happened; -1 for none
  Phase phase = Phase::kForward;
  int iteration = 0;
};

struct Trace {
  std::string device;  // "meta" or "cpu"
  bool train = false;
  int iterations = 1;  // training iterations run (the optimizer's state appears in the first)
  std::vector<ModuleCall> calls;  // calls[0] is the root module's
  std::vector<TraceOp> ops;       // in the order they started
  std::vector<MemoryEvent> memory;
  // Set when the capture stopped early: the op and why. What came before is still recorded.
  std::string stopped;
  // The torch release the capture ran with ("2.11.0+cu130"; "" where unknown): which rules were
  // measured on it and which are carried over (footprint/versions.h).
  std::string torch;
  // What the user should know about how the run went (a trace whose baked-in mode is not the one
  // asked for), one line each.
  std::vector<std::string> warnings;
};

// The lines that say where a trace is not exact: each op whose output shapes were guessed (with
// its count and up to three module paths), and a capture that stopped early.
std::vector<std::string> trace_gaps(const Trace& trace);
// The module path an op ran in ("layer1.0.conv1"; "the model itself" for the root).
std::string op_module(const Trace& trace, const TraceOp& op);
// "3 calls, in a, b, c, ...": how often an op ran and in which modules (three at most).
std::string calls_in(int64_t count, const std::set<std::string>& modules);

}  // namespace footprint
