// The C++ API on LibTorch modules: the seeds' models (hand counts beside each number) and a
// TorchScript module loaded with torch::jit::load (PyTorch's own counts).
#include <footprint/torch.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "seed_models.h"

namespace fp = footprint;

TEST(TorchApi, HybridNetworkExactCounts) {
  footprint_examples::HybridNetwork model;
  fp::ParamOptions o;
  o.precisions = {fp::Precision::kFp32, fp::Precision::kFp16, fp::Precision::kBf16};
  o.depth = 2;
  auto r = fp::params(*model, o);
  // entry_conv Conv2d(1,6,5): 6*1*5*5 + 6 = 156
  // MultiScaleModule(c): 1x1 paths (12+10+8+8)*c + 38 biases; 3x3 expand 18*10*9+18 = 1,638;
  //   5x5 expand 14*8*25+14 = 2,814; so 38c + 4,490: stage_a (c=6) 4,718, stage_b (c=12) 4,946
  // transition Conv2d(52,12,5): 12*52*25 + 12 = 15,612
  // predictor Linear(832,10): 8,320 + 10 = 8,330
  // total 156 + 4,718 + 15,612 + 4,946 + 8,330 = 33,762
  EXPECT_EQ(r.params.numel, 33762);
  EXPECT_EQ(r.trainable.numel, 33762);
  EXPECT_EQ(r.buffers.numel, 0);
  EXPECT_EQ(r.params.bytes_at[0], 135048);  // 33,762 x 4
  EXPECT_EQ(fp::human_bytes(r.params.bytes_at[0]).substr(0, 6),
            "131.88");                     // = 0.13 MiB, the seed's figure
  EXPECT_EQ(r.params.bytes_at[1], 67524);  // 33,762 x 2
  EXPECT_EQ(r.params.bytes_at[2], 67524);
  std::map<std::string, int64_t> rows;
  for (const auto& m : r.modules) rows[m.path] = m.params.numel;
  EXPECT_EQ(rows["entry_conv"], 156);
  EXPECT_EQ(rows["stage_a"], 4718);
  EXPECT_EQ(rows["stage_a.path_3x3_expand"], 1638);
  EXPECT_EQ(rows["transition"], 15612);
  EXPECT_EQ(rows["stage_b"], 4946);
  EXPECT_EQ(rows["stage_b.path_1x1"], 156);  // 12*12 + 12
  EXPECT_EQ(rows["predictor"], 8330);
  EXPECT_EQ(r.modules[0].type, "HybridNetwork");
}

TEST(TorchApi, ModelSizeModel) {
  footprint_examples::ModelSizeModel model;
  auto r = fp::params(*model);
  EXPECT_EQ(r.params.numel, 4800);  // (16*1*9 + 16) + (32*16*9 + 32) = 160 + 4,640
}

struct TiedImpl : torch::nn::Module {
  TiedImpl() {
    embed = register_module("embed", torch::nn::Embedding(100, 16));
    body = register_module("body", torch::nn::Linear(16, 16));
    head_weight = register_parameter("head_weight", embed->weight);
  }
  torch::nn::Embedding embed{nullptr};
  torch::nn::Linear body{nullptr};
  torch::Tensor head_weight;
};

TEST(TorchApi, TiedParameterCountedOnce) {
  auto model = std::make_shared<TiedImpl>();
  auto r = fp::params(*model);
  EXPECT_EQ(r.params.numel, 1872);  // 100*16 + (16*16 + 16): the head's weight is the embedding's
  EXPECT_EQ(r.tied, 1);
}

TEST(TorchApi, BuffersAndFrozenParameters) {
  torch::nn::BatchNorm2d bn(8);
  bn->bias.set_requires_grad(false);
  auto r = fp::params(*bn);
  EXPECT_EQ(r.params.numel, 16);    // weight 8 + bias 8
  EXPECT_EQ(r.trainable.numel, 8);  // the bias is frozen
  EXPECT_EQ(r.buffers.numel, 17);   // running_mean 8 + running_var 8 + num_batches_tracked 1
  EXPECT_EQ(r.buffers.bytes, 8 * 4 + 8 * 4 + 8);
}

TEST(TorchApi, JitModuleEqualsPyTorchAndTheFileReader) {
  std::string path = std::string(FOOTPRINT_MODELS) + "/resnet18_frozen.pt";
  std::ifstream f(std::string(FOOTPRINT_MODELS) + "/expected.json");
  auto expected = nlohmann::json::parse(f).at("resnet18_frozen");
  auto module = torch::jit::load(path);
  auto from_api = fp::params(module);
  auto from_file = fp::params(fp::read_model(path));
  EXPECT_EQ(from_api.params.numel, expected.at("params").get<int64_t>());
  EXPECT_EQ(from_api.trainable.numel, expected.at("trainable").get<int64_t>());
  EXPECT_EQ(from_api.buffers.numel, expected.at("buffers").get<int64_t>());
  EXPECT_EQ(from_file.trainable.numel, from_api.trainable.numel);
  EXPECT_EQ(from_file.tensors.size(), from_api.tensors.size());
}
