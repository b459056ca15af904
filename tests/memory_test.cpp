// The memory model on real TorchScript files, against hand calculations: bytes per parameter in
// model states, the seed's pytorch_modelsize numbers, the CUDA allocator's reserved bytes for a
// tiny model, and fit's bracket. (The CPU estimates against real runs:
// tests/memory_accuracy_test.py.)
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <gtest/gtest.h>

#include "footprint/engine.h"
#include "footprint/error.h"
#include "footprint/memory_viz.h"
#include "footprint/plan.h"
#include "test_util.h"

namespace fp = footprint;

namespace {

const std::string kModels = FOOTPRINT_MODELS;
constexpr int64_t MiB = 1024 * 1024;

fp::MemoryScenario training(const std::string& input, const std::string& optimizer,
                            const std::string& impl, fp::Target target) {
  fp::MemoryScenario s;
  s.inputs = fp::parse_inputs(input);
  s.train = true;
  s.optimizer = fp::parse_optimizer(optimizer, impl);
  s.memory.target = target;
  return s;
}

int64_t kept(const fp::MemoryReport& r, fp::Category c) {
  return r.model_states[int(c)];
}

// Parameters, gradients and optimizer state kept between steps.
int64_t model_states(const fp::MemoryReport& r) {
  return kept(r, fp::Category::kParameters) + kept(r, fp::Category::kGradients) +
         kept(r, fp::Category::kOptimizerState);
}

}  // namespace

// locals.pt (make_models.py): a = x * 2; b = a + 1; b = b * 3; b = b * 4, on a 1 x 1000 fp32
// input, N = 4,000 B each. Eager Python keeps `a` until forward returns and each `b` until the name
// is bound again: when the third b is made, x, a, the second b and the third b are live, 4N =
// 16,000 B. TorchScript's interpreter would have freed `a` after its one read: 3N.
TEST(Memory, TorchScriptLocalsLiveAsLongAsInPython) {
  fp::MemoryScenario s;
  s.inputs = fp::parse_inputs("1x1000");
  s.memory.target = fp::Target::kCpu;
  auto r = fp::memory_file(kModels + "/locals.pt", s);
  EXPECT_EQ(r.peak.bytes, 4 * 4000);
}

// self_attention.pt (make_models.py): nn.MultiheadAttention(16, 2, batch_first=True) on a 1 x 4 x
// 16 input in eval, which a real run sends down the fast path, _native_multi_head_attention. Its
// CPU kernel (attention.cpp) makes the packed projection [1, 4, 48] (768 B), then q, k, v
// [3, 1, 2, 4, 8] (768 B) and frees the projection; the scores [1, 2, 4, 4] (128 B), freed as the
// weights are not asked for; the context [1, 4, 16] and the output (256 B each). The peak is the
// parameters (3 x 16 x 16 + 48 + 16 x 16 + 16 = 1,088 floats, 4,352 B), the input (256 B) and the
// first two: 6,144 B, what python3-torch 1.13's profiler measures. The slower path that meta
// tensors used to take holds more.
TEST(Memory, MultiheadAttentionTakesItsFastPathInInference) {
  fp::MemoryScenario s;
  s.inputs = fp::parse_inputs("1x4x16");
  s.memory.target = fp::Target::kCpu;
  auto r = fp::memory_file(kModels + "/self_attention.pt", s);
  EXPECT_EQ(r.peak.bytes, 4352 + 256 + 768 + 768);
}

// HybridNetwork: 33,762 trainable fp32 parameters = 135,048 B in 30 tensors. AdamW keeps exp_avg
// and exp_avg_sq (2 x 135,048), and the gradients are 135,048: 4 + 4 + 8 = 16 bytes per
// parameter, the figure of EleutherAI's Transformer Math and ZeRO's 16 Psi for fp32 Adam. On CUDA
// the step counters are host tensors; on CPU they are 30 more 4-byte tensors.
TEST(Memory, AdamWKeepsSixteenBytesPerParameter) {
  auto cuda = fp::memory_file(kModels + "/hybrid_network.pt",
                              training("1x1x28x28", "adamw", "foreach", fp::Target::kCuda));
  EXPECT_EQ(cuda.parameter_count, 33762);
  EXPECT_EQ(kept(cuda, fp::Category::kParameters), 135048);
  EXPECT_EQ(kept(cuda, fp::Category::kGradients), 135048);
  EXPECT_EQ(kept(cuda, fp::Category::kOptimizerState), 2 * 135048);
  auto cpu = fp::memory_file(kModels + "/hybrid_network.pt",
                             training("1x1x28x28", "adamw", "for-loop", fp::Target::kCpu));
  EXPECT_EQ(kept(cpu, fp::Category::kOptimizerState), 2 * 135048 + 30 * 4);
  // Pure bf16: every one of those tensors at 2 bytes: 8 bytes per parameter.
  auto s = training("1x1x28x28", "adamw", "foreach", fp::Target::kCuda);
  s.precision = fp::PrecisionMode::kBf16;
  auto bf16 = fp::memory_file(kModels + "/hybrid_network.pt", s);
  EXPECT_EQ(model_states(bf16), 8 * 33762);
}

