// config.json for the transformer families the C++ modules build: one row of kFamilies per
// model_type, and one reader per module class for its keys (gpt2 says n_embd where llama says
// hidden_size).
#include "footprint/hf_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "footprint/error.h"
#include "formats/byte_source.h"
#include "formats/readers.h"

namespace footprint {

namespace detail {

void check_json_nesting(std::string_view text, const std::string& name, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit)
        throw Error(fmt::format("{}: JSON nests deeper than {} levels (the JSON nesting limit)",
                                name, limit));
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

}  // namespace detail

namespace {

using nlohmann::json;

// Largest accepted value of each size: far beyond any published model, small enough that products
// of a few of them cannot overflow 64 bits.
constexpr int64_t kMaxWidth = 1 << 20;  // hidden, intermediate, head sizes
constexpr int64_t kMaxLayers = 100000;
constexpr int64_t kMaxHeads = 1 << 16;
constexpr int64_t kMaxVocab = 1 << 26;
constexpr int64_t kMaxPositions = 1 << 26;

const std::vector<std::string> kLlamaProjections{"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};

// The families the C++ modules build, one row each. kv_heads_default is transformers' own:
// MistralConfig's 8, Qwen2Config's 32, LlamaConfig's None (one per attention head).
// lora_default is peft's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING (test_llm.py holds
// both to the installed packages).
// Columns: model_type, architecture, module, decoder, learned_positions, conv1d, layers_prefix,
// kv_heads_default, qkv_bias, rotary_float_casts, sliding_window; lora_default, projections.
// clang-format off
const Family kFamilies[] = {
  {"llama",   "LlamaForCausalLM",   ModuleKind::kLlama, true,  false, false, "model.layers.",  0,
   false, false, false, {"q_proj", "v_proj"}, kLlamaProjections},
  {"mistral", "MistralForCausalLM", ModuleKind::kLlama, true,  false, false, "model.layers.",  8,
   false, false, true,  {"q_proj", "v_proj"}, kLlamaProjections},
  {"qwen2",   "Qwen2ForCausalLM",   ModuleKind::kLlama, true,  false, false, "model.layers.",  32,
   true,  true,  false, {"q_proj", "v_proj"}, kLlamaProjections},
  {"gpt2",    "GPT2LMHeadModel",    ModuleKind::kGpt2,  true,  true,  true,  "transformer.h.", 0,
   false, false, false, {"c_attn"},           {"c_attn", "c_proj", "c_fc"}},
  {"bert",    "BertModel",          ModuleKind::kBert,  false, true,  false, "encoder.layer.", 0,
   false, false, false, {"query", "value"},   {"query", "key", "value", "dense"}},
};
// clang-format on

// The first class a config's `architectures` names, or "".
std::string architecture_of(const json& j) {
  auto it = j.find("architectures");
  if (it == j.end() || !it->is_array() || it->empty() || !(*it)[0].is_string()) return "";
  return (*it)[0].get<std::string>();
}

class Fields {
 public:
  Fields(const json& j, const std::string& name) : j_(j), name_(name) {}

  std::optional<int64_t> integer(const char* key, int64_t lo, int64_t hi) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return std::nullopt;
    // nlohmann stores non-negative integers as unsigned: compare those without a signed cast.
    bool in_range = false;
    if (it->is_number_unsigned())
      in_range = it->get<uint64_t>() <= static_cast<uint64_t>(hi) &&
                 static_cast<int64_t>(it->get<uint64_t>()) >= lo;
    else if (it->is_number_integer())
      in_range = it->get<int64_t>() >= lo && it->get<int64_t>() <= hi;
    if (!in_range)
      throw Error(fmt::format("{}: field '{}' is {}; expected an integer from {} to {}", name_, key,
                              it->dump().substr(0, 40), lo, hi));
    return it->get<int64_t>();
  }
  int64_t required(const char* key, int64_t lo, int64_t hi) const {
    auto v = integer(key, lo, hi);
    if (!v)
      throw Error(fmt::format("{}: field '{}' is missing; expected an integer from {} to {}", name_,
                              key, lo, hi));
    return *v;
  }
  bool flag(const char* key, bool fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_boolean())
      throw Error(fmt::format("{}: field '{}' is {}; expected true or false", name_, key,
                              it->dump().substr(0, 40)));
    return it->get<bool>();
  }
  bool null(const char* key) const {
    auto it = j_.find(key);
    return it != j_.end() && it->is_null();
  }
  double real(const char* key, double fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_number() || it->get<double>() < 0 || it->get<double>() > 1)
      throw Error(fmt::format("{}: field '{}' is {}; expected a number from 0 to 1", name_, key,
                              it->dump().substr(0, 40)));
    return it->get<double>();
  }
  std::string text(const char* key, const std::string& fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return fallback;
    if (!it->is_string())
      throw Error(fmt::format("{}: field '{}' is {}; expected a string", name_, key,
                              it->dump().substr(0, 40)));
    return it->get<std::string>();
  }

