// The --input shape parser and the config.json reader: good input, and every way it can be bad.
#include <gtest/gtest.h>

#include "footprint/footprint.h"
#include "test_util.h"

namespace fp = footprint;

namespace {

using footprint_test::error_of;

}  // namespace

TEST(Inputs, Forms) {
  auto a = fp::parse_inputs("1x3x224x224");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].shape, (std::vector<int64_t>{1, 3, 224, 224}));
  EXPECT_FALSE(a[0].dtype.has_value());
  EXPECT_EQ(fp::parse_inputs("1,3,224,224")[0].shape, a[0].shape);
  auto b = fp::parse_inputs("8x128:int64;8x128:bool");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(*b[0].dtype, fp::DType::kInt64);
  EXPECT_EQ(*b[1].dtype, fp::DType::kBool);
  EXPECT_EQ(fp::parse_inputs("7")[0].shape, (std::vector<int64_t>{7}));
}

TEST(Inputs, ErrorsPointAtTheProblem) {
  auto e = [](const char* s) { return error_of([&] { fp::parse_inputs(s); }); };
  EXPECT_NE(e("1x3xAx224").find("'A' is not a size at position 5"), std::string::npos)
      << e("1x3xAx224");
  EXPECT_NE(e("").find("a size is missing"), std::string::npos);
  EXPECT_NE(e("1x").find("a size is missing"), std::string::npos);
  EXPECT_NE(e("1x0x3").find("a size of 0"), std::string::npos);
  EXPECT_NE(e("-1x3").find("'-' is not a size"), std::string::npos);
  EXPECT_NE(e("1x3:float7").find("unknown dtype 'float7'"), std::string::npos);
  EXPECT_NE(e("1;;2").find("a size is missing"), std::string::npos);
  EXPECT_NE(e("99999999999999999999").find("does not fit in 64 bits"), std::string::npos);
  // 2^32 x 2^32 = 2^64 elements.
  EXPECT_NE(e("4294967296x4294967296").find("overflows 64 bits"), std::string::npos);
  std::string many_dims(65 * 2 - 1, 'x');
  for (size_t i = 0; i < many_dims.size(); i += 2) many_dims[i] = '1';
  EXPECT_NE(e(many_dims.c_str()).find("the dimension limit"), std::string::npos);
  std::string many_inputs;
  for (int i = 0; i < 65; ++i) many_inputs += i ? ";1" : "1";
  EXPECT_NE(e(many_inputs.c_str()).find("the input-count limit"), std::string::npos);
  EXPECT_NE(e(std::string(5000, '1').c_str()).find("over the limit of 4096"), std::string::npos);
}

// LLaMA-7B's published config.json (huggyllama/llama-7b), trimmed to the fields read here.
constexpr const char* kLlama7B = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_hidden_layers": 32,
  "max_position_embeddings": 2048, "rms_norm_eps": 1e-06, "vocab_size": 32000, "torch_dtype": "float16",
  "tie_word_embeddings": false, "hidden_act": "silu"})";

TEST(HfConfig, Llama) {
  auto c = fp::parse_hf_config(kLlama7B, "config.json");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_kv_heads, 32);  // no num_key_value_heads: every head has its own K and V
  EXPECT_EQ(c.head_dim, 128);     // 4096 / 32
  EXPECT_EQ(*c.torch_dtype, fp::DType::kFloat16);
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST(HfConfig, MistralGqaGpt2Bert) {
  // Mistral-7B-v0.1: 32 heads share 8 key/value heads.
  auto m =
      fp::parse_hf_config(R"({"model_type":"mistral","hidden_size":4096,"intermediate_size":14336,
    "num_attention_heads":32,"num_key_value_heads":8,"num_hidden_layers":32,"vocab_size":32000})",
                          "m");
  EXPECT_EQ(m.num_kv_heads, 8);
  // GPT-2 small: n_inner null means 4 x n_embd; the head is tied to the embedding.
  auto g = fp::parse_hf_config(
      R"({"model_type":"gpt2","n_embd":768,"n_layer":12,"n_head":12,"n_inner":null,
    "n_positions":1024,"vocab_size":50257})",
      "g");
  EXPECT_EQ(g.intermediate_size, 3072);
  EXPECT_TRUE(g.tie_word_embeddings);
  auto b = fp::parse_hf_config(R"({"model_type":"bert","hidden_size":768,"num_hidden_layers":12,
    "num_attention_heads":12,"intermediate_size":3072,"vocab_size":30522,"type_vocab_size":2})",
                               "b");
  EXPECT_EQ(b.type_vocab_size, 2);
  EXPECT_EQ(b.max_positions, 512);
}

