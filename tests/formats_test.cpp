// The readers of issue 21 on hand-built files (tests/hostile.cpp builds them), with every number
// worked out beside it: GGUF, ONNX and torch.export programs. tests/formats_test.py holds the
// same readers to the formats' own tools on files those tools write.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "footprint/error.h"
#include "footprint/params.h"
#include "footprint/read.h"
#include "formats/readers.h"
#include "hostile.h"
#include "test_util.h"

namespace fp = footprint;
namespace fd = footprint::detail;

namespace {

fp::Model read_bytes(const std::string& bytes, const std::string& filename) {
  std::string dir = footprint_test::make_temp_dir();
  footprint_test::write_file(dir + "/" + filename, bytes);
  fp::Model m = fp::read_model(dir + "/" + filename);
  std::filesystem::remove_all(dir);
  return m;
}

}  // namespace

// ggml's blocks (dtype.h): Q4_K packs 256 weights in 144 bytes (2 fp16 scales, 12 bytes of 6-bit
// sub-block scales and mins, 128 bytes of 4-bit quants), 4.5 bits each; Q8_0 packs 32 in 34 (an
// fp16 scale and 32 int8). Converting to fp16 counts 2 bytes a weight, as dequantizing does.
TEST(Gguf, BlockQuantizedBytes) {
  EXPECT_EQ(fp::precision_bytes(fp::Precision::kStored, fp::DType::kQ4_K, 512), 2 * 144);
  EXPECT_EQ(fp::precision_bytes(fp::Precision::kStored, fp::DType::kQ8_0, 64), 2 * 34);
  EXPECT_EQ(fp::precision_bytes(fp::Precision::kFp16, fp::DType::kQ4_K, 512), 1024);
  EXPECT_EQ(fp::dtype_from_ggml(12), fp::DType::kQ4_K);
  EXPECT_EQ(fp::dtype_from_ggml(0), fp::DType::kFloat32);
  EXPECT_EQ(fp::dtype_from_ggml(4), std::nullopt);   // Q4_2, removed from ggml in 2023
  EXPECT_EQ(fp::dtype_parse("Q4_K"), std::nullopt);  // not a dtype safetensors or torch names
}

