// The engine and the summary: numbers worked out by hand, what a real PyTorch forward reports
// (tests/gen/make_models.py, at test time), and meta against a real CPU run of the same code.
#include "footprint/engine.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "footprint/footprint.h"
#include "seed_models.h"
#include "test_util.h"

namespace fp = footprint;

namespace {

std::string model(const std::string& name) {
  return std::string(FOOTPRINT_MODELS) + "/" + name + ".pt";
}

fp::Summary summarize(const std::string& name, const std::string& input, bool train = false) {
  fp::SummaryOptions o;
  o.inputs = fp::parse_inputs(input);
  o.train = train;
  return fp::summary_file(model(name), o);
}

std::vector<const fp::SummaryRow*> rows_of(const fp::Summary& s, const std::string& path) {
  std::vector<const fp::SummaryRow*> out;
  for (const auto& r : s.rows)
    if (r.path == path) out.push_back(&r);
  return out;
}

using Shapes = std::vector<std::vector<int64_t>>;

}  // namespace

// Twice at 4x8: fc (Linear 8->8) runs twice, out (8->2) once.
//   MACs: fc 4x8 outputs x 8 inputs = 256 per call, 512 for two; out 4x2 x 8 = 64. Total 576.
//   Bias adds: 32 + 32 + 8 = 72. relu between: 32 elements, 1 FLOP each.
//   FLOPs = 2 x 576 + 72 + 32 = 1,256.
//   Parameters: fc 8x8 + 8 = 72, out 8x2 + 2 = 18: 90, with fc's counted once.
TEST(Summary, AModuleCalledTwiceIsCountedTwiceAndItsWeightsOnce) {
  fp::Summary s = summarize("twice", "4x8");
  EXPECT_EQ(s.forward.macs, 576);
  EXPECT_EQ(s.forward.bias, 72);
  EXPECT_EQ(s.forward.flops, 1256);
  EXPECT_EQ(s.params, 90);
  auto fc = rows_of(s, "fc");
  ASSERT_EQ(fc.size(), 2u);
  EXPECT_FALSE(fc[0]->repeat);
  EXPECT_TRUE(fc[1]->repeat);
  EXPECT_EQ(fc[0]->params, 72);
  EXPECT_EQ(fc[1]->params, 0);
  for (auto* r : fc) {
    EXPECT_EQ(r->forward.macs, 256);
    EXPECT_EQ(r->output_shapes, (Shapes{{4, 8}}));
  }
  // The rows add up to the total: each fc call, out, and the relu the root runs itself.
  EXPECT_EQ(fc[0]->forward.flops + fc[1]->forward.flops + rows_of(s, "out")[0]->forward.flops + 32,
            s.rows[0].forward.flops);
  EXPECT_TRUE(s.complete());
}

// Attention written with functional ops, x: 2x5x8, d = 8, no biases.
//   q, k, v: 3 x (10 rows x 8 outputs x 8 inputs) = 1,920 MACs.
//   q @ k^T: [2,5,8] @ [2,8,5] -> 2x5x5 = 50 scores x 8 = 400 MACs; * scale: 50 FLOPs.
//   softmax over the 50 scores: 5 FLOPs each = 250.
//   (2x5x5) @ (2x5x8) -> 80 outputs x 5 = 400 MACs.
//   MACs = 2,720; FLOPs = 2 x 2,720 + 50 + 250 = 5,740.
TEST(Summary, AttentionWrittenAsMatmulAndSoftmaxIsCounted) {
  fp::Summary s = summarize("matmul_attention", "2x5x8");
  EXPECT_EQ(s.forward.macs, 2720);
  EXPECT_EQ(s.forward.flops, 5740);
  std::map<std::string, int64_t> macs, calls;
  for (const auto& op : s.by_op) {
    macs[op.name] += op.cost.macs;
    calls[op.name] += op.count;
  }
  EXPECT_EQ(calls["aten::matmul"], 2);
  EXPECT_EQ(macs["aten::matmul"], 800);
  EXPECT_EQ(calls["aten::softmax"], 1);
  EXPECT_EQ(s.rows[0].output_shapes, (Shapes{{2, 5, 8}}));
}