struct BadConfig {
  const char* name;
  std::string text;
  const char* expected;
};
void PrintTo(const BadConfig& b, std::ostream* os) {
  *os << b.name;
}

class HfConfigBad : public ::testing::TestWithParam<BadConfig> {};

TEST_P(HfConfigBad, OneClearError) {
  std::string err = error_of([&] { fp::parse_hf_config(GetParam().text, "config.json"); });
  EXPECT_NE(err.find(GetParam().expected), std::string::npos) << err;
  EXPECT_EQ(err.rfind("config.json: ", 0), 0u) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
}

std::string llama_with(const std::string& field) {
  return std::string(
             R"({"model_type":"llama","intermediate_size":11008,"num_hidden_layers":32,"vocab_size":32000,)") +
         field + "}";
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, HfConfigBad,
    ::testing::Values(
        BadConfig{"not_json", "{model_type: llama}", "not valid JSON"},
        BadConfig{"array", "[1, 2]", "not a JSON object"},
        BadConfig{"no_model_type", "{}", "no 'model_type'"},
        BadConfig{"unknown_type", R"({"model_type":"falcon"})",
                  "'falcon' is not supported; supported: llama"},
        BadConfig{"deep_nesting", std::string(100000, '[') + std::string(100000, ']'),
                  "the JSON nesting limit"},
        BadConfig{"deep_objects", R"({"a":)" + std::string(70, '{') + std::string(71, '}'),
                  "the JSON nesting limit"},
        BadConfig{"number_overflow", llama_with(R"("hidden_size":1e999,"num_attention_heads":32)"),
                  "not valid JSON"},
        BadConfig{
            "huge_integer",
            llama_with(R"("hidden_size":18446744073709551616,"num_attention_heads":32)"),
            "field 'hidden_size' is 1.8446744073709552e+19; expected an integer from 1 to 1048576"},
        BadConfig{"negative", llama_with(R"("hidden_size":-4096,"num_attention_heads":32)"),
                  "field 'hidden_size' is -4096"},
        BadConfig{"float_size", llama_with(R"("hidden_size":4096.5,"num_attention_heads":32)"),
                  "expected an integer"},
        BadConfig{"string_size", llama_with(R"("hidden_size":"4096","num_attention_heads":32)"),
                  "expected an integer"},
        BadConfig{"missing", llama_with(R"("num_attention_heads":32)"),
                  "field 'hidden_size' is missing"},
        BadConfig{"indivisible", llama_with(R"("hidden_size":4096,"num_attention_heads":30)"),
                  "not divisible by 30"},
        BadConfig{
            "bad_gqa",
            llama_with(R"("hidden_size":4096,"num_attention_heads":32,"num_key_value_heads":5)"),
            "cannot be shared by 5 key/value heads"},
        BadConfig{
            "bad_flag",
            llama_with(R"("hidden_size":4096,"num_attention_heads":32,"tie_word_embeddings":1)"),
            "expected true or false"},
        BadConfig{
            "bad_dtype",
            llama_with(R"("hidden_size":4096,"num_attention_heads":32,"torch_dtype":"float7")"),
            "not a torch dtype"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(HfConfig, FileErrors) {
  EXPECT_NE(error_of([] { fp::read_hf_config("/nonexistent/config.json"); }).find("no such file"),
            std::string::npos);
}