// SGD with momentum keeps one buffer per parameter; plain SGD none. Adagrad makes its sum when it
// is built, before iteration 1.
TEST(Memory, OptimizerStatePerKind) {
  const std::string f = kModels + "/hybrid_network.pt";
  auto sgd = fp::memory_file(f, training("2x1x28x28", "sgd", "foreach", fp::Target::kCuda));
  EXPECT_EQ(kept(sgd, fp::Category::kOptimizerState), 0);
  auto momentum =
      fp::memory_file(f, training("2x1x28x28", "momentum", "for-loop", fp::Target::kCuda));
  EXPECT_EQ(kept(momentum, fp::Category::kOptimizerState), 135048);
  auto rms =
      fp::memory_file(f, training("2x1x28x28", "rmsprop-centered", "foreach", fp::Target::kCuda));
  EXPECT_EQ(kept(rms, fp::Category::kOptimizerState), 2 * 135048);  // square_avg, grad_avg
  auto adagrad = fp::memory_file(f, training("2x1x28x28", "adagrad", "fused", fp::Target::kCuda));
  // fused: the step counters live on the device (30 x 4 B).
  EXPECT_EQ(kept(adagrad, fp::Category::kOptimizerState), 135048 + 30 * 4);
  // The input is live all along: 2 x 1 x 28 x 28 x 4 B = 6,272 B, rounded to 6,656 (13 x 512);
  // the labels 2 x 8 B, rounded to 512.
  EXPECT_EQ(sgd.peak.by_category[int(fp::Category::kInput)], 6656 + 512);
}

// foreach makes its temporaries for all parameters at once, the for-loop for one at a time:
// Adam's step peaks higher with foreach by about the parameters' bytes (sqrt of every exp_avg_sq).
TEST(Memory, ForeachStepTemporariesSpanTheWholeGroup) {
  const std::string f = kModels + "/resnet18.pt";
  auto phase_peak = [](const fp::MemoryReport& r, fp::Phase p, int iteration) {
    for (const auto& ph : r.phases)
      if (ph.phase == p && ph.iteration == iteration) return ph.peak;
    return int64_t(-1);
  };
  auto loop = fp::memory_file(f, training("1x3x224x224", "adam", "for-loop", fp::Target::kCpu));
  auto each = fp::memory_file(f, training("1x3x224x224", "adam", "foreach", fp::Target::kCpu));
  int64_t params = kept(loop, fp::Category::kParameters);
  int64_t extra = phase_peak(each, fp::Phase::kStep, 1) - phase_peak(loop, fp::Phase::kStep, 1);
  // The for-loop's own peak is two or three of the largest parameter (conv 512x512x3x3: 9 MiB);
  // foreach's is every parameter's sqrt at once (44.6 MiB): between them lies params minus 3 x 9.
  EXPECT_GT(extra, params - 3 * 9437184);
  EXPECT_LT(extra, params);
}

// The second seed: pytorch_modelsize on its two-conv model at 1x1x32x32 prints
// (0.5694580078125, 4776960): input 1*1*32*32*32 = 32,768 bits; outputs (16*40*40 + 32*38*38) *
// 32 * 2 = 4,595,712 bits; parameters 148,480 bits = conv1's 4,640 only (its loop resets the list
// per module). Every parameter (4,800 x 32 = 153,600 bits) gives 4,782,080.
TEST(Memory, SeedFormulaReproducesTheArticle) {
  auto s = fp::seed_file(kModels + "/two_conv.pt", fp::parse_inputs("1x1x32x32"));
  EXPECT_EQ(s.seed_input_bits, 32768);
  EXPECT_EQ(s.seed_output_bits, 4595712);
  EXPECT_EQ(s.seed_param_bits, 148480);
  EXPECT_EQ(s.seed_total_bits, 4776960);
  EXPECT_DOUBLE_EQ(s.seed_megabytes, 0.5694580078125);
  EXPECT_EQ(s.parameters, 4800);
  EXPECT_EQ(s.fixed_total_bits, 4782080);
}

