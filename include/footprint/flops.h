// footprint/flops.h: compute per op, by rules that belong to the aten op (never to a module's class
// name). The convention, written out with every rule in docs/flops.md:
//   - a MAC is one multiply-accumulate (conv, linear, matmul, attention);
//   - FLOPs = 2 x MACs for those ops, plus the bias adds (shown apart as `bias`), plus the other
//     ops per the rule table (element-wise: 1 per output element; softmax: 5; ...).
// Ops nest (aten::linear calls aten::addmm on CPU): an op is counted at the outermost level that
// has a rule, and the ops inside it are not counted again.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "footprint/trace.h"

namespace footprint {

struct Cost {
  int64_t macs = 0;
  int64_t flops = 0;  // includes bias
  int64_t bias = 0;   // the FLOPs of bias adds, already in flops
  Cost& operator+=(const Cost& o) {
    macs += o.macs;
    flops += o.flops;
    bias += o.bias;
    return *this;
  }
};

enum class RuleKind {
  kCompute,  // a formula (possibly 0, as for nearest upsampling)
  kCopy,     // no arithmetic, but it reads and writes memory (cat, clone, embedding)
  kView,     // no arithmetic and no data moved (view, transpose, expand)
  kAlloc,    // creates uninitialised memory (empty, empty_like)
  kNone,     // no rule: look inside, or report the op as uncounted
};

struct Rule {
  RuleKind kind = RuleKind::kNone;
  Cost cost;
};

// The rule for one op, from its name, its inputs and its outputs.
Rule flop_rule(const TraceOp& op);

// The name without "aten::" and without the in-place "_" suffix: "aten::relu_" -> "relu".
std::string_view op_base_name(std::string_view name);

struct CountedOp {
  int op = 0;  // index into Trace::ops
  RuleKind kind = RuleKind::kCompute;
  Cost cost;
};

struct FlopCount {
  std::vector<CountedOp> counted;  // the ops counted, each at its outermost level with a rule
  std::vector<int> uncounted;      // ops with no rule and nothing countable inside (counted as 0)
};

FlopCount count_flops(const Trace& trace);

}  // namespace footprint