 private:
  const json& j_;
  const std::string& name_;
};

// Each module's config keys and transformers' defaults for them (GPT2Config says n_embd where
// LlamaConfig says hidden_size).
void read_llama(const Fields& f, TransformerConfig& c) {
  c.hidden_size = f.required("hidden_size", 1, kMaxWidth);
  c.num_layers = f.required("num_hidden_layers", 1, kMaxLayers);
  c.num_heads = f.required("num_attention_heads", 1, kMaxHeads);
  const int64_t kv_default = c.family->kv_heads_default ? c.family->kv_heads_default : c.num_heads;
  c.num_kv_heads = f.integer("num_key_value_heads", 1, kMaxHeads).value_or(kv_default);
  c.head_dim = f.integer("head_dim", 1, kMaxWidth).value_or(0);
  c.intermediate_size = f.required("intermediate_size", 1, kMaxWidth);
  c.vocab_size = f.required("vocab_size", 1, kMaxVocab);
  c.max_positions = f.integer("max_position_embeddings", 1, kMaxPositions).value_or(2048);
  c.tie_word_embeddings = f.flag("tie_word_embeddings", false);
  c.use_cache = f.flag("use_cache", true);
  c.attention_bias = c.family->qkv_bias || f.flag("attention_bias", false);
  c.mlp_bias = f.flag("mlp_bias", false);
  c.norm_eps = f.real("rms_norm_eps", 1e-6);
  c.hidden_act = f.text("hidden_act", "silu");
  c.attention_dropout = f.real("attention_dropout", 0.0);
  if (c.family->sliding_window && !f.null("sliding_window"))
    c.sliding_window = f.integer("sliding_window", 1, kMaxPositions).value_or(4096);
  else if (f.flag("use_sliding_window", false))  // Qwen2Config's: sliding layers from a depth on
    throw Error(
        fmt::format("{}: use_sliding_window: the C++ modules do not build {}'s sliding-window "
                    "layers (footprint llm takes the python path for it; --path python)",
                    c.source, c.model_type));
}

void read_gpt2(const Fields& f, TransformerConfig& c) {
  c.hidden_size = f.required("n_embd", 1, kMaxWidth);
  c.num_layers = f.required("n_layer", 1, kMaxLayers);
  c.num_heads = f.required("n_head", 1, kMaxHeads);
  c.num_kv_heads = c.num_heads;
  c.intermediate_size = f.integer("n_inner", 1, kMaxWidth).value_or(4 * c.hidden_size);
  c.vocab_size = f.required("vocab_size", 1, kMaxVocab);
  c.max_positions = f.required("n_positions", 1, kMaxPositions);
  c.tie_word_embeddings = f.flag("tie_word_embeddings", true);  // GPT2Config's default
  c.use_cache = f.flag("use_cache", true);
  c.attention_bias = c.mlp_bias = true;
  c.norm_eps = f.real("layer_norm_epsilon", 1e-5);
  c.hidden_act = f.text("activation_function", "gelu_new");
  c.embedding_dropout = f.real("embd_pdrop", 0.1);
  c.hidden_dropout = f.real("resid_pdrop", 0.1);
  c.attention_dropout = f.real("attn_pdrop", 0.1);
}

void read_bert(const Fields& f, TransformerConfig& c) {
  c.hidden_size = f.required("hidden_size", 1, kMaxWidth);
  c.num_layers = f.required("num_hidden_layers", 1, kMaxLayers);
  c.num_heads = f.required("num_attention_heads", 1, kMaxHeads);
  c.num_kv_heads = c.num_heads;
  c.intermediate_size = f.required("intermediate_size", 1, kMaxWidth);
  c.vocab_size = f.required("vocab_size", 1, kMaxVocab);
  c.max_positions = f.integer("max_position_embeddings", 1, kMaxPositions).value_or(512);
  c.type_vocab_size = f.integer("type_vocab_size", 1, kMaxVocab).value_or(2);
  c.tie_word_embeddings = f.flag("tie_word_embeddings", true);
  c.attention_bias = c.mlp_bias = true;
  c.norm_eps = f.real("layer_norm_eps", 1e-12);
  c.hidden_act = f.text("hidden_act", "gelu");
  c.hidden_dropout = c.embedding_dropout = f.real("hidden_dropout_prob", 0.1);
  c.attention_dropout = f.real("attention_probs_dropout_prob", 0.1);
}

}  // namespace

