// The meta runtime (issue 3's groundwork): models run on the meta device with exact allocation
// bytes, and the registered kernels give the shapes the CPU kernels give.
#include "torch/meta.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "footprint/engine.h"
#include "footprint/error.h"
#include "test_util.h"
#include "torch/sandbox.h"

namespace fd = footprint::detail;

namespace {

// A generated TorchScript model in training mode, its parameters and buffers on meta.
torch::jit::Module train_on_meta(const std::string& name) {
  fd::install_meta_runtime();
  auto model = torch::jit::load(std::string(FOOTPRINT_MODELS) + "/" + name + ".pt");
  model.train();
  fd::to_meta(model);
  return model;
}

}  // namespace

TEST(Meta, LinearAllocatesExactlyItsOutput) {
  fd::install_meta_runtime();
  torch::nn::Linear linear(torch::nn::LinearOptions(256, 512).bias(false));
  fd::to_meta(*linear);
  EXPECT_TRUE(linear->weight.is_meta());
  EXPECT_TRUE(linear->weight.requires_grad());  // kept across the swap
  torch::NoGradGuard no_grad;
  fd::MemoryRecorder rec;
  {
    auto x = torch::empty({4, 256}, torch::kMeta);  // 4 x 256 x 4 = 4,096 bytes
    auto y = linear(x);                             // 4 x 512 x 4 = 8,192 bytes
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{4, 512}));
  }
  ASSERT_EQ(rec.events().size(), 4u);  // two allocations, two frees
  EXPECT_EQ(rec.events()[0].bytes, 4096);
  EXPECT_EQ(rec.events()[1].bytes, 8192);
  EXPECT_EQ(rec.peak(), 12288);
  EXPECT_EQ(rec.live(), 0);
}

TEST(Meta, FreesOfEarlierRecordersAreNotCounted) {
  fd::install_meta_runtime();
  at::Tensor kept;
  {
    fd::MemoryRecorder first;
    kept = torch::empty({10}, torch::kMeta);  // 40 bytes, under the first recorder
  }
  fd::MemoryRecorder second;
  kept.reset();                              // its free belongs to the first recorder, gone now
  auto t = torch::empty({3}, torch::kMeta);  // 12 bytes
  EXPECT_EQ(second.live(), 12);
  EXPECT_EQ(second.events().size(), 1u);
}

// Each convolution on meta against the same module on real CPU tensors, and against the hand
// formula out = (in + 2p - d(k-1) - 1)/s + 1, or for a transpose (in-1)s - 2p + d(k-1) +
// output_padding + 1.
TEST(Meta, ConvolutionShapesMatchTheCpuKernels) {
  fd::install_meta_runtime();
  namespace nn = torch::nn;
  struct Case {
    nn::AnyModule module;
    std::vector<int64_t> input, expected;
  };
  std::vector<Case> cases;
  // (32 + 2 - 2 - 1)/2 + 1 = 16
  cases.push_back({nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(3, 8, 3).stride(2).padding(1))),
                   {2, 3, 32, 32},
                   {2, 8, 16, 16}});
  // (16-1)*2 - 2 + 3 + 0 + 1 = 32
  cases.push_back(
      {nn::AnyModule(nn::ConvTranspose2d(nn::ConvTranspose2dOptions(8, 4, 4).stride(2).padding(1))),
       {2, 8, 16, 16},
       {2, 4, 32, 32}});
  // (50 - 2*4 - 1)/1 + 1 = 42
  cases.push_back(
      {nn::AnyModule(nn::Conv1d(nn::Conv1dOptions(4, 6, 5).dilation(2))), {1, 4, 50}, {1, 6, 42}});
  // depthwise: (10 - 2 - 1) + 1 = 8
  cases.push_back({nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(8, 8, 3).groups(8))),
                   {1, 8, 10, 10},
                   {1, 8, 8, 8}});
  // 3-D, stride 2 on 9: (9 - 2 - 1)/2 + 1 = 4
  cases.push_back({nn::AnyModule(nn::Conv3d(nn::Conv3dOptions(2, 3, 3).stride(2))),
                   {1, 2, 9, 9, 9},
                   {1, 3, 4, 4, 4}});
  torch::NoGradGuard no_grad;
  for (auto& c : cases) {
    auto cpu = c.module.forward(torch::zeros(c.input));
    EXPECT_EQ(cpu.sizes().vec(), c.expected);
    fd::to_meta(*c.module.ptr());
    auto meta = c.module.forward(torch::empty(c.input, torch::kMeta));
    EXPECT_EQ(meta.sizes().vec(), c.expected);
  }
}

