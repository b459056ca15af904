// The memory model (footprint/memory.h, docs/memory.md): a Trace's allocations and frees, with
// the model's parameters and buffers live from the start, sorted into categories by when each
// tensor is made and freed, summed over time, and replayed through the CUDA caching allocator.
#include "footprint/memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <unordered_map>

#include "footprint/error.h"
#include "footprint/plan.h"
#include "footprint/versions.h"

namespace footprint {

std::string_view category_name(Category c) {
  switch (c) {
    case Category::kParameters:
      return "parameters";
    case Category::kBuffers:
      return "buffers";
    case Category::kGradients:
      return "gradients";
    case Category::kOptimizerState:
      return "optimizer state";
    case Category::kActivations:
      return "activations";
    case Category::kTransient:
      return "transient";
    case Category::kInput:
      return "input";
    case Category::kOutput:
      return "output";
    case Category::kCount:
      break;
  }
  return "?";
}

std::string optimizer_name(const OptimizerSpec& o) {
  std::string name;
  switch (o.kind) {
    case OptimizerKind::kSgd:
      name = o.nesterov ? "SGD (nesterov)" : o.momentum != 0 ? "SGD (momentum)" : "SGD";
      break;
    case OptimizerKind::kAdam:
      name = o.amsgrad ? "Adam (amsgrad)" : "Adam";
      break;
    case OptimizerKind::kAdamW:
      name = o.amsgrad ? "AdamW (amsgrad)" : "AdamW";
      break;
    case OptimizerKind::kAdagrad:
      name = "Adagrad";
      break;
    case OptimizerKind::kRmsprop:
      name = o.centered ? "RMSprop (centered)" : "RMSprop";
      break;
  }
  return fmt::format("{}, {}", name, impl_name(o.impl));
}

namespace {

// Where each (phase, iteration) ends: the index of the first event after it.
struct PhaseBounds {
  std::map<std::pair<int, int>, size_t> end;  // (iteration, phase) -> first event after
  std::map<std::pair<int, int>, size_t> begin;
  size_t after(int iteration, Phase p, size_t fallback) const {
    auto it = end.find({iteration, int(p)});
    return it == end.end() ? fallback : it->second;
  }
  size_t start(int iteration, Phase p, size_t fallback) const {
    auto it = begin.find({iteration, int(p)});
    return it == begin.end() ? fallback : it->second;
  }
};

PhaseBounds phase_bounds(const std::vector<MemoryEvent>& ev) {
  PhaseBounds b;
  for (size_t i = 0; i < ev.size(); ++i) {
    std::pair<int, int> key{ev[i].iteration, int(ev[i].phase)};
    b.begin.emplace(key, i);
    b.end[key] = i + 1;
  }
  return b;
}

// The category of an allocation made at event i and freed at event `freed` (SIZE_MAX: never).
Category categorize(const std::vector<MemoryEvent>& ev, bool train, const PhaseBounds& b, size_t i,
                    size_t freed) {
  const MemoryEvent& e = ev[i];
  const size_t n = ev.size();
  switch (e.phase) {
    case Phase::kSetup:
      return Category::kInput;
    case Phase::kZeroGrad:
      return Category::kTransient;
    case Phase::kStep:
      return freed < b.after(e.iteration, Phase::kStep, n) ? Category::kTransient
                                                           : Category::kOptimizerState;
    case Phase::kBackward:
      return freed < b.after(e.iteration, Phase::kBackward, n) ? Category::kTransient
                                                               : Category::kGradients;
    case Phase::kForward:
    case Phase::kLoss: {
      if (!train) return freed == SIZE_MAX ? Category::kOutput : Category::kTransient;
      // Freed before backward began: a temporary. Freed during backward: saved for it.
      size_t backward_begins = b.start(e.iteration, Phase::kBackward, n);
      size_t backward_ends = b.after(e.iteration, Phase::kBackward, n);
      if (freed < backward_begins) return Category::kTransient;
      if (freed < backward_ends) return Category::kActivations;
      return Category::kOutput;
    }
  }
  return Category::kTransient;
}

int64_t round_up_512(int64_t n) {
  return (n + 511) / 512 * 512;
}

// The ops whose CUDA kernels call cuBLAS (aten/src/ATen/native/cuda/Blas.cpp); the composites
// (matmul, linear, einsum) reach one of these.
bool calls_cublas(const std::string& name) {
  static const std::set<std::string> blas{
      "aten::mm",    "aten::addmm", "aten::bmm", "aten::baddbmm",           "aten::addbmm",
      "aten::addmv", "aten::mv",    "aten::dot", "aten::_addmm_activation", "aten::vdot"};
  return blas.count(name) > 0;
}

// addmm with a 1-D bias runs through cuBLASLt's fused bias epilogue (Blas.cpp's useLtInterface),
// which has its own workspace.
bool calls_cublaslt(const TraceOp& op) {
  if (op.name != "aten::addmm" && op.name != "aten::_addmm_activation") return false;
  return !op.inputs.empty() && op.inputs[0].tensors.size() == 1 &&
         op.inputs[0].tensors[0].shape.size() == 1;
}

// Ids of the workspace allocations the CUDA target adds (with_cuda_workspaces), above the meta
// trace's own and below the CPU scratch's (1 << 62).
constexpr uint64_t kWorkspaceIds = uint64_t(1) << 61;
// cuBLASLt's workspace (CublasHandlePool.cpp, getCUDABlasLtWorkspaceSize: CUBLASLT_WORKSPACE_SIZE,
// 1 MiB by default), measured on an H200.
constexpr int64_t kCublasLtWorkspace = 1 << 20;
bool is_workspace(const MemoryEvent& e) {
  return e.id > kWorkspaceIds && e.id < (uint64_t(1) << 62);
}

// CPU kernels' scratch, which the meta device does not allocate (docs/memory.md, "CPU"): PyTorch
// 1.13's choice between oneDNN (mkldnn) and THNN convolution at one thread (Convolution.cpp,
// ConvParams::use_mkldnn), and the buffers each allocates beside the op's plain results, as
// measured op by op with python3-torch 1.13's profiler at one thread on an AVX-512 CPU. Each rule
// gives the bytes that, held from the op's first allocation to its last, reproduce the op's
// measured peak. Kernels with no model (transposed, 3-D, fp16, bf16 depthwise or channels-last)
// add nothing.
int64_t pad16(int64_t c) {
  return (c + 15) / 16 * 16;
}
int64_t round_up(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

// oneDNN's scratchpad entries of fixed size, as measured op by op with the CPU profiler (1.13,
// unchanged on 2.11); the rules below say where each appears.
constexpr int64_t kBiasScratchExtra = 128;             // bytes beside a bias padded to 16 channels
constexpr int64_t kDepthwiseForwardScratch = 4224;     // bytes, channels-last depthwise forward
constexpr int64_t kChannelsLastForwardScratch = 8192;  // bytes, channels-last dense forward
constexpr int64_t kBf16WeightGradScratchExtra = 8580;  // bytes, bf16 weight-gradient scratchpad
constexpr int64_t kRtusExtra = 256;  // bytes beside a strided 1x1's compacted bf16 input

// One 2-D or 3-D convolution or its backward, as the scratch rules need it. A 3-D one's depth
// folds into its height (H = D x H, oh = oD x oH, kh = kD x kH): the rules only count bytes.
struct Conv {
  const TraceOp* op = nullptr;
  bool backward = false, grad_input = false, volumetric = false;
  int64_t N = 0, C = 0, H = 0, W = 0;       // the input
  int64_t OC = 0, icg = 0, kh = 0, kw = 0;  // the weight: OC, C/groups, kh, kw
  int64_t oh = 0, ow = 0, groups = 1, stride_w = 1;
  bool strided = false, dilated = false, padded = false;
  int64_t dilation_h = 1, dilation_w = 1;
  // Depth, height and width apart (depth 1 for a 2-D convolution), for oneDNN's kernel checks.
  std::array<int64_t, 3> in{1, 1, 1}, kernel{1, 1, 1}, out{1, 1, 1}, stride{1, 1, 1}, pad{0, 0, 0};
  int64_t kk() const { return kh * kw; }
  int64_t out_hw() const { return oh * ow; }
  bool depthwise() const { return groups > 1 && icg == 1 && OC == groups; }
};

// Whether oneDNN computes an fp32 weight gradient with its GEMM implementation
// (gemm_convolution_bwd_weights, plain layouts): when both JIT kernels before it refuse the shape.
// jit_avx512_common_conv_bwd_weights_kernel_f32::init_conf refuses a padding beyond its
// boundaries (a depth padding whose kernel reaches past the input: kd >= id + f_pad, r3d_18's
// 3x3x3 layers on a depth of 1 or 2) and kernels wider than 14; jit_avx2_conv_bwd_weights's
// refuses any depth padding, kernels of 14 and wider, and kernels larger than the input
// (oneDNN 3.10.2).
bool gemm_weight_gradient(const Conv& c) {
  if (c.groups != 1 || c.dilated) return false;
  std::array<int64_t, 3> end{};
  for (int i = 0; i < 3; ++i)
    end[i] = std::max<int64_t>(0, (c.out[i] - 1) * c.stride[i] + c.kernel[i] - c.in[i] - c.pad[i]);
  const auto& k = c.kernel;
  const auto& p = c.pad;
  const bool avx512 = p[2] < k[2] && end[2] < k[2] && p[1] <= k[1] / 2 && end[1] <= k[1] / 2 &&
                      p[0] < k[0] && end[0] < k[0] && (p[0] == 0 || k[0] < c.in[0] + p[0]) &&
                      k[2] <= 14;
  const bool avx2 = p[1] < k[1] && end[1] < k[1] && p[2] < k[2] && end[2] < k[2] && p[0] == 0 &&
                    end[0] == 0 && k[2] < 14 && k[1] <= c.in[1] && k[0] <= c.in[0] && c.OC % 8 == 0;
  return !avx512 && !avx2;
}

// fp32, contiguous: oneDNN reorders the weight and, from 16 input channels on (or depthwise),
// the input to a 16-channel-blocked layout and computes into a blocked output; its backward does
// the same for the gradients, twice over. THNN unfolds the input into columns unless the kernel
// is 1x1 with stride 1 and no padding.
int64_t scratch_fp32(const Conv& c, bool mkldnn) {
  if (mkldnn) {
    bool depthwise = c.groups > 1;
    // A grouped convolution of several channels per group (RegNet's group width 8) blocks its
    // activations by 8 channels, not 16 (measured on 2.11, one thread: Conv2d(24, 24, 3,
    // stride 1 and 2, groups 3) at batch 2 holds the input reordered as it is, 24 channels, and
    // the weight, and writes the plain output; timm's regnetx_002 inference was 4.9% high with 16).
    auto pad = [&](int64_t ch) { return depthwise && c.icg > 1 ? (ch + 7) / 8 * 8 : pad16(ch); };
    int64_t ic = depthwise ? c.icg : (c.C < 16 ? c.C : pad16(c.C));
    int64_t weight = (depthwise ? c.OC : pad16(c.OC)) * ic * c.kk() * 4;
    int64_t input = c.C >= 16 || depthwise ? c.N * pad(c.C) * c.H * c.W * 4 : 0;
    int64_t output = c.N * pad(c.OC) * c.out_hw() * 4;
    // Forward: the bias padded to 16 channels (when the channels are not a multiple of 16, in a
    // scratchpad entry of 128 bytes more), the reordered input and weight and the blocked output
    // at once; then the plain output beside the blocked one.
    if (!c.backward) {
      const OpValue& bias = c.op->inputs[2];
      int64_t padded_bias = bias.is_tensor() && c.OC % 16 ? pad16(c.OC) * 4 + kBiasScratchExtra : 0;
      int64_t plain = c.N * c.OC * c.out_hw() * 4;
      // A dilated convolution whose taps reach into the input (dilation below its height and
      // width) holds all four at once: the plain output is made before the reordered input,
      // weight and blocked output go (measured on 2.11: deeplabv3's ASPP at rates 12 and 24 on
      // a 32 x 32 map). At a dilation as large as the map only the centre tap reads the input,
      // and oneDNN takes another path, not modelled.
      // So does a 3-D convolution below 16 input channels, whose input is not reordered
      // (measured on 2.11: r3d_18's 3x7x7 stem at batch 1 and 8; from 16 channels on its peak is
      // the 2-D rule's, as the whole model's peak at batch 8 shows).
      if ((c.dilated && c.dilation_h < c.H && c.dilation_w < c.W) || (c.volumetric && c.C < 16))
        return padded_bias + input + weight + output;
      return std::max(padded_bias + input + weight + output, output + plain) - plain;
    }
    // Backward: below 16 input channels (plain layout) the blocked output gradient, the input
    // and the weight.
    // A weight gradient that oneDNN computes by GEMM (gemm_weight_gradient: ViT's 16 x 16 stem,
    // r3d_18's 3x3x3 layers on a depth of 1 or 2) writes into a plain buffer that stands for the
    // result and takes a scratchpad (gemm_convolution_utils.cpp's init_conf at one thread): the
    // weight reduction, booked as weights_d.size() floats where size() is already in bytes, so 4 x
    // the weight's bytes; the unfolded input of one sample and one output depth slice, C x kernel
    // volume x output height x width floats; 128 bytes of alignment for each. Measured on 2.11, one
    // thread, to the byte: Conv2d(3, OC, k, stride=k) for OC 64, 384 and 768, k 16 and 32, inputs
    // of 112 and 224, batches 1, 2 and 4 (vit_b_16's SGD step at batch 1 is exact to 4 bytes);
    // Conv3d(512, 512, 3, padding 1) on 1 x 4 x 4 at batch 8 (114,131,200 B), Conv3d(256, 512, 3,
    // stride 2, padding 1) on 1 x 8 x 8 (57,065,728 B) and Conv3d(128, 128 and 64, 3, padding 1) on
    // 2 x 12 x 12 at batch 2 (9,068,800 and 5,529,856 B: two depth slices, one slice's columns).
    // The input gradient, when there is one, comes first, by the JIT kernels' rule below.
    const bool gemm = gemm_weight_gradient(c);
    const int64_t gemm_scratchpad =
        gemm ? 4 * (c.OC * c.icg * c.kk() * 4) + c.C * c.kk() * c.out[1] * c.out[2] * 4 + 256 : 0;
    if (!c.grad_input) return gemm ? gemm_scratchpad : output + input + weight;
    // The input's gradient: below 16 channels the plain input beside the blocked output gradient
    // and the weight; from 16 on all blocked, beside the plain results.
    const int64_t plain_weight = c.OC * c.icg * c.kk() * 4 + c.OC * 4;
    const int64_t input_stage = c.C < 16 ? output + c.N * c.C * c.H * c.W * 4 + weight
                                         : output + weight + input - plain_weight;
    if (gemm) return std::max(input_stage, gemm_scratchpad);
    // Then the weight's gradient: from 16 channels on the blocked weight gradient, when larger.
    return c.C < 16 ? input_stage : std::max(input_stage, weight);
  }
  bool columns = c.kk() != 1 || c.strided || c.padded || c.dilated;
  int64_t cols = columns ? c.N * c.icg * c.kk() * c.out_hw() * 4 : 0;
  // Backward: the columns again. A 1x1 stride-1 kernel holds nothing beyond its results (measured
  // on 2.11, one thread: Conv2d(512, 1000, 1) at batch 2 on 13 x 13, squeezenet's classifier, and
  // Conv2d(64, 256, 1) / (256, 64, 1) at batch 2 and 8 on 56 x 56, with and without a bias:
  // transient 0; an output-sized buffer assumed before put squeezenet1_0's AdamW step 1.5% high).
  return cols;
}

// fp32, channels-last (an input or weight with NHWC strides, such as convnext's, whose permutes
// leave its activations channels-last): no activation is reordered, only the weight.
// - The weight is first copied to channels-last unless it already is (one input channel per
//   group, or a 1x1 kernel).
// - THNN: that copy and the unfolded input (columns, unless 1x1 with stride 1 and no padding),
//   forward and backward.
// - oneDNN depthwise: forward a 4,224-byte scratchpad and the weight padded to 16 channels;
//   backward the padded weight, or, for a kernel wider than 3, a weight-gradient scratchpad of
//   256 x the weight's elements in fp32 (38.5 MB for convnext's 768-channel 7x7), whatever the
//   batch; both beside a second weight gradient and bias gradient.
// - oneDNN otherwise: forward the copy, an 8,192-byte scratchpad and the weight reordered with
//   its output channels padded to 16; backward the larger of the input-gradient stage (the copy
//   and the weight padded to 16 in both channel dims, less the plain gradients not yet made) and
//   the weight-gradient stage (the copy, the weight reordered, a second weight and bias gradient).
// - Any backward: a channels-last copy of a grad_output that is not, held throughout.
int64_t scratch_fp32_channels_last(const Conv& c, bool mkldnn) {
  const int64_t kk = c.kk(), weight = c.OC * c.icg * kk * 4, bias = c.OC * 4;
  const int64_t copy = c.icg > 1 && kk > 1 ? weight : 0;
  int64_t grad_copy = 0;  // a 1x1 grad_output is both layouts
  const OpValue& grad = c.op->inputs[0];
  if (c.backward && grad.is_tensor() && !grad.tensor().channels_last && c.out_hw() > 1)
    grad_copy = grad.tensor().bytes();
  if (!mkldnn) {
    bool unit = kk == 1 && !c.strided && !c.padded;
    return grad_copy + copy + (unit ? 0 : c.N * c.icg * kk * c.out_hw() * 4);
  }
  if (c.depthwise()) {
    int64_t padded = pad16(c.OC) * kk * 4;
    if (!c.backward) return kDepthwiseForwardScratch + padded;
    bool wide = std::max(c.kh, c.kw) > 3;
    return grad_copy + (wide ? 256 * c.OC * kk * 4 : padded) + weight + bias;
  }
  if (!c.backward) return copy + kChannelsLastForwardScratch + pad16(c.OC) * c.icg * kk * 4;
  int64_t weight_stage =
      copy + pad16(c.OC) * (c.icg < 16 ? c.icg : pad16(c.icg)) * kk * 4 + weight + bias;
  if (!c.grad_input) return grad_copy + weight_stage;
  int64_t input_stage = copy + pad16(c.OC) * pad16(c.icg) * kk * 4 - weight - bias;
  return grad_copy + std::max(input_stage, weight_stage);
}

// bf16, contiguous, not grouped: 1.13 sends every bf16 convolution to oneDNN on a CPU with
// AVX-512 (mkldnn_bf16_device_check), which blocks as for fp32 but holds more at once. Exact to
// the byte for resnet18's layers at batch 1 and 8, but for the 1x1 strided backward (up to
// 150,784 B low).
// - Forward: the reordered input (from 16 channels on), the weight (input channels padded to 2
//   below 16, else to 16) and the blocked output all at once, then the plain output; a strided
//   1x1 adds one image of input and a per-image compacted ("rtus") input.
// - Backward, input-gradient stage: the blocked output gradient, the weight and the blocked
//   input gradient (a strided 1x1: one image of output and a compacted input more), then the plain
//   input gradient beside the blocked one.
// - Backward, weight-gradient stage, beside the input gradient: the blocked output gradient and
//   input, the weight gradient, and a scratchpad of an fp32 weight gradient plus, for kernels
//   wider than 1, one image of the input and of the output gradient transposed with their widths
//   padded (tr_src, tr_dst) and 8,580 bytes.
int64_t scratch_bf16(const Conv& c) {
  if (c.groups != 1) return 0;
  const int64_t e = 2, kk = c.kk();
  const int64_t weight = c.OC * c.icg * kk * e;
  const int64_t reordered = pad16(c.OC) * (c.C < 16 ? round_up(c.C, 2) : pad16(c.C)) * kk * e;
  const int64_t input = c.C >= 16 ? c.N * pad16(c.C) * c.H * c.W * e : 0;
  const int64_t blocked = c.N * pad16(c.OC) * c.out_hw() * e;
  const int64_t output = c.N * c.OC * c.out_hw() * e;
  const int64_t rtus = kk == 1 && c.strided ? c.C * c.out_hw() * e + kRtusExtra : 0;
  if (!c.backward) {
    int64_t first = (rtus ? c.C * c.H * c.W * e + rtus : 0) + input + reordered + blocked;
    return std::max(first - output, blocked);
  }
  int64_t pad = 0;
  if (kk > 1) {
    int64_t tr_ow = round_up(c.ow, 2);
    int64_t tr_iw = round_up(tr_ow * c.stride_w + c.kw - 1, 2 * c.stride_w);
    int64_t tr_src = c.C >= 16 ? pad16(c.C) * c.H * tr_iw * e : 0;
    int64_t tr_dst = pad16(c.OC) * c.oh * tr_ow * e;
    pad = tr_src + tr_dst + kBf16WeightGradScratchExtra;
  }
  const int64_t scratchpad = 2 * weight + (kk == 1 ? rtus : pad);
  const int64_t grad_in = c.grad_input ? c.N * c.C * c.H * c.W * e : 0;
  const int64_t weight_stage = grad_in + blocked + input + weight + scratchpad;
  int64_t input_stage = 0;
  if (c.grad_input) {
    int64_t grad_in_blocked = c.N * pad16(c.C) * c.H * c.W * e;
    int64_t strided_1x1 = rtus ? c.OC * c.out_hw() * e + rtus : 0;
    input_stage =
        std::max(blocked + reordered + grad_in_blocked + strided_1x1, grad_in_blocked + grad_in);
  }
  return std::max(input_stage, weight_stage) - grad_in - weight;
}

int64_t cpu_conv_scratch(const TraceOp& op, bool backward) {
  // aten::convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding,
  // groups); aten::convolution_backward(grad_output, input, weight, bias_sizes, stride, padding,
  // dilation, transposed, output_padding, groups, output_mask).
  size_t base = backward ? 1 : 0;
  if (op.inputs.size() < base + 9) return 0;
  const OpValue& in = op.inputs[base];
  const OpValue& w = op.inputs[base + 1];
  const size_t dims = in.is_tensor() ? in.tensor().shape.size() : 0;
  if (!w.is_tensor() || (dims != 4 && dims != 5) || w.tensor().shape.size() != dims) return 0;
  auto ints = [&](size_t i) {
    return i < op.inputs.size() ? op.inputs[i].ints : std::vector<int64_t>{};
  };
  std::vector<int64_t> stride = ints(base + 3), padding = ints(base + 4), dilation = ints(base + 5);
  if (!ints(base + 6).empty() && ints(base + 6)[0]) return 0;  // transposed
  auto any_not = [](const std::vector<int64_t>& v, int64_t x) {
    return std::any_of(v.begin(), v.end(), [x](int64_t e) { return e != x; });
  };
  const auto& x = in.tensor().shape;
  const auto& k = w.tensor().shape;
  // The output's spatial dims: the grad_output's in backward, the result's in forward.
  const OpValue& y = backward ? op.inputs[0] : (op.outputs.empty() ? OpValue{} : op.outputs[0]);
  if (!y.is_tensor() || y.tensor().shape.size() != dims) return 0;
  const auto& o = y.tensor().shape;
  Conv c;
  c.op = &op;
  c.backward = backward;
  c.grad_input = backward && !op.inputs.back().ints.empty() && op.inputs.back().ints[0] != 0;
  c.volumetric = dims == 5;
  c.N = x[0], c.C = x[1], c.H = c.volumetric ? x[2] * x[3] : x[2], c.W = x.back();
  c.OC = k[0], c.icg = k[1], c.kh = c.volumetric ? k[2] * k[3] : k[2], c.kw = k.back();
  c.oh = c.volumetric ? o[2] * o[3] : o[2], c.ow = o.back();
  c.groups = ints(base + 8).empty() ? 1 : ints(base + 8)[0];
  c.stride_w = stride.empty() ? 1 : stride.back();
  for (size_t d = 2; d < dims; ++d) {
    size_t i = d - 2, at = 3 - (dims - d);  // depth, height, width
    c.in[at] = x[d], c.kernel[at] = k[d], c.out[at] = o[d];
    if (i < stride.size()) c.stride[at] = stride[i];
    if (i < padding.size()) c.pad[at] = padding[i];
  }
  c.strided = any_not(stride, 1), c.dilated = any_not(dilation, 1), c.padded = any_not(padding, 0);
  if (!dilation.empty()) c.dilation_h = dilation.front(), c.dilation_w = dilation.back();
  bool channels_last = in.tensor().channels_last || w.tensor().channels_last;
  // Every CPU backend's backward takes grad_output dense in its memory format
  // (Convolution.cpp, convolution_backward: grad_output.contiguous(...)), which meta's kernel does
  // not: a permuted grad_output (ViT's stem, whose output is flattened and transposed) is copied.
  int64_t copy = backward && !y.tensor().contiguous ? y.tensor().bytes() : 0;
  if (in.tensor().dtype == DType::kBFloat16)
    return copy + (channels_last || c.volumetric ? 0 : scratch_bf16(c));
  if (in.tensor().dtype != DType::kFloat32) return copy;
  // ConvParams::use_mkldnn at one thread: the kernel's last two dims, the input's first four.
  const int64_t k_h = k[dims - 2];
  bool mkldnn =
      (c.strided || c.dilated || c.N >= 16 || c.kw != 1 || k_h != 1) &&
      (c.groups > 1 || (c.kw > 3 && k_h > 3) || c.N > 1 || x[0] * x[1] * x[2] * x[3] > 20480);
  return copy + (channels_last ? scratch_fp32_channels_last(c, mkldnn) : scratch_fp32(c, mkldnn));
}

// The events with each convolution's CPU scratch added: allocated after the op's first event and
// freed after its last.
std::vector<MemoryEvent> with_cpu_scratch(const Trace& t) {
  std::vector<int> top(t.ops.size(), -1);
  std::vector<int64_t> scratch(t.ops.size(), 0);
  for (size_t i = 0; i < t.ops.size(); ++i) {
    top[i] = t.ops[i].parent < 0 ? int(i) : top[t.ops[i].parent];
    const std::string& name = t.ops[i].name;
    if (name == "aten::convolution" || name == "aten::convolution_backward") {
      // Once per top-level op: its outermost convolution.
      int64_t& s = scratch[top[i]];
      if (s == 0) s = cpu_conv_scratch(t.ops[i], name == "aten::convolution_backward");
    }
  }
  std::vector<size_t> first(t.ops.size(), SIZE_MAX), last(t.ops.size(), 0);
  for (size_t i = 0; i < t.memory.size(); ++i) {
    int op = t.memory[i].op;
    if (op < 0 || size_t(op) >= t.ops.size()) continue;
    int tp = top[op];
    if (first[tp] == SIZE_MAX) first[tp] = i;
    last[tp] = i;
  }
  std::vector<std::vector<MemoryEvent>> after(t.memory.size());
  uint64_t id = uint64_t(1) << 62;
  for (size_t op = 0; op < t.ops.size(); ++op) {
    if (scratch[op] <= 0 || first[op] == SIZE_MAX) continue;
    MemoryEvent e = t.memory[first[op]];
    e.id = ++id;
    e.bytes = scratch[op];
    e.op = int(op);
    after[first[op]].push_back(e);
    e.bytes = -scratch[op];
    after[last[op]].push_back(e);
  }
  std::vector<MemoryEvent> out;
  out.reserve(t.memory.size());
  for (size_t i = 0; i < t.memory.size(); ++i) {
    out.push_back(t.memory[i]);
    for (const auto& e : after[i]) out.push_back(e);
  }
  return out;
}

struct Baseline {
  int64_t parameters = 0, buffers = 0, trainable = 0, trainable_count = 0;
  std::vector<std::pair<int64_t, Category>> tensors;  // one per storage, in model order
};

Baseline baseline(const Model& model) {
  Baseline b;
  for (const TensorInfo* tensor : untied_tensors(model)) {
    const TensorInfo& t = *tensor;
    int64_t bytes = t.bytes();
    bool param = t.role == TensorRole::kParameter;
    (param ? b.parameters : b.buffers) += bytes;
    if (param && t.trainable) {
      b.trainable += bytes;
      b.trainable_count += t.numel();
    }
    if (bytes > 0) b.tensors.push_back({bytes, param ? Category::kParameters : Category::kBuffers});
  }
  return b;
}

}  // namespace

namespace {

// ---------------------------------------------------------------- the passes
// analyze_memory is a pipeline: the target's kernels add what meta does not allocate
// (target_events) -> each allocation gets its category (categorize_events) -> sharding sizes each
// one for this rank (size_events) -> one walk replays them through the target's allocator
// (replay) -> the peak is attributed (attribute_peak) and what stays between steps is counted
// (kept_between_steps).

// The CUDA target's library workspaces, which cuBLAS allocates through the caching allocator and
// keeps (aten/src/ATen/cuda/CublasHandlePool.cpp): one workspace per (handle, stream), and a
// handle per thread, so the forward's thread and autograd's device thread each allocate one at
// their first matrix product (getCurrentCUDABlasHandle, then the workspace inside the op, after
// its output); cuBLASLt's workspace likewise at a thread's first addmm with a bias. Measured on
// an H200 with PyTorch 2.11 (tests/reference/cuda/h200-vision.json's cublas_warmup and traces):
// 32 MiB for cuBLAS (Hopper's default ":4096:8"), 1 MiB for cuBLASLt, the optimizer's step runs
// on the forward's thread, and no convolution or attention kernel touches either.
std::vector<MemoryEvent> with_cuda_workspaces(const Trace& t, int64_t cublas, int64_t cublaslt) {
  std::vector<size_t> first_event(t.ops.size(), SIZE_MAX);
  for (size_t i = 0; i < t.memory.size(); ++i) {
    int op = t.memory[i].op;
    if (op >= 0 && size_t(op) < t.ops.size() && first_event[op] == SIZE_MAX) first_event[op] = i;
  }
  // Where op i's first allocation is, or the first event after it starts.
  auto position = [&](size_t i) {
    if (first_event[i] != SIZE_MAX) return first_event[i] + 1;
    for (size_t j = i + 1; j < t.ops.size(); ++j)
      if (first_event[j] != SIZE_MAX) return first_event[j];
    return t.memory.size();
  };
  std::vector<std::vector<MemoryEvent>> before(t.memory.size() + 1);
  uint64_t id = kWorkspaceIds;
  bool blas[2] = {false, false}, lt[2] = {false, false};  // per thread: forward's, autograd's
  for (size_t i = 0; i < t.ops.size(); ++i) {
    const TraceOp& op = t.ops[i];
    if (!calls_cublas(op.name)) continue;
    int thread = op.phase == Phase::kBackward ? 1 : 0;
    MemoryEvent e;
    e.op = int(i);
    e.phase = op.phase;
    e.iteration = op.iteration;
    if (!blas[thread]) {
      blas[thread] = true;
      e.id = ++id;
      e.bytes = cublas;
      before[position(i)].push_back(e);
    }
    if (!lt[thread] && calls_cublaslt(op)) {
      lt[thread] = true;
      e.id = ++id;
      e.bytes = cublaslt;
      before[position(i)].push_back(e);
    }
  }
  std::vector<MemoryEvent> out;
  out.reserve(t.memory.size() + 4);
  for (size_t i = 0; i <= t.memory.size(); ++i) {
    for (const auto& e : before[i]) out.push_back(e);
    if (i < t.memory.size()) out.push_back(t.memory[i]);
  }
  return out;
}

// Pass: the target kernel model. On CPU the convolutions' scratch joins the sequence; on CUDA the
// libraries' workspaces do (the kernels' own models run in the capture: docs/engine.md).
const std::vector<MemoryEvent>& target_events(const Trace& trace, const MemoryOptions& o,
                                              std::vector<MemoryEvent>& storage) {
  if (o.target == Target::kCpu) {
    storage = with_cpu_scratch(trace);
  } else {
    int64_t cublas = o.gpu ? o.gpu->cublas_workspace : kCublasWorkspaceDefault;
    storage = with_cuda_workspaces(trace, cublas, kCublasLtWorkspace);
  }
  return storage;
}

// Pass: categories. Each allocation's free, and its category from its phase and lifetime.
struct Categorized {
  std::vector<size_t> freed_at;    // per event: the event that frees it, or SIZE_MAX
  std::vector<Category> category;  // per allocation event
};

Categorized categorize_events(const std::vector<MemoryEvent>& ev, bool train) {
  const size_t n = ev.size();
  Categorized c{std::vector<size_t>(n, SIZE_MAX), std::vector<Category>(n, Category::kTransient)};
  std::unordered_map<uint64_t, size_t> open;
  for (size_t i = 0; i < n; ++i) {
    if (ev[i].bytes > 0) {
      open[ev[i].id] = i;
    } else {
      auto it = open.find(ev[i].id);
      if (it != open.end()) {
        c.freed_at[it->second] = i;
        open.erase(it);
      }
    }
  }
  PhaseBounds bounds = phase_bounds(ev);
  for (size_t i = 0; i < n; ++i)
    if (ev[i].bytes > 0)
      c.category[i] = is_workspace(ev[i]) ? Category::kTransient
                                          : categorize(ev, train, bounds, i, c.freed_at[i]);
  return c;
}

// Pass: sharding, driven by its plan. This rank's bytes of each allocation (ZeRO/FSDP/TP divide a
// category by ShardPlan::divisor), without the autocast weight casts that sharding plans drop, and
// what is resident before the first event: the model's tensors and FSDP's gathered unit.
struct Sized {
  std::vector<int64_t> bytes;  // per event
  struct Resident {
    int64_t bytes;
    Category category;
    const char* what;  // for the timeline: "parameters", "gathered parameters (sharding)"
  };
  std::vector<Resident> resident;
};

int64_t shard_share(const ShardPlan& plan, int64_t bytes, Category c) {
  int64_t d = std::max<int64_t>(1, plan.divisor[int(c)]);
  return (bytes + d - 1) / d;
}

Sized size_events(const std::vector<MemoryEvent>& ev, const Categorized& cat, const Trace& trace,
                  const Baseline& base, const MemoryOptions& o, const ShardPlan& plan) {
  Sized s;
  s.bytes.resize(ev.size(), 0);
  for (size_t i = 0; i < ev.size(); ++i) {
    if (ev[i].bytes <= 0) continue;
    bool dropped = false;
    for (int op = ev[i].op; plan.drop_weight_casts && op >= 0 && size_t(op) < trace.ops.size();
         op = trace.ops[op].parent)
      dropped = dropped || trace.ops[op].weight_cast;
    s.bytes[i] = dropped ? 0 : shard_share(plan, ev[i].bytes, cat.category[i]);
  }
  for (const auto& [bytes, c] : base.tensors)
    s.resident.push_back(
        {shard_share(plan, bytes, c), c, c == Category::kParameters ? "parameters" : "buffers"});
  if (plan.gathered > 0)
    s.resident.push_back({plan.gathered, Category::kTransient, "gathered parameters (sharding)"});
  return s;
}

// Pass: the replay. Live bytes per category through the events, with each request placed by the
// CUDA caching allocator when one is given; the peaks overall, per iteration and per phase.
// `stop` ends the walk at an event (the peak's, to see what is live there).
struct Replay {
  CategoryBytes live{};
  int64_t total = 0;
  PeakPoint peak;
  size_t peak_event = SIZE_MAX;
  std::vector<int64_t> iteration_peak;
  std::map<std::pair<int, int>, int64_t> phase_peak;
  std::unordered_map<uint64_t, std::pair<int64_t, size_t>> live_blocks;  // id -> size, event
};

// The timeline's recorder (MemoryOptions::timeline): a step after each change the replay makes,
// with the allocator's actions since the last one. Without an allocator (CPU), each allocation is
// a malloc of its own, recorded as a segment holding one block.
class Recorder {
 public:
  Recorder(const Trace& trace, const std::vector<MemoryEvent>& ev, const Categorized& cat,
           CachingAllocator* a, MemoryTimeline& tl)
      : trace_(trace), ev_(ev), cat_(cat), a_(a), tl_(tl) {
    if (a_) a_->record(&log_);
    tl_.cuda = a_ != nullptr;
  }
  ~Recorder() {
    if (a_) a_->record(nullptr);
  }
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  void resident(const Replay& w, const Sized::Resident& r, int64_t bytes) {
    MemoryTimeline::Step s = base_step(w, r.category, false);
    s.op = intern_op(r.what);
    if (!a_) malloc_actions(next_id_--, bytes, false);
    push(s);
  }
  void event(const Replay& w, size_t i, size_t alloc_event, int64_t bytes) {
    const MemoryEvent& e = ev_[i];
    MemoryTimeline::Step s = base_step(w, cat_.category[alloc_event], e.bytes < 0);
    s.phase = e.phase;
    s.iteration = e.iteration;
    if (e.op >= 0 && size_t(e.op) < trace_.ops.size()) {
      std::vector<int> stack;
      for (int op = e.op; op >= 0; op = trace_.ops[op].parent)
        stack.push_back(intern_op(trace_.ops[op].name));
      s.op = stack.back();
      auto [it, added] = stack_index_.try_emplace(stack, int(tl_.stacks.size()));
      if (added) tl_.stacks.push_back(std::move(stack));
      s.stack = it->second;
      s.module = intern_module(trace_.ops[e.op].call);
    }
    if (!a_) malloc_actions(e.id, bytes, e.bytes < 0);
    push(s);
  }
  void finish() {
    size_t peak = 0;
    for (size_t i = 0; i < tl_.steps.size(); ++i)
      if (tl_.steps[i].allocated > tl_.steps[peak].allocated) peak = i;
    tl_.peak_step = peak;
  }