// The seed's HybridNetwork at 1x1x28x28, by hand (positions x out channels x in/groups x k x k):
//   entry_conv 24x24 x 6 x 1 x 25 = 86,400
//   stage_a at 12x12 = 144 positions, 6 channels in:
//     1x1 12x6 = 10,368; 3x3 reduce 10x6 = 8,640; 3x3 expand 18x10x9 = 233,280;
//     5x5 reduce 8x6 = 6,912; 5x5 expand 14x8x25 = 403,200; pool conv 8x6 = 6,912: 669,312
//   transition 8x8 x 12 x 52 x 25 = 998,400
//   stage_b at 4x4 = 16 positions, 12 in: 2,304 + 1,920 + 25,920 + 1,536 + 44,800 + 1,536 = 78,016
//   predictor 10 x 832 = 8,320.                               MACs = 1,840,448
// Bias adds, one per conv/linear output element: 3,456 + 144 x (12+10+18+8+14+8) + 768
//   + 16 x 70 + 10 = 15,434.
// Other ops: max pools 2x2 over 864 and 192 outputs = 4,224; relu on 864 + 192 = 1,056;
//   avg pools 3x3 over 6x144 and 12x16 outputs = 9 x 1,056 = 9,504; cat and view 0.
// FLOPs = 2 x 1,840,448 + 15,434 + 4,224 + 1,056 + 9,504 = 3,711,114.
TEST(Summary, SeedHybridNetworkByHand) {
  fp::Summary s = summarize("hybrid_network", "1x1x28x28");
  EXPECT_EQ(s.forward.macs, 1840448);
  EXPECT_EQ(s.forward.bias, 15434);
  EXPECT_EQ(s.forward.flops, 3711114);
  EXPECT_EQ(s.params, 33762);
  EXPECT_EQ(fp::print_thop_lines(s),
            "Computational Cost: 3.71 MFLOPs (1.84 MMACs; thop's profile() reports the MACs)\n"
            "Parameter Count: 33,762\n");
  // spatial_reduce runs twice: 6x24x24 -> 6x12x12, then 12x8x8 -> 12x4x4.
  auto pool = rows_of(s, "spatial_reduce");
  ASSERT_EQ(pool.size(), 2u);
  EXPECT_EQ(pool[0]->output_shapes, (Shapes{{1, 6, 12, 12}}));
  EXPECT_EQ(pool[1]->output_shapes, (Shapes{{1, 12, 4, 4}}));
}

// The same network as a LibTorch C++ module: its ops are attributed to the module whose
// parameters they read, and the totals are the same hand counts.
TEST(Summary, SeedHybridNetworkAsACppModule) {
  footprint_examples::HybridNetwork net;
  fp::SummaryOptions o;
  o.inputs = fp::parse_inputs("1x1x28x28");
  fp::Summary s = fp::summary(net, o);
  EXPECT_EQ(s.forward.macs, 1840448);
  EXPECT_EQ(s.forward.flops, 3711114);
  EXPECT_EQ(s.params, 33762);
  auto entry = rows_of(s, "entry_conv");
  ASSERT_EQ(entry.size(), 1u);
  EXPECT_EQ(entry[0]->forward.macs, 86400);
  EXPECT_EQ(entry[0]->output_shapes, (Shapes{{1, 6, 24, 24}}));
  EXPECT_TRUE(net->entry_conv->weight.is_meta());  // as engine.h says: moved in place
}

// Training: the backward of a conv or linear costs twice its forward MACs (input and weight
// gradients); the bias gradient is a sum. For Twice at 4x8: fc's first call needs no input
// gradient (its input is the data), so backward MACs = 256 (fc weight) + 2 x 256 (fc again)
// + 2 x 64 (out) = 896.
TEST(Summary, TrainingCountsBackwardApart) {
  fp::Summary s = summarize("twice", "4x8", true);
  EXPECT_TRUE(s.train);
  EXPECT_EQ(s.forward.macs, 576);
  EXPECT_EQ(s.backward.macs, 896);
  auto fc = rows_of(s, "fc");
  ASSERT_EQ(fc.size(), 2u);
  EXPECT_EQ(fc[0]->backward.macs, 256);
  EXPECT_EQ(fc[1]->backward.macs, 512);
  EXPECT_EQ(rows_of(s, "out")[0]->backward.macs, 128);
}