TEST(Meta, TorchvisionModelsRunOnMeta) {
  fd::install_meta_runtime();
  torch::NoGradGuard no_grad;
  for (const char* name : {"resnet18", "resnet50", "vgg16", "mobilenet_v2", "densenet121"}) {
    auto path = std::string(FOOTPRINT_MODELS) + "/" + name + ".pt";
    auto real = torch::jit::load(path);
    real.eval();
    auto cpu = real.forward({torch::zeros({1, 3, 64, 64})}).toTensor();
    auto model = torch::jit::load(path);
    model.eval();
    fd::to_meta(model);
    fd::MemoryRecorder rec;
    auto out = model.forward({torch::empty({8, 3, 224, 224}, torch::kMeta)}).toTensor();
    EXPECT_EQ(out.sizes().vec(), (std::vector<int64_t>{8, cpu.size(1)})) << name;
    // At least the input (8 x 3 x 224 x 224 x 4 = 4,816,896 bytes) and the logits were live.
    EXPECT_GE(rec.peak(), 4816896 + 8 * 1000 * 4) << name;
  }
}

// Forward, a loss and backward on meta, in training mode: every parameter gets a gradient of its
// own shape, as on CPU.
TEST(Meta, TrainingPassRunsOnMeta) {
  for (const char* name : {"resnet18", "mobilenet_v2", "densenet121", "vgg16"}) {
    auto model = train_on_meta(name);
    fd::MemoryRecorder rec;
    auto out = model.forward({torch::empty({4, 3, 224, 224}, torch::kMeta)}).toTensor();
    auto loss = out.to(torch::kFloat).square().mean();
    size_t before = rec.events().size();
    loss.backward();
    // Backward runs on this thread, so the recorder sees it: at least every parameter's gradient,
    // sum(p.numel()) x 4 bytes by PyTorch's count, is allocated during it.
    int64_t allocated = 0;
    for (size_t i = before; i < rec.events().size(); ++i)
      allocated += std::max<int64_t>(rec.events()[i].bytes, 0);
    EXPECT_GE(allocated, 4 * footprint_test::models_expected().at(name).at("params").get<int64_t>())
        << name;
    for (const auto& p : model.named_parameters()) {
      ASSERT_TRUE(p.value.grad().defined()) << name << " " << p.name;
      EXPECT_EQ(p.value.grad().sizes(), p.value.sizes()) << name << " " << p.name;
    }
  }
}

// The bytes a training-mode forward leaves allocated on meta equal what the real CPU forward
// leaves, measured by PyTorch's profiler at test time (tests/gen/make_models.py). The CPU
// kernels' scratch is freed inside the forward, so the growth agrees to the byte.
TEST(Meta, ForwardGrowthEqualsRealCpu) {
  fd::set_cuda_target(false);  // the CPU's kernels (dropout's mask of the input's dtype)
  struct Restore {
    ~Restore() { fd::set_cuda_target(true); }
  } restore;
  for (const char* name : {"resnet18", "mobilenet_v2", "vgg16", "densenet121"}) {
    auto model = train_on_meta(name);
    auto x = torch::empty({2, 3, 224, 224}, torch::kMeta);
    fd::MemoryRecorder rec;
    auto out = model.forward({x}).toTensor();
    EXPECT_EQ(
        rec.live(),
        footprint_test::models_expected().at(name).at("forward_growth_train_b2").get<int64_t>())
        << name;
  }
}