 private:
  MemoryTimeline::Step base_step(const Replay& w, Category c, bool free) const {
    MemoryTimeline::Step s;
    s.allocated = w.total;
    s.reserved = a_ ? a_->stats().reserved : w.total;
    s.live = w.live;
    s.category = c;
    s.free = free;
    return s;
  }
  void push(const MemoryTimeline::Step& s) {
    int step = int(tl_.steps.size());
    for (const auto& action : log_) tl_.actions.push_back({action, step});
    log_.clear();
    tl_.steps.push_back(s);
  }
  void malloc_actions(uint64_t id, int64_t bytes, bool free) {
    if (!free) {
      int64_t address = next_address_;
      next_address_ += (bytes + 511) / 512 * 512;  // apart, and aligned as malloc's would be
      cpu_blocks_[id] = {address, bytes};
      log_.push_back({AllocatorAction::kSegmentAlloc, address, bytes, 0, -1});
      log_.push_back({AllocatorAction::kAlloc, address, bytes, bytes, int64_t(id)});
      return;
    }
    auto it = cpu_blocks_.find(id);
    if (it == cpu_blocks_.end()) return;
    auto [address, size] = it->second;
    cpu_blocks_.erase(it);
    log_.push_back({AllocatorAction::kFree, address, size, size, int64_t(id)});
    log_.push_back({AllocatorAction::kSegmentFree, address, size, 0, -1});
  }
  int intern_op(const std::string& name) {
    auto [it, added] = op_index_.try_emplace(name, int(tl_.ops.size()));
    if (added) tl_.ops.push_back(name);
    return it->second;
  }
  int intern_module(int call) {
    if (call < 0 || size_t(call) >= trace_.calls.size()) return -1;
    auto [it, added] = module_index_.try_emplace(call, int(tl_.modules.size()));
    if (added) tl_.modules.push_back({trace_.calls[call].path, trace_.calls[call].type});
    return it->second;
  }

