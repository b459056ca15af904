// Printers for the summary: the module table (torchinfo's layout, torchstat's extra columns), the
// per-op table (fvcore's by_operator), the totals with the seed's thop lines, JSON, CSV, Markdown.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/table.h"
#include "footprint/summary.h"

namespace footprint {
namespace {

using detail::Table;
using nlohmann::ordered_json;

bool shown(const SummaryRow& r, int depth) {
  return depth < 0 || r.depth <= depth;
}

std::string shapes_text(const std::vector<std::vector<int64_t>>& shapes) {
  std::string out;
  for (const auto& s : shapes) out += (out.empty() ? "" : ", ") + shape_text(s);
  return out.empty() ? "-" : out;
}

// The module's name at its depth, indented: "    conv1 (Conv2d)"; "*" marks a gap.
std::string layer_label(const SummaryRow& r, bool human) {
  if (!human) return r.path;
  std::string name = r.path.empty() ? "(model)" : r.name;
  std::string label = std::string(2 * r.depth, ' ') + name;
  if (!r.type.empty()) label += " (" + r.type + ")";
  if (r.repeat) label += " [again]";
  if (r.gap) label += " *";
  return label;
}

Table module_table(const Summary& s, const SummaryPrintOptions& o, bool human) {
  auto count = [human](int64_t n) { return human ? human_count(n) : std::to_string(n); };
  auto bytes = [human](int64_t n) { return human ? human_bytes(n) : std::to_string(n); };
  bool torchstat = o.columns == SummaryColumns::kTorchstat;
  Table t;
  // Headings for people, names for CSV; the path (CSV) or the indented label (text) first.
  auto column = [&](const char* heading, const char* name, bool numeric) {
    t.columns.push_back(human ? heading : name);
    t.numeric.push_back(numeric);
  };
  column("Layer (type)", "path", false);
  if (!human) {
    column("", "type", false);
    column("", "depth", true);
    column("", "repeat", true);
  }
  column("Output shape", "output_shape", false);
  column("Params", "params", true);
  column("MACs", "macs", true);
  column("FLOPs", "flops", true);
  column("Activations", "activation_bytes", true);
  if (s.train) column("Backward FLOPs", "backward_flops", true);
  if (torchstat) {
    column("Read", "read_bytes", true);
    column("Write", "write_bytes", true);
    column("FLOPs %", "flops_share", true);
  }
  double total = static_cast<double>(std::max<int64_t>(1, s.forward.flops));
  for (const auto& r : s.rows) {
    if (!shown(r, o.depth)) continue;
    std::vector<std::string> row{layer_label(r, human)};
    if (!human) row.insert(row.end(), {r.type, std::to_string(r.depth), r.repeat ? "1" : "0"});
    std::string params = !human     ? std::to_string(r.params)
                         : r.repeat ? "(again)"
                                    : with_commas(r.params);
    row.insert(row.end(), {shapes_text(r.output_shapes), params, count(r.forward.macs),
                           count(r.forward.flops), bytes(r.activation_bytes)});
    if (s.train) row.push_back(count(r.backward.flops));
    if (torchstat)
      row.insert(row.end(), {bytes(r.read_bytes), bytes(r.write_bytes),
                             fmt::format("{:.2f}", 100.0 * r.forward.flops / total)});
    t.rows.push_back(std::move(row));
  }
  return t;
}

Table op_table(const Summary& s, bool human) {
  auto count = [human](int64_t n) { return human ? human_count(n) : std::to_string(n); };
  auto bytes = [human](int64_t n) { return human ? human_bytes(n) : std::to_string(n); };
  Table t;
  t.title = human ? "By op, at the level FLOPs are counted:" : "";
  t.columns = {"op",   "phase", "calls", human ? "MACs" : "macs", human ? "FLOPs" : "flops",
               "read", "write"};
  t.numeric = {false, false, true, true, true, true, true};
  for (const auto& r : s.by_op)
    t.rows.push_back({r.name, std::string(phase_name(r.phase)), std::to_string(r.count),
                      r.uncounted ? "?" : count(r.cost.macs),
                      r.uncounted ? "?" : count(r.cost.flops), bytes(r.read_bytes),
                      bytes(r.write_bytes)});
  return t;
}

std::string totals_text(const Summary& s) {
  std::string out;
  auto line = [&](const std::string& label, const std::string& value) {
    out += fmt::format("{:<22} {}\n", label + ":", value);
  };
  line("Input", inputs_text(s.inputs) + " (" + human_bytes(s.input_bytes) + ")");
  line("Parameters", fmt::format("{} ({}), trainable {}", with_commas(s.params),
                                 human_bytes(s.param_bytes), with_commas(s.trainable)));
  auto cost = [](const Cost& c) {
    return fmt::format("{} MACs, {} FLOPs (bias adds {})", human_count(c.macs),
                       human_count(c.flops), human_count(c.bias));
  };
  line("Forward", cost(s.forward));
  if (s.train) {
    line("Loss", fmt::format("{} FLOPs", human_count(s.loss.flops)));
    line("Backward", cost(s.backward));
  }
  line("Forward activations", human_bytes(s.forward_allocated) + " allocated by forward ops");
  line("Peak live tensors", human_bytes(s.peak_live) + " during the run, inputs included");
  out += print_thop_lines(s);
  out +=
      "Convention: 1 MAC = one multiply-accumulate; FLOPs = 2 x MACs + bias adds + the other\n"
      "ops' rules (docs/flops.md). Bytes are binary (1 MiB = 1024^2 B).\n";
  for (const auto& n : s.notes) out += "Note: " + n + "\n";
  for (const auto& w : s.warnings) out += "Warning: " + w + "\n";
  if (!s.gaps.empty()) {
    out += "* Not exact:\n";
    for (const auto& g : s.gaps) out += "  " + g + "\n";
  }
  return out;
}

ordered_json cost_json(const Cost& c) {
  return {{"macs", c.macs}, {"flops", c.flops}, {"bias_flops", c.bias}};
}

ordered_json summary_json(const Summary& s, const SummaryPrintOptions& o) {
  ordered_json j;
  j["source"] = s.source;
  j["device"] = s.device;
  j["mode"] = s.train ? "train" : "inference";
  ordered_json inputs = ordered_json::array();
  for (const auto& in : s.inputs) {
    ordered_json i{{"shape", in.shape}};
    if (in.dtype)
      i["dtype"] = std::string(dtype_name(*in.dtype));
    else
      i["dtype"] = nullptr;
    inputs.push_back(i);
  }
  j["inputs"] = inputs;
  j["input_bytes"] = s.input_bytes;
  j["params"] = s.params;
  j["trainable"] = s.trainable;
  j["param_bytes"] = s.param_bytes;
  j["forward"] = cost_json(s.forward);
  if (s.train) {
    j["loss"] = cost_json(s.loss);
    j["backward"] = cost_json(s.backward);
  }
  j["forward_allocated_bytes"] = s.forward_allocated;
  j["peak_live_bytes"] = s.peak_live;
  ordered_json rows = ordered_json::array();
  for (const auto& r : s.rows) {
    if (!shown(r, o.depth)) continue;
    ordered_json row{{"path", r.path},
                     {"type", r.type},
                     {"depth", r.depth},
                     {"repeat", r.repeat},
                     {"output_shapes", r.output_shapes},
                     {"params", r.params},
                     {"forward", cost_json(r.forward)}};
    if (s.train) row["backward"] = cost_json(r.backward);
    row["activation_bytes"] = r.activation_bytes;
    row["read_bytes"] = r.read_bytes;
    row["write_bytes"] = r.write_bytes;
    row["gap"] = r.gap;
    rows.push_back(row);
  }
  j["modules"] = rows;
  ordered_json ops = ordered_json::array();
  for (const auto& r : s.by_op)
    ops.push_back({{"op", r.name},
                   {"phase", phase_name(r.phase)},
                   {"calls", r.count},
                   {"counted", !r.uncounted},
                   {"cost", cost_json(r.cost)},
                   {"read_bytes", r.read_bytes},
                   {"write_bytes", r.write_bytes}});
  j["by_op"] = ops;
  j["gaps"] = s.gaps;
  j["warnings"] = s.warnings;
  j["notes"] = s.notes;
  return j;
}

}  // namespace

std::string print_thop_lines(const Summary& s) {
  // The seed: print(f"Computational Cost: {flops/1e6:.2f} MFLOPs"), where thop's "flops" are
  // MACs; and print(f"Parameter Count: {int(param_count):,}").
  return fmt::format(
      "Computational Cost: {:.2f} MFLOPs ({:.2f} MMACs; thop's profile() reports the MACs)\n"
      "Parameter Count: {}\n",
      s.forward.flops / 1e6, s.forward.macs / 1e6, with_commas(s.params));
}

std::string print_summary(const Summary& s, const SummaryPrintOptions& o) {
  switch (o.format) {
    case Format::kJson:
      return summary_json(s, o).dump(2) + "\n";
    case Format::kCsv:
      return detail::render_csv(o.by_op ? op_table(s, false) : module_table(s, o, false));
    case Format::kMarkdown:
      return detail::render_markdown(o.by_op ? op_table(s, true) : module_table(s, o, true)) +
             "\n" + totals_text(s);
    case Format::kTable:
      break;
  }
  std::string head =
      fmt::format("{} ({}, on {})\n", s.source, s.train ? "training pass" : "inference", s.device);
  return head + detail::render_text(o.by_op ? op_table(s, true) : module_table(s, o, true)) + "\n" +
         totals_text(s);
}

}  // namespace footprint