// The sandbox's refused ops (src/torch/sandbox.cpp), held to every operator this LibTorch
// registers: each whose name speaks of files, processes, streams or threads is refused, or is on
// this list with the reason it is harmless on meta.
TEST(Sandbox, EveryOperatorThatReachesOutIsRefused) {
  fd::install_meta_runtime();
  const std::set<std::string> harmless = {
      "aten::_print",        "prim::Print",  // the print handler sends them to stderr (or nowhere)
      "aten::isprintable",                   // a string method
      "aten::record_stream",                 // CUDA stream bookkeeping of a tensor: none on meta
      "prim::profile",       "prim::profile_ivalue",  // the graph executor's profiling nodes
  };
  std::regex reaches_out(
      "file|save|load|socket|rpc|c10d|fork|wait|await|print|stream|write|"
      "read|cuda::|symm_mem|_dtensor|exec|system|getenv|popen");
  int refused = 0;
  for (const auto& op : torch::jit::getAllOperators()) {
    std::string name = op->schema().name();
    if (name.rfind("aten::miopen", 0) == 0 || name.rfind("aten::_use_miopen", 0) == 0 ||
        name.rfind("profiler::", 0) == 0)
      continue;  // ROCm kernels ("open" in miopen), and the in-process profiler's records
    if (!std::regex_search(name, reaches_out)) continue;
    if (fd::refused_op(name)) {
      ++refused;
      continue;
    }
    EXPECT_TRUE(harmless.count(name)) << name << " is neither refused nor known to be harmless";
  }
  EXPECT_GE(refused, 3);  // aten::from_file, aten::save, aten::wait at least
  for (const char* op : {"aten::from_file", "aten::save", "prim::fork", "prim::rpc_async",
                         "c10d::allreduce_", "cuda::synchronize"})
    EXPECT_TRUE(fd::refused_op(op)) << op;
  EXPECT_FALSE(fd::refused_op("aten::add"));
}

namespace {

// A C++ module whose forward makes a real CPU tensor of `bytes`, then adds it (as a scalar) to
// the meta input: real CPU memory in a meta capture, which the sandbox bounds.
struct MakesCpuTensors : torch::nn::Module {
  int64_t bytes;
  explicit MakesCpuTensors(int64_t n) : bytes(n) {}
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = torch::empty({bytes}, torch::TensorOptions().dtype(torch::kUInt8));
    return x + double(y.numel());
  }
};

footprint::CaptureOptions small(int64_t cpu_bytes, int64_t ops) {
  footprint::CaptureOptions o;
  o.inputs = footprint::parse_inputs("2x4");
  o.limits.cpu_bytes = cpu_bytes;
  o.limits.ops = ops;
  return o;
}

}  // namespace

// 64 MiB of real CPU memory against a limit of 1 MiB: the capture stops with the limit's name;
// 512 KiB passes. The same forward on a CPU capture is not limited (real tensors are the point).
TEST(Sandbox, RealCpuMemoryInAMetaCaptureIsBounded) {
  auto big = std::make_shared<MakesCpuTensors>(int64_t(64) << 20);
  auto forward = [&](const std::vector<torch::Tensor>& in) { return big->forward(in[0]); };
  std::string err =
      footprint_test::error_of([&] { footprint::capture(*big, forward, small(1 << 20, 1000)); });
  EXPECT_FALSE(err.empty()) << "64 MiB of CPU tensors passed a 1 MiB limit";
  EXPECT_NE(err.find("`max-cpu-memory`"), std::string::npos) << err;
  EXPECT_NE(err.find("1.00 MiB"), std::string::npos) << err;
  auto fine = std::make_shared<MakesCpuTensors>(int64_t(512) << 10);
  auto forward_fine = [&](const std::vector<torch::Tensor>& in) { return fine->forward(in[0]); };
  EXPECT_NO_THROW(footprint::capture(*fine, forward_fine, small(1 << 20, 1000)));
  // The limit ends with the capture: the next allocation outside one is not counted.
  EXPECT_NO_THROW(torch::empty({int64_t(8) << 20}, torch::kUInt8));
}

// A forward of 10 adds against a limit of 5 ops: stopped at the sixth, naming the limit and the op.
TEST(Sandbox, TheOpCountIsBounded) {
  auto m = std::make_shared<torch::nn::Module>();
  auto forward = [](const std::vector<torch::Tensor>& in) {
    torch::Tensor x = in[0];
    for (int i = 0; i < 10; ++i) x = x + 1;
    return x;
  };
  std::string err =
      footprint_test::error_of([&] { footprint::capture(*m, forward, small(1 << 20, 5)); });
  EXPECT_FALSE(err.empty()) << "10 adds passed a limit of 5 ops";
  EXPECT_NE(err.find("more than 5 aten ops"), std::string::npos) << err;
  EXPECT_NE(err.find("aten::add"), std::string::npos) << err;
  EXPECT_NO_THROW(footprint::capture(*m, forward, small(1 << 20, 100)));
}