// Twice (Linear(8, 8) twice, Linear(8, 2)) at batch 1 on CUDA: its four parameter tensors (256,
// 32, 64 and 8 B), the input and every activation are under 1 MiB: small pool, one 2 MiB segment.
// The first Linear's addmm calls cuBLAS, whose workspace (2 x 4 MiB + 8 x 16 KiB = 8,519,680 B)
// is a large-pool request under 10 MiB: one 20 MiB segment; with its 1-D bias it goes through
// cuBLASLt, whose 1 MiB workspace is a small-pool request that fits in the 2 MiB segment beside
// the parameters. Reserved: 22 MiB.
TEST(Memory, CudaReservedForATinyModel) {
  fp::MemoryScenario s;
  s.inputs = fp::parse_inputs("1x8");
  auto r = fp::memory_file(kModels + "/twice.pt", s);
  EXPECT_EQ(r.allocator.reserved_peak, 22 * MiB);
  EXPECT_EQ(r.allocator.segments, 2);
  // Allocated: 4 x 512 (parameters) + 8,519,680 + 1,048,576 + 512 (input) + the activations,
  // each 512 B: at least one and at most the four the forward makes.
  EXPECT_EQ(r.allocator.allocated_peak % 512, 0);
  EXPECT_GE(r.allocator.allocated_peak, 2048 + 8519680 + 1048576 + 512 + 512);
  EXPECT_LE(r.allocator.allocated_peak, 2048 + 8519680 + 1048576 + 512 + 4 * 512);
  EXPECT_FALSE(r.fits.has_value());  // no device given
}

// A CUDA report of a model with convolutions says that cuDNN's workspaces are not in it (the
// largest error left against the H200's runs); a CPU report, or a model without convolutions,
// does not.
TEST(Memory, CudaReportOfConvolutionsSaysTheirWorkspacesAreMissing) {
  auto says = [](const fp::MemoryReport& r) {
    return std::any_of(r.notes.begin(), r.notes.end(), [](const std::string& n) {
      return n.find("cuDNN's convolution workspaces are not modelled") != std::string::npos;
    });
  };
  fp::MemoryScenario s;
  s.inputs = fp::parse_inputs("1x1x32x32");
  EXPECT_TRUE(says(fp::memory_file(kModels + "/two_conv.pt", s)));
  s.memory.target = fp::Target::kCpu;
  EXPECT_FALSE(says(fp::memory_file(kModels + "/two_conv.pt", s)));
  fp::MemoryScenario linear;
  linear.inputs = fp::parse_inputs("1x8");
  EXPECT_FALSE(says(fp::memory_file(kModels + "/twice.pt", linear)));
}

// fit: batch N fits and N + 1 does not, both captured in full.
TEST(Memory, FitBracketsTheLimit) {
  auto s = training("1x3x224x224", "adamw", "foreach", fp::Target::kCuda);
  s.memory.gpu = fp::device_parse("2GiB");
  auto f = fp::fit_file(kModels + "/resnet18.pt", s);
  ASSERT_GT(f.batch, 1);
  EXPECT_TRUE(f.fits.fits.value_or(false));
  EXPECT_FALSE(f.next.fits.value_or(true));
  EXPECT_EQ(f.fits.inputs[0].shape[0], f.batch);
  EXPECT_EQ(f.next.inputs[0].shape[0], f.batch + 1);
  EXPECT_LE(f.captures, 12);
}

TEST(Memory, ErrorsSayWhatIsExpected) {
  fp::MemoryScenario s;
  s.inputs = fp::parse_inputs("1x3x224x224");
  EXPECT_THROW(fp::memory_file(kModels + "/resnet18.safetensors", s), fp::Error);
  EXPECT_THROW(fp::parse_optimizer("lamb"), fp::Error);
  EXPECT_THROW(fp::parse_optimizer("rmsprop", "fused"), fp::Error);
  EXPECT_THROW(fp::device_parse("h1000"), fp::Error);
  EXPECT_EQ(fp::device_parse("24GiB").total, 24 * 1024 * MiB);
  EXPECT_EQ(fp::device_parse("H100").key, "h100");
  s.train = true;
  EXPECT_THROW(fp::fit_file(kModels + "/resnet18.pt", s), fp::Error);  // no --gpu
}