// good_gguf: F32 [8, 4] at data offset 0 (32 x 4 = 128 bytes) and Q8_0 [2, 64] at 128 (2 rows of
// 2 blocks of 34 bytes = 136 bytes): 160 weights in 264 bytes, 13.2 bits per weight.
TEST(Gguf, ReadsTheHeaderAndTensorInfos) {
  fp::Model m = read_bytes(footprint_test::good_gguf(), "good.gguf");
  EXPECT_EQ(m.format, "GGUF v3");
  ASSERT_EQ(m.tensors.size(), 2u);
  EXPECT_EQ(m.tensors[0].shape, (std::vector<int64_t>{8, 4}));  // torch order: ne reversed
  EXPECT_EQ(m.tensors[0].dtype, fp::DType::kFloat32);
  EXPECT_EQ(m.tensors[0].bytes(), 128);
  EXPECT_EQ(m.tensors[1].shape, (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(m.tensors[1].dtype, fp::DType::kQ8_0);
  EXPECT_EQ(m.tensors[1].bytes(), 136);
  ASSERT_FALSE(m.notes.empty());
  EXPECT_NE(m.notes[0].find("13.20 bits per weight"), std::string::npos) << m.notes[0];
  EXPECT_NE(m.notes[0].find("architecture llama"), std::string::npos) << m.notes[0];
  auto r = fp::params(m);
  EXPECT_EQ(r.total.numel, 160);
  EXPECT_EQ(r.total.bytes, 264);
}

// A fuzz finding (fuzz_gguf, UBSan: strides multiplied past 2^63): shape [0, 2^40, 2^40]
// hold no element, take no byte, and are read as such.
TEST(Gguf, EmptyTensorWithHugeDimensions) {
  std::string bytes = footprint_test::gguf_empty_huge_tensor();
  auto src = fd::open_memory(bytes, "empty.gguf");
  auto g = fd::read_gguf(*src);
  ASSERT_EQ(g.model.tensors.size(), 1u);
  EXPECT_EQ(g.model.tensors[0].numel(), 0);
  EXPECT_EQ(g.model.tensors[0].bytes(), 0);
}

// The metadata that llm needs is missing from good_gguf (it has no embedding_length): the error
// names the key.
TEST(Gguf, ConfigNamesTheMissingKey) {
  std::string bytes = footprint_test::good_gguf();  // open_memory views it
  auto src = fd::open_memory(bytes, "good.gguf");
  auto g = fd::read_gguf(*src);
  EXPECT_EQ(g.get("llama.block_count")->i, 2);
  EXPECT_EQ(g.get("tokenizer.ggml.tokens")->array_count, 2u);
  std::string err = footprint_test::error_of([&] { fd::config_from_gguf(g); });
  EXPECT_NE(err.find("no llama.embedding_length"), std::string::npos) << err;
}

// A data section cut short: the second tensor ends past the file.
TEST(Gguf, TruncatedDataIsRefused) {
  std::string bytes = footprint_test::good_gguf();
  bytes.resize(bytes.size() - 1);
  auto src = fd::open_memory(bytes, "cut.gguf");
  std::string err = footprint_test::error_of([&] { fd::read_gguf(*src); });
  EXPECT_NE(err.find("blk.0.attn_q.weight takes bytes 128 to 264 of the data, which has 263"),
            std::string::npos)
      << err;
}

// good_onnx: fc.weight FLOAT [2, 3] with its 24 bytes inline (packed dims), and steps INT64 [5]
// in weights.bin, whose declared length is 5 x 8 = 40 bytes.
TEST(Onnx, ReadsInitializersAndExternalData) {
  fp::Model m = read_bytes(footprint_test::good_onnx(), "good.onnx");
  EXPECT_EQ(m.format, "ONNX (IR version 8)");
  ASSERT_EQ(m.tensors.size(), 2u);
  EXPECT_EQ(m.tensors[0].name, "fc.weight");
  EXPECT_EQ(m.tensors[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(m.tensors[0].bytes(), 24);
  EXPECT_EQ(m.tensors[0].role, fp::TensorRole::kParameter);
  EXPECT_EQ(m.tensors[1].name, "steps");
  EXPECT_EQ(m.tensors[1].dtype, fp::DType::kInt64);
  EXPECT_EQ(m.tensors[1].bytes(), 40);
  EXPECT_EQ(m.tensors[1].role, fp::TensorRole::kBuffer);  // not floating
  EXPECT_EQ(m.tensors[1].file, "weights.bin");
  ASSERT_EQ(m.notes.size(), 1u);
  EXPECT_NE(m.notes[0].find("weights.bin"), std::string::npos);
}

// The same file with the external length saying 41: it cannot be 5 int64s.
TEST(Onnx, ExternalLengthMustMatch) {
  std::string bytes = footprint_test::good_onnx();
  auto at = bytes.find("40");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 1] = '1';
  auto src = fd::open_memory(bytes, "bad.onnx");
  std::string err = footprint_test::error_of([&] { fd::read_onnx(*src); });
  EXPECT_NE(err.find("its external data is 41 bytes long; 5 int64 elements take 40"),
            std::string::npos)
      << err;
}

namespace {

// A .pt2 archive around a program JSON (and, when given, a weights config).
std::string pt2_file(const std::string& dir, const std::string& program,
                     const std::string& weights = "") {
  std::vector<std::pair<std::string, std::string>> entries{{"m/archive_format", "pt2"},
                                                           {"m/models/model.json", program}};
  if (!weights.empty()) entries.push_back({"m/data/weights/model_weights_config.json", weights});
  footprint_test::write_zip(dir + "/m.pt2", entries);
  return dir + "/m.pt2";
}

// y = relu(x).view(8): x [2, 4] float32 (32 bytes), a parameter w [4] and a buffer b [4] that
// the weights config stores in one file (tied).
const char* kProgram = R"({"torch_version": "2.11.0", "graph_module": {
  "graph": {
    "tensor_values": {
      "p_w": {"dtype": 7, "sizes": [{"as_int": 4}], "requires_grad": true},
      "p_v": {"dtype": 7, "sizes": [{"as_int": 4}], "requires_grad": true},
      "b_n": {"dtype": 5, "sizes": [], "requires_grad": false},
      "x": {"dtype": 7, "sizes": [{"as_int": 2}, {"as_int": 4}]},
      "relu": {"dtype": 7, "sizes": [{"as_int": 2}, {"as_int": 4}]},
      "view": {"dtype": 7, "sizes": [{"as_int": 8}]}},
    "inputs": [{"as_tensor": {"name": "p_w"}}, {"as_tensor": {"name": "p_v"}},
               {"as_tensor": {"name": "b_n"}}, {"as_tensor": {"name": "x"}}],
    "outputs": [{"as_tensor": {"name": "view"}}],
    "nodes": [
      {"target": "torch.ops.aten.relu.default",
       "inputs": [{"name": "self", "arg": {"as_tensor": {"name": "x"}}}],
       "outputs": [{"as_tensor": {"name": "relu"}}],
       "metadata": {"nn_module_stack": "L__self__,,__main__.Net;L__self__act,act,torch.nn.modules.activation.ReLU"}},
      {"target": "torch.ops.aten.view.default",
       "inputs": [{"name": "self", "arg": {"as_tensor": {"name": "relu"}}},
                  {"name": "size", "arg": {"as_ints": [8]}}],
       "outputs": [{"as_tensor": {"name": "view"}}],
       "metadata": {"nn_module_stack": "L__self__,,__main__.Net"}}]},
  "signature": {"input_specs": [
    {"parameter": {"arg": {"name": "p_w"}, "parameter_name": "w"}},
    {"parameter": {"arg": {"name": "p_v"}, "parameter_name": "v"}},
    {"buffer": {"arg": {"name": "b_n"}, "buffer_name": "n", "persistent": true}},
    {"user_input": {"arg": {"as_tensor": {"name": "x"}}}}], "output_specs": []}}})";

}  // namespace

