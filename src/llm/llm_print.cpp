// Printers for footprint llm: the architecture, parameters by part, weights at each precision, the
// KV cache, inference (prefill and decode) or the training step per GPU, and --fit's answer.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/memory_json.h"
#include "core/table.h"
#include "footprint/error.h"
#include "footprint/llm.h"

namespace footprint {

std::string_view sharding_name(Sharding s) {
  switch (s) {
    case Sharding::kZero1:
      return "ZeRO-1";
    case Sharding::kZero2:
      return "ZeRO-2";
    case Sharding::kZero3:
      return "ZeRO-3";
    case Sharding::kFsdp:
      return "FSDP (full shard)";
    default:
      return "none";
  }
}

namespace {

using detail::Table;
using nlohmann::ordered_json;

double gib(int64_t b) {
  return double(b) / double(int64_t(1) << 30);
}

std::string architecture(const TransformerConfig& c) {
  return fmt::format(
      "{}, {} layers, hidden {}, {} heads ({} key/value) of {}, MLP {}, vocabulary {}{}",
      c.model_type, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim,
      c.intermediate_size, c.vocab_size, c.tie_word_embeddings ? ", tied embeddings" : "");
}

Table parts_table(const LlmReport& r, bool human) {
  Table t;
  t.columns = {"part", human ? "per layer" : "per_layer", "parameters"};
  t.numeric = {false, true, true};
  auto n = [&](int64_t v) { return human ? with_commas(v) : std::to_string(v); };
  for (const auto& p : r.parts)
    t.rows.push_back({p.name, p.per_layer ? n(p.per_layer) : (human ? "" : "0"), n(p.parameters)});
  t.rows.push_back({"total", "", n(r.parameters)});
  return t;
}

Table weights_table(const LlmReport& r, bool human) {
  Table t;
  t.columns = {"weights", "bytes", human ? "GiB" : "gib", human ? "bits/param" : "bits_per_param"};
  t.numeric = {false, true, true, true};
  for (const auto& w : r.weights) {
    std::string name(precision_name(w.precision));
    if (human && w.quantized_parameters)
      name +=
          fmt::format(" (group {}: {} in scales, zeros)", r.group_size, human_bytes(w.scale_bytes));
    t.rows.push_back({name, human ? with_commas(w.bytes) : std::to_string(w.bytes),
                      fmt::format("{:.2f}", gib(w.bytes)),
                      fmt::format("{:.2f}", w.bits_per_parameter)});
  }
  return t;
}

std::string verdict(const MemoryReport& m) {
  if (!m.fits) return "";
  if (!*m.fits) return fmt::format("does not fit: {} short", human_bytes(-m.margin));
  return fmt::format("fits, {} to spare", human_bytes(m.margin));
}

Table inference_table(const LlmReport& r, bool human) {
  Table t;
  bool cuda = r.prefill->target == Target::kCuda;
  // The buffers at the peak: a decoder's are its KV cache; an encoder (bert) has none, only its
  // position and token-type ids.
  bool decoder = !r.config.family || r.config.family->decoder;
  const char* buffers = decoder ? (human ? "KV cache" : "kv_cache") : "buffers";
  t.columns = {"phase", human ? "peak allocated" : "allocated_peak", "weights", buffers,
               "activations"};
  if (cuda) t.columns.push_back(human ? "reserved" : "reserved_peak");
  if (r.prefill->fits) t.columns.push_back(human ? "on the device" : "fits");
  t.numeric = {false, true, true, true, true, true, false};
  auto b = [&](int64_t v) { return human ? human_bytes(v) : std::to_string(v); };
  auto row = [&](const char* phase, const MemoryReport& m, bool prefill) {
    int64_t weights = m.peak.by_category[int(Category::kParameters)];
    int64_t cache = m.peak.by_category[int(Category::kBuffers)];
    // The prefill makes the cache as it goes (StaticLayer's lazy initialization), each layer's
    // before its attention; its peak, in the last layer or after, holds all of it.
    if (decoder && prefill) cache = std::max(cache, r.kv_cache_bytes);
    std::vector<std::string> cells{phase, b(m.allocator.allocated_peak), b(weights), b(cache),
                                   b(m.peak.bytes - weights - cache)};
    if (cuda) cells.push_back(b(m.allocator.reserved_peak));
    if (m.fits) cells.push_back(human ? verdict(m) : (*m.fits ? "true" : "false"));
    t.rows.push_back(cells);
  };
  row(r.decode ? "prefill" : "forward", *r.prefill, true);
  if (r.decode) row("decode", *r.decode, false);
  return t;
}

std::string fit_text(const LlmReport& r) {
  if (!r.fit) return "";
  const char* what = r.fit_target == FitTarget::kBatch ? "batch" : "context";
  if (*r.fit == 0)
    return fmt::format("Not even {} 1 fits.\n",
                       r.fit_target == FitTarget::kBatch ? "batch" : "a context of");
  if (*r.fit == r.fit_bound) {  // n + 1 was not tried: say what bounds the search
    const auto& c = r.config;
    std::string bound =
        r.fit_target == FitTarget::kBatch         ? "the search's maximum batch"
        : c.family && c.family->learned_positions ? "the model's max_position_embeddings"
        : c.sliding_window == *r.fit
            ? "its sliding window, beyond which the C++ path does not go; --path python models "
              "longer contexts"
            : "the search's maximum context";
    return fmt::format("Largest {} that fits: {}, {} ({} estimates captured)\n", what,
                       with_commas(*r.fit), bound, r.captures);
  }
  return fmt::format("Largest {} that fits: {} ({} + 1 does not; {} estimates captured)\n", what,
                     with_commas(*r.fit), with_commas(*r.fit), r.captures);
}

std::string text(const LlmReport& r) {
  const auto& c = r.config;
  std::string out = fmt::format("{}: {}\n\n", c.source, architecture(c));
  out += fmt::format("Parameters: {} ({:.2f} B)\n", with_commas(r.parameters),
                     double(r.parameters) / 1e9);
  out += detail::render_text(parts_table(r, true));
  out += "\n" + detail::render_text(weights_table(r, true));
  if (r.train) {
    const MemoryReport& m = *r.train;
    out += fmt::format("\nTraining step per GPU, batch {} x {} tokens, {} attention: {}\n", r.batch,
                       r.context, r.attention, r.setup);
    if (r.trainable != r.parameters)
      out += fmt::format("Trainable parameters: {} ({:.3f}% of {})\n", with_commas(r.trainable),
                         100.0 * double(r.trainable) / double(r.parameters),
                         with_commas(r.parameters));
    if (r.sharded_working_set)
      out += fmt::format(
          "Sharding working set: {} (parameters gathered for two layers, one layer's gradients "
          "before the reduce-scatter)\n",
          human_bytes(r.sharded_working_set));
    MemoryPrintOptions o;
    o.modules = 5;
    out += "\n" + print_memory(m, o);
  } else if (r.prefill) {
    if (r.decode)
      out += fmt::format(
          "\nKV cache: {} per token ({} layers x keys and values), {} for batch {} x {} tokens\n",
          human_bytes(r.kv_bytes_per_token), c.num_layers, human_bytes(r.kv_cache_bytes), r.batch,
          r.context);
    const MemoryReport& m = *r.prefill;
    std::string device = m.target == Target::kCuda ? (m.gpu ? m.gpu->name : "CUDA") : "CPU";
    out += fmt::format("\nInference, {} weights, batch {} x {} tokens, {} attention, on {}",
                       r.weight_format, r.batch, r.context, r.attention, device);
    if (m.capacity) out += fmt::format(" ({} usable)", human_bytes(m.capacity));
    out += ":\n";
    out += detail::render_text(inference_table(r, true));
    if (m.target == Target::kCuda && m.device_overhead)
      out += fmt::format("The device also holds the CUDA context and libraries: {}.\n",
                         human_bytes(m.device_overhead));
    if (r.decode)
      out +=
          "Prefill runs a prompt of the whole context; decode is one token at the cache's last "
          "slot.\n";
    using Phase = std::pair<const char*, const std::optional<MemoryReport>*>;
    for (const auto& [phase, run] : {Phase{"prefill", &r.prefill}, Phase{"decode", &r.decode}})
      if (*run && (*run)->allocator.out_of_memory)
        out += fmt::format(
            "{}: the allocator runs out of memory at a request of {}; the columns are the peak "
            "on a device large enough.\n",
            r.decode ? phase : "forward", human_bytes((*run)->allocator.oom_request));
  }
  out += fit_text(r);
  for (const auto& n : r.notes) out += "Note: " + n + "\n";
  return out;
}

ordered_json json(const LlmReport& r) {
  const auto& c = r.config;
  ordered_json j;
  j["source"] = c.source;
  j["model_type"] = c.model_type;
  j["architecture"] = {
      {"layers", c.num_layers},     {"hidden_size", c.hidden_size},
      {"heads", c.num_heads},       {"kv_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},     {"intermediate_size", c.intermediate_size},
      {"vocab_size", c.vocab_size}, {"tie_word_embeddings", c.tie_word_embeddings}};
  j["parameters"] = r.parameters;
  ordered_json parts = ordered_json::array();
  for (const auto& p : r.parts)
    parts.push_back({{"part", p.name}, {"parameters", p.parameters}, {"per_layer", p.per_layer}});
  j["parts"] = parts;
  ordered_json weights = ordered_json::array();
  for (const auto& w : r.weights)
    weights.push_back({{"precision", precision_name(w.precision)},
                       {"bytes", w.bytes},
                       {"quantized_parameters", w.quantized_parameters},
                       {"scale_bytes", w.scale_bytes},
                       {"bits_per_parameter", w.bits_per_parameter}});
  j["weights"] = weights;
  j["batch"] = r.batch;
  j["context"] = r.context;
  j["attention"] = r.attention;
  MemoryPrintOptions o;
  o.modules = 5;
  if (r.train) {
    j["setup"] = r.setup;
    j["trainable_parameters"] = r.trainable;
    j["sharded_working_set"] = r.sharded_working_set;
    j["train"] = memory_report_json(*r.train, o);
  }
  if (r.prefill) {
    j["weight_format"] = r.weight_format;
    j["kv_bytes_per_token"] = r.kv_bytes_per_token;
    j["kv_cache_bytes"] = r.kv_cache_bytes;
    j[r.decode ? "prefill" : "forward"] = memory_report_json(*r.prefill, o);
    if (r.decode) j["decode"] = memory_report_json(*r.decode, o);
  }
  if (r.fit) {
    j["fit"] = {{"target", r.fit_target == FitTarget::kBatch ? "batch" : "context"},
                {"largest", *r.fit},
                {"bound", r.fit_bound},
                {"captures", r.captures}};
  }
  j["notes"] = r.notes;
  return j;
}

}  // namespace

std::string print_llm(const LlmReport& r, Format format) {
  switch (format) {
    case Format::kJson:
      return json(r).dump(2) + "\n";
    case Format::kCsv:
      return detail::render_csv(weights_table(r, false));
    case Format::kMarkdown: {
      std::string out = detail::render_markdown(parts_table(r, true)) + "\n" +
                        detail::render_markdown(weights_table(r, true));
      if (r.prefill) out += "\n" + detail::render_markdown(inference_table(r, true));
      return out;
    }
    case Format::kTable:
      break;
  }
  return text(r);
}

}  // namespace footprint