// Autocast (bf16) keeps fp32 weights, gradients and AdamW state: still 16 bytes per parameter.
// Twice calls fc twice: in a training forward autocast casts its weight to bf16 once and reuses
// the cached copy (cached_cast), so one 8x8 cast, where a cache-less cast would make two. In
// inference, which runs under torch.inference_mode(), PyTorch 2.x caches nothing
// (pytorch#158232): two casts.
TEST(Memory, AutocastCastsEachWeightOnce) {
  auto s = training("1x1x28x28", "adamw", "foreach", fp::Target::kCuda);
  s.precision = fp::PrecisionMode::kBf16Amp;
  auto r = fp::memory_file(kModels + "/hybrid_network.pt", s);
  EXPECT_EQ(model_states(r), 16 * 33762);

  auto weight_casts = [](bool train) {
    auto module = torch::jit::load(kModels + "/twice.pt");
    fp::CaptureOptions o;
    o.inputs = fp::parse_inputs("4x8");
    o.autocast = fp::DType::kBFloat16;
    o.train = train;
    fp::Trace t = fp::capture(module, o);
    int casts_8x8 = 0;
    for (const auto& op : t.ops)
      if (op.phase == fp::Phase::kForward && op.name == "aten::_to_copy" && !op.inputs.empty() &&
          op.inputs[0].is_tensor() && op.inputs[0].tensor().shape == std::vector<int64_t>{8, 8} &&
          op.outputs[0].tensor().dtype == fp::DType::kBFloat16)
        ++casts_8x8;
    return std::make_pair(casts_8x8, t);
  };
  EXPECT_EQ(weight_casts(true).first, 1);
  auto [inference_casts, t] = weight_casts(false);
  EXPECT_EQ(inference_casts, 2);
  // The output of the last linear is bf16: [4, 2] x 2 bytes.
  const fp::TraceOp* last = nullptr;
  for (const auto& op : t.ops)
    if (op.parent == -1 && op.name == "aten::linear") last = &op;
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->outputs[0].tensor().dtype, fp::DType::kBFloat16);
  EXPECT_EQ(last->outputs[0].tensor().bytes(), 4 * 2 * 2);
}

namespace {

// The allocated peak of a trace: the most bytes live at once, from its first event on.
int64_t trace_peak(const fp::Trace& t) {
  int64_t live = 0, peak = 0;
  for (const auto& e : t.memory) peak = std::max(peak, live += e.bytes);
  return peak;
}

int64_t largest_allocation(const fp::Trace& t) {
  int64_t largest = 0;
  for (const auto& e : t.memory) largest = std::max(largest, e.bytes);
  return largest;
}

fp::Trace attention(fp::CaptureDevice device, fp::Target target) {
  auto none = std::make_shared<torch::nn::Module>();  // the op alone: q, k and v are the inputs
  fp::CaptureOptions o;
  o.inputs = fp::parse_inputs("2x4x64x32;2x4x64x32;2x4x64x32");
  o.device = device;
  o.target = target;
  return fp::capture(
      *none,
      [](const std::vector<torch::Tensor>& x) {
        return at::scaled_dot_product_attention(x[0], x[1], x[2]);
      },
      o);
}

}  // namespace

// F.scaled_dot_product_attention in inference, q, k and v [2, 4, 64, 32] fp32 (65,536 B each).
// PyTorch 2.11's CPU takes its flash kernel (sdp_utils_cpp.cpp), which allocates the output
// (65,536 B), the log-sum-exp [2, 4, 64] fp32 (2,048 B) and one thread's buffer of
// qSplit x kvSplit + 2 qSplit + qSplit x E floats, qSplit = 32 (a query under 192 long) and
// kvSplit = 64 (the key length): 2,048 + 64 + 1,024 = 3,136 floats, 12,544 B
// (FlashAttentionKernel.cpp). Peak: 3 x 65,536 + 65,536 + 2,048 + 12,544 = 276,736 B, and no
// [2, 4, 64, 64] score matrix (131,072 B) is ever made. A real CPU run of the same op, recorded by
// footprint's tracking CPU allocator, allocates the same. On meta, LibTorch alone would take the
// math path and make it. The CUDA target (sm90) takes memory-efficient attention for fp32, as an
// H200 did (tests/reference/cuda/h200-vision.json): the output alone in inference (no log-sum-exp
// without a gradient to come), 4 x 65,536 B at the peak.
TEST(Memory, ScaledDotProductAttentionTakesTheCpuFlashKernel) {
  at::set_num_threads(1);  // the kernel allocates its buffer per thread
  fp::Trace meta = attention(fp::CaptureDevice::kMeta, fp::Target::kCpu);
  EXPECT_EQ(trace_peak(meta), 3 * 65536 + 65536 + 2048 + 12544);
  EXPECT_EQ(largest_allocation(meta), 65536);
  fp::Trace cpu = attention(fp::CaptureDevice::kCpu, fp::Target::kCpu);
  EXPECT_EQ(trace_peak(cpu), trace_peak(meta));
  fp::Trace cuda = attention(fp::CaptureDevice::kMeta, fp::Target::kCuda);
  EXPECT_EQ(largest_allocation(cuda), 65536);
  EXPECT_EQ(trace_peak(cuda), 4 * 65536);
}

