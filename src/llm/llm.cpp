// footprint llm: builds the model of a config.json (src/llm/transformer.h) on the meta device and
// runs the engine's capture on it: inference (prefill and one decode step against a full KV
// cache) or a training step, then the memory model (footprint/memory.h) per GPU.
#include "footprint/llm.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>

#include "footprint/engine.h"
#include "footprint/error.h"
#include "footprint/plan.h"
#include "footprint/torch.h"
#include "formats/readers.h"
#include "llm/transformer.h"
#include "torch/meta.h"

namespace footprint {
namespace {

std::atomic<bool> leave_to_exit{false};

// The end of a run's trace and module: freed, or, for the report's own runs, left for the exit
// (leave_runs_to_exit). --fit's probes are freed as they go, so that they do not add up.
void retire(Trace&& t, std::shared_ptr<lm::CausalModel>&& model, bool final) {
  if (!leave_to_exit || !final) return;
  new Trace(std::move(t));
  new std::shared_ptr<lm::CausalModel>(std::move(model));
}

bool is_decoder(const TransformerConfig& c) {
  return c.family->decoder;
}

// The path prefix of the layers' tensors, per family, and of layer i's.
const std::string& layers_prefix(const TransformerConfig& c) {
  return c.family->layers_prefix;
}
std::string layer_prefix(const TransformerConfig& c, int64_t i) {
  return fmt::format("{}{}.", layers_prefix(c), i);
}

bool contains(const std::string& s, const char* part) {
  return s.find(part) != std::string::npos;
}

// The part of the model a parameter belongs to.
std::string part_of(const std::string& name) {
  if (contains(name, "lora_")) return "lora adapters";
  if (contains(name, "lm_head") || contains(name, "pooler")) return "head";
  if (contains(name, "norm") || contains(name, "LayerNorm") || contains(name, ".ln_"))
    return "norms";
  if (contains(name, "embed") || contains(name, "wte") || contains(name, "wpe"))
    return "embeddings";
  if (contains(name, "attn") || contains(name, "attention")) return "attention";
  return "mlp";
}

// A projection weight inside a layer: what int8/int4 quantization packs.
bool quantizable(const TransformerConfig& c, const TensorInfo& t) {
  return t.role == TensorRole::kParameter && t.shape.size() == 2 &&
         t.name.rfind(layers_prefix(c), 0) == 0 && !contains(t.name, "lora_");
}

// Input features of a projection weight: nn.Linear is [out, in], GPT-2's Conv1D [in, out].
std::pair<int64_t, int64_t> rows_cols(const TransformerConfig& c, const TensorInfo& t) {
  if (c.family->conv1d) return {t.shape[1], t.shape[0]};
  return {t.shape[0], t.shape[1]};
}

int quant_bits(Precision p) {
  return p == Precision::kInt4 ? 4 : 8;
}

// A quantized weight as GPTQ/AWQ keep it: the packed weight, one fp16 scale and one zero point
// (at the weight's bits) per group of `group` inputs in each output row.
struct Packed {
  int64_t weight = 0, scales = 0, zeros = 0;
};
Packed pack(const TransformerConfig& c, const TensorInfo& t, Precision p, int64_t group) {
  auto [rows, cols] = rows_cols(c, t);
  int bits = quant_bits(p);
  int64_t groups = (cols + group - 1) / group;
  return {rows * ((cols * bits + 7) / 8), rows * groups * 2, rows * ((groups * bits + 7) / 8)};
}

std::vector<WeightBytes> weight_table(const TransformerConfig& c, const Model& m, int64_t group) {
  std::vector<WeightBytes> out;
  int64_t params = 0;
  for (const auto* t : untied_tensors(m))
    if (t->role == TensorRole::kParameter) params += t->numel();
  for (Precision p :
       {Precision::kFp32, Precision::kFp16, Precision::kBf16, Precision::kInt8, Precision::kInt4}) {
    WeightBytes w;
    w.precision = p;
    bool quant = p == Precision::kInt8 || p == Precision::kInt4;
    for (const auto* t : untied_tensors(m)) {
      if (t->role != TensorRole::kParameter) continue;
      if (quant && quantizable(c, *t)) {
        Packed k = pack(c, *t, p, group);
        w.bytes += k.weight + k.scales + k.zeros;
        w.scale_bytes += k.scales + k.zeros;
        w.quantized_parameters += t->numel();
      } else {
        w.bytes += t->numel() * (p == Precision::kFp32 ? 4 : 2);
      }
    }
    w.bits_per_parameter = params ? double(w.bytes) * 8 / double(params) : 0;
    out.push_back(w);
  }
  return out;
}

// The model as inference keeps it: quantized projections replaced by their packed tensors.
Model quantized(const TransformerConfig& c, const Model& m, Precision p, int64_t group) {
  Model out = m;
  out.tensors.clear();
  for (const auto& t : m.tensors) {
    if (!quantizable(c, t)) {
      out.tensors.push_back(t);
      continue;
    }
    Packed k = pack(c, t, p, group);
    auto piece = [&](const std::string& suffix, int64_t bytes) {
      TensorInfo q = t;
      q.name = t.name + suffix;
      q.shape = {bytes};
      q.strides = {1};
      q.dtype = DType::kUInt8;
      q.storage = t.storage.empty() ? "" : t.storage + suffix;
      out.tensors.push_back(q);
    };
    piece("", k.weight);
    piece(".scales", k.scales);
    piece(".zeros", k.zeros);
  }
  return out;
}

std::vector<LlmPart> parts_of(const TransformerConfig& c, const Model& m) {
  std::map<std::string, LlmPart> parts;
  std::string first = layer_prefix(c, 0);
  for (const auto* t : untied_tensors(m)) {
    if (t->role != TensorRole::kParameter) continue;
    auto& p = parts[part_of(t->name)];
    p.name = part_of(t->name);
    p.parameters += t->numel();
    if (t->name.rfind(first, 0) == 0) p.per_layer += t->numel();
  }
  std::vector<LlmPart> out;
  for (const char* name : {"embeddings", "attention", "mlp", "norms", "head", "lora adapters"}) {
    auto it = parts.find(name);
    if (it != parts.end()) out.push_back(it->second);
  }
  return out;
}

int64_t context_of(const TransformerConfig& c, const LlmScenario& s) {
  int64_t ctx = s.context > 0 ? s.context : default_context(c);
  if (c.sliding_window && ctx > c.sliding_window)
    throw Error(fmt::format(
        "{}: a context of {} tokens is longer than the sliding window of {}: transformers then "
        "keeps the window in sliding cache layers and masks beyond it, which the C++ modules do "
        "not build (footprint llm takes the python path for it; --path python)",
        c.source, ctx, c.sliding_window));
  if (c.family->learned_positions && ctx > c.max_positions)
    throw Error(
        fmt::format("{}: a context of {} tokens is longer than the {} positions this "
                    "model's position embeddings have (max_position_embeddings)",
                    c.source, ctx, c.max_positions));
  return ctx;
}

lm::AttentionKernel kernel_of(const LlmScenario& s) {
  // auto: SDPA, transformers' default on PyTorch 2.x, on the CPU as on CUDA.
  return s.attention == AttentionImpl::kEager ? lm::AttentionKernel::kEager
                                              : lm::AttentionKernel::kSdpa;
}

// The compute dtype of inference: the weights' when 16- or 32-bit, else the config's 16-bit
// dtype (fp16 unless it says bf16).
c10::ScalarType compute_dtype(const TransformerConfig& c, Precision w) {
  switch (w) {
    case Precision::kFp32:
      return at::kFloat;
    case Precision::kFp16:
      return at::kHalf;
    case Precision::kBf16:
      return at::kBFloat16;
    default:
      return c.torch_dtype == DType::kBFloat16 ? at::kBFloat16 : at::kHalf;
  }
}

Precision weights_of(const TransformerConfig& c, const LlmScenario& s) {
  if (s.file_weights) return Precision::kFp16;  // the compute dtype; the bytes are the file's
  if (s.weights) return *s.weights;
  if (c.torch_dtype == DType::kFloat16) return Precision::kFp16;
  if (c.torch_dtype == DType::kFloat32) return Precision::kFp32;
  return Precision::kBf16;
}

std::vector<std::string> lora_targets(const TransformerConfig& c, const LlmScenario& s) {
  const std::vector<std::string>& known = c.family->projections;
  if (s.lora_targets.empty()) return c.family->lora_default;  // peft's default for the family
  if (s.lora_targets.size() == 1 && s.lora_targets[0] == "all-linear") return known;
  for (const auto& t : s.lora_targets)
    if (std::find(known.begin(), known.end(), t) == known.end())
      throw Error(
          fmt::format("LoRA target '{}' is not a projection of {}; expected some of: {}, "
                      "or all-linear",
                      t, c.model_type, fmt::join(known, ", ")));
  return s.lora_targets;
}

// "GGUF Q4_K x14, Q6_K x1, float32 x5 (4.63 bits per weight)", and a note when the file's
// tensors do not add up to the parameters the config builds.
std::string file_format(const Model& file, int64_t parameters, std::vector<std::string>& notes) {
  std::map<std::string, int> types;
  int64_t numel = 0, bytes = 0;
  for (const auto& t : file.tensors) {
    ++types[std::string(dtype_name(t.dtype))];
    numel += t.numel();
    bytes += t.bytes();
  }
  std::vector<std::string> parts;
  for (const auto& [name, n] : types) parts.push_back(fmt::format("{} x{}", name, n));
  if (numel != parameters)
    notes.push_back(
        fmt::format("the file holds {} weights where the architecture its metadata "
                    "describes has {} parameters",
                    numel, parameters));
  return fmt::format("{} {} ({:.2f} bits per weight)", file.format, fmt::join(parts, ", "),
                     numel ? double(bytes) * 8 / double(numel) : 0.0);
}

lm::BuildOptions base_options(const LlmScenario& s) {
  lm::BuildOptions o;
  o.attention = kernel_of(s);
  o.tp = s.tp;
  o.cuda = s.memory.target == Target::kCuda;
  return o;
}

// Ops that ran with shapes guessed (no meta kernel): named, so that no gap goes unseen.
void note_guesses(const Trace& t, MemoryReport& r) {
  std::set<std::string> guessed;
  for (const auto& op : t.ops)
    if (op.guessed) guessed.insert(op.name);
  if (!guessed.empty())
    r.notes.push_back(fmt::format("no meta kernel, shapes guessed from the inputs: {}",
                                  fmt::join(guessed, ", ")));
}

// One inference pass: prefill of `ctx` tokens (position 0) or one decode step at the cache's
// last slot.
MemoryReport inference(const TransformerConfig& c, const LlmScenario& s, int64_t batch, int64_t ctx,
                       bool prefill, LlmReport* report, bool final) {
  Precision w = weights_of(c, s);
  lm::BuildOptions o = base_options(s);
  o.dtype = compute_dtype(c, w);
  if (is_decoder(c)) {
    o.cache_batch = batch;
    o.cache_len = ctx;
    o.lazy_cache = prefill;  // StaticCache makes its tensors in the prefill's first update
  }
  auto model = lm::build(c, o);
  CaptureOptions co;
  co.limits = s.limits;
  co.inputs = {InputSpec{{batch, prefill ? ctx : 1}, DType::kInt64}};
  co.train = false;
  co.target = s.memory.target;
  if (s.memory.gpu) co.target_gpu(*s.memory.gpu);
  int64_t position = prefill ? 0 : ctx - 1;
  Trace t = capture(
      *model, [&](const std::vector<torch::Tensor>& in) { return model->forward(in, position); },
      co);
  Model info = model_from(*model);
  if (report && is_decoder(c)) {
    // Each layer's keys and values, [batch, KV heads of this rank, context, head dim] at the
    // compute dtype, as the prefill made them.
    report->kv_cache_bytes = 2 * c.num_layers * batch * (c.num_kv_heads / s.tp) * ctx * c.head_dim *
                             int64_t(c10::elementSize(o.dtype));
    report->kv_bytes_per_token = report->kv_cache_bytes / std::max<int64_t>(1, batch * ctx);
  }
  if (w == Precision::kInt8 || w == Precision::kInt4) info = quantized(c, info, w, s.group_size);
  if (s.file_weights) {
    // The parameters as the file stores them: its tensors, at their own types.
    Model kept = info;
    kept.tensors.clear();
    for (const auto& tensor : info.tensors)
      if (tensor.role != TensorRole::kParameter) kept.tensors.push_back(tensor);
    for (const auto& tensor : s.file_weights->tensors) kept.tensors.push_back(tensor);
    info = std::move(kept);
  }
  MemoryReport r = analyze_memory(info, t, s.memory);
  note_guesses(t, r);
  if (final && s.on_trace) s.on_trace(prefill ? "prefill" : "decode", t);
  retire(std::move(t), std::move(model), final);
  r.source = c.source;
  r.inputs = co.inputs;
  r.precision = std::string(precision_name(w));
  return r;
}

// One repeated layer's parameters, for the sharding plan (footprint/plan.h, plan_sharding).
LayerTensors first_layer(const TransformerConfig& c, const Model& info) {
  LayerTensors layer;
  std::string first = layer_prefix(c, 0);
  for (const auto* t : untied_tensors(info))
    if (t->role == TensorRole::kParameter && t->name.rfind(first, 0) == 0) {
      layer.bytes += t->bytes();
      layer.numel += t->numel();
      if (t->trainable) layer.trainable_bytes += t->bytes();
    }
  return layer;
}

MemoryReport training(const TransformerConfig& c, const LlmScenario& s, int64_t batch, int64_t ctx,
                      LlmReport* report) {
  lm::BuildOptions o = base_options(s);
  o.dtype = at::kFloat;
  o.checkpointing = s.checkpointing;
  // transformers turns use_cache off under gradient checkpointing; an encoder builds no cache.
  o.dynamic_cache = is_decoder(c) && c.use_cache && !s.checkpointing;
  if (s.lora_rank > 0) {
    o.lora_rank = s.lora_rank;
    o.lora_alpha = s.lora_alpha;
    o.lora_targets = lora_targets(c, s);
  }
  auto model = lm::build(c, o);
  if (s.lora_rank > 0)  // PEFT freezes everything but the adapters
    for (auto& item : model->named_parameters())
      if (!contains(item.key(), "lora_")) item.value().set_requires_grad(false);
  TrainingPlan plan = plan_training(s.memory.target, s.optimizer);
  CaptureOptions co;
  co.limits = s.limits;
  co.inputs = {InputSpec{{batch, ctx}, DType::kInt64}, InputSpec{{batch, ctx}, DType::kInt64}};
  co.train = true;
  co.optimizer = plan.optimizer;
  co.iterations = plan.iterations;
  co.loss = LossKind::kOutput;
  co.counters_on_device = plan.counters_on_device;
  co.target = s.memory.target;
  if (s.memory.gpu) co.target_gpu(*s.memory.gpu);
  PrecisionPlan precision = plan_precision(s.precision);
  if (precision.parameters) co.dtype = *precision.parameters;
  co.autocast = precision.autocast;
  bool amp = precision.amp();
  // The output holds the loss and the forward's DynamicCache, dropped together after backward.
  auto forward = [&](const std::vector<torch::Tensor>& in) -> c10::IValue {
    torch::Tensor loss = model->forward(in, 0);
    std::vector<c10::IValue> out{loss};
    for (auto& t : model->output_held) out.emplace_back(std::move(t));
    model->output_held.clear();
    return c10::ivalue::Tuple::create(std::move(out));
  };
  Trace t = capture(*model, forward, co);
  Model info = model_from(*model);  // after the capture: at its dtype
  ShardPlan sharding = plan_sharding(s.sharding, s.gpus, s.tp, amp, first_layer(c, info));
  MemoryReport r = analyze_memory(info, t, s.memory, sharding);
  note_guesses(t, r);
  if (report && s.on_trace) s.on_trace("train", t);  // the report's own run, not a --fit probe
  retire(std::move(t), std::move(model), report != nullptr);
  r.source = c.source;
  r.inputs = co.inputs;
  r.precision = std::string(precision_mode_name(s.precision));
  r.optimizer = optimizer_name(*co.optimizer);
  if (report) {
    report->sharded_working_set = sharding.gathered;
    report->trainable = 0;
    for (const auto* tensor : untied_tensors(info))
      if (tensor->trainable) report->trainable += tensor->numel();
  }
  return r;
}

// Before anything is built: the run's largest tensors must have a size LibTorch can compute (it
// multiplies in int64 and stops with "Storage size calculation overflowed"). Each product is
// taken in 128 bits and held to 2^62 bytes.
void check_sizes(const TransformerConfig& c, const LlmScenario& s, int64_t ctx) {
  auto bytes = [](std::initializer_list<int64_t> dims) {
    __int128 n = 1;
    for (int64_t d : dims) n = std::min<__int128>(n * std::max<int64_t>(d, 1), __int128(1) << 100);
    return n;
  };
  bool eager = kernel_of(s) == lm::AttentionKernel::kEager;
  struct Tensor {
    const char* what;
    __int128 bytes;
  } largest[] = {
      {"the logits (batch x context x vocabulary, fp32)", bytes({s.batch, ctx, c.vocab_size, 4})},
      {"the KV cache (batch x context x layers x 2 x KV heads x head dim)",
       bytes({s.batch, ctx, c.num_layers, 2, c.num_kv_heads, c.head_dim, 4})},
      {"the attention scores (batch x heads x context x context)",
       eager ? bytes({s.batch, c.num_heads, ctx, ctx, 4}) : 0},
      {"the MLP's activations (batch x context x intermediate size)",
       bytes({s.batch, ctx, c.intermediate_size, 4})},
  };
  for (const auto& t : largest)
    if (t.bytes > (__int128(1) << 62))
      throw Error(fmt::format(
          "{}: `batch` {} with a context of {} tokens is too large to model: {} alone would "
          "take more than 2^62 bytes",
          c.source, s.batch, ctx, t.what));
}

}  // namespace

void leave_runs_to_exit(bool on) {
  leave_to_exit = on;
}

LlmReport llm(const TransformerConfig& c, const LlmScenario& s) {
  check_llm(s);
  LlmReport r;
  r.config = c;
  r.batch = s.batch;
  r.context = context_of(c, s);
  check_sizes(c, s, r.context);
  r.attention = kernel_of(s) == lm::AttentionKernel::kSdpa ? "sdpa" : "eager";
  detail::install_meta_runtime();
  {  // The parameters, from the model as the config builds it (no tensor parallelism).
    lm::BuildOptions o;
    auto model = lm::build(c, o);
    Model info = model_from(*model);
    for (const auto* t : untied_tensors(info))
      if (t->role == TensorRole::kParameter) r.parameters += t->numel();
    r.parts = parts_of(c, info);
    r.weights = weight_table(c, info, s.group_size);
    r.group_size = s.group_size;
  }
  Precision w = weights_of(c, s);
  r.weight_format = std::string(precision_name(w));
  if (w == Precision::kInt8 || w == Precision::kInt4)
    r.weight_format += fmt::format(" (group {})", s.group_size);
  if (s.file_weights) r.weight_format = file_format(*s.file_weights, r.parameters, r.notes);

  std::map<std::pair<int64_t, int64_t>, std::pair<MemoryReport, MemoryReport>> seen;
  auto at = [&](int64_t batch, int64_t ctx,
                LlmReport* report) -> std::pair<MemoryReport, MemoryReport>& {
    auto it = seen.find({batch, ctx});
    if (it != seen.end()) return it->second;
    ++r.captures;
    std::pair<MemoryReport, MemoryReport> p;
    if (s.train) {
      p.first = training(c, s, batch, ctx, report);
    } else {
      p.first = inference(c, s, batch, ctx, true, report, report != nullptr);
      if (is_decoder(c)) p.second = inference(c, s, batch, ctx, false, nullptr, report != nullptr);
    }
    return seen.emplace(std::make_pair(batch, ctx), std::move(p)).first->second;
  };
  auto need = [&](const std::pair<MemoryReport, MemoryReport>& p) {
    return std::max(fit_need(p.first), s.train || !is_decoder(c) ? 0 : fit_need(p.second));
  };
  auto both_fit = [&](const std::pair<MemoryReport, MemoryReport>& p) {
    bool ok = fits(p.first);
    if (!s.train && is_decoder(c)) ok = ok && fits(p.second);
    return ok;
  };

  int64_t batch = s.batch, ctx = r.context;
  if (s.fit != FitTarget::kNone) {
    bool by_batch = s.fit == FitTarget::kBatch;
    int64_t max = by_batch ? s.fit_max
                           : (c.family->learned_positions ? c.max_positions
                              : c.sliding_window          ? std::min(s.fit_max, c.sliding_window)
                                                 : std::min<int64_t>(s.fit_max, int64_t(1) << 22));
    auto probe = [&](int64_t n) -> std::pair<MemoryReport, MemoryReport>& {
      return by_batch ? at(n, ctx, nullptr) : at(batch, n, nullptr);
    };
    int64_t capacity = probe(1).first.capacity;
    int64_t n = largest_fitting([&](int64_t k) { return both_fit(probe(k)); },
                                [&](int64_t k) { return need(probe(k)); }, capacity, max);
    r.fit_target = s.fit;
    r.fit = n;
    r.fit_bound = max;
    if (n > 0) (by_batch ? batch : ctx) = n;
    r.batch = batch;
    r.context = ctx;
  }
  seen.erase({batch, ctx});  // once more, filling in the report's cache and trainable figures
  auto& final = at(batch, ctx, &r);
  if (s.train) {
    r.train = final.first;
    std::vector<std::string> parts{std::string(precision_mode_name(s.precision)),
                                   r.train->optimizer};
    if (s.checkpointing) parts.push_back("gradient checkpointing");
    if (s.lora_rank > 0)
      parts.push_back(
          fmt::format("LoRA r={} on {}", s.lora_rank, fmt::join(lora_targets(c, s), ",")));
    if (s.gpus > 1 || s.tp > 1) {
      int64_t dp = s.gpus / s.tp;
      if (s.sharding != Sharding::kNone)
        parts.push_back(
            fmt::format("{} over {} data-parallel GPUs", sharding_name(s.sharding), dp));
      else if (dp > 1)
        parts.push_back(fmt::format("data parallel over {} GPUs (replicated)", dp));
      if (s.tp > 1) parts.push_back(fmt::format("tensor parallel {}", s.tp));
    }
    r.setup = fmt::format("{}", fmt::join(parts, ", "));
  } else {
    r.prefill = final.first;
    if (is_decoder(c)) r.decode = final.second;
  }
  for (const auto* m : {&r.prefill, &r.decode, &r.train})
    if (*m)
      for (const auto& n : (*m)->notes)
        if (std::find(r.notes.begin(), r.notes.end(), n) == r.notes.end()) r.notes.push_back(n);
  if (!is_decoder(c) && !s.train)
    r.notes.push_back("bert is an encoder: one forward pass, no KV cache");
  return r;
}

LlmReport llm_file(const std::string& path, const LlmScenario& scenario) {
  TransformerConfig c;
  LlmScenario s = scenario;
  auto src = detail::open_file(path);
  char magic[4] = {};
  if (src->size() >= 4) src->read(0, magic, 4);
  if (std::string(magic, 4) == "GGUF") {
    detail::GgufFile g = detail::read_gguf(*src);
    c = detail::config_from_gguf(g);
    if (s.train)
      throw Error(
          fmt::format("{}: `train` from a GGUF file's quantized weights is not modelled; "
                      "use the model's config.json",
                      path));
    if (s.weights)
      throw Error(
          fmt::format("{}: `weights`: a GGUF file's weights are quantized as the file "
                      "stores them",
                      path));
    s.file_weights = std::make_shared<const Model>(std::move(g.model));
  } else {
    c = read_hf_config(path);
  }
  try {
    return llm(c, s);
  } catch (const Error& e) {
    std::string what = e.what();
    if (what.rfind(path, 0) == 0) throw;
    throw Error(path + ": " + what);
  }
}

}  // namespace footprint