  const Trace& trace_;
  const std::vector<MemoryEvent>& ev_;
  const Categorized& cat_;
  CachingAllocator* a_;
  MemoryTimeline& tl_;
  std::vector<AllocatorAction> log_;
  std::unordered_map<std::string, int> op_index_;
  std::unordered_map<int, int> module_index_;
  std::map<std::vector<int>, int> stack_index_;
  std::unordered_map<uint64_t, std::pair<int64_t, int64_t>> cpu_blocks_;  // id -> address, size
  int64_t next_address_ = CachingAllocator::kBaseAddress;
  uint64_t next_id_ = UINT64_MAX;  // ids for the resident tensors, below which no event's lies
};

Replay replay(const std::vector<MemoryEvent>& ev, const Categorized& cat, const Sized& sized,
              size_t stop, CachingAllocator* a, Recorder* rec = nullptr) {
  Replay w;
  auto add = [&](int64_t bytes, Category c) {
    w.live[int(c)] += bytes;
    w.total += bytes;
  };
  for (const auto& r : sized.resident) {
    int64_t bytes = r.bytes;
    if (a) {  // a request the device cannot meet still counts, rounded as a block would be
      int64_t h = a->allocate(r.bytes);
      bytes = h >= 0 ? a->block_size(h) : round_up_512(r.bytes);
    }
    add(bytes, r.category);
    if (rec) rec->resident(w, r, bytes);
  }
  w.peak.bytes = w.total;
  w.peak.by_category = w.live;
  w.peak.phase = Phase::kSetup;
  std::unordered_map<uint64_t, int64_t> handles;
  for (size_t i = 0; i < ev.size() && i <= stop; ++i) {
    const MemoryEvent& e = ev[i];
    if (e.bytes > 0) {
      int64_t size = sized.bytes[i];
      if (size == 0) continue;
      if (a) {
        int64_t h = a->allocate(size);
        size = h >= 0 ? a->block_size(h) : round_up_512(size);
        handles[e.id] = h;
      }
      add(size, cat.category[i]);
      w.live_blocks[e.id] = {size, i};
      if (rec) rec->event(w, i, i, size);
    } else {
      auto it = w.live_blocks.find(e.id);
      if (it == w.live_blocks.end()) continue;
      auto [size, alloc_event] = it->second;
      add(-size, cat.category[alloc_event]);
      w.live_blocks.erase(it);
      if (a) {
        auto h = handles.find(e.id);
        if (h != handles.end() && h->second >= 0) a->free(h->second);
        if (h != handles.end()) handles.erase(h);
      }
      if (rec) rec->event(w, i, alloc_event, size);
    }
    if (e.iteration >= int(w.iteration_peak.size())) w.iteration_peak.resize(e.iteration + 1, 0);
    w.iteration_peak[e.iteration] = std::max(w.iteration_peak[e.iteration], w.total);
    auto& pp = w.phase_peak[{e.iteration, int(e.phase)}];
    pp = std::max(pp, w.total);
    if (w.total > w.peak.bytes) {
      w.peak.bytes = w.total;
      w.peak.by_category = w.live;
      w.peak.phase = e.phase;
      w.peak.iteration = e.iteration;
      w.peak_event = i;
    }
  }
  return w;
}

// Pass: attribution. The peak's top-level op and module, and what is live there by the module
// that allocated it (activations, transient and output; `at` is a replay stopped at the peak).
void attribute_peak(const std::vector<MemoryEvent>& ev, const Categorized& cat, const Trace& trace,
                    const Replay& full, const Replay& at, MemoryReport& r) {
  const MemoryEvent& e = ev[full.peak_event];
  if (e.op >= 0 && size_t(e.op) < trace.ops.size()) {
    // The top-level op, which names what the user wrote.
    int op = e.op;
    while (trace.ops[op].parent >= 0) op = trace.ops[op].parent;
    r.peak.op = trace.ops[op].name;
    int call = trace.ops[e.op].call;
    if (call >= 0 && size_t(call) < trace.calls.size()) r.peak.module = trace.calls[call].path;
  }
  std::map<int, int64_t> by_call;
  for (const auto& [id, block] : at.live_blocks) {
    const MemoryEvent& a = ev[block.second];
    Category c = cat.category[block.second];
    if (c != Category::kActivations && c != Category::kTransient && c != Category::kOutput)
      continue;
    int call = a.op >= 0 && size_t(a.op) < trace.ops.size() ? trace.ops[a.op].call : 0;
    by_call[call] += block.first;
  }
  std::map<std::string, ModuleBytes> by_module;
  for (const auto& [call, bytes] : by_call) {
    const ModuleCall& mc = trace.calls[size_t(call) < trace.calls.size() ? call : 0];
    auto& m = by_module[mc.path];
    m.module = mc.path;
    m.type = mc.type;
    m.bytes += bytes;
  }
  for (auto& [path, m] : by_module) r.modules.push_back(m);
  std::sort(r.modules.begin(), r.modules.end(),
            [](const ModuleBytes& a, const ModuleBytes& b) { return a.bytes > b.bytes; });
}

// Pass: model states. What stays between iterations: the model's tensors (this rank's share),
// the optimizer's state, and the gradients live after the last backward (set_to_none frees them
// only at the next zero_grad).
void kept_between_steps(const std::vector<MemoryEvent>& ev, const Categorized& cat,
                        const Sized& sized, const Trace& trace, const Baseline& base,
                        const ShardPlan& plan, MemoryReport& r) {
  r.model_states[int(Category::kParameters)] = 0;
  r.model_states[int(Category::kBuffers)] = 0;
  for (const auto& [bytes, c] : base.tensors) r.model_states[int(c)] += shard_share(plan, bytes, c);
  CategoryBytes end{};
  for (size_t i = 0; i < ev.size(); ++i)
    if (ev[i].bytes > 0 && cat.freed_at[i] == SIZE_MAX) end[int(cat.category[i])] += sized.bytes[i];
  r.model_states[int(Category::kOptimizerState)] = end[int(Category::kOptimizerState)];
  if (trace.train) r.model_states[int(Category::kGradients)] = end[int(Category::kGradients)];
}

}  // namespace

MemoryReport analyze_memory(const Model& model, const Trace& trace, const MemoryOptions& o,
                            const ShardPlan& plan) {
  std::vector<MemoryEvent> storage;
  const std::vector<MemoryEvent>& ev = target_events(trace, o, storage);
  MemoryReport r;
  r.source = model.source;
  r.train = trace.train;
  r.target = o.target;
  r.iterations = trace.iterations;
  r.stopped = trace.stopped;
  r.gpu = o.gpu;
  const bool cuda = o.target == Target::kCuda;

  // The device: its capacity for the process, and what lies outside the allocator.
  if (o.gpu) {
    r.device_overhead = o.gpu->context;
    r.capacity = o.gpu->total;
  }
  if (o.capacity) r.capacity = *o.capacity;

  AllocatorConfig config = o.allocator;
  if (cuda && r.capacity > 0)
    // A device whose context alone fills it has room for nothing: capacity 0 would mean no limit.
    config.capacity = std::max<int64_t>(1, r.capacity - r.device_overhead);
  CachingAllocator allocator(config);

  Baseline base = baseline(model);
  r.parameter_count = base.trainable_count;
  Categorized cat = categorize_events(ev, trace.train);
  Sized sized = size_events(ev, cat, trace, base, o, plan);

  std::shared_ptr<MemoryTimeline> timeline;
  std::optional<Recorder> recorder;
  if (o.timeline) {
    timeline = std::make_shared<MemoryTimeline>();
    recorder.emplace(trace, ev, cat, cuda ? &allocator : nullptr, *timeline);
  }
  Replay full = replay(ev, cat, sized, SIZE_MAX, cuda ? &allocator : nullptr,
                       recorder ? &*recorder : nullptr);
  if (recorder) {
    recorder->finish();
    recorder.reset();
    r.timeline = timeline;
  }
  r.peak = full.peak;
  r.iteration_peak = full.iteration_peak;
  for (const auto& [key, peak] : full.phase_peak)
    r.phases.push_back({Phase(key.second), key.first, peak});
  if (full.peak_event != SIZE_MAX) {
    // What is live at the peak, by category, as on a device large enough: on a device too small,
    // the allocations after the one that fails would be missing (a KV cache that does not fit).
    AllocatorConfig unbounded = config;
    unbounded.capacity = 0;
    CachingAllocator again(unbounded);
    Replay at = replay(ev, cat, sized, full.peak_event, cuda ? &again : nullptr);
    attribute_peak(ev, cat, trace, full, at, r);
  }
  kept_between_steps(ev, cat, sized, trace, base, plan, r);
  if (cuda) {
    r.allocator = allocator.stats();
    if (r.capacity > 0) {
      // Near the limit the allocator releases its cache and retries, so the run fits when no
      // allocation failed. What it would reserve with no limit is the need reported.
      AllocatorConfig unlimited = config;
      unlimited.capacity = 0;
      CachingAllocator free_run(unlimited);
      // A run that does not fit is pictured as it would go on a device large enough, as its
      // peaks are reported.
      if (timeline && allocator.stats().out_of_memory) {
        *timeline = MemoryTimeline{};
        recorder.emplace(trace, ev, cat, &free_run, *timeline);
      }
      replay(ev, cat, sized, SIZE_MAX, &free_run, recorder ? &*recorder : nullptr);
      if (recorder) {
        recorder->finish();
        recorder.reset();
      }
      int64_t need = free_run.stats().reserved_peak + r.device_overhead;
      r.fits = !r.allocator.out_of_memory;
      r.margin = r.capacity - need;
      if (*r.fits && r.margin < 0) {
        r.margin = r.capacity - r.device_overhead - r.allocator.reserved_peak;
        r.notes.push_back(
            "it fits only because the allocator releases cached segments near the limit "
            "(reserved with no limit: " +
            human_bytes(free_run.stats().reserved_peak) + ")");
      }
      r.unlimited_reserved_peak = free_run.stats().reserved_peak;
      if (r.allocator.out_of_memory) {
        // The peaks the run would reach, had the device been large enough.
        int64_t request = r.allocator.oom_request;
        r.allocator = free_run.stats();
        r.allocator.out_of_memory = true;
        r.allocator.oom_request = request;
      }
    }
  } else {
    r.allocator.allocated_peak = r.peak.bytes;
    r.allocator.requested_peak = r.peak.bytes;
    if (r.capacity > 0) {
      r.fits = r.peak.bytes <= r.capacity;
      r.margin = r.capacity - r.peak.bytes;
    }
  }
  if (!trace.stopped.empty())
    r.notes.push_back("the capture stopped early (" + trace.stopped +
                      "): the numbers cover what ran before it and are a lower bound");
  if (cuda && std::any_of(trace.ops.begin(), trace.ops.end(), [](const TraceOp& op) {
        return op.name == "aten::convolution" || op.name == "aten::convolution_backward";
      }))
    r.notes.push_back(
        "cuDNN's convolution workspaces are not modelled: on an H200 they put the allocated "
        "peak of vision models' training steps up to 6% above this estimate and of inference "
        "at batch 64 up to 42% (vgg16) (docs/memory.md, \"CUDA: measured on an H200\")");
  r.gaps = trace_gaps(trace);
  r.warnings = trace.warnings;
  r.rules = rules_line(cuda ? "cuda" : "cpu", trace.torch);
  return r;
}

int64_t fit_need(const MemoryReport& r) {
  return r.target == Target::kCuda ? r.allocator.allocated_peak + r.device_overhead : r.peak.bytes;
}

int64_t largest_fitting(const std::function<bool(int64_t)>& fits,
                        const std::function<int64_t(int64_t)>& need, int64_t capacity,
                        int64_t max) {
  std::set<int64_t> probed;
  auto need_at = [&](int64_t n) {
    probed.insert(n);
    return need(n);
  };
  auto fits_at = [&](int64_t n) {
    probed.insert(n);
    return fits(n);
  };
  if (!fits_at(1)) return 0;
  if (max <= 1) return 1;
  // Memory grows about linearly: aim at the limit from the last two points, then close the
  // bracket [lo, hi) the same way, halving where the line stops helping.
  int64_t lo = 1, hi = 0, a = 1, b = 2;
  int64_t width = INT64_MAX;  // the bracket's width at the last aim
  while (hi == 0 || hi - lo > 1) {
    double slope = double(need_at(b) - need_at(a)) / double(b - a);
    int64_t guess = slope > 0 ? a + int64_t(double(capacity - need_at(a)) / slope)
                    : hi      ? (lo + hi) / 2
                              : lo * 2;
    // Where memory grows faster than the line (attention's scores with the context), the aim
    // falls short: step at least an eighth of lo up, and bisect when the last aim did not halve
    // the bracket, so that a bracket never shrinks slower than every other step by half.
    if (hi == 0) {
      guess = std::clamp<int64_t>(guess, lo + std::max<int64_t>(1, lo / 8), std::min(max, lo * 64));
    } else {
      guess = std::clamp<int64_t>(guess, lo + 1, hi - 1);
      if (guess == a || guess == b || 2 * (hi - lo) > width) guess = (lo + hi) / 2;
      width = hi - lo;
    }
    if (probed.count(guess)) guess = hi ? (lo + hi) / 2 : std::min(max, guess * 2);
    if (fits_at(guess)) {
      lo = guess;
      if (lo >= max) break;
    } else {
      hi = guess;
    }
    a = b;
    b = guess;
    if (a == b) a = lo;
  }
  return lo;
}

SeedEstimate seed_estimate(const Model& model, const Summary& summary, int bits) {
  SeedEstimate s;
  // The module that holds the last parameter, in registration order: pytorch_modelsize keeps only
  // the last module's parameters (its loop resets `sizes` per module).
  std::string last;
  for (const TensorInfo* tensor : untied_tensors(model)) {
    const TensorInfo& t = *tensor;
    if (t.role != TensorRole::kParameter) continue;
    s.parameters += t.numel();
    auto dot = t.name.rfind('.');
    last = dot == std::string::npos ? "" : t.name.substr(0, dot);
  }
  s.parameter_bytes = s.parameters * bits / 8;
  int64_t last_params = 0;
  for (const auto& t : model.tensors) {
    if (t.role != TensorRole::kParameter) continue;
    auto dot = t.name.rfind('.');
    std::string owner = dot == std::string::npos ? "" : t.name.substr(0, dot);
    if (owner == last || owner.rfind(last + ".", 0) == 0) last_params += t.numel();
  }
  s.seed_param_bits = last_params * bits;
  for (const auto& in : summary.inputs) {
    int64_t numel = 1;
    for (int64_t d : in.shape) numel *= d;
    s.seed_input_bits += numel * bits;
  }
  for (size_t i = 1; i < summary.rows.size(); ++i)
    for (const auto& shape : summary.rows[i].output_shapes) {
      int64_t numel = 1;
      for (int64_t d : shape) numel *= d;
      s.seed_output_bits += 2 * numel * bits;
    }
  s.seed_total_bits = s.seed_param_bits + s.seed_input_bits + s.seed_output_bits;
  s.seed_megabytes = double(s.seed_total_bits) / 8 / (1024.0 * 1024.0);
  s.fixed_total_bits = s.parameters * bits + s.seed_input_bits + s.seed_output_bits;
  return s;
}

}  // namespace footprint
