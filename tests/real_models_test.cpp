// Real torchvision models saved by the pinned PyTorch at test time (tests/gen/make_models.py):
// footprint's counts must equal what PyTorch itself computes, in every format.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "footprint/footprint.h"
#include "test_util.h"

namespace fp = footprint;
using nlohmann::json;

namespace {

fp::ParamReport report(const std::string& file) {
  return fp::params(fp::read_model(std::string(FOOTPRINT_MODELS) + "/" + file));
}

struct Case {
  std::string model, file;
  bool records_trainable;  // TorchScript records requires_grad; a state_dict does not
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.file;
}

class RealModel : public ::testing::TestWithParam<Case> {};

TEST_P(RealModel, CountsEqualPyTorch) {
  const Case& c = GetParam();
  const json& e = footprint_test::models_expected().at(c.model);
  auto r = report(c.file);
  EXPECT_EQ(r.params.numel, e.at("params").get<int64_t>())
      << "sum(p.numel() for p in model.parameters())";
  EXPECT_EQ(r.params.tensors, e.at("param_tensors").get<int64_t>());
  EXPECT_EQ(r.buffers.numel, e.at("buffers").get<int64_t>())
      << "sum(b.numel() for b in model.buffers())";
  EXPECT_EQ(r.buffers.tensors, e.at("buffer_tensors").get<int64_t>());
  EXPECT_EQ(r.total.bytes, e.at("bytes").get<int64_t>());
  if (c.records_trainable) EXPECT_EQ(r.trainable.numel, e.at("trainable").get<int64_t>());
  // The depth-1 roll-up equals each child's parameters() and buffers().
  for (const auto& [child, counts] : e.at("children").items()) {
    int64_t params = counts[0].get<int64_t>(), buffers = counts[1].get<int64_t>();
    const fp::ModuleRow* row = nullptr;
    for (const auto& m : r.modules)
      if (m.path == child) row = &m;
    if (c.model == "tied" && child == "head")
      continue;  // its only weight is the embedding's, counted there
    if (params + buffers == 0) {
      EXPECT_TRUE(row == nullptr || row->params.numel + row->buffers.numel == 0) << child;
      continue;
    }
    ASSERT_NE(row, nullptr) << child;
    EXPECT_EQ(row->params.numel, params) << child;
    EXPECT_EQ(row->buffers.numel, buffers) << child;
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* m :
       {"hybrid_network", "resnet18", "resnet50", "vgg16", "mobilenet_v2", "densenet121",
        "transformer", "transformer_bf16", "tied", "resnet18_frozen"}) {
    out.push_back({m, std::string(m) + ".pt", true});
    out.push_back({m, std::string(m) + ".pth", false});
    out.push_back({m, std::string(m) + ".safetensors", false});
  }
  out.push_back({"mixed", "mixed.pt", true});  // the state_dict formats cannot tell its buffers
  out.push_back({"resnet18", "resnet18_nested.pth", false});
  out.push_back({"resnet18", "resnet18_lightning.pth", false});
  out.push_back({"resnet18", "resnet18_sharded_safetensors/model.safetensors.index.json", false});
  out.push_back({"resnet18", "resnet18_sharded_bin/pytorch_model.bin.index.json", false});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Files, RealModel, ::testing::ValuesIn(cases()), [](const auto& info) {
  std::string name = info.param.file;
  for (char& ch : name)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
});

}  // namespace

TEST(RealModels, TiedEmbeddingCountedOnceWhereTheFormatKeepsTheTie) {
  // TorchScript and torch.save keep the tie (one storage); the safetensors file holds one copy.
  for (const char* file : {"tied.pt", "tied.pth"}) {
    auto r = report(file);
    EXPECT_EQ(r.tied, 1) << file;
    bool marked = false;
    for (const auto& t : r.tensors)
      marked = marked || (t.tensor.name == "head.weight" && t.tied_to == "embed.weight");
    EXPECT_TRUE(marked) << file;
  }
  EXPECT_EQ(report("tied.safetensors").tied, 0);
}

