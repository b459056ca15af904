// footprint/hf_config.h: a Hugging Face transformers config.json, read into the few numbers that
// decide a transformer's tensors: sizes, heads, layers, vocabulary, ties and biases. Supported
// model_types: llama, mistral, qwen2, gpt2, bert. Every field is type- and range-checked.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "footprint/dtype.h"

namespace footprint {

struct TransformerConfig {
  std::string source;      // the file, for messages
  std::string model_type;  // "llama", "mistral", "qwen2", "gpt2", "bert"
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
// The same from text in memory; `name` is used in messages.
TransformerConfig parse_hf_config(std::string_view text, const std::string& name);
// What in a readable config.json the C++ modules do not build, so that `footprint llm` hands it to
// transformers' own code: "model_type 'qwen3_moe'", or the class `architectures` names when its
// family's module is another class (BertForMaskedLM: the C++ module is BertModel). nullopt for a
// config they build, or a file read_hf_config refuses for another reason (it then says why).
std::optional<std::string> python_only(const std::string& path);

}  // namespace footprint
