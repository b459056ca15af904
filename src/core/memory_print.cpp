// Printers for the memory report: the breakdown by category, the peaks, the device and whether it
// fits, the largest modules at the peak, and the seeds' formulas beside them (`--method seed`).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/memory_json.h"
#include "core/table.h"
#include "footprint/memory.h"

namespace footprint {
namespace {

using detail::Table;
using nlohmann::ordered_json;

std::string where(const PeakPoint& p, bool train) {
  std::string at = train ? fmt::format("iteration {} {}", p.iteration + 1, phase_name(p.phase))
                         : std::string(phase_name(p.phase));
  if (!p.op.empty()) at += ", in " + p.op;
  if (!p.op.empty()) at += p.module.empty() ? " (the model's own code)" : " of " + p.module;
  return at;
}

Table category_table(const MemoryReport& r, bool human) {
  auto bytes = [human](int64_t n) { return human ? human_bytes(n) : std::to_string(n); };
  Table t;
  t.columns = {human ? "category" : "category", human ? "at the peak" : "peak_bytes",
               human ? "kept between steps" : "kept_bytes"};
  t.numeric = {false, true, true};
  for (int c = 0; c < kCategories; ++c) {
    int64_t kept = r.model_states[c];
    bool state = c <= int(Category::kOptimizerState);
    t.rows.push_back({std::string(category_name(Category(c))), bytes(r.peak.by_category[c]),
                      state && (kept || r.train) ? bytes(kept) : (human ? "" : "0")});
  }
  int64_t kept = 0;
  for (int64_t b : r.model_states) kept += b;
  t.rows.push_back({"total", bytes(r.peak.bytes), bytes(kept)});
  return t;
}

ordered_json seed_json(const SeedEstimate& s) {
  return {{"parameters", s.parameters},
          {"parameter_bytes", s.parameter_bytes},
          {"pytorch_modelsize",
           {{"param_bits", s.seed_param_bits},
            {"input_bits", s.seed_input_bits},
            {"output_bits", s.seed_output_bits},
            {"total_bits", s.seed_total_bits},
            {"megabytes", s.seed_megabytes}}},
          {"fixed_total_bits", s.fixed_total_bits}};
}

}  // namespace

ordered_json memory_report_json(const MemoryReport& r, const MemoryPrintOptions& o) {
  ordered_json j;
  j["source"] = r.source;
  j["mode"] = r.train ? "train" : "inference";
  j["target"] = r.target == Target::kCuda ? "cuda" : "cpu";
  ordered_json inputs = ordered_json::array();
  for (const auto& in : r.inputs) inputs.push_back(in.shape);
  j["inputs"] = inputs;
  j["precision"] = r.precision;
  if (r.train) {
    j["optimizer"] = r.optimizer;
    j["set_to_none"] = r.set_to_none;
    j["iterations"] = r.iterations;
  }
  j["trainable_parameters"] = r.parameter_count;
  ordered_json peak;
  peak["bytes"] = r.peak.bytes;
  peak["phase"] = phase_name(r.peak.phase);
  peak["iteration"] = r.peak.iteration + 1;
  peak["op"] = r.peak.op;
  peak["module"] = r.peak.module;
  ordered_json cats, kept;
  for (int c = 0; c < kCategories; ++c) {
    cats[std::string(category_name(Category(c)))] = r.peak.by_category[c];
    if (c <= int(Category::kOptimizerState))
      kept[std::string(category_name(Category(c)))] = r.model_states[c];
  }
  peak["by_category"] = cats;
  j["peak"] = peak;
  j["model_states"] = kept;
  ordered_json iterations = ordered_json::array();
  for (int64_t p : r.iteration_peak) iterations.push_back(p);
  j["iteration_peaks"] = iterations;
  ordered_json phases = ordered_json::array();
  for (const auto& p : r.phases)
    phases.push_back(
        {{"iteration", p.iteration + 1}, {"phase", phase_name(p.phase)}, {"peak_bytes", p.peak}});
  j["phases"] = phases;
  if (r.target == Target::kCuda) {
    j["allocated_peak"] = r.allocator.allocated_peak;
    j["reserved_peak"] = r.allocator.reserved_peak;
    j["requested_peak"] = r.allocator.requested_peak;
    j["segments"] = r.allocator.segments;
    j["out_of_memory"] = r.allocator.out_of_memory;
    if (r.allocator.out_of_memory) j["oom_request"] = r.allocator.oom_request;
    j["device_overhead"] = r.device_overhead;
  } else {
    j["allocated_peak"] = r.peak.bytes;
  }
  if (r.gpu) j["gpu"] = {{"key", r.gpu->key}, {"name", r.gpu->name}, {"source", r.gpu->source}};
  if (r.capacity) j["capacity"] = r.capacity;
  if (r.fits) {
    j["fits"] = *r.fits;
    j["margin"] = r.margin;
  }
  ordered_json modules = ordered_json::array();
  for (size_t i = 0; i < r.modules.size() && int(i) < o.modules; ++i)
    modules.push_back({{"module", r.modules[i].module},
                       {"type", r.modules[i].type},
                       {"bytes", r.modules[i].bytes}});
  j["modules_at_peak"] = modules;
  if (o.seed) j["seed"] = seed_json(*o.seed);
  if (!r.stopped.empty()) j["stopped"] = r.stopped;
  j["gaps"] = r.gaps;
  j["warnings"] = r.warnings;
  j["notes"] = r.notes;
  j["rules"] = r.rules;
  return j;
}

namespace {

std::string seed_text(const SeedEstimate& s) {
  std::string out;
  out +=
      "The seeds' formulas (parameters x 4 bytes; pytorch_modelsize), beside the estimate above:\n";
  out += fmt::format("  approach 1, parameters x 4 bytes: {} x 4 = {} ({:.2f} MB of 1024^2)\n",
                     with_commas(s.parameters), with_commas(s.parameter_bytes),
                     double(s.parameter_bytes) / (1024.0 * 1024.0));
  out += fmt::format(
      "  pytorch_modelsize, as published: ({}, {}) = params {} + input {} + 2 x outputs {} bits\n",
      fmt::format("{}", s.seed_megabytes), s.seed_total_bits, s.seed_param_bits, s.seed_input_bits,
      s.seed_output_bits);
  out += fmt::format(
      "    its parameter loop resets its list per module, so only the last module's parameters "
      "count;\n    with every parameter: {} bits = {} MB. Neither counts gradients of weights, "
      "optimizer\n    state, what autograd keeps, temporaries or the allocator.\n",
      s.fixed_total_bits, fmt::format("{}", double(s.fixed_total_bits) / 8 / (1024.0 * 1024.0)));
  return out;
}

std::string text(const MemoryReport& r, const MemoryPrintOptions& o) {
  std::string out;
  bool cuda = r.target == Target::kCuda;
  std::string what = r.train ? fmt::format("training step, {}", r.optimizer) : "inference";
  std::string device = cuda ? (r.gpu ? "CUDA, " + r.gpu->name : "CUDA") : "CPU";
  out += fmt::format("{}: {}, {}, input {}, on {}\n\n", r.source, what, r.precision,
                     inputs_text(r.inputs), device);
  out += detail::render_text(category_table(r, true));
  out += "\n";
  const char* alloc_note = cuda ? " (torch.cuda.max_memory_allocated)" : "";
  if (r.allocator.out_of_memory)
    out += "With no memory limit (the run itself fails on this device):\n";
  out += fmt::format("Peak allocated: {}{}\n  at {}\n", human_bytes(r.allocator.allocated_peak),
                     alloc_note, where(r.peak, r.train));
  if (r.train && r.iteration_peak.size() > 1)
    out += fmt::format("  iteration 1: {}; steady state (iteration 2): {}\n",
                       human_bytes(r.iteration_peak[0]), human_bytes(r.iteration_peak[1]));
  if (cuda) {
    out += fmt::format("Peak reserved: {} (torch.cuda.max_memory_reserved; {} segments)\n",
                       human_bytes(r.allocator.reserved_peak), r.allocator.segments);
    if (r.device_overhead)
      out += fmt::format("CUDA context and libraries: {} (outside the allocator)\n",
                         human_bytes(r.device_overhead));
  }
  if (r.capacity) {
    out += fmt::format("Device total: {}\n", human_bytes(r.capacity));
    if (r.fits && *r.fits)
      out += fmt::format("Fits, with {} to spare.\n", human_bytes(r.margin));
    else if (r.fits)
      out += fmt::format("Does not fit: {} short{}.\n", human_bytes(-r.margin),
                         r.allocator.out_of_memory
                             ? fmt::format(" (the allocator runs out of memory at a request of {})",
                                           human_bytes(r.allocator.oom_request))
                             : "");
  }
  if (r.train && r.parameter_count > 0) {
    auto per = [&](Category c) { return double(r.model_states[int(c)]) / r.parameter_count; };
    out += fmt::format(
        "Model states: {:.2f} bytes per trainable parameter (parameters {:.2f} + gradients {:.2f} "
        "+ optimizer state {:.2f})\n",
        per(Category::kParameters) + per(Category::kGradients) + per(Category::kOptimizerState),
        per(Category::kParameters), per(Category::kGradients), per(Category::kOptimizerState));
  }
  if (!r.modules.empty() && o.modules > 0) {
    Table t;
    t.title =
        "Largest at the peak (activations, temporaries and outputs, by the module that made them)";
    t.columns = {"module", "type", "bytes"};
    t.numeric = {false, false, true};
    for (size_t i = 0; i < r.modules.size() && int(i) < o.modules; ++i)
      t.rows.push_back({r.modules[i].module.empty() ? "(model)" : r.modules[i].module,
                        r.modules[i].type, human_bytes(r.modules[i].bytes)});
    out += "\n" + detail::render_text(t);
  }
  if (o.seed) out += "\n" + seed_text(*o.seed);
  for (const auto& n : r.notes) out += "Note: " + n + "\n";
  if (!r.rules.empty()) out += "Rules: " + r.rules + "\n";
  for (const auto& w : r.warnings) out += "Warning: " + w + "\n";
  if (!r.gaps.empty()) {
    out += "Not exact:\n";
    for (const auto& g : r.gaps) out += "  " + g + "\n";
  }
  return out;
}

}  // namespace

std::string print_memory(const MemoryReport& r, const MemoryPrintOptions& o) {
  switch (o.format) {
    case Format::kJson:
      return memory_report_json(r, o).dump(2) + "\n";
    case Format::kCsv:
      return detail::render_csv(category_table(r, false));
    case Format::kMarkdown:
      return detail::render_markdown(category_table(r, true));
    case Format::kTable:
      break;
  }
  return text(r, o);
}

std::string print_fit(const FitResult& f, Format format) {
  const MemoryReport& r = f.fits;
  bool cuda = r.target == Target::kCuda;
  auto need = [&](const MemoryReport& m) {
    return cuda ? m.unlimited_reserved_peak + m.device_overhead : m.peak.bytes;
  };
  if (format == Format::kJson) {
    ordered_json j;
    j["source"] = r.source;
    j["mode"] = r.train ? "train" : "inference";
    if (r.train) j["optimizer"] = r.optimizer;
    j["precision"] = r.precision;
    j["capacity"] = r.capacity;
    j["batch"] = f.batch;
    j["captures"] = f.captures;
    auto side = [&](const MemoryReport& m) {
      ordered_json s;
      s["batch"] = m.inputs.empty() || m.inputs[0].shape.empty() ? 0 : m.inputs[0].shape[0];
      s["allocated_peak"] = m.allocator.allocated_peak;
      if (cuda) s["reserved_peak"] = m.allocator.reserved_peak;
      s["needs"] = need(m);
      s["fits"] = m.fits.value_or(false);
      return s;
    };
    j["fits"] = side(f.fits);
    j["next"] = side(f.next);
    return j.dump(2) + "\n";
  }
  std::string what = r.train ? "training step, " + r.optimizer : "inference";
  std::string device = r.gpu ? r.gpu->name : human_bytes(r.capacity);
  std::string out = fmt::format("{}: {}, {}, on {} ({} usable)\n", r.source, what, r.precision,
                                device, human_bytes(r.capacity));
  if (f.batch == 0) {
    out += fmt::format("Not even batch 1 fits: it needs {}.\n", human_bytes(need(r)));
    return out;
  }
  out += fmt::format("Largest batch that fits: {}\n", f.batch);
  auto line = [&](const MemoryReport& m, int64_t batch) {
    if (!cuda)
      return fmt::format("  batch {}: allocated peak {}: {}\n", batch, human_bytes(m.peak.bytes),
                         m.fits.value_or(false) ? "fits" : "does not fit");
    std::string verdict;
    if (m.allocator.out_of_memory)
      verdict = fmt::format("out of memory (with no limit it would reserve {})",
                            human_bytes(m.unlimited_reserved_peak));
    else if (m.unlimited_reserved_peak + m.device_overhead > m.capacity)
      verdict = "fits, by releasing cached segments near the limit";
    else
      verdict = fmt::format("fits, {} to spare", human_bytes(m.margin));
    return fmt::format("  batch {}: allocated peak {}, reserved {} + context {}: {}\n", batch,
                       human_bytes(m.allocator.allocated_peak),
                       human_bytes(m.allocator.reserved_peak), human_bytes(m.device_overhead),
                       verdict);
  };
  out += line(f.fits, f.batch);
  out += line(f.next, f.batch + 1);
  out += fmt::format("({} batch sizes captured)\n", f.captures);
  return out;
}

}  // namespace footprint
