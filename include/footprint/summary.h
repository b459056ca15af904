// footprint/summary.h: the per-layer summary of one execution (torchinfo's table, torchstat's
// columns, thop's totals, fvcore's by-operator view), computed from a Model and a Trace.
//   footprint::Summary s = footprint::summarize(model, trace);
//   std::cout << footprint::print_summary(s, {});
// The C++ modules' entry point, which also runs the capture, is in footprint/engine.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "footprint/flops.h"
#include "footprint/model.h"
#include "footprint/report.h"
#include "footprint/shape.h"
#include "footprint/trace.h"

namespace footprint {

// What a model's code may do while footprint runs it (docs/engine.md, "The sandbox"). Each
// capture runs its code with every tensor on meta and refuses the ops that reach outside memory
// (files, the network, other processes); these bound the rest. Going past one stops the capture
// with a footprint::Error that names the limit.
struct EngineLimits {
  int64_t cpu_bytes = int64_t{256} << 20;  // real CPU memory its tensors hold at once
  int64_t ops = 2'000'000;                 // aten ops dispatched (those ops call included)
  double seconds = 40;                     // wall time of one capture
  // Resident memory of the whole process (its trace grows about 800 B an op), looked at every
  // 1,024 ops; 0: not bounded. The command line's supervisor also watches it from outside.
  int64_t memory_bytes = 0;
  enum class Prints { kStderr, kDrop } prints = Prints::kStderr;  // the model's print()s
};

struct SummaryOptions {
  std::vector<InputSpec> inputs;  // the input shapes (and dtypes) to run the model on
  bool train = false;             // forward, a loss and backward; else forward under no_grad
  std::optional<DType> dtype;     // cast floating parameters, buffers and inputs; unset: as stored
  EngineLimits limits;
};

// One module call (a module called twice has two rows).
struct SummaryRow {
  std::string path;     // "layer1.0.conv1"; "" for the whole model
  std::string name;     // the path below the calling module's: "conv1" (or "layers.0")
  std::string type;     // "Conv2d"
  int depth = 0;        // 0 for the whole model
  bool repeat = false;  // the module was called before: its parameters are not counted again
  std::vector<std::vector<int64_t>> output_shapes;  // the tensors the call returned
  int64_t params = 0;            // parameters of the module and its children (0 on a repeat)
  Cost forward;                  // this call and the calls inside it
  Cost backward;                 // the backward ops created by this call's forward ops
  int64_t activation_bytes = 0;  // bytes allocated by the call's forward ops
  int64_t read_bytes = 0;        // tensors read by its counted ops (torchstat's MemRead)
  int64_t write_bytes = 0;       // tensors written (torchstat's MemWrite)
  bool gap = false;  // holds an op counted as 0 for want of a rule, or with guessed shapes
};

// Totals per op name, at the level FLOPs are counted (fvcore's by_operator).
struct OpRow {
  std::string name;  // "aten::conv2d"
  Phase phase = Phase::kForward;
  int64_t count = 0;
  Cost cost;
  int64_t read_bytes = 0, write_bytes = 0;
  bool uncounted = false;  // no rule: its FLOPs are not known and counted as 0
};

struct Summary {
  std::string source;  // the file, or a description of the module
  std::string device;  // where the capture ran: "meta" or "cpu"
  bool train = false;
  std::vector<InputSpec> inputs;
  std::vector<SummaryRow> rows;  // depth-first, in call order; rows[0] is the whole model
  std::vector<OpRow> by_op;      // forward ops first, by FLOPs
  int64_t params = 0;            // every parameter once (tied weights once)
  int64_t trainable = 0;
  int64_t param_bytes = 0;
  int64_t input_bytes = 0;
  Cost forward, loss, backward;
  int64_t forward_allocated = 0;  // bytes allocated by the forward ops
  int64_t peak_live = 0;          // the most bytes live at once during the capture, over inputs
  std::vector<std::string> gaps;  // one line per op that is not counted or not run exactly
  std::vector<std::string> notes;
  std::vector<std::string> warnings;  // Trace::warnings: the run may not be the one asked for
  bool complete() const { return gaps.empty(); }
};

Summary summarize(const Model& model, const Trace& trace, const SummaryOptions& options);

enum class SummaryColumns { kDefault, kTorchstat };

struct SummaryPrintOptions {
  Format format = Format::kTable;
  int depth = 3;  // rows down to this depth; negative: every depth
  SummaryColumns columns = SummaryColumns::kDefault;
  bool by_op = false;  // the per-op breakdown instead of the module table
};

std::string print_summary(const Summary& summary, const SummaryPrintOptions& options);

// thop's two lines, as the seed prints them, with the convention named: thop's `profile`
// returns multiply-accumulates, which the seed prints as "MFLOPs".
std::string print_thop_lines(const Summary& summary);

}  // namespace footprint