const Family* find_family(std::string_view model_type) {
  for (const Family& f : kFamilies)
    if (f.model_type == model_type) return &f;
  return nullptr;
}

int64_t default_context(const TransformerConfig& c) {
  return std::min<int64_t>(c.max_positions, 4096);
}

std::string family_names() {
  std::string names;
  for (const Family& f : kFamilies) names += (names.empty() ? "" : ", ") + f.model_type;
  return names;
}

TransformerConfig parse_hf_config(std::string_view text, const std::string& name) {
  if (text.size() > kMaxConfigBytes)
    throw Error(fmt::format("{}: config is {} bytes, over the config-size limit of {}", name,
                            text.size(), kMaxConfigBytes));
  detail::check_json_nesting(text, name, kMaxConfigNesting);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    std::string why = e.what();
    throw Error(fmt::format("{}: not valid JSON ({})", name, why.substr(why.find(']') + 2)));
  }
  if (!j.is_object())
    throw Error(fmt::format("{}: not a JSON object; expected a transformers config.json", name));
  Fields f(j, name);
  TransformerConfig c;
  c.source = name;
  c.model_type = f.text("model_type", "");
  if (c.model_type.empty())
    throw Error(fmt::format("{}: no 'model_type'; expected a transformers config.json ({})", name,
                            family_names()));
  std::string dtype = f.text("torch_dtype", "");
  if (!dtype.empty()) {
    c.torch_dtype = dtype_parse(dtype);
    if (!c.torch_dtype)
      throw Error(fmt::format("{}: field 'torch_dtype' is '{}', not a torch dtype", name, dtype));
  }

  c.family = find_family(c.model_type);
  if (!c.family)
    throw Error(fmt::format("{}: model_type '{}' is not supported; supported: {}", name,
                            c.model_type.substr(0, 40), family_names()));
  switch (c.family->module) {
    case ModuleKind::kLlama:
      read_llama(f, c);
      break;
    case ModuleKind::kGpt2:
      read_gpt2(f, c);
      break;
    case ModuleKind::kBert:
      read_bert(f, c);
      break;
  }
  const std::string& built = c.family->architecture;
  if (std::string named = architecture_of(j); !named.empty() && named != built)
    throw Error(
        fmt::format("{}: architectures names {}; the C++ modules build {} (footprint llm "
                    "--path python builds {} with transformers' own code)",
                    name, named.substr(0, 60), built, named.substr(0, 60)));
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_heads != 0)
      throw Error(fmt::format("{}: hidden size {} is not divisible by {} attention heads", name,
                              c.hidden_size, c.num_heads));
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.num_kv_heads > c.num_heads || c.num_heads % c.num_kv_heads != 0)
    throw Error(fmt::format(
        "{}: {} attention heads cannot be shared by {} key/value heads; expected a divisor", name,
        c.num_heads, c.num_kv_heads));
  return c;
}

std::optional<std::string> python_only(const std::string& path, int64_t context) {
  try {
    std::string text = read_config_text(path);
    json j = json::parse(text);
    if (!j.is_object()) return std::nullopt;
    auto it = j.find("model_type");
    if (it == j.end() || !it->is_string() || it->get<std::string>().empty()) return std::nullopt;
    std::string type = it->get<std::string>();
    const Family* family = find_family(type);
    if (!family) return fmt::format("model_type '{}'", type.substr(0, 40));
    std::string named = architecture_of(j);
    if (!named.empty() && named != family->architecture) return named.substr(0, 60);
    auto sliding = j.find("use_sliding_window");
    if (!family->sliding_window && sliding != j.end() && sliding->is_boolean() &&
        sliding->get<bool>())
      return std::string("use_sliding_window");
    TransformerConfig c = parse_hf_config(text, path);
    int64_t tokens = context > 0 ? context : default_context(c);
    if (c.sliding_window && tokens > c.sliding_window)
      return fmt::format("a context of {} tokens beyond its sliding window of {}", tokens,
                         c.sliding_window);
    return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;  // read_hf_config says what is wrong with it
  }
}

std::string read_config_text(const std::string& path) {
  auto src = detail::open_file(path);
  if (src->size() > kMaxConfigBytes)
    throw Error(fmt::format("{}: config is {} bytes, over the config-size limit of {}", path,
                            src->size(), kMaxConfigBytes));
  std::string text = src->read_string(0, static_cast<size_t>(src->size()));
  detail::check_json_nesting(text, path, kMaxConfigNesting);
  return text;
}

TransformerConfig read_hf_config(const std::string& path) {
  return parse_hf_config(read_config_text(path), path);
}

}  // namespace footprint