TEST(RealModels, Bf16BytesAreTwoPerElement) {
  int64_t params =
      footprint_test::models_expected().at("transformer_bf16").at("params").get<int64_t>();
  for (const char* file :
       {"transformer_bf16.pt", "transformer_bf16.pth", "transformer_bf16.safetensors"}) {
    auto r = report(file);
    EXPECT_EQ(r.params.bytes, 2 * params) << file;
    ASSERT_EQ(r.by_dtype.size(), 1u);
    EXPECT_EQ(r.by_dtype[0].dtype, fp::DType::kBFloat16);
  }
}

TEST(RealModels, NestedCheckpointsSayWhatWasCounted) {
  auto r = report("resnet18_nested.pth");
  std::string notes;
  for (const auto& n : r.notes) notes += n + "\n";
  EXPECT_NE(notes.find("'model' entry"), std::string::npos) << notes;
  // SGD with momentum keeps one momentum buffer per parameter tensor after a step.
  std::string momentum = std::to_string(
      footprint_test::models_expected().at("resnet18").at("param_tensors").get<int64_t>());
  EXPECT_NE(notes.find("'optimizer' entry holds " + momentum + " more tensor(s)"),
            std::string::npos)
      << notes;
  EXPECT_NE(report("resnet18_lightning.pth").notes.at(0).find("'state_dict' entry"),
            std::string::npos);
}

TEST(RealModels, ShardedCheckpointsRecordTheirShards) {
  auto r = report("resnet18_sharded_safetensors/model.safetensors.index.json");
  EXPECT_EQ(r.format, "sharded safetensors (2 shards)");
  EXPECT_EQ(r.tensors.front().tensor.file, "model-00001-of-00002.safetensors");
  EXPECT_EQ(r.tensors.back().tensor.file, "model-00002-of-00002.safetensors");
  EXPECT_EQ(report("resnet18_sharded_bin/pytorch_model.bin.index.json").format,
            "sharded torch.save checkpoint (2 shards)");
}

TEST(RealModels, Llama7BShardedAtFullSize) {
  // tests/gen/make_llama7b.py writes LLaMA-7B's 291 tensors in float16 over two sparse shards of
  // 13.5 GB in all. Hand count in that script: 6,738,415,616. The first seed: 25.10 GiB at fp32.
  fp::ParamOptions o;
  o.precisions = {fp::Precision::kFp32, fp::Precision::kBf16};
  auto r = fp::params(
      fp::read_model(std::string(FOOTPRINT_MODELS) + "/llama7b/model.safetensors.index.json"), o);
  EXPECT_EQ(r.params.numel, 6738415616);
  EXPECT_EQ(r.params.tensors, 291);              // embed + 32 x 9 + norm + lm_head
  EXPECT_EQ(r.params.bytes_at[0], 26953662464);  // x 4
  EXPECT_EQ(fp::human_bytes(r.params.bytes_at[0]), "25.10 GiB");
  EXPECT_EQ(r.params.bytes, 13476831232);  // stored in float16: x 2
  EXPECT_EQ(fp::human_bytes(r.params.bytes_at[1]), "12.55 GiB");
}

TEST(RealModels, KeepVarsStateDictRecordsParameters) {
  // state_dict(keep_vars=True) pickles nn.Parameters as such: parameters, their requires_grad and
  // hence the buffers are known. Only persistent buffers are in a state_dict.
  const auto& e = footprint_test::models_expected().at("mixed");
  auto r = report("mixed_keepvars.pth");
  EXPECT_EQ(r.roles, fp::RoleSource::kRecorded);
  EXPECT_EQ(r.params.numel, e.at("params").get<int64_t>());
  EXPECT_EQ(r.trainable.numel, e.at("trainable").get<int64_t>());
  EXPECT_EQ(r.buffers.numel, e.at("persistent_buffers").get<int64_t>());
  // Without keep_vars the float buffer 'mask' is indistinguishable from a parameter by name.
  auto plain = report("mixed.pth");
  EXPECT_EQ(plain.roles, fp::RoleSource::kByName);
  EXPECT_EQ(plain.params.numel + plain.buffers.numel,
            e.at("params").get<int64_t>() + e.at("persistent_buffers").get<int64_t>());
}