// Parameters w and v (4 float32 each) share weight_0, so v is tied to w: 4 parameters, 16 bytes;
// the buffer n is one int64.
TEST(Pt2, ParametersBuffersAndTies) {
  std::string dir = footprint_test::make_temp_dir();
  std::string path =
      pt2_file(dir, kProgram,
               R"({"config": {"w": {"path_name": "weight_0"}, "v": {"path_name": "weight_0"},
                     "n": {"path_name": "weight_1"}}})");
  fp::Model m = fp::read_model(path);
  ASSERT_EQ(m.tensors.size(), 3u);
  auto r = fp::params(m);
  EXPECT_EQ(r.params.numel, 4);
  EXPECT_EQ(r.params.bytes, 16);
  EXPECT_EQ(r.tied, 1);
  EXPECT_EQ(r.buffers.numel, 1);
  EXPECT_EQ(r.buffers.bytes, 8);
  std::filesystem::remove_all(dir);
}

// The graph as a trace: relu in module act makes 32 bytes and frees x (its last reader); view is
// a view of relu and makes nothing; relu is returned (through the view), so never freed.
TEST(Pt2, GraphBecomesATrace) {
  std::string dir = footprint_test::make_temp_dir();
  fd::Pt2Program p = fd::read_pt2_program(pt2_file(dir, kProgram));
  ASSERT_EQ(p.trace.ops.size(), 2u);
  EXPECT_EQ(p.trace.ops[0].name, "aten::relu");
  EXPECT_EQ(p.trace.ops[1].name, "aten::view");
  ASSERT_EQ(p.trace.calls.size(), 2u);
  EXPECT_EQ(p.trace.calls[0].type, "Net");
  EXPECT_EQ(p.trace.calls[1].path, "act");
  EXPECT_EQ(p.trace.calls[1].type, "ReLU");
  EXPECT_EQ(p.trace.ops[0].call, 1);
  EXPECT_EQ(p.trace.ops[1].call, 0);
  ASSERT_EQ(p.inputs.size(), 1u);
  EXPECT_EQ(p.inputs[0].shape, (std::vector<int64_t>{2, 4}));
  ASSERT_EQ(p.trace.memory.size(), 3u);
  EXPECT_EQ(p.trace.memory[0].bytes, 32);  // x, before any op
  EXPECT_EQ(p.trace.memory[0].op, -1);
  EXPECT_EQ(p.trace.memory[1].bytes, 32);  // relu
  EXPECT_EQ(p.trace.memory[1].op, 0);
  EXPECT_EQ(p.trace.memory[2].bytes, -32);  // x freed after relu
  EXPECT_EQ(p.trace.memory[2].id, p.trace.memory[0].id);
  std::filesystem::remove_all(dir);
}

