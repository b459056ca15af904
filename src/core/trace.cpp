// The Trace's small helpers.
#include "footprint/trace.h"

#include <fmt/format.h>

#include <map>
#include <set>
#include <utility>

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

std::string op_module(const Trace& trace, const TraceOp& op) {
  const auto& call = trace.calls.at(op.call);
  return call.path.empty() ? "the model itself" : call.path;
}

std::string calls_in(int64_t count, const std::set<std::string>& modules) {
  std::string out = fmt::format("{} call{}, in ", count, count == 1 ? "" : "s");
  int shown = 0;
  for (const auto& m : modules) {
    if (shown++ == 3) return out + ", ...";
    out += (shown == 1 ? "" : ", ") + m;
  }
  return out;
}

std::vector<std::string> trace_gaps(const Trace& trace) {
  std::map<std::string, std::pair<int64_t, std::set<std::string>>> guessed;
  for (const auto& op : trace.ops) {
    if (!op.guessed) continue;
    auto& g = guessed[op.name];
    g.first++;
    g.second.insert(op_module(trace, op));
  }
  std::vector<std::string> gaps;
  for (const auto& [name, g] : guessed)
    gaps.push_back(fmt::format(
        "{}: no kernel for the {} device in this LibTorch; its output shapes were taken from its "
        "inputs, unchecked ({})",
        name, trace.device, calls_in(g.first, g.second)));
  if (!trace.stopped.empty())
    gaps.push_back("the run stopped early: " + trace.stopped +
                   "; the ops after it are missing from every number");
  return gaps;
}

}  // namespace footprint
