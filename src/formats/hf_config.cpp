// config.json for the supported transformer families. Field names differ per family (gpt2 says
// n_embd where llama says hidden_size), so each family has its own table of keys.
#include "footprint/hf_config.h"

#include <fmt/format.h>

#include <map>
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

constexpr const char* kSupported = "llama, mistral, qwen2, gpt2, bert";

// Largest accepted value of each size: far beyond any published model, small enough that products
// of a few of them cannot overflow 64 bits.
constexpr int64_t kMaxWidth = 1 << 20;  // hidden, intermediate, head sizes
constexpr int64_t kMaxLayers = 100000;
constexpr int64_t kMaxHeads = 1 << 16;
constexpr int64_t kMaxVocab = 1 << 26;
constexpr int64_t kMaxPositions = 1 << 26;

// The class each family's C++ module is: what a config's `architectures` must name, if anything.
std::string built_architecture(const std::string& model_type) {
  static const std::map<std::string, std::string> built{{"llama", "LlamaForCausalLM"},
                                                        {"mistral", "MistralForCausalLM"},
                                                        {"qwen2", "Qwen2ForCausalLM"},
                                                        {"gpt2", "GPT2LMHeadModel"},
                                                        {"bert", "BertModel"}};
  auto it = built.find(model_type);
  return it == built.end() ? "" : it->second;
}

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

}  // namespace

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
                            kSupported));
  std::string dtype = f.text("torch_dtype", "");
  if (!dtype.empty()) {
    c.torch_dtype = dtype_parse(dtype);
    if (!c.torch_dtype)
      throw Error(fmt::format("{}: field 'torch_dtype' is '{}', not a torch dtype", name, dtype));
  }

  if (c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2") {
    c.hidden_size = f.required("hidden_size", 1, kMaxWidth);
    c.num_layers = f.required("num_hidden_layers", 1, kMaxLayers);
    c.num_heads = f.required("num_attention_heads", 1, kMaxHeads);
    // transformers' defaults when the file has no num_key_value_heads: MistralConfig's 8,
    // Qwen2Config's 32, LlamaConfig's None (as many as the attention heads).
    const int64_t kv_default = c.model_type == "mistral" ? 8
                               : c.model_type == "qwen2" ? 32
                                                         : c.num_heads;
    c.num_kv_heads = f.integer("num_key_value_heads", 1, kMaxHeads).value_or(kv_default);
    c.head_dim = f.integer("head_dim", 1, kMaxWidth).value_or(0);
    c.intermediate_size = f.required("intermediate_size", 1, kMaxWidth);
    c.vocab_size = f.required("vocab_size", 1, kMaxVocab);
    c.max_positions = f.integer("max_position_embeddings", 1, kMaxPositions).value_or(2048);
    c.tie_word_embeddings = f.flag("tie_word_embeddings", false);
    c.use_cache = f.flag("use_cache", true);
    // Qwen2 always has biases on q, k and v; llama's are optional; mistral has none.
    c.attention_bias = c.model_type == "qwen2" || f.flag("attention_bias", false);
    c.mlp_bias = f.flag("mlp_bias", false);
    c.norm_eps = f.real("rms_norm_eps", 1e-6);
    c.hidden_act = f.text("hidden_act", "silu");
    c.attention_dropout = f.real("attention_dropout", 0.0);
  } else if (c.model_type == "gpt2") {
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
  } else if (c.model_type == "bert") {
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
  } else {
    throw Error(fmt::format("{}: model_type '{}' is not supported; supported: {}", name,
                            c.model_type.substr(0, 40), kSupported));
  }
  if (auto built = built_architecture(c.model_type); !built.empty()) {
    std::string named = architecture_of(j);
    if (!named.empty() && named != built)
      throw Error(
          fmt::format("{}: architectures names {}; the C++ modules build {} (footprint llm "
                      "--path python builds {} with transformers' own code)",
                      name, named.substr(0, 60), built, named.substr(0, 60)));
  }
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

std::optional<std::string> python_only(const std::string& path) {
  try {
    auto src = detail::open_file(path);
    if (src->size() > kMaxConfigBytes) return std::nullopt;
    std::string text = src->read_string(0, static_cast<size_t>(src->size()));
    detail::check_json_nesting(text, path, kMaxConfigNesting);
    json j = json::parse(text);
    if (!j.is_object()) return std::nullopt;
    auto it = j.find("model_type");
    if (it == j.end() || !it->is_string() || it->get<std::string>().empty()) return std::nullopt;
    std::string type = it->get<std::string>();
    std::string built = built_architecture(type);
    if (built.empty()) return fmt::format("model_type '{}'", type.substr(0, 40));
    std::string named = architecture_of(j);
    if (!named.empty() && named != built) return named.substr(0, 60);
    return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;  // read_hf_config says what is wrong with it
  }
}

TransformerConfig read_hf_config(const std::string& path) {
  auto src = detail::open_file(path);
  if (src->size() > kMaxConfigBytes)
    throw Error(fmt::format("{}: config is {} bytes, over the config-size limit of {}", path,
                            src->size(), kMaxConfigBytes));
  return parse_hf_config(src->read_string(0, static_cast<size_t>(src->size())), path);
}

}  // namespace footprint