// What memory and fit run (python/footprint/_pt2.py): the program as footprint's reader writes it
// out. relu in module act reads x and makes relu; view reads relu with a literal size.
TEST(Pt2, DocumentNamesEachOpAndItsValues) {
  std::string dir = footprint_test::make_temp_dir();
  auto src = fd::open_file(pt2_file(dir, kProgram));
  auto zip = fd::open_zip(*src);
  auto doc = nlohmann::json::parse(fd::pt2_document(*zip, "m.pt2"));
  ASSERT_EQ(doc["nodes"].size(), 2u);
  EXPECT_EQ(doc["nodes"][0]["target"], "aten::relu.default");
  EXPECT_EQ(doc["nodes"][0]["kwargs"], nlohmann::json::parse(R"({"self": {"ref": "x"}})"));
  EXPECT_EQ(doc["nodes"][0]["outputs"], nlohmann::json::parse(R"([{"ref": "relu"}])"));
  EXPECT_EQ(doc["nodes"][1]["kwargs"],
            nlohmann::json::parse(R"({"self": {"ref": "relu"}, "size": [8]})"));
  EXPECT_EQ(doc["calls"][doc["nodes"][0]["call"].get<int>()]["path"], "act");
  EXPECT_EQ(doc["calls"][0]["type"], "Net");
  ASSERT_EQ(doc["inputs"].size(), 1u);
  EXPECT_EQ(doc["inputs"][0]["shape"], nlohmann::json::parse("[2, 4]"));
  EXPECT_EQ(doc["inputs"][0]["dtype"], "float32");
  ASSERT_EQ(doc["parameters"].size(), 2u);
  EXPECT_EQ(doc["parameters"][0]["name"], "w");
  EXPECT_EQ(doc["buffers"][0]["dtype"], "int64");
  std::filesystem::remove_all(dir);
}

namespace {

// kProgram with x's first size replaced by `size` (a SymInt's JSON).
std::string with_x_size(const std::string& size) {
  std::string p = kProgram;
  std::string x = R"("x": {"dtype": 7, "sizes": [{"as_int": 2}, )";
  p.replace(p.find(x), x.size(), R"("x": {"dtype": 7, "sizes": [)" + size + ", ");
  return p;
}

nlohmann::json document(const std::string& dir, const std::string& program) {
  auto src = fd::open_file(pt2_file(dir, program));
  auto zip = fd::open_zip(*src);
  return nlohmann::json::parse(fd::pt2_document(*zip, "m.pt2"));
}

}  // namespace

