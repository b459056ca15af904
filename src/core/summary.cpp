// The summary: FLOPs counted per op (flops.cpp), attributed to the module call that ran the op,
// and rolled up the call tree; plus output shapes, bytes and the gaps.
#include "footprint/summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "footprint/error.h"
#include "footprint/params.h"

namespace footprint {
namespace {

int64_t tensor_bytes(const std::vector<OpValue>& values) {
  int64_t n = 0;
  for (const auto& v : values)
    for (const auto& t : v.tensors) n += t.bytes();
  return n;
}

}  // namespace

Summary summarize(const Model& model, const Trace& trace, const SummaryOptions& options) {
  Summary s;
  s.source = model.source;
  s.device = trace.device;
  s.train = trace.train;
  s.inputs = options.inputs;

  // Parameters: the whole model once (tied weights once), and each module's subtree.
  ParamOptions po;
  po.depth = -1;
  ParamReport pr = params(model, po);
  s.params = pr.params.numel;
  s.trainable = pr.trainable.numel;
  s.param_bytes = pr.params.bytes;
  std::map<std::string, int64_t> module_params;
  for (const auto& m : pr.modules) module_params[m.path] = m.params.numel;
  for (const auto& in : options.inputs) {
    TensorMeta t{in.shape, in.dtype.value_or(options.dtype.value_or(DType::kFloat32))};
    s.input_bytes += t.bytes();
  }

  const size_t n_calls = trace.calls.size();
  if (n_calls == 0) throw Error("summary: the trace has no module call");
  std::vector<SummaryRow> self(n_calls);
  std::vector<std::vector<int>> children(n_calls);
  for (size_t c = 1; c < n_calls; ++c) {
    int p = trace.calls[c].parent;
    children[p >= 0 && static_cast<size_t>(p) < n_calls ? p : 0].push_back(int(c));
  }
  auto for_call_and_parents = [&](int c, auto&& fn) {
    for (int guard = 0; c >= 0 && static_cast<size_t>(c) < n_calls && guard < 10000; ++guard) {
      fn(c);
      c = trace.calls[c].parent;
    }
  };

  // FLOPs and memory traffic at the counted level.
  FlopCount fc = count_flops(trace);
  std::map<std::pair<std::string, Phase>, OpRow> by_op;
  auto op_row = [&](const TraceOp& op) -> OpRow& {
    auto& o = by_op[{op.name, op.phase}];
    o.name = op.name;
    o.phase = op.phase;
    o.count++;
    return o;
  };
  for (const auto& counted : fc.counted) {
    const TraceOp& op = trace.ops[counted.op];
    // One pass of forward, loss and backward: the first iteration's, without the optimizer.
    if (op.iteration > 0 || op.phase > Phase::kBackward) continue;
    int64_t read = 0, write = 0;
    if (counted.kind == RuleKind::kCompute || counted.kind == RuleKind::kCopy) {
      read = tensor_bytes(op.inputs);
      write = tensor_bytes(op.outputs);
    }
    auto& row = self[op.call];
    switch (op.phase) {
      case Phase::kForward:
        row.forward += counted.cost;
        row.read_bytes += read;
        row.write_bytes += write;
        s.forward += counted.cost;
        break;
      case Phase::kLoss:
        s.loss += counted.cost;
        break;
      case Phase::kBackward:
        row.backward += counted.cost;
        s.backward += counted.cost;
        break;
      default:
        break;
    }
    if (counted.kind == RuleKind::kView || counted.kind == RuleKind::kAlloc) continue;
    auto& o = op_row(op);
    o.cost += counted.cost;
    o.read_bytes += read;
    o.write_bytes += write;
  }

  // The gaps: ops with no rule, ops whose shapes were guessed, a capture that stopped.
  struct Gap {
    int64_t count = 0;
    std::set<std::string> where;
  };
  std::map<std::string, Gap> uncounted;
  auto mark = [&](const TraceOp& op) {
    for_call_and_parents(op.call, [&](int c) { self[c].gap = true; });
  };
  for (int i : fc.uncounted) {
    const TraceOp& op = trace.ops[i];
    auto& g = uncounted[op.name];
    g.count++;
    g.where.insert(op_module(trace, op));
    mark(op);
    op_row(op).uncounted = true;
  }
  for (const auto& op : trace.ops)
    if (op.guessed) mark(op);
  s.gaps = trace_gaps(trace);
  for (const auto& [name, g] : uncounted)
    s.gaps.push_back(
        fmt::format("{}: no FLOP rule, counted as 0 ({})", name, calls_in(g.count, g.where)));
  if (!trace.stopped.empty()) self[0].gap = true;

  // Memory: what the forward ops allocated, and the peak of live bytes over the capture.
  int64_t live = 0;
  for (const auto& e : trace.memory) {
    live += e.bytes;
    s.peak_live = std::max(s.peak_live, live);
    if (e.bytes <= 0 || e.op < 0) continue;
    const TraceOp& op = trace.ops[e.op];
    if (op.phase != Phase::kForward || op.iteration > 0) continue;
    self[op.call].activation_bytes += e.bytes;
    s.forward_allocated += e.bytes;
  }

  // A call's output: the results of the last top-level forward op inside it.
  std::vector<int> last(n_calls, -1);
  for (size_t i = 0; i < trace.ops.size(); ++i) {
    const auto& op = trace.ops[i];
    if (op.parent != -1 || op.phase != Phase::kForward || op.iteration > 0) continue;
    for_call_and_parents(op.call, [&](int c) { last[c] = int(i); });
  }

  // Roll up the tree and emit rows depth-first, in call order.
  std::set<std::string> seen_paths;
  std::function<void(int, int)> emit = [&](int c, int depth) {
    size_t at = s.rows.size();
    SummaryRow row = self[c];
    row.path = trace.calls[c].path;
    int parent = trace.calls[c].parent;
    const std::string& above = parent >= 0 ? trace.calls[parent].path : std::string();
    row.name = !above.empty() && row.path.rfind(above + ".", 0) == 0
                   ? row.path.substr(above.size() + 1)
                   : row.path;
    row.type = trace.calls[c].type;
    if (row.type.empty()) {
      auto t = model.module_types.find(row.path);
      if (t != model.module_types.end()) row.type = t->second;
    }
    row.depth = depth;
    row.repeat = !seen_paths.insert(row.path).second;
    auto mp = module_params.find(row.path);
    row.params = row.repeat || mp == module_params.end() ? 0 : mp->second;
    if (last[c] >= 0)
      for (const auto& v : trace.ops[last[c]].outputs)
        for (const auto& t : v.tensors) row.output_shapes.push_back(t.shape);
    s.rows.push_back(row);
    for (int child : children[c]) emit(child, depth + 1);
    // Sum the direct children's rows (each already holds its own subtree).
    SummaryRow& me = s.rows[at];
    for (size_t k = at + 1; k < s.rows.size(); ++k) {
      const SummaryRow& r = s.rows[k];
      if (r.depth != depth + 1) continue;
      me.forward += r.forward;
      me.backward += r.backward;
      me.activation_bytes += r.activation_bytes;
      me.read_bytes += r.read_bytes;
      me.write_bytes += r.write_bytes;  // (gap: already marked up the call chain)
    }
  };
  emit(0, 0);
  s.rows[0].params = s.params;

  for (auto& [key, row] : by_op) s.by_op.push_back(row);
  std::stable_sort(s.by_op.begin(), s.by_op.end(), [](const OpRow& a, const OpRow& b) {
    if (a.phase != b.phase) return a.phase < b.phase;
    return a.cost.flops > b.cost.flops;
  });
  if (trace.device == "meta")
    s.notes.push_back(
        "captured on the meta device: shapes and bytes from the model's own code, no data");
  s.warnings = trace.warnings;
  return s;
}

}  // namespace footprint
