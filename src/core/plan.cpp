// The planner (footprint/plan.h): the vocabularies, the run policies and the one RunPlan every
// front end builds. Each rule is written here once; the command line's choices and help, the C++
// API's parsers and the Python package's checks read these tables.
#include "footprint/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <iterator>

namespace footprint {

namespace {

struct VocabularyTable {
  Vocabulary vocabulary;
  std::string_view option;
  std::vector<Choice> choices;
};

// The order of each table is the order help lists it in and the order of its enum where it has
// one (PrecisionMode, LossKind, AttentionImpl, Sharding, FitTarget).
const std::array<VocabularyTable, 9>& tables() {
  static const std::array<VocabularyTable, 9> t = {{
      {Vocabulary::kPrecision,
       "precision",
       {{"fp32", "fp32 parameters, inputs and activations"},
        {"fp16", "fp16 parameters, inputs and activations"},
        {"bf16", "bf16 parameters, inputs and activations"},
        {"bf16-amp", "torch.autocast(bfloat16) over fp32 parameters"},
        {"fp16-amp", "torch.autocast(float16) over fp32 parameters"}}},
      {Vocabulary::kOptimizer,
       "optimizer",
       {{"sgd", "torch.optim.SGD"},
        {"momentum", "SGD, momentum 0.9"},
        {"nesterov", "SGD, momentum 0.9, nesterov"},
        {"adam", "torch.optim.Adam"},
        {"adamw", "torch.optim.AdamW, weight decay 0.01"},
        {"amsgrad", "AdamW, amsgrad"},
        {"adagrad", "torch.optim.Adagrad"},
        {"rmsprop", "torch.optim.RMSprop"},
        {"rmsprop-centered", "RMSprop, centered"}}},
      {Vocabulary::kImplementation,
       "impl",
       {{"auto", "PyTorch 2.x's default: foreach on CUDA, for-loop on CPU"},
        {"for-loop", "one parameter at a time (foreach=False)"},
        {"foreach", "_foreach_* over the whole group (foreach=True)"},
        {"fused", "one fused kernel (fused=True)"}}},
      {Vocabulary::kLoss,
       "loss",
       {{"auto", "cross-entropy for a 2-D floating output (a classifier), else mean-square"},
        {"cross-entropy", "F.cross_entropy(output, labels)"},
        {"mean-square", "output.float().square().mean()"}}},
      {Vocabulary::kTarget,
       "device",
       {{"cuda", "a GPU run: its kernels and the CUDA caching allocator"},
        {"cpu", "a CPU run (PyTorch 2.11's CPU kernels)"}}},
      {Vocabulary::kAttention,
       "attention",
       {{"auto", "sdpa, transformers' default"},
        {"eager", "the scores kept: batch x heads x tokens x tokens"},
        {"sdpa", "F.scaled_dot_product_attention: the target's fused kernel"}}},
      {Vocabulary::kSharding,
       "shard",
       {{"none", "every rank holds everything"},
        {"zero1", "the optimizer's state sharded"},
        {"zero2", "the optimizer's state and the gradients sharded"},
        {"zero3", "the parameters too, gathered a layer at a time"},
        {"fsdp", "FSDP's full shard, as ZeRO-3"}}},
      {Vocabulary::kFitTarget,
       "fit",
       {{"none", "no search"},
        {"batch", "the largest batch that fits"},
        {"context", "the largest context that fits"}}},
      {Vocabulary::kZeroGrad,
       "zero-grad",
       {{"none", "zero_grad(set_to_none=True), PyTorch 2.x's default"},
        {"zeros", "zero_grad(set_to_none=False): the gradients kept and zeroed"}}},
  }};
  return t;
}

const VocabularyTable& table(Vocabulary v) {
  for (const auto& t : tables())
    if (t.vocabulary == v) return t;
  throw Error("unknown vocabulary");
}

// Options as each front end writes them. Python's `=` joins the value that follows.
struct OptionWords {
  std::string_view neutral, command_line, python;
};
constexpr OptionWords kOptionWords[] = {
    {"input", "--input", "input_size="},
    {"train", "--train", "train=True"},
    {"optimizer", "--optimizer", "optimizer="},
    {"impl", "--impl", "impl="},
    {"precision", "--precision", "precision="},
    {"loss", "--loss", "loss_fn="},
    {"zero-grad", "--zero-grad", "set_to_none="},
    {"device", "--device", "device="},
    {"gpu", "--gpu", "gpu="},
    {"context-mib", "--context (llm: --cuda-context)", "context_mib="},
    {"alloc-conf", "--alloc-conf", "alloc_conf="},
    {"dtype", "--dtype", "precision="},
    {"precisions", "--dtype", "precisions="},
    {"batch", "--batch", "batch="},
    {"context", "--context", "context="},
    {"weights", "--weights", "weights="},
    {"shard", "--shard", "shard="},
    {"gpus", "--gpus", "gpus="},
    {"tp", "--tp", "tp="},
    {"lora", "--lora", "lora="},
    {"checkpointing", "--checkpointing", "checkpointing=True"},
    {"attention", "--attention", "attention="},
    {"fit", "--fit", "fit="},
    {"path", "--path", "path="},
    {"snapshot", "--snapshot", "save_snapshot()"},
    {"html", "--html", "save_html()"},
    {"time-limit", "--time-limit", "the time limit"},
    {"max-memory", "--max-memory", "the memory limit"},
    {"max-ops", "--max-ops", "the op limit"},
    {"max-cpu-memory", "--max-cpu-memory", "the CPU memory limit"},
};

// Names are matched without regard to case, as torch.optim's class names are written ("AdamW").
bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

const std::vector<Choice>& choices(Vocabulary v) {
  return table(v).choices;
}

std::vector<std::string> choice_names(Vocabulary v) {
  std::vector<std::string> names;
  for (const auto& c : choices(v)) names.emplace_back(c.name);
  return names;
}

std::string_view vocabulary_option(Vocabulary v) {
  return table(v).option;
}

std::string choice_list(Vocabulary v) {
  const auto& cs = choices(v);
  std::string out;
  for (size_t i = 0; i < cs.size(); ++i)
    out += fmt::format("{}{}", i == 0 ? "" : i + 1 == cs.size() ? " or " : ", ", cs[i].name);
  return out;
}

std::string choice_help(Vocabulary v) {
  std::string out;
  for (const auto& c : choices(v))
    out += fmt::format("{}{}: {}", out.empty() ? "" : "; ", c.name, c.help);
  return out;
}

int choose(Vocabulary v, std::string_view name) {
  const auto& cs = choices(v);
  for (size_t i = 0; i < cs.size(); ++i)
    if (same_name(cs[i].name, name)) return int(i);
  throw OptionError(fmt::format("`{}` '{}': expected {}", vocabulary_option(v), escape_text(name),
                                choice_list(v)));
}

std::string word_options(std::string_view message, FrontEnd front_end) {
  std::string out;
  size_t at = 0;
  while (at < message.size()) {
    size_t open = message.find('`', at);
    size_t close = open == std::string_view::npos ? open : message.find('`', open + 1);
    if (close == std::string_view::npos) break;
    std::string_view name = message.substr(open + 1, close - open - 1);
    const OptionWords* words = nullptr;
    for (const auto& w : kOptionWords)
      if (w.neutral == name) words = &w;
    out.append(message.substr(at, open - at));
    at = close + 1;
    if (!words) {
      out.append(message.substr(open, close + 1 - open));
      continue;
    }
    std::string_view word =
        front_end == FrontEnd::kCommandLine ? words->command_line : words->python;
    out.append(word);
    // gpu= 'x' reads gpu='x': a quoted value or a number joins the `=`.
    if (!word.empty() && word.back() == '=' && at + 1 < message.size() && message[at] == ' ' &&
        (message[at + 1] == '\'' || std::isdigit(static_cast<unsigned char>(message[at + 1]))))
      ++at;
  }
  out.append(message.substr(std::min(at, message.size())));
  return out;
}

// ------------------------------------------------------------------ the vocabularies' parsers

namespace {

// A vocabulary's name as its enum, whose values are the table's positions.
template <class Enum>
std::optional<Enum> parse_as(Vocabulary v, std::string_view s) {
  const auto& cs = choices(v);
  for (size_t i = 0; i < cs.size(); ++i)
    if (same_name(cs[i].name, s)) return Enum(i);
  return std::nullopt;
}

}  // namespace

std::optional<PrecisionMode> precision_mode_parse(std::string_view s) {
  return parse_as<PrecisionMode>(Vocabulary::kPrecision, s);
}

std::string_view precision_mode_name(PrecisionMode p) {
  return choices(Vocabulary::kPrecision).at(size_t(p)).name;
}

std::optional<LossKind> loss_parse(std::string_view s) {
  return parse_as<LossKind>(Vocabulary::kLoss, s);
}

std::optional<AttentionImpl> attention_parse(std::string_view s) {
  return parse_as<AttentionImpl>(Vocabulary::kAttention, s);
}

std::optional<Sharding> sharding_parse(std::string_view s) {
  return parse_as<Sharding>(Vocabulary::kSharding, s);
}

namespace {

// Each optimizer name's settings, in the vocabulary's order: torch.optim's defaults but where the
// name says otherwise (SGD's momentum 0.9 for "momentum" and "nesterov"; AdamW's weight decay
// 0.01 is its own default, written out).
OptimizerSpec optimizer_spec(int i) {
  using K = OptimizerKind;
  static const OptimizerSpec specs[] = {
      {K::kSgd},                                                         // sgd
      {K::kSgd, OptimizerImpl::kForeach, 0.9},                           // momentum
      {K::kSgd, OptimizerImpl::kForeach, 0.9, true},                     // nesterov
      {K::kAdam},                                                        // adam
      {K::kAdamW, OptimizerImpl::kForeach, 0, false, 0.01},              // adamw
      {K::kAdamW, OptimizerImpl::kForeach, 0, false, 0.01, true},        // amsgrad
      {K::kAdagrad},                                                     // adagrad
      {K::kRmsprop},                                                     // rmsprop
      {K::kRmsprop, OptimizerImpl::kForeach, 0, false, 0, false, true},  // rmsprop-centered
  };
  static_assert(std::size(specs) == 9);
  return specs[i];
}

}  // namespace

OptimizerSpec parse_optimizer(std::string_view name, std::string_view impl) {
  OptimizerSpec o = optimizer_spec(choose(Vocabulary::kOptimizer, name));
  int i = choose(Vocabulary::kImplementation, impl);
  if (i == 0) throw OptionError("`impl` 'auto' depends on the target: plan_optimizer resolves it");
  o.impl = OptimizerImpl(i - 1);
  if (o.impl == OptimizerImpl::kFused && o.kind == OptimizerKind::kRmsprop)
    throw OptionError(
        "`impl` 'fused': torch.optim.RMSprop has no fused implementation; use foreach or "
        "for-loop");
  return o;
}

std::string_view impl_name(OptimizerImpl impl) {
  return choices(Vocabulary::kImplementation).at(size_t(impl) + 1).name;
}

// ------------------------------------------------------------------ policies

OptimizerImpl default_impl(Target target) {
  return target == Target::kCpu ? OptimizerImpl::kForLoop : OptimizerImpl::kForeach;
}

OptimizerSpec plan_optimizer(Target target, std::string_view name, std::string_view impl) {
  if (impl == "auto") impl = impl_name(default_impl(target));
  return parse_optimizer(name, impl);
}

TrainingPlan plan_training(Target target, const std::optional<OptimizerSpec>& optimizer) {
  TrainingPlan p;
  p.optimizer = optimizer.value_or(plan_optimizer(target, "adamw", "auto"));
  p.counters_on_device = target == Target::kCpu;
  return p;
}

PrecisionPlan plan_precision(PrecisionMode mode) {
  PrecisionPlan p;
  p.mode = mode;
  switch (mode) {
    case PrecisionMode::kFp16:
      p.parameters = DType::kFloat16;
      break;
    case PrecisionMode::kBf16:
      p.parameters = DType::kBFloat16;
      break;
    case PrecisionMode::kBf16Amp:
      p.autocast = DType::kBFloat16;
      break;
    case PrecisionMode::kFp16Amp:
      p.autocast = DType::kFloat16;
      break;
    case PrecisionMode::kFp32:
      break;
  }
  return p;
}

LossKind resolve_loss(LossKind loss, int output_dims, bool floating, bool labels) {
  if (loss != LossKind::kAuto) return loss;
  return output_dims == 2 && floating && labels ? LossKind::kCrossEntropy : LossKind::kMeanSquare;
}

MemoryOptions plan_memory(Target target, std::string_view gpu, double context_mib,
                          std::string_view alloc_conf) {
  MemoryOptions m;
  m.target = target;
  if (target == Target::kCpu && context_mib >= 0)
    throw OptionError(
        "`context-mib` is for a GPU's CUDA context, and `device` 'cpu' estimates a CPU run");
  if (!gpu.empty()) {
    if (target == Target::kCpu && !size_parse(gpu))
      throw OptionError(
          fmt::format("`gpu` '{}' names a GPU, and `device` 'cpu' estimates a CPU run; give a size "
                      "(64GiB) as the memory to fit in",
                      escape_text(gpu)));
    DeviceProfile p = device_parse(gpu);
    if (target == Target::kCpu) {
      m.capacity = p.total;
    } else {
      if (context_mib >= 0) p.context = int64_t(context_mib * 1024 * 1024);
      m.gpu = p;
    }
  }
  if (!alloc_conf.empty()) m.allocator = parse_allocator_config(alloc_conf);
  return m;
}

CudaTarget cuda_target(const MemoryOptions& memory) {
  CudaTarget t;
  if (memory.gpu && memory.gpu->sm > 0) {
    t.sm = memory.gpu->sm;
    t.multiprocessors = memory.gpu->multiprocessors;
  }
  return t;
}

ShardPlan plan_sharding(Sharding sharding, int64_t gpus, int64_t tp, bool amp,
                        const LayerTensors& layer) {
  ShardPlan m;
  int64_t dp = gpus / std::max<int64_t>(1, tp);
  if (sharding == Sharding::kNone || dp <= 1) return m;
  auto set = [&](Category cat) { m.divisor[int(cat)] = dp; };
  set(Category::kOptimizerState);
  if (sharding != Sharding::kZero1) set(Category::kGradients);
  bool params = sharding == Sharding::kZero3 || sharding == Sharding::kFsdp;
  if (params) set(Category::kParameters);
  if (sharding != Sharding::kZero1) m.gathered += layer.trainable_bytes;  // before reduce-scatter
  if (params) {
    // The layer being computed and the next, prefetched; 16-bit under mixed precision.
    m.gathered += 2 * (amp ? 2 * layer.numel : layer.bytes);
    m.drop_weight_casts = amp;
  }
  return m;
}

void check_llm(const LlmScenario& s) {
  if (s.batch < 1)
    throw OptionError(fmt::format("`batch` {} is not a batch size; expected 1 or more", s.batch));
  if (s.context < 0) throw OptionError("`context` must be a number of tokens, 1 or more");
  if (s.tp < 1 || s.gpus < 1 || s.gpus % s.tp != 0)
    throw OptionError(
        fmt::format("`gpus` {} cannot hold tensor-parallel groups of `tp` {}; expected a "
                    "multiple of it",
                    s.gpus, s.tp));
  if (s.lora_rank < 0)
    throw OptionError(fmt::format("`lora` {}: expected a rank, 0 or more", s.lora_rank));
  if (s.group_size < 1) throw OptionError("the quantization group size must be 1 or more");
  if (!s.train && (s.sharding != Sharding::kNone || s.lora_rank > 0 || s.checkpointing))
    throw OptionError("`shard`, `lora` and `checkpointing` are for training: add `train`");
  if (s.train && s.weights && (*s.weights == Precision::kInt8 || *s.weights == Precision::kInt4))
    throw OptionError(
        "training with quantized weights (QLoRA) is not modelled yet; `weights` is for "
        "inference, `precision` for training");
  if (s.train && s.weights)
    throw OptionError(
        "`weights` is for inference; a training step's parameters are fp32 and `precision` sets "
        "its compute dtype (bf16-amp; bf16 or fp16 for 16-bit parameters)");
  if (s.fit != FitTarget::kNone && !s.memory.gpu && !s.memory.capacity)
    throw OptionError("`fit` needs a device: pass `gpu` with a name (h100) or a size (80GiB)");
}

RunPlan plan_run(const RunRequest& q) {
  RunPlan p;
  p.train = q.train;
  p.target = Target(choose(Vocabulary::kTarget, q.device));
  p.memory = plan_memory(p.target, q.gpu, q.context_mib, q.alloc_conf);
  p.cuda = cuda_target(p.memory);
  p.precision = plan_precision(PrecisionMode(choose(Vocabulary::kPrecision, q.precision)));
  OptimizerSpec optimizer = plan_optimizer(p.target, q.optimizer, q.impl);  // checked either way
  if (q.train) p.training = plan_training(p.target, optimizer);
  p.loss = LossKind(choose(Vocabulary::kLoss, q.loss));
  p.set_to_none = choose(Vocabulary::kZeroGrad, q.zero_grad) == 0;
  p.sharding = Sharding(choose(Vocabulary::kSharding, q.sharding));
  p.gpus = q.gpus;
  p.tp = q.tp;
  p.attention = AttentionImpl(choose(Vocabulary::kAttention, q.attention));
  p.fit = FitTarget(choose(Vocabulary::kFitTarget, q.fit));
  return p;
}

MemoryScenario memory_scenario(const RunPlan& p) {
  MemoryScenario s;
  s.train = p.train;
  if (p.training) s.optimizer = p.training->optimizer;
  s.precision = p.precision.mode;
  s.loss = p.loss;
  s.set_to_none = p.set_to_none;
  s.memory = p.memory;
  return s;
}

LlmScenario llm_scenario(const RunPlan& p) {
  LlmScenario s;
  s.train = p.train;
  if (p.training) s.optimizer = p.training->optimizer;
  s.precision = p.precision.mode;
  s.memory = p.memory;
  s.sharding = p.sharding;
  s.gpus = p.gpus;
  s.tp = p.tp;
  s.attention = p.attention;
  s.fit = p.fit;
  return s;
}

}  // namespace footprint