TEST(Summary, AnOpWithNoMetaKernelAndNoRuleIsNamedAndTheRestCounted) {
  fp::Summary s = summarize("no_meta_kernel", "3x4");
  EXPECT_FALSE(s.complete());
  ASSERT_EQ(s.gaps.size(), 2u);  // guessed shapes, and no FLOP rule
  for (const auto& g : s.gaps) EXPECT_EQ(g.rfind("aten::logit: ", 0), 0u) << g;
  // Both linears are still counted: 2 x 3x4 outputs x 4 inputs = 96 MACs.
  EXPECT_EQ(s.forward.macs, 96);
  EXPECT_EQ(rows_of(s, "b")[0]->output_shapes, (Shapes{{3, 4}}));
  EXPECT_TRUE(s.rows[0].gap);
  EXPECT_FALSE(rows_of(s, "a")[0]->gap);
}

TEST(Summary, ErrorsNameTheFileAndTheProblem) {
  auto error = [](const std::string& path, const std::string& input) {
    try {
      fp::SummaryOptions o;
      o.inputs = fp::parse_inputs(input);
      fp::summary_file(path, o);
    } catch (const fp::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string pth = std::string(FOOTPRINT_MODELS) + "/resnet18.pth";
  EXPECT_EQ(error(pth, "1x3x224x224").rfind(pth + ": is a torch.save checkpoint", 0), 0u);
  std::string wrong = error(model("resnet18"), "1x1x224x224");
  EXPECT_NE(wrong.find("the model failed on input 1x1x224x224: Given groups=1, weight of size "
                       "[64, 3, 7, 7], expected input[1, 1, 224, 224] to have 3 channels"),
            std::string::npos)
      << wrong;
  EXPECT_EQ(wrong.find('\n'), std::string::npos);
}

class TorchvisionSummary : public ::testing::TestWithParam<const char*> {};

// MACs against the count from each layer's shapes (make_models.py), and every module call's
// output shape against forward hooks on the real model.
TEST_P(TorchvisionSummary, MacsAndEveryOutputShapeMatchPyTorch) {
  const std::string name = GetParam();
  const auto& truth = footprint_test::models_expected()[name]["summary_1x3x224x224"];
  fp::Summary s = summarize(name, "1x3x224x224");
  int64_t conv_linear = 0;
  for (const auto& op : s.by_op)
    if (op.name == "aten::conv2d" || op.name == "aten::linear") conv_linear += op.cost.macs;
  EXPECT_EQ(conv_linear, truth["conv_linear_macs"].get<int64_t>());
  EXPECT_EQ(s.forward.macs, conv_linear);  // no other op multiplies-and-adds in these models
  EXPECT_TRUE(s.complete()) << s.gaps.front();

  std::map<std::string, std::vector<Shapes>> ours;
  for (const auto& r : s.rows) ours[r.path].push_back(r.output_shapes);
  std::map<std::string, std::vector<Shapes>> theirs;
  for (const auto& [path, calls] : truth["shapes"].items())
    for (const auto& call : calls) theirs[path].push_back(call.get<Shapes>());
  for (const auto& [path, calls] : theirs) {
    ASSERT_TRUE(ours.count(path)) << name << ": no row for " << path;
    EXPECT_EQ(ours[path], calls) << name << ": " << path;
  }
  EXPECT_EQ(ours.size(), theirs.size());
}

// Published figures (torchvision's model docs: GFLOPS, which there count MACs): ResNet-18 1.81,
// ResNet-50 4.09, VGG-16 15.47, at 224x224; our exact counts round to them.
TEST(TorchvisionPublished, MacsRoundToThePublishedFigures) {
  for (auto [name, gmacs] : {std::pair{"resnet18", 1.81}, {"resnet50", 4.09}, {"vgg16", 15.47}}) {
    fp::Summary s = summarize(name, "1x3x224x224");
    EXPECT_NEAR(s.forward.macs / 1e9, gmacs, 0.005) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, TorchvisionSummary,
                         ::testing::Values("resnet18", "resnet50", "vgg16", "mobilenet_v2",
                                           "densenet121"));

namespace {

// Per top-level op (an op no other op called: conv2d, not the convolution inside it; an
// autograd node or the engine's wrapper around it in backward): its name, its outputs' shapes,
// and the bytes allocated under it, gross and net of what it freed.
struct TopOp {
  std::string name;
  Shapes outputs;
  int64_t allocated = 0, net = 0;
};

std::vector<TopOp> top_ops(const fp::Trace& t) {
  std::vector<TopOp> out;
  std::vector<int> top_of(t.ops.size(), -1);
  for (size_t i = 0; i < t.ops.size(); ++i) {
    const auto& op = t.ops[i];
    if (op.parent == -1) {
      top_of[i] = int(out.size());
      TopOp top{op.name, {}, 0, 0};
      for (const auto& v : op.outputs)
        for (const auto& m : v.tensors) top.outputs.push_back(m.shape);
      out.push_back(top);
    } else {
      top_of[i] = top_of[op.parent];
    }
  }
  for (const auto& e : t.memory) {
    if (e.op < 0) continue;
    auto& top = out[top_of[e.op]];
    if (e.bytes > 0) top.allocated += e.bytes;
    top.net += e.bytes;
  }
  return out;
}

fp::Trace capture(const std::string& name, bool train, fp::CaptureDevice device) {
  auto module = torch::jit::load(model(name));
  fp::CaptureOptions o;
  o.inputs = fp::parse_inputs("2x3x224x224");
  o.train = train;
  o.device = device;
  o.target = fp::Target::kCpu;  // the kernels of the real run it is held to
  return fp::capture(module, o);
}

}  // namespace

class MetaAgainstCpu : public ::testing::TestWithParam<std::tuple<const char*, bool>> {};

// The same TorchScript code on meta and on real CPU tensors (batch 2, one thread): the same
// top-level ops in the same order with the same output shapes, and per op the same bytes left
// allocated. What an op allocates and frees inside may differ only as docs/engine.md explains:
//   - CPU kernel scratch in convolutions (oneDNN's weight reorder and blocked output) and batch
//     norm (per-channel scale and shift; a temporary in its backward): CPU allocates more;
//   - scalars that ATen wraps in 0-dim CPU tensors (4 to 12 bytes: num_batches_tracked += 1,
//     mean's divisor, dropout's scale), which a GPU run keeps on the host too.
TEST_P(MetaAgainstCpu, SameOpsShapesAndBytesPerOp) {
  at::set_num_threads(1);  // ../shared/MEASUREMENT.md: the thread count changes CPU kernels
  auto [name, train] = GetParam();
  auto meta = top_ops(capture(name, train, fp::CaptureDevice::kMeta));
  auto cpu = top_ops(capture(name, train, fp::CaptureDevice::kCpu));
  ASSERT_EQ(meta.size(), cpu.size());
  const std::set<std::string> scratch{
      "aten::conv2d", "aten::batch_norm",
      "autograd::engine::evaluate_function: ConvolutionBackward0",
      "autograd::engine::evaluate_function: NativeBatchNormBackward0"};
  constexpr int64_t kHostScalars = 16;  // the most wrapped scalars measured under one op: 12 B
  for (size_t i = 0; i < meta.size(); ++i) {
    ASSERT_EQ(meta[i].name, cpu[i].name) << "op " << i;
    EXPECT_EQ(meta[i].outputs, cpu[i].outputs) << "op " << i << " " << meta[i].name;
    EXPECT_EQ(meta[i].net, cpu[i].net) << "op " << i << " " << meta[i].name;
    int64_t extra = cpu[i].allocated - meta[i].allocated;
    EXPECT_GE(extra, 0) << "op " << i << " " << meta[i].name;
    if (!scratch.count(meta[i].name))
      EXPECT_LE(extra, kHostScalars) << "op " << i << " " << meta[i].name;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, MetaAgainstCpu,
                         ::testing::Combine(::testing::Values("resnet18", "resnet50", "vgg16",
                                                              "mobilenet_v2", "densenet121"),
                                            ::testing::Bool()),
                         [](const ::testing::TestParamInfo<MetaAgainstCpu::ParamType>& info) {
                           return std::string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_train" : "_eval");
                         });