namespace {
// F.scaled_dot_product_attention over bf16 q, k, v [2, 4, 128, 64] that require grad, in a
// training step on the CUDA target of compute capability `sm`: the trace, the bytes its forward op
// leaves allocated, and its forward's largest allocation.
struct AttentionStep {
  fp::Trace trace;
  int64_t net = 0, forward_largest = 0;
};
AttentionStep attention_step(int sm) {
  auto none = std::make_shared<torch::nn::Module>();
  fp::CaptureOptions o;
  o.inputs = fp::parse_inputs("2x4x128x64:bfloat16;2x4x128x64:bfloat16;2x4x128x64:bfloat16");
  o.train = true;
  o.target = fp::Target::kCuda;
  o.cuda_sm = sm;
  AttentionStep r;
  r.trace = fp::capture(
      *none,
      [](const std::vector<torch::Tensor>& x) {
        for (const auto& t : x) t.requires_grad_(true);
        return at::scaled_dot_product_attention(x[0], x[1], x[2]);
      },
      o);
  const fp::Trace& t = r.trace;
  int sdpa = -1;
  for (size_t i = 0; i < t.ops.size(); ++i)
    if (t.ops[i].parent == -1 && t.ops[i].name == "aten::scaled_dot_product_attention")
      sdpa = int(i);
  EXPECT_GE(sdpa, 0);
  std::vector<int> top(t.ops.size());
  for (size_t i = 0; i < t.ops.size(); ++i)
    top[i] = t.ops[i].parent == -1 ? int(i) : top[t.ops[i].parent];
  for (const auto& e : t.memory) {
    if (e.op >= 0 && top[e.op] == sdpa) r.net += e.bytes;
    if (e.phase == fp::Phase::kForward) r.forward_largest = std::max(r.forward_largest, e.bytes);
  }
  return r;
}
bool runs(const fp::Trace& t, const std::string& op) {
  for (const auto& o : t.ops)
    if (o.name == op) return true;
  return false;
}
}  // namespace

// sm80 (an A100): PyTorch picks flash (fp16/bf16, head dim 64 <= 256, no mask; sdp_utils.cpp),
// whose forward saves the output, 2 x 4 x 128 x 64 x 2 = 131,072 B, and the fp32 log-sum-exp of
// B x H x S, 2 x 4 x 128 x 4 = 4,096 B: the bytes the op leaves allocated. Nothing the size of the
// scores (2 x 4 x 128 x 128 bf16, 262,144 B) is made, forward or backward. Backward
// (attention_backward.cu, flash_api.cpp): dq, dk, dv (131,072 B each), softmax_d [2, 4, 128] fp32
// (4,096 B) and the fp32 dq accumulator [2, 128, 4, 64] (262,144 B, as large as the scores would be
// in bf16, but fp32 and per head dim: the largest allocation of the run).
TEST(Memory, ScaledDotProductAttentionSavesWhatCudaFlashSaves) {
  AttentionStep s = attention_step(80);
  EXPECT_EQ(s.net, 131072 + 4096);
  EXPECT_EQ(s.forward_largest, 131072);
  EXPECT_TRUE(runs(s.trace, "aten::_scaled_dot_product_flash_attention_backward"));
  EXPECT_EQ(largest_allocation(s.trace), 2 * 128 * 4 * 64 * 4);
}

// sm90 (an H100 or H200): PyTorch 2.11 picks cuDNN attention, as an H200 did for vit_b_16 under
// bf16 autocast (tests/reference/cuda/h200-vision.json). Its forward leaves the philox seed and
// offset (8 B each, on the device), the output (131,072 B) and the fp32 statistics [2, 4, 128, 1]
// (4,096 B). Its backward's workspace, an fp32 [2, 4, 128, 64] plus an fp32 [2, 4, 128] plus
// 256 B = 262,144 + 4,096 + 256 = 266,496 B, is the run's largest allocation.
TEST(Memory, ScaledDotProductAttentionSavesWhatCudnnSavesOnHopper) {
  AttentionStep s = attention_step(90);
  EXPECT_EQ(s.net, 8 + 8 + 131072 + 4096);
  EXPECT_EQ(s.forward_largest, 131072);
  EXPECT_TRUE(runs(s.trace, "aten::_scaled_dot_product_cudnn_attention_backward"));
  EXPECT_EQ(largest_allocation(s.trace), 262144 + 4096 + 256);
}

namespace {
// The sizes of the allocations a capture of `fn` on the CUDA target (or the CPU) makes, in order.
std::vector<int64_t> allocations(
    const std::string& inputs, bool train, fp::Target target, int multiprocessors,
    std::function<torch::Tensor(const std::vector<torch::Tensor>&)> fn) {
  auto none = std::make_shared<torch::nn::Module>();
  fp::CaptureOptions o;
  o.inputs = fp::parse_inputs(inputs);
  o.train = train;
  o.target = target;
  o.cuda_multiprocessors = multiprocessors;
  fp::Trace t = fp::capture(*none, fn, o);
  std::vector<int64_t> out;
  for (const auto& e : t.memory)
    if (e.bytes > 0) out.push_back(e.bytes);
  return out;
}
bool has(const std::vector<int64_t>& v, int64_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}
}  // namespace

