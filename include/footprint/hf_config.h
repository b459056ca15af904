// footprint/hf_config.h: a Hugging Face transformers config.json, read into the few numbers that
// decide a transformer's tensors: sizes, heads, layers, vocabulary, ties and biases. Supported
// model_types: llama, mistral, qwen2, gpt2, bert. Every field is type- and range-checked.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "footprint/dtype.h"

namespace footprint {

// The C++ module classes (src/llm/transformer.cpp): one per shape of transformer.
enum class ModuleKind {
  kLlama,  // LlamaModel: llama, mistral, qwen2 (RMSNorm, rotary, gated MLP, optional GQA)
  kGpt2,   // GPT2Model: learned positions, LayerNorm, Conv1D projections
  kBert,   // BertModel: an encoder, token types, a pooler
};

// Everything the C++ path knows of one transformers family, as one row of kFamilies
// (src/llm/hf_config.cpp): the code reads these fields, never the model_type string.
struct Family {
  std::string model_type;    // config.json's model_type
  std::string architecture;  // the transformers class the C++ module is
  ModuleKind module;
  bool decoder;               // generates with a KV cache (else an encoder: one forward)
  bool learned_positions;     // position embeddings bound the context (max_position_embeddings)
  bool conv1d;                // projection weights stored [in, out] (GPT-2's Conv1D)
  std::string layers_prefix;  // the layers' parameter paths: "model.layers."
  int64_t kv_heads_default;   // KV heads when the file has no num_key_value_heads; 0: the heads
  bool qkv_bias;              // q, k and v always biased and o not (Qwen2Attention)
  bool rotary_float_casts;    // Qwen2RotaryEmbedding's casts, written apart from llama's
  // Reads sliding_window (default 4096, MistralConfig's; null: none): every layer's cache is then
  // a sliding-window layer and its masks the sliding ones.
  bool sliding_window;
  std::vector<std::string> lora_default;  // peft's target_modules default for the model_type
  std::vector<std::string> projections;   // the Linear/Conv1D modules --lora-targets can name
};

// The row of a model_type, or nullptr when the C++ modules do not build it.
const Family* find_family(std::string_view model_type);
// The model_types that have a row: "llama, mistral, qwen2, gpt2, bert".
std::string family_names();

struct TransformerConfig {
  std::string source;              // the file, for messages
  std::string model_type;          // "llama", "mistral", "qwen2", "gpt2", "bert"
  const Family* family = nullptr;  // its row (never null in a config read_hf_config returns)
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // = num_heads without grouped-query attention
  int64_t head_dim = 0;      // hidden_size / num_heads unless the config says
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_positions = 0;
  int64_t type_vocab_size = 0;  // bert's token types; 0 elsewhere
  bool tie_word_embeddings = false;
  int64_t sliding_window = 0;  // tokens each query sees (mistral); 0: all
  // config.json's use_cache (transformers' default true): a decoder's training forward then builds
  // a DynamicCache, which lives as long as the model's output.
  bool use_cache = true;
  bool attention_bias = false;  // q, k, v (and o where the architecture has it) carry biases
  bool mlp_bias = false;
  double norm_eps = 1e-5;
  std::string hidden_act;
  // Dropout probabilities, applied in training: on the embeddings (gpt2's embd_pdrop), on each
  // sublayer's output (resid_pdrop, hidden_dropout_prob) and on the attention weights.
  double embedding_dropout = 0;
  double hidden_dropout = 0;
  double attention_dropout = 0;
  std::optional<DType> torch_dtype;  // as saved, when the config says
};

// Limits, each named in its error message.
constexpr uint64_t kMaxConfigBytes = 16ull << 20;  // bytes of config.json
constexpr int kMaxConfigNesting = 64;              // JSON arrays/objects inside each other

// Reads and checks a config.json. Throws footprint::Error naming the file, the field and the
// expected range.
TransformerConfig read_hf_config(const std::string& path);
// The text of a config.json, read under the same limits (kMaxConfigBytes, kMaxConfigNesting):
// what the python path parses, so that a config is bounded the same on both paths.
std::string read_config_text(const std::string& path);
// The same from text in memory; `name` is used in messages.
TransformerConfig parse_hf_config(std::string_view text, const std::string& name);
// What in a readable config.json the C++ modules do not build, so that `footprint llm` hands it to
// transformers' own code: "model_type 'qwen3_moe'", or the class `architectures` names when its
// family's module is another class (BertForMaskedLM: the C++ module is BertModel). nullopt for a
// config they build, or a file read_hf_config refuses for another reason (it then says why).
// The context footprint llm takes when none is given: min(max_position_embeddings, 4096).
int64_t default_context(const TransformerConfig& c);
// `context` (0: default_context) goes to transformers' code when it
// is longer than a sliding window, whose cache layers and masks the C++ modules do not build.
std::optional<std::string> python_only(const std::string& path, int64_t context = 0);

}  // namespace footprint