// A symbolic size is read as data: a symbol's name (sympy's srepr of it, as torch 2.11 writes it),
// or an expression footprint does not read, whose hint stands. torch.export.load evals it.
TEST(Pt2, SymbolicSizesAreReadAsDataNeverEvaluated) {
  std::string dir = footprint_test::make_temp_dir();
  auto sym = document(
      dir,
      with_x_size(
          R"j({"as_expr": {"expr_str": "Symbol('s77', positive=True, integer=True)", "hint": {"as_int": 2}}})j"));
  EXPECT_EQ(sym["inputs"][0]["shape"][0], nlohmann::json::parse(R"({"symbol": "s77", "hint": 2})"));
  auto evil = document(
      dir,
      with_x_size(
          R"j({"as_expr": {"expr_str": "__import__('os').system('x') or 2", "hint": {"as_int": 2}}})j"));
  EXPECT_EQ(evil["inputs"][0]["shape"][0],
            nlohmann::json::parse(R"({"expression": true, "hint": 2})"));
  std::filesystem::remove_all(dir);
}

// Every graph tensor's size, in 128 bits: 2^62 x 4 elements, or 2^31 x 2^31 floats (2^64 bytes),
// are refused, where 64-bit products wrapped to 0 B.
TEST(Pt2, GraphTensorSizesAreCheckedIn128Bits) {
  std::string dir = footprint_test::make_temp_dir();
  for (const char* sizes : {R"([{"as_int": 4611686018427387904}, {"as_int": 4}])",
                            R"([{"as_int": 2147483648}, {"as_int": 2147483648}])"}) {
    std::string p = kProgram;
    std::string relu = R"("relu": {"dtype": 7, "sizes": [{"as_int": 2}, {"as_int": 4}]})";
    p.replace(p.find(relu), relu.size(),
              std::string(R"("relu": {"dtype": 7, "sizes": )") + sizes + "}");
    EXPECT_NE(footprint_test::error_of([&] {
                fd::read_pt2_program(pt2_file(dir, p));
              }).find("too large to model"),
              std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

// An op outside aten (a higher-order op, a custom op) or one the sandbox refuses is refused
// before anything runs, on summary's path and the runner's alike.
TEST(Pt2, ForeignAndRefusedOpsAreRefusedBeforeAnythingRuns) {
  std::string dir = footprint_test::make_temp_dir();
  for (auto [target, says] :
       {std::pair{"torch.ops.higher_order.cond", "does not run"},
        std::pair{"torch.ops.mylib.evil.default", "does not run"},
        std::pair{"torch.ops.aten.from_file.default", "reads or writes a file"},
        std::pair{"builtins.eval", "does not run"}}) {
    std::string p = kProgram;
    p.replace(p.find("torch.ops.aten.relu.default"), 27, target);
    EXPECT_NE(footprint_test::error_of([&] { fd::read_pt2_program(pt2_file(dir, p)); }).find(says),
              std::string::npos)
        << target;
    EXPECT_NE(footprint_test::error_of([&] { document(dir, p); }).find(says), std::string::npos)
        << target;
  }
  std::filesystem::remove_all(dir);
}

// The tables of the gguf package (GGML_QUANT_SIZES: ggml type id, block size, bytes per block),
// written by tests/gen/make_formats.py: footprint's table must hold each, the same.
TEST(Gguf, BlockTableEqualsTheGgufPackages) {
  std::string path = std::string(FOOTPRINT_MODELS) + "/formats/expected.json";
  auto j = nlohmann::json::parse(footprint_test::read_file(path));
  int checked = 0;
  for (const auto& [name, v] : j.at("ggml_quant_sizes").items()) {
    auto dtype = fp::dtype_from_ggml(v[0].get<uint32_t>());
    ASSERT_TRUE(dtype.has_value()) << name;
    EXPECT_EQ(fp::dtype_block(*dtype), v[1].get<int64_t>()) << name;
    EXPECT_EQ(fp::dtype_block_bytes(*dtype), v[2].get<int64_t>()) << name;
    ++checked;
  }
  EXPECT_GE(checked, 30);
}