// A Linear's bias gradient, the sum of grad_output [2048, 1536] (bf16) over its rows, as CUDA's
// reduction launches it (Reduce.cuh, setReduceConfig): the rows are not the fastest dim, so the
// output vectorizes by 4 (1536 / 4 = 384 columns of work), a block is 32 x 4 threads, 32 x 4
// outputs' columns per block give a grid of 384 / 32 = 12 blocks, and each thread's 2048 / 4 = 512
// values (>= 256) are split over more blocks: min(ceil(132 SMs x 16 blocks / 12), ceil(512 / 16))
// = 32 per output. The staging buffer is fp32 x 1536 outputs x 32 x (32 x 4) = 25,165,824 B and
// the semaphores 4 B x 12 = 48 B, exactly what an H200 allocated for this sum
// (tests/reference/cuda/h200-sequence.json, sdpa_bool_mask at batch 8). The CPU allocates only the
// output (3,072 B).
TEST(Memory, CudaReductionTakesItsStagingBuffer) {
  auto sum_rows = [](const std::vector<torch::Tensor>& x) { return x[0].sum({0}); };
  auto cuda = allocations("2048x1536:bfloat16", false, fp::Target::kCuda, 132, sum_rows);
  EXPECT_TRUE(has(cuda, 3072));
  EXPECT_TRUE(has(cuda, 25165824));
  EXPECT_TRUE(has(cuda, 48));
  auto cpu = allocations("2048x1536:bfloat16", false, fp::Target::kCpu, 132, sum_rows);
  EXPECT_FALSE(has(cpu, 25165824));
  // The split depends on the GPU: 16384 outputs make 4096 / 32 = 128 blocks, each thread 512
  // values; 132 SMs give ceil(2112 / 128) = 17 blocks per output (4 x 16384 x 17 x 128 =
  // 142,606,336 B), an A100's 108 give ceil(1728 / 128) = 14 (117,440,512 B); semaphores 512 B.
  auto wide = [](const std::vector<torch::Tensor>& x) { return x[0].sum({0}); };
  EXPECT_TRUE(has(allocations("2048x16384", false, fp::Target::kCuda, 132, wide), 142606336));
  EXPECT_TRUE(has(allocations("2048x16384", false, fp::Target::kCuda, 108, wide), 117440512));
  // A mean over one row, 256 values, needs no second block: nothing beyond the output.
  auto small = allocations("8x256", false, fp::Target::kCuda, 132,
                           [](const std::vector<torch::Tensor>& x) { return x[0].mean({1}); });
  EXPECT_EQ(small, std::vector<int64_t>({8192, 32}));
}

// nn.LSTM (2 layers, hidden 256, batch_first, input [8, 64, 128] fp32) in training on CUDA is
// cuDNN's (_cudnn_rnn): the input made time-major (8 x 64 x 128 x 4 = 262,144 B), the output
// [64, 8, 256] (524,288 B), hy and cy [2, 8, 256] (16,384 B each), the workspace (fitted to the
// H200's batches 1, 8 and 64: 20,447,488 + 93 x 4 x 262,144 / 32 + 8 x 8 = 23,494,976 B; 262,144
// is steps x rows x layers x units) and the reserve kept for the backward,
// 5.5 elements per step, row, layer and unit: 22 x 64 x 8 x 2 x 256 + 256 = 5,767,424 B. Both are
// what an H200 allocated (tests/reference/cuda/h200-sequence.json, lstm at batch 8). The backward
// makes the weights' gradients as one flat buffer: (4 x 256 x (128 + 256) + 2 x 1024) + (4 x 256
// x 512 + 2 x 1024) = 921,600 floats, 3,686,400 B.
TEST(Memory, CudnnLstmKeepsItsReserve) {
  auto lstm = [](const std::vector<torch::Tensor>& x) {
    auto o = x[0].options();
    std::vector<torch::Tensor> params;
    for (int64_t in : {128, 256})
      for (auto shape : std::vector<std::vector<int64_t>>{{1024, in}, {1024, 256}, {1024}, {1024}})
        params.push_back(torch::empty(shape, o).requires_grad_(true));
    auto h0 = torch::zeros({2, 8, 256}, o);
    auto c0 = torch::zeros({2, 8, 256}, o);
    return std::get<0>(at::lstm(x[0], {h0, c0}, params, true, 2, 0.0, true, false, true));
  };
  auto a = allocations("8x64x128", true, fp::Target::kCuda, 132, lstm);
  for (int64_t bytes : {262144, 524288, 16384, 23494976, 5767424, 3686400})
    EXPECT_TRUE(has(a, bytes)) << bytes;
}

// nn.LSTM(128, 256) over 64 steps of 8 rows on the CPU target: oneDNN 3.10's fused layer
// (mkldnn_rnn_layer), as the pinned torch's profiler showed it at one thread. The good leading
// dimensions (rnn_utils::get_good_ld, fp32): ld(4H = 1024) = 1024 + 16 = 1040 (a multiple of 256
// gets 16 more), ld(256) = 272. Training forward:
//   - workspace, each part on a 4096-B page: gates 64 x 8 x 1040 x 4 = 2,129,920; ht 64 x 8 x 272 x
//   4
//     = 557,056; states 2 x 65 x 8 x 272 x 4 = 1,131,520; cell states 2 x 65 x 8 x 256 x 4 =
//     1,064,960; the three diff states 1,131,520, 1,131,520, 1,064,960: page-rounded offsets
//     2,129,920, 2,686,976, 3,821,568 (+1,131,520 rounded up), 4,886,528, 6,021,120, 7,155,712, and
//     7,155,712 + 1,064,960 = 8,220,672 B;
//   - the weights reordered to ldigo with ld 1040: 128 x 1040 x 4 = 532,480, 256 x 1040 x 4 =
//     1,064,960;
//   - the scratchpad: scratch gates for all 64 steps 2,129,920, ht and diff ht 8 x 272 x 4 = 8,704
//     each, paged to 2,154,496; booked with 4,096 B of alignment, three 8-B pointer arrays and a
//     32-B one at 128 B each: 2,154,496 + 4,096 + 3 x 136 + 160 = 2,159,160 B.
// Backward: the recurrent weight reordered to ldgoi with ld(256) = 272: 1024 x 272 x 4 = 1,114,112
// (the input weight's ld(128) is 128, no copy). Inference (brgemm): the weights in ldgOi32o,
// 1024 x 128 x 4 = 524,288 and 1024 x 256 x 4 = 1,048,576 B, and a scratchpad that holds the states
// (no workspace): 1,131,520 paged to 1,134,592, + 1,064,960 = 2,199,552, one step's gates
// 8 x 1040 x 4 = 33,280 paged to 2,236,416, ht 8,704, paged to 2,248,704; + 4,096 + 568 as above +
// two 40-B brgemm batch elements at 128 B (208) = 2,253,576 B. The composite's per-step gates
// (8 x 1024 x 4 = 32,768 B) are what the real run never makes.
// oneDNN before 3.9 (torch 2.9's 3.7.1; docs/versions.md) registers the states twice more after the
// first: offsets 2,129,920, 2,686,976, 3,821,568, 4,956,160, 6,090,752, 7,155,712, 8,290,304,
// 9,424,896, + 1,064,960 = 10,489,856 B of workspace; and books the scratchpad's gates, ht and diff
// ht again at 4x their bytes and 128 B each: 2,159,160 + 4 x 2,129,920 + 128 + 2 x (4 x 8,704 +
// 128) = 10,748,856 B. In inference the states go to the scratchpad three times (1,134,592 each
// paged, then cells 1,064,960 to 4,468,736 paged, gates to 4,505,600, ht 4,514,304 paged to
// 4,517,888)
// + 4,664 + 208 and one step's gates and ht again (4 x 33,280 + 128 + 4 x 8,704 + 128):
// 4,690,952 B.
bool onednn_before_3_9() {
  const std::string config = at::show_config();
  const size_t at = config.find("MKL-DNN v");
  int major = 0, minor = 0;
  return at != std::string::npos &&
         std::sscanf(config.c_str() + at + 9, "%d.%d", &major, &minor) == 2 &&
         (major < 3 || (major == 3 && minor < 9));
}

TEST(Memory, OnednnLstmAllocatesWhatTheCpuKernelDoes) {
  const bool old = onednn_before_3_9();
  auto lstm = [](const std::vector<torch::Tensor>& x) {
    auto o = x[0].options();
    std::vector<torch::Tensor> params;
    for (auto shape : std::vector<std::vector<int64_t>>{{1024, 128}, {1024, 256}, {1024}, {1024}})
      params.push_back(torch::empty(shape, o).requires_grad_(true));
    auto h0 = torch::zeros({1, 8, 256}, o);
    auto c0 = torch::zeros({1, 8, 256}, o);
    return std::get<0>(at::lstm(x[0], {h0, c0}, params, true, 1, 0.0, true, false, false));
  };
  auto train = allocations("64x8x128", true, fp::Target::kCpu, 132, lstm);
  for (int64_t bytes :
       {old ? 10489856 : 8220672, 532480, 1064960, old ? 10748856 : 2159160, 1114112})
    EXPECT_TRUE(has(train, bytes)) << bytes;
  EXPECT_FALSE(has(train, 32768));
  auto inference = allocations("64x8x128", false, fp::Target::kCpu, 132, lstm);
  for (int64_t bytes : {524288, 1048576, old ? 4690952 : 2253576})
    EXPECT_TRUE(has(inference, bytes)) << bytes;
  EXPECT_FALSE(has(inference, 8220672));
  EXPECT_FALSE(has(inference, 32768));
}

// The timeline (MemoryOptions::timeline, behind --snapshot and --html) on twice.pt, 1 x 8, on
// CUDA: recording it changes no number; its steps begin with the four parameters (512 B blocks
// each, in one 2 MiB small-pool segment) and the input; the first addmm then allocates its output
// (512 B), cuBLAS's workspace (8,519,680 B, a large-pool block under 10 MiB, so a 20 MiB segment)
// and cuBLASLt's (1 MiB, in the small segment), as CudaReservedForATinyModel works out. The largest
// step is the allocated peak, at the report's op, and the segments rebuilt from its actions add up
// to the reserved peak.
TEST(Memory, TimelineAgreesWithTheReport) {
  fp::MemoryScenario s;
  s.inputs = fp::parse_inputs("1x8");
  auto plain = fp::memory_file(kModels + "/twice.pt", s);
  s.memory.timeline = true;
  auto r = fp::memory_file(kModels + "/twice.pt", s);
  EXPECT_FALSE(plain.timeline);
  ASSERT_TRUE(r.timeline);
  EXPECT_EQ(r.allocator.allocated_peak, plain.allocator.allocated_peak);
  EXPECT_EQ(r.allocator.reserved_peak, plain.allocator.reserved_peak);
  EXPECT_EQ(r.peak.op, plain.peak.op);
  const fp::MemoryTimeline& t = *r.timeline;
  ASSERT_GT(t.steps.size(), 5u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(t.steps[i].allocated, 512 * (i + 1));
    EXPECT_EQ(t.steps[i].phase, fp::Phase::kSetup);
    EXPECT_EQ(t.ops[t.steps[i].op], "parameters");
  }
  EXPECT_EQ(t.steps[4].allocated, 2048 + 512);  // the input
  ASSERT_GT(t.steps.size(), 8u);
  for (int i = 5; i < 8; ++i) EXPECT_EQ(t.ops[t.steps[i].op], "aten::linear") << i;  // top level
  EXPECT_EQ(t.steps[5].allocated, 2048 + 512 + 512);
  EXPECT_EQ(t.steps[6].allocated, 2048 + 512 + 512 + 8519680);
  EXPECT_EQ(t.steps[6].reserved, 22 * MiB);
  EXPECT_EQ(t.steps[7].allocated, 2048 + 512 + 512 + 8519680 + 1048576);
  EXPECT_EQ(t.steps[7].reserved, 22 * MiB);
  int64_t most = 0;
  for (const auto& step : t.steps) most = std::max(most, step.allocated);
  EXPECT_EQ(most, r.allocator.allocated_peak);
  EXPECT_EQ(t.steps[t.peak_step].allocated, most);
  EXPECT_EQ(t.ops[t.steps[t.peak_step].op], r.peak.op);
  int64_t reserved = 0;
  for (const auto& seg : fp::segments_at(t, t.steps.size() - 1)) reserved += seg.size;
  EXPECT_EQ(reserved, r.allocator.reserved_peak);
}

// A run that does not fit its GPU is pictured as it would go with no limit, the run whose peaks
// the report gives: resnet18's AdamW step at batch 64 needs 1.49 GiB allocated, more than 1 GiB.
TEST(Memory, TimelineOfARunThatDoesNotFit) {
  auto s = training("64x3x224x224", "adamw", "foreach", fp::Target::kCuda);
  s.memory.gpu = fp::device_parse("1GiB");
  s.memory.timeline = true;
  auto r = fp::memory_file(kModels + "/resnet18.pt", s);
  ASSERT_FALSE(r.fits.value_or(true));
  ASSERT_TRUE(r.timeline);
  int64_t reserved = 0;
  for (const auto& seg : fp::segments_at(*r.timeline, r.timeline->steps.size() - 1))
    reserved += seg.size;
  EXPECT_EQ(reserved, r.allocator.reserved_peak);
  EXPECT_EQ(r.timeline->steps[r.timeline->peak_step].allocated, r.allocator.allocated_peak);
}
