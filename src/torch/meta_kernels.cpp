// Meta kernels for the aten ops that have none in C++ LibTorch 2.11 (Python's meta registrations
// have most of them, and exist only where Python has imported torch: docs/engine.md), and the
// target kernel models that replace what meta would run (scaled_dot_product_attention). A
// shape-only kernel allocates its outputs with the shapes and dtypes the real kernel gives, and
// computes nothing; it is registered only where the dispatcher has no Meta kernel of its own.
// Registration happens at run time (torch::Library), so no whole-archive linking is needed.
//
// Every other aten op without a Meta kernel gets a boxed guess. It cannot know the op's shapes,
// so it guesses the broadcast shape of the tensor inputs (right for element-wise ops), says so
// through take_guessed_op(), and refuses ops that return anything but tensors.
#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <ATen/OpMathType.h>
#include <ATen/TensorIterator.h>
#include <ATen/Version.h>
#include <ATen/WrapDimUtils.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/Resize.h>
#include <ATen/ops/_transformer_encoder_layer_fwd_native.h>
#include <ATen/ops/dropout_native.h>
#include <ATen/ops/gru_native.h>
#include <ATen/ops/lstm_native.h>
#include <ATen/ops/scaled_dot_product_attention_native.h>
#include <torch/library.h>
#include <torch/version.h>

#include <cstdio>
#include <limits>
#include <numeric>

#include "torch/autocast.h"
#include "torch/meta.h"

namespace footprint::detail {
namespace {

// A C++ kernel of the op's own for Meta. (Not the computed table: convolution_overrideable's
// CompositeExplicitAutograd default would count, and it only throws.) A Python one (a process
// that imported torch has Python meta kernels for many ops, decompositions that allocate what the
// real kernel does not) is overridden: the dispatcher lets a later Meta kernel replace an earlier
// one, as PyTorch's own Python registrations replace C++ ones.
bool has_meta_kernel(const char* name) {
  auto op = c10::Dispatcher::singleton().findSchema({name, ""});
  return op && op->hasKernelForDispatchKey(c10::DispatchKey::Meta) && !meta_kernel_is_python(*op);
}

int64_t at_or_first(at::IntArrayRef v, int64_t i) {
  return v[v.size() == 1 ? 0 : i];
}

// aten::convolution_overrideable: what conv1d/2d/3d and their transposes reach on Meta.
at::Tensor convolution(const at::Tensor& input, const at::Tensor& weight,
                       const c10::optional<at::Tensor>&, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef dilation, bool transposed,
                       at::IntArrayRef output_padding, int64_t groups) {
  std::vector<int64_t> out{input.size(0), transposed ? weight.size(1) * groups : weight.size(0)};
  for (int64_t i = 0; i < input.dim() - 2; ++i) {
    int64_t in = input.size(i + 2), k = weight.size(i + 2), s = at_or_first(stride, i),
            p = at_or_first(padding, i), d = at_or_first(dilation, i);
    out.push_back(transposed
                      ? (in - 1) * s - 2 * p + d * (k - 1) + at_or_first(output_padding, i) + 1
                      : (in + 2 * p - d * (k - 1) - 1) / s + 1);
  }
  // Channels-last when the input or the weight is, as oneDNN, THNN and cuDNN choose
  // (Convolution.cpp's mkldnn_conv_use_channels_last and cudnn_conv_suggest_memory_format).
  auto format = at::MemoryFormat::Contiguous;
  auto last = input.dim() == 5 ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::ChannelsLast;
  if ((input.dim() == 4 || input.dim() == 5) &&
      (input.suggest_memory_format() == last || weight.suggest_memory_format() == last))
    format = last;
  return at::empty(out, input.options().memory_format(format));
}

// CPU's batch norm saves the mean and inverse std, [C] each, in training; [0] in eval.
std::tuple<at::Tensor, at::Tensor, at::Tensor> native_batch_norm(const at::Tensor& x,
                                                                 const c10::optional<at::Tensor>&,
                                                                 const c10::optional<at::Tensor>&,
                                                                 const c10::optional<at::Tensor>&,
                                                                 const c10::optional<at::Tensor>&,
                                                                 bool training, double, double) {
  int64_t c = training ? x.size(1) : 0;
  return {at::empty_like(x), at::empty({c}, x.options()), at::empty({c}, x.options())};
}

at::Tensor adaptive_avg_pool2d(const at::Tensor& x, at::IntArrayRef out) {
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end() - 2);
  shape.push_back(out[0]);
  shape.push_back(at_or_first(out, 1));
  return at::empty(shape, x.options());
}

at::Tensor unary(const at::Tensor& x) {
  return at::empty_like(x);
}
// aten::roll (swin's shifted windows), as TensorTransformations.cpp's roll_common and the CPU
// and CUDA kernels run it: several dims roll one dim at a time (each step a new tensor, the one
// before freed); no dims roll the flattened tensor; one dim reads a contiguous input (a copy of a
// strided one) and writes a contiguous output.
at::Tensor roll(const at::Tensor& self, c10::SymIntArrayRef shifts, at::IntArrayRef dims) {
  if (dims.empty() && shifts.size() == 1)
    return at::roll_symint(self.contiguous().view(self.numel()), shifts, {0}).view(self.sizes());
  if (dims.size() > 1 && shifts.size() == dims.size()) {
    at::Tensor first = at::roll_symint(self, shifts.slice(0, 1), dims.slice(0, 1));
    return at::roll_symint(first, shifts.slice(1), dims.slice(1));
  }
  at::Tensor in = self.is_contiguous() ? self : self.contiguous();
  return at::empty_like(in, at::MemoryFormat::Contiguous);
}
at::Tensor hardtanh(const at::Tensor& x, const at::Scalar&, const at::Scalar&) {
  return at::empty_like(x);
}

// The mask is bool, one per element, made before the output (cuda/Dropout.cu's dropout_cuda;
// measured on an H200).
std::tuple<at::Tensor, at::Tensor> native_dropout(const at::Tensor& x, double,
                                                  c10::optional<bool>) {
  at::Tensor mask = at::empty_like(x, x.options().dtype(at::kBool));
  return {at::empty_like(x), mask};
}

// Gradients for the inputs output_mask asks for; undefined tensors for the others.
at::Tensor grad_if(bool wanted, const at::Tensor& like) {
  return wanted && like.defined() ? at::empty_like(like) : at::Tensor();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> convolution_backward(
    const at::Tensor&, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef,
    at::IntArrayRef, at::IntArrayRef, bool transposed, at::IntArrayRef, int64_t groups,
    std::array<bool, 3> mask) {
  int64_t out_channels = transposed ? weight.size(1) * groups : weight.size(0);
  return {grad_if(mask[0], input), grad_if(mask[1], weight),
          mask[2] ? at::empty({out_channels}, weight.options()) : at::Tensor()};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> native_batch_norm_backward(
    const at::Tensor&, const at::Tensor& input, const c10::optional<at::Tensor>& weight,
    const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&,
    const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&, bool, double,
    std::array<bool, 3> mask) {
  auto channels = at::empty({input.size(1)}, input.options());
  return {grad_if(mask[0], input), grad_if(mask[1] && weight && weight->defined(), channels),
          grad_if(mask[2], channels)};
}

// ---------------------------------------------------------------- scaled_dot_product_attention
// On meta, scaled_dot_product_attention (aten/src/ATen/native/transformers/attention.cpp, a
// CompositeImplicitAutograd op) asks _fused_sdp_choice_stub only for devices the stub serves,
// CPU and CUDA, so it takes the math path and builds the whole [B, H, L, S] score matrix, which
// the real kernels never do.
// The target kernel model for the CPU target (PyTorch 2.11, one thread):
//   - the backend: select_sdp_backend_cpp tries flash first, and use_flash_attention_cpp takes it
//     for 4-D q, k, v of one floating dtype (fp32, fp64, bf16, fp16), equal batch, equal heads
//     (or with enable_gqa key and value heads that divide the query's), equal head dims, non-empty
//     sequences, unit last-dim strides, no dropout, and a mask that is absent or at most 4-D; else
//     math;
//   - the flash kernel's allocations (aten/src/ATen/native/cpu/FlashAttentionKernel.cpp,
//     cpu_flash_attention and cpu_flash_attention_backward), below.
// The CUDA target's kernels are below: cuDNN's and memory-efficient attention's measured on an
// H200 (tests/reference/cuda/h200-vision.json), flash's from source (docs/memory.md).
thread_local bool t_cuda_target = true;
thread_local int t_cuda_sm = 90;
thread_local int t_cuda_multiprocessors = 132;

constexpr int64_t kSdpMath = 0;       // sdp::SDPBackend::math
constexpr int64_t kSdpFlash = 1;      // sdp::SDPBackend::flash_attention
constexpr int64_t kSdpEfficient = 2;  // sdp::SDPBackend::efficient_attention
constexpr int64_t kSdpCudnn = 3;      // sdp::SDPBackend::cudnn_attention

int64_t round_multiple(int64_t x, int64_t m) {
  return (x + m - 1) / m * m;
}

// Equal batch, equal heads (or with enable_gqa key and value heads that divide the query's: the
// CUDA kernels take grouped-query attention, check_batch_size_and_num_heads_dense<true>), equal
// head dims, non-empty sequences and unit last-dim strides, for 4-D q, k and v.
bool same_batch_heads_dims(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           bool gqa = false) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) return false;
  bool heads = gqa ? k.size(1) == v.size(1) && k.size(1) > 0 && q.size(1) % k.size(1) == 0
                   : q.size(1) == k.size(1) && q.size(1) == v.size(1);
  return heads && q.size(0) == k.size(0) && q.size(0) == v.size(0) && q.size(3) == k.size(3) &&
         q.size(3) == v.size(3) && q.size(2) > 0 && k.size(2) > 0 && q.stride(3) == 1 &&
         k.stride(3) == 1 && v.stride(3) == 1;
}

// fp16 or bf16 q, k, v (same_batch_heads_dims) with head dims of at most 256,
// non-empty sequences, unit last-dim strides, on sm80 and later: what cuDNN attention (on sm90)
// and flash attention both take (sdp_utils.cpp).
bool cuda_half_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 bool gqa) {
  auto dtype = q.scalar_type();
  return same_batch_heads_dims(q, k, v, gqa) && (dtype == at::kHalf || dtype == at::kBFloat16) &&
         k.scalar_type() == dtype && v.scalar_type() == dtype && q.size(3) <= 256 &&
         t_cuda_sm >= 80;
}

// Memory-efficient attention (sdp_utils.cpp's use_mem_efficient_attention): fp32, fp16 or bf16,
// the head dim a multiple of 16 bytes' worth of elements, equal heads (grouped-query attention
// goes to math: measured, fp32 qwen3 at batch 64); it takes a mask as its bias.
bool cuda_efficient_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  auto dtype = q.scalar_type();
  int64_t align = dtype == at::kFloat ? 4 : 8;
  return same_batch_heads_dims(q, k, v) &&
         (dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16) &&
         k.scalar_type() == dtype && v.scalar_type() == dtype && q.size(3) % align == 0 &&
         t_cuda_sm >= 50;
}

// The backend a real run on the target picks (sdp::select_sdp_backend_cpp for the CPU). On CUDA,
// PyTorch 2.11 on sm90 with the wheel's cuDNN puts cuDNN attention first (sdp_utils.cpp's
// priority order), for fp16/bf16 head dims that are a multiple of 8 up to 128, with or without a
// mask; then flash (sm80 and later, no mask: a causal mask is is_causal), then memory-efficient
// attention (fp32, or a mask flash cannot take), then math. Measured on an H200
// (tests/reference/cuda/h200-vision.json, h200-sequence.json): bf16 with head dims 32, 64 and
// 128 takes cuDNN, with a [T, T] boolean or additive mask too; head dim 256 takes flash; fp32
// takes memory-efficient, with or without a mask.
// A rule keyed by version (docs/versions.md), from source, not measured: sdp_utils.cpp's
// priority_order puts cuDNN first only when check_prefer_cudnn_attention holds, which wants a
// runtime cuDNN newer than 9.15 on sm90 (pytorch#171627; 2.9's check wanted a build against
// cuDNN 9.9 or newer, pytorch#162073, and 2.9's wheels were built against 9.8, pytorch#165801).
// The default wheels of torch 2.9 and 2.10 carry cuDNN 9.10.2, so there the order stays flash,
// memory-efficient, math, cuDNN; 2.11's carries 9.19, 2.15's 9.26.
constexpr bool kCudnnAttentionFirst = TORCH_VERSION_MAJOR > 2 ||
                                      (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 11);

int64_t sdp_backend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const c10::optional<at::Tensor>& mask, double dropout, bool gqa = false) {
  if (t_cuda_target) {
    const bool masked = mask && mask->defined();
    if (cuda_half_attention_applies(q, k, v, gqa)) {
      if (kCudnnAttentionFirst && t_cuda_sm >= 90 && q.size(3) % 8 == 0 && q.size(3) <= 128)
        return kSdpCudnn;
      if (!masked) return kSdpFlash;
    }
    return cuda_efficient_applies(q, k, v) ? kSdpEfficient : kSdpMath;
  }
  auto dtype = q.scalar_type();
  bool ok = q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.scalar_type() == dtype &&
            v.scalar_type() == dtype &&
            (dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16 ||
             dtype == at::kHalf) &&
            dropout == 0.0 && (!mask || !mask->defined() || mask->dim() <= 4);
  // check_batch_size_and_num_heads_dense<true>: the CPU flash kernel takes grouped-query
  // attention too.
  return ok && same_batch_heads_dims(q, k, v, gqa) ? kSdpFlash : kSdpMath;
}

// attention.cpp's should_compute_logsumexp: the kernels keep their softmax statistics only when
// a gradient will be asked for.
bool computes_logsumexp(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return (q.requires_grad() || k.requires_grad() || v.requires_grad()) &&
         at::GradMode::is_enabled();
}

// scaled_dot_product_attention for meta tensors, registered for AutogradMeta (training: the
// composite's own slot, so the ops it calls record their backward) and for Meta (inference mode,
// which skips the autograd keys). It does what the composite does, with the target's backend:
// flash calls _scaled_dot_product_flash_attention_for_cpu after converting a boolean mask to an
// additive one (convert_boolean_attn_mask: zeros_like, then -inf where the mask is false); any
// other choice runs LibTorch's composite itself, which takes math on meta.
at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k,
                                        const at::Tensor& v, const c10::optional<at::Tensor>& mask,
                                        double dropout, bool causal, c10::optional<double> scale,
                                        bool gqa) {
  const int64_t backend = sdp_backend(q, k, v, mask, dropout, gqa);
  if (backend == kSdpCudnn || backend == kSdpEfficient) {
    // attention.cpp's convert_boolean_attn_mask: a boolean mask becomes an additive one of the
    // query's dtype, where(mask, 0, -inf) over two scalar tensors (measured: 2 + 2 bytes, then
    // the mask's shape). Memory-efficient attention pads a mask whose rows are not 16-element
    // aligned (preprocess_mask's pad_bias) and takes it expanded to [B, H, L, S], a view.
    c10::optional<at::Tensor> bias = mask;
    if (mask && mask->defined() && mask->scalar_type() == at::kBool) {
      auto o = q.options();
      bias = at::where(*mask, at::scalar_tensor(0.0, o),
                       at::scalar_tensor(-std::numeric_limits<double>::infinity(), o));
    }
    if (backend == kSdpCudnn)
      return std::get<0>(at::_scaled_dot_product_cudnn_attention(
          q, k, v, bias, computes_logsumexp(q, k, v), dropout, causal, false, scale));
    if (bias && bias->defined()) {
      const int64_t S = bias->size(-1);
      if (S % 16 != 0) {
        std::vector<int64_t> padded(bias->sizes().begin(), bias->sizes().end());
        padded.back() = round_multiple(S, 16);
        bias = at::empty(padded, bias->options()).narrow(-1, 0, S);
      }
      bias = bias->expand({q.size(0), q.size(1), q.size(2), k.size(2)});
    }
    return std::get<0>(at::_scaled_dot_product_efficient_attention(
        q, k, v, bias, computes_logsumexp(q, k, v), dropout, causal, scale));
  }
  if (backend != kSdpFlash)
    return at::native::scaled_dot_product_attention(q, k, v, mask, dropout, causal, scale, gqa);
  if (t_cuda_target)
    return std::get<0>(
        at::_scaled_dot_product_flash_attention(q, k, v, dropout, causal, false, scale));
  c10::optional<at::Tensor> additive = mask;
  if (mask && mask->defined() && mask->scalar_type() == at::kBool) {
    at::Tensor converted = at::zeros_like(*mask, q.scalar_type());
    converted.masked_fill_(mask->logical_not(), -std::numeric_limits<double>::infinity());
    additive = converted;
  }
  return std::get<0>(
      at::_scaled_dot_product_flash_attention_for_cpu(q, k, v, dropout, causal, additive, scale));
}

// The kernel's tiles: flash_attention_kernel_impl picks the query split by the query length,
// and both splits are capped at the sequence lengths.
int64_t q_split(int64_t q_len) {
  return std::min(q_len, q_len >= 768 ? int64_t{256} : q_len >= 192 ? int64_t{64} : int64_t{32});
}
int64_t kv_split(int64_t kv_len) {
  return std::min(kv_len, int64_t{512});
}

at::Tensor with_layout_of(const at::Tensor& q, std::vector<int64_t> shape) {
  std::vector<int64_t> order(shape.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return q.stride(a) < q.stride(b); });
  std::vector<int64_t> strides(shape.size());
  int64_t stride = 1;
  for (int64_t d : order) {
    strides[d] = stride;
    stride *= shape[d];
  }
  return at::empty_strided(shape, strides, q.options());
}

// Forward: the output [B, H, L, Ev] and the log-sum-exp [B, H, L] in the accumulation type
// (fp32 for bf16/fp16), then per thread (one) a buffer of qk + qk_max + qk_sum + dst,
// qSplit x kvSplit + 2 qSplit + qSplit x E accumulation floats, and for bf16/fp16 a qSplit x
// kvSplit buffer at the input's type, both freed on return.
std::tuple<at::Tensor, at::Tensor> flash_attention_for_cpu(const at::Tensor& q, const at::Tensor& k,
                                                           const at::Tensor& v, double, bool,
                                                           const c10::optional<at::Tensor>&,
                                                           c10::optional<double>) {
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), E = q.size(3), S = k.size(2);
  auto accum = at::toOpMathType(q.scalar_type());
  // The output is laid out in the query's order of dimensions (alloc_with_matching_layout in
  // sdp_utils_cpp.h: the dims sorted by the query's strides, filled innermost first), so that
  // MultiheadAttention's permute(2, 0, 1, 3) of it is already contiguous (measured).
  at::Tensor out = with_layout_of(q, {B, H, L, v.size(3)});
  at::Tensor lse = at::empty({B, H, L}, q.options().dtype(accum));
  const int64_t qs = q_split(L), kvs = kv_split(S);
  bool reduced = accum != q.scalar_type();
  at::Tensor buf = at::empty({1, qs * kvs + 2 * qs + qs * E}, q.options().dtype(accum));
  at::Tensor buf_reduced = at::empty({1, qs, reduced ? kvs : 0}, q.options());
  return {out, lse};
}

// Backward: dq, dk and dv shaped like q, k and v, a contiguous copy of grad_out in the kernel's
// [B, L, H, E] order, per thread attn + grad_attn (2 x qSplit x kvSplit accumulation floats) plus
// qSplit floats more (measured on 2.11: 256 B at qSplit 64), and for bf16/fp16 the same two
// tiles at the input's type; the copy and the buffers are freed on return.
std::tuple<at::Tensor, at::Tensor, at::Tensor> flash_attention_for_cpu_backward(
    const at::Tensor& grad_out, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor&, const at::Tensor&, double, bool, const c10::optional<at::Tensor>&,
    c10::optional<double>) {
  auto accum = at::toOpMathType(q.scalar_type());
  // The kernel's own layout, [B, L, H, E] under a transpose (AccumulateGrad copies them into a
  // leaf laid out [B, H, L, E], measured).
  auto grad = [](const at::Tensor& x) {
    return at::empty({x.size(0), x.size(2), x.size(1), x.size(3)}, x.options()).transpose(1, 2);
  };
  at::Tensor dq = grad(q), dk = grad(k), dv = grad(v);
  at::Tensor grad_copy;
  if (!grad_out.transpose(1, 2).is_contiguous()) grad_copy = at::empty_like(grad_out);
  const int64_t qs = q_split(q.size(2)), kvs = kv_split(k.size(2));
  bool reduced = accum != q.scalar_type();
  at::Tensor buf = at::empty({1, 2 * qs * kvs + qs}, q.options().dtype(accum));
  at::Tensor buf_reduced = at::empty({1, reduced ? 2 * qs * kvs : 0}, q.options());
  return {dq, dk, dv};
}

// The CUDA flash kernels (aten/src/ATen/native/transformers/cuda/attention.cu and
// attention_backward.cu, flash_api.cpp's mha_fwd and mha_bwd), from source, not yet measured. They
// work on q, k, v transposed to [B, L, H, D]. Forward: the output empty_like that view (the
// query's layout where it is dense, else contiguous), returned transposed back, and the
// log-sum-exp [B, H, L] in fp32. The philox seed and offset are host tensors (none without
// dropout); nothing else is allocated on the device.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, c10::SymInt, c10::SymInt, at::Tensor,
           at::Tensor, at::Tensor>
flash_attention_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor&, double, bool,
                     bool, c10::optional<double>) {
  at::Tensor out = at::empty_like(q.transpose(1, 2)).transpose(1, 2);
  at::Tensor lse = at::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(at::kFloat));
  return {out,
          lse,
          at::Tensor(),
          at::Tensor(),
          c10::SymInt(q.size(2)),
          c10::SymInt(k.size(2)),
          at::Tensor(),
          at::Tensor(),
          at::Tensor()};
}

// Backward: contiguous copies of grad_out and out in [B, L, H, D] where they are not so
// (_flash_attention_backward), dq, dk, dv empty_like the transposed q, k, v, the row sums of
// dO * O (softmax_d, [B, H, L rounded to 128] fp32) and FlashAttention-2's fp32 dq accumulator
// [B, L rounded to 128, H, D rounded to 32 (to 256 above 192)]; all but dq, dk, dv freed on return.
std::tuple<at::Tensor, at::Tensor, at::Tensor> flash_attention_cuda_backward(
    const at::Tensor& grad_out, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor&, const at::Tensor&, const at::Tensor&, c10::SymInt,
    c10::SymInt, double, bool, const at::Tensor&, const at::Tensor&, c10::optional<double>) {
  at::Tensor grad_copy = grad_out.transpose(1, 2).contiguous();
  at::Tensor out_copy = out.transpose(1, 2).contiguous();
  at::Tensor dq = at::empty_like(q.transpose(1, 2));
  at::Tensor dk = at::empty_like(k.transpose(1, 2));
  at::Tensor dv = at::empty_like(v.transpose(1, 2));
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3);
  const int64_t L128 = round_multiple(L, 128), Dr = D <= 192 ? round_multiple(D, 32) : 256;
  at::Tensor softmax_d = at::empty({B, H, L128}, q.options().dtype(at::kFloat));
  at::Tensor dq_accum = at::empty({B, L128, H, Dr}, q.options().dtype(at::kFloat));
  return {dq.transpose(1, 2), dk.transpose(1, 2), dv.transpose(1, 2)};
}

// Memory-efficient attention on CUDA (attention.cu's _efficient_attention_forward and
// attention_backward.cu's _efficient_attention_backward), as measured on an H200 (fp32, head dim
// 64, 197 tokens, batches 1, 8 and 64: tests/reference/cuda/h200-vision.json's traces). Forward:
// the output [B, L, H, Dv] returned transposed to [B, H, L, Dv], and the log-sum-exp
// [B, H, L rounded up to 32] in fp32 only when a gradient will be asked for; the philox seed and
// offset are host tensors.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> efficient_attention_cuda(
    const at::Tensor& q, const at::Tensor&, const at::Tensor& v, const c10::optional<at::Tensor>&,
    bool compute_log_sumexp, double, bool, c10::optional<double>) {
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2);
  at::Tensor out = at::empty({B, L, H, v.size(3)}, q.options()).transpose(1, 2);
  at::Tensor lse = at::empty({B, H, compute_log_sumexp ? round_multiple(L, 32) : 0},
                             q.options().dtype(at::kFloat));
  return {out, lse, at::Tensor(), at::Tensor()};
}

// Backward, in the kernel's order: grad_out in [B, L, H, D] made contiguous (a copy where it is
// not), dq, dk and dv, the row sums delta = (dO * O).sum(-1) as [B, H, L] fp32 (the product and
// the sums before the transposed copy are freed at once), the kernel's fp32 workspace of
// B x H x (L rounded up to 64 x D rounded up to 64 + 16) floats, then delta, the workspace and the
// copy of grad_out freed. The workspace's formula is fitted to the three measured batches.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> efficient_attention_cuda_backward(
    const at::Tensor& grad_out, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
    double, std::array<bool, 4>, bool, c10::optional<double>) {
  at::Tensor go = grad_out.transpose(1, 2);
  at::Tensor go_copy = go.is_contiguous() ? at::Tensor() : go.contiguous();
  const at::Tensor& dout = go_copy.defined() ? go_copy : go;
  at::Tensor dq = at::empty(q.transpose(1, 2).sizes(), q.options());
  at::Tensor dk = at::empty(k.transpose(1, 2).sizes(), k.options());
  at::Tensor dv = at::empty(v.transpose(1, 2).sizes(), v.options());
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3);
  at::Tensor product = at::empty(dout.sizes(), dout.options().dtype(at::kFloat));
  at::Tensor sums = at::empty({B, L, H}, dout.options().dtype(at::kFloat));
  at::Tensor delta = at::empty({B, H, L}, dout.options().dtype(at::kFloat));
  sums.reset();
  product.reset();
  at::Tensor workspace =
      at::empty({B * H * (round_multiple(L, 64) * round_multiple(D, 64) + 16) * 4},
                q.options().dtype(at::kByte));
  delta.reset();
  workspace.reset();
  go_copy.reset();
  return {dq.transpose(1, 2), dk.transpose(1, 2), dv.transpose(1, 2), at::Tensor()};
}

// cuDNN attention on CUDA (attention.cu's _scaled_dot_product_cudnn_attention_cuda and
// cudnn/MHA.cpp), as measured on an H200 (bf16 under autocast, head dim 64, 197 tokens, batches
// 1, 8 and 64). Forward: the philox seed and offset as device int64 scalars, the output in the
// query's layout, the softmax statistics [B, H, L] in fp32 when a gradient will be asked for, and
// a 256-byte workspace freed on return. Backward: dq, dk and dv like q, k and v, and a workspace
// of an fp32 [B, H, L, D] (dq's accumulator) plus an fp32 [B, H, L] and 256 bytes, freed on return.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, c10::SymInt, c10::SymInt, at::Tensor,
           at::Tensor, at::Tensor>
cudnn_attention_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor&,
                     const c10::optional<at::Tensor>&, bool compute_log_sumexp, double, bool, bool,
                     c10::optional<double>) {
  at::Tensor seed = at::empty({}, q.options().dtype(at::kLong));
  at::Tensor offset = at::empty({}, q.options().dtype(at::kLong));
  at::Tensor out = at::empty_like(q.transpose(1, 2)).transpose(1, 2);
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2);
  at::Tensor lse =
      compute_log_sumexp ? at::empty({B, H, L, 1}, q.options().dtype(at::kFloat)) : at::Tensor();
  at::empty({256}, q.options().dtype(at::kByte));  // the workspace, freed at once
  return {out,  lse,    at::Tensor(), at::Tensor(), c10::SymInt(L), c10::SymInt(k.size(2)),
          seed, offset, at::Tensor()};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> cudnn_attention_cuda_backward(
    const at::Tensor&, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
    const at::Tensor&, const at::Tensor&, c10::SymInt, c10::SymInt, double, bool,
    c10::optional<double>) {
  at::Tensor dq = at::empty_like(q);
  at::Tensor dk = at::empty_like(k);
  at::Tensor dv = at::empty_like(v);
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), D = q.size(3);
  at::empty({4 * B * H * L * D + 4 * B * H * L + 256}, q.options().dtype(at::kByte));
  return {dq, dk, dv};
}

// ---------------------------------------------------------------- reductions on CUDA
// A CUDA reduction (aten/src/ATen/native/cuda/Reduce.cuh, gpu_reduce_kernel) picks its launch from
// the TensorIterator's shape and strides (setReduceConfig). When one output's inputs are split
// across thread blocks (ctas_per_output > 1), it allocates a staging buffer of the accumulation
// type and one int semaphore per block column through the caching allocator, both freed when the
// kernel is queued. A Linear's bias gradient (sum over the batch rows) on a large batch is the
// common case: measured on an H200 (132 SMs, 2048 threads per SM), 25,165,824 B for a bf16
// [2048, 1536] sum over rows with 48 B of semaphores, 512 + 4 B for the mean of 2^20 floats.
// This follows setReduceConfig as in PyTorch 2.x for sum and mean (the accumulation type is fp32
// for fp32/fp16/bf16, fp64 for fp64, int64 for integers; 4 inputs per vector load).
int last_pow2(int64_t n) {
  int64_t p = 1;
  while (p * 2 <= n) p *= 2;
  return static_cast<int>(std::max<int64_t>(1, p));
}

int max_threads_per_sm(int sm) {
  if (sm == 75) return 1024;
  if (sm == 86 || sm == 87 || sm == 89) return 1536;
  return 2048;
}

struct ReduceLaunch {
  int64_t buffer = 0;      // bytes of the staging buffer; 0 when there is no global reduce
  int64_t semaphores = 0;  // bytes
};

ReduceLaunch reduce_launch(const at::TensorIteratorBase& iter, int64_t acc_size) {
  const int64_t num_outputs = iter.num_output_elements();
  const int64_t inputs_per_output = iter.numel() / std::max<int64_t>(1, num_outputs);
  const int input = iter.ntensors() - 1;
  const int64_t elem = iter.element_size(input);
  int64_t dim0 = 1, dim1 = 1, fastest_stride = elem;
  bool on_fastest = true;
  if (iter.ndim() > 0) {
    const auto strides = iter.strides(input);
    const int nr = iter.num_reduce_dims();
    on_fastest = nr == iter.ndim() || strides[0] < strides[nr];
    dim0 = on_fastest ? inputs_per_output : num_outputs;
    dim1 = on_fastest ? num_outputs : inputs_per_output;
    fastest_stride = on_fastest ? strides[0] : strides[nr];
  }
  int output_vec = 1;
  if (fastest_stride == elem) {
    if (on_fastest && dim0 > 128 && iter.num_reduce_dims() == 1) {
      dim0 /= 4;  // vectorize along the input
    } else if (!on_fastest) {
      // get_output_vec_size: 4, halved until it divides the input's offset, the output dim's
      // size and every other stride (the caching allocator's blocks are 512-byte aligned).
      auto halve_until_divides = [&](int64_t v) {
        while (v % output_vec != 0) output_vec /= 2;
      };
      output_vec = 4;
      halve_until_divides(iter.tensor_base(input).storage_offset());
      const int out_dim = iter.num_reduce_dims();
      halve_until_divides(iter.shape()[out_dim]);
      const auto strides = iter.strides(input);
      for (int j = 0; j < iter.ndim(); ++j)
        if (j != out_dim) halve_until_divides(strides[j] / elem);
      dim0 /= output_vec;
    }
  }
  const int max_threads = 512 / output_vec;
  const int d0 = dim0 < max_threads ? last_pow2(dim0) : max_threads;
  const int d1 = dim1 < max_threads ? last_pow2(dim1) : max_threads;
  int block_width = std::min(d0, 32);
  const int block_height = std::min(d1, max_threads / block_width);
  block_width = std::min(d0, max_threads / block_height);
  const int64_t threads = int64_t{block_width} * block_height;
  int64_t step_input = 1, step_output = 1;
  bool block_x_reduce = false, block_y_reduce = false;
  if (iter.ndim() == 0 || on_fastest) {
    block_x_reduce = true;
    step_input *= block_width;
  } else {
    step_output *= block_width;
  }
  auto values_per_thread = [&] { return (inputs_per_output + step_input - 1) / step_input; };
  if (values_per_thread() >= block_height * 16 || values_per_thread() >= 256) {
    block_y_reduce = true;
    step_input *= block_height;
  } else {
    step_output *= block_height;
  }
  const int64_t target_grid =
      int64_t{t_cuda_multiprocessors} * (max_threads_per_sm(t_cuda_sm) / threads);
  const int64_t grid_x = (num_outputs / output_vec + step_output - 1) / step_output;
  ReduceLaunch out;
  if (block_y_reduce && values_per_thread() >= 256 && grid_x <= target_grid) {
    const int64_t c1 = (target_grid + grid_x - 1) / grid_x;
    const int64_t c2 = (values_per_thread() + 15) / 16;
    const int64_t c3 = (values_per_thread() + 255) / 256;
    const int64_t ctas = std::max(std::min(c1, c2), c3);
    if (ctas > 1) {
      out.buffer = acc_size * num_outputs * ctas * (block_x_reduce ? 1 : block_width * output_vec);
      out.semaphores = 4 * grid_x;
    }
  }
  return out;
}

void reduction_buffers(const PendingReduction& r, const at::Tensor& result) {
  const at::Tensor& self = r.self;
  if (!self.defined() || self.dim() == 0 || self.numel() == 0 || result.numel() == 0) return;
  const int64_t nd = self.dim();
  std::vector<bool> reduced(nd, r.dims.empty());
  for (int64_t d : r.dims) reduced[c10::maybe_wrap_dim(d, nd)] = true;
  // The result viewed with the reduced dims kept (ReduceOpsUtils.h's review_reduce_result).
  std::vector<int64_t> sizes(nd), strides(nd);
  for (int64_t d = 0, k = 0; d < nd; ++d) {
    const bool kept = !reduced[d] || r.keepdim;
    sizes[d] = reduced[d] ? 1 : self.size(d);
    strides[d] = kept && k < result.dim() ? result.stride(k) : 0;
    if (kept) ++k;
  }
  at::Tensor viewed = result.as_strided(sizes, strides);
  auto iter = at::TensorIteratorConfig()
                  .set_check_mem_overlap(false)
                  .add_output(viewed)
                  .add_const_input(self)
                  .resize_outputs(false)
                  .is_reduction(true)
                  .check_all_same_dtype(false)
                  .build();
  const auto st = self.scalar_type();
  const int64_t acc = at::isFloatingType(st) ? (st == at::kDouble ? 8 : 4) : 8;
  ReduceLaunch most;
  auto take = [&](const at::TensorIteratorBase& it) {
    ReduceLaunch l = reduce_launch(it, acc);
    if (l.buffer > most.buffer) most = l;
  };
  if (iter.can_use_32bit_indexing()) {
    take(iter);
  } else {
    for (auto& sub : iter.with_32bit_indexing()) take(sub);
  }
  if (most.buffer == 0) return;
  auto bytes = self.options().dtype(at::kByte);
  at::Tensor buffer = at::empty({most.buffer}, bytes);
  at::empty({most.semaphores}, bytes);  // the semaphores, freed first
}

// ---------------------------------------------------------------- recurrent layers
// nn.LSTM and nn.GRU on the CUDA target: cuDNN's RNN (aten/src/ATen/native/cudnn/RNN.cpp,
// _cudnn_impl and _cudnn_rnn), as measured on an H200 with cuDNN 9.19
// (tests/reference/cuda/h200-sequence.json: 2 layers, 64 steps, hidden 256, batches 1, 8 and 64,
// fp32, bf16 and bf16 autocast). The parameters are one flat buffer, as nn.LSTM keeps them on
// CUDA (flatten_parameters); under autocast, AutocastRNN.cpp's _cudnn_rnn_cast_reflatten makes
// a new one at the lower precision (zeros, then each weight copied in) and casts hx, cx and the
// input. Unidirectional LSTM and GRU without proj_size are modelled; any other recurrent layer
// runs LibTorch's composite.
int64_t numel_of(at::TensorList tensors) {
  int64_t total = 0;
  for (const auto& t : tensors) total += t.numel();
  return total;
}

constexpr int64_t kCudnnLstm = 2;  // cudnnRNNMode_t's CUDNN_LSTM, as _cudnn_rnn's `mode`
constexpr int64_t kCudnnGru = 3;   // CUDNN_GRU

// cuDNN's workspace and reserve. The reserve (kept for the backward in training) is, exactly on
// every measured shape (1 to 3 layers, 32 to 128 steps, hidden 256 to 1024, batches 1 to 64), per
// step, batch row and hidden unit: 5 elements per layer for LSTM (its 4 gates and the cell) or 6
// for GRU, plus each layer's output but the last, plus 256 bytes. The workspace (freed before the
// op returns; the backward takes one for the data and one for the weights) is fitted to the 2-layer
// shape of the sequence plan, a fixed part plus a part per batch row (LSTM: exact at batches 8 and
// 64, 24 B under at 1; GRU: within 0.6%). On other shapes it is not right: held-out shapes measured
// the next day (tests/reference/cuda/h200-holdout.json) took 12.5 to 108 MiB for the fixed part
// where this says 17.75 to 19.5 MiB. `units` is steps x batch rows x layers x hidden units.
int64_t cudnn_rnn_reserve(int64_t mode, int64_t elem, int64_t layers, int64_t units) {
  const int64_t per_layer = mode == kCudnnLstm ? 6 : 7;
  return elem * (units / layers) * (per_layer * layers - 1) + 256;
}
int64_t cudnn_rnn_workspace(int64_t mode, int64_t elem, int64_t batch, int64_t units) {
  const bool half = elem == 2;
  if (mode == kCudnnLstm) return (half ? 18612480 : 20447488) + 93 * elem * units / 32 + 8 * batch;
  return (half ? 18228632 : 19679784) + 2310 * elem * units / 1000;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> cudnn_rnn(
    const at::Tensor& input, at::TensorList weight, int64_t,
    const c10::optional<at::Tensor>& weight_buf, const at::Tensor& hx,
    const c10::optional<at::Tensor>& cx, int64_t mode, int64_t hidden, int64_t, int64_t layers,
    bool batch_first, double, bool train, bool, at::IntArrayRef, const c10::optional<at::Tensor>&) {
  // The input as cuDNN reads it, [T, B, I] contiguous: a copy for batch_first when B > 1.
  at::Tensor x = (batch_first ? input.transpose(0, 1) : input).contiguous();
  const int64_t T = x.size(0), B = x.size(1), elem = input.element_size();
  at::Tensor y = at::empty({T, B, hidden}, input.options());
  at::Tensor hy = at::empty_like(hx);
  at::Tensor cy = cx && cx->defined() ? at::empty_like(*cx) : at::Tensor();
  at::Tensor copied;  // no flat buffer given: the weights are copied into a new one
  if (!weight_buf || !weight_buf->defined())
    copied = at::empty({numel_of(weight)}, weight[0].options());
  const int64_t units = T * B * layers * hidden;
  at::Tensor workspace =
      at::empty({cudnn_rnn_workspace(mode, elem, B, units)}, input.options().dtype(at::kByte));
  at::Tensor reserve = at::empty({train ? cudnn_rnn_reserve(mode, elem, layers, units) : 0},
                                 input.options().dtype(at::kByte));
  workspace.reset();
  x.reset();
  if (batch_first) y = y.transpose(0, 1);
  return {y, hy, cy, reserve, copied.defined() ? copied : *weight_buf};
}

// The backward, in cudnn/RNN.cpp's order: zeros for a hidden state's gradient not given; the data
// backward (the input and grad_output made [T, B, *] contiguous, dx, dhx, dcx, its workspace,
// the copies freed); then the weight backward (the input contiguous again, dw as one flat buffer
// whose views are the weights' gradients, its workspace).
std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>> cudnn_rnn_backward(
    const at::Tensor& input, at::TensorList weight, int64_t, const at::Tensor&,
    const at::Tensor& hx, const c10::optional<at::Tensor>& cx, const at::Tensor&,
    const c10::optional<at::Tensor>& grad_output, const c10::optional<at::Tensor>& grad_hy,
    const c10::optional<at::Tensor>& grad_cy, int64_t mode, int64_t hidden, int64_t, int64_t layers,
    bool batch_first, double, bool, bool, at::IntArrayRef, const c10::optional<at::Tensor>&,
    const at::Tensor&, std::array<bool, 4> output_mask) {
  const bool lstm = cx && cx->defined();
  at::Tensor dhy = grad_hy && grad_hy->defined() ? at::Tensor() : at::zeros_like(hx);
  at::Tensor dcy = lstm && !(grad_cy && grad_cy->defined()) ? at::zeros_like(*cx) : at::Tensor();
  auto time_major = [&](const at::Tensor& t) {
    return (batch_first ? t.transpose(0, 1) : t).contiguous();
  };
  at::Tensor x = time_major(input);
  const int64_t T = x.size(0), B = x.size(1), elem = input.element_size();
  const int64_t ws = cudnn_rnn_workspace(mode, elem, B, T * B * layers * hidden);
  at::Tensor dy = grad_output && grad_output->defined()
                      ? time_major(*grad_output)
                      : at::zeros({T, B, hidden}, input.options());
  at::Tensor dx = at::empty_like(x);
  at::Tensor dhx = at::empty_like(hx);
  at::Tensor dcx = lstm ? at::empty_like(*cx) : at::Tensor();
  at::empty({ws}, input.options().dtype(at::kByte));  // the data backward's workspace
  dy.reset();
  x.reset();
  std::vector<at::Tensor> dw;
  if (output_mask[3]) {
    at::Tensor x_again = time_major(input);
    at::Tensor flat = at::empty({numel_of(weight)}, weight[0].options());
    int64_t offset = 0;
    for (const auto& w : weight) {
      dw.push_back(flat.narrow(0, offset, w.numel()).view(w.sizes()));
      offset += w.numel();
    }
    at::empty({ws}, input.options().dtype(at::kByte));  // the weight backward's workspace
  }
  if (batch_first) dx = dx.transpose(0, 1);
  return {dx, dhx, dcx, dw};
}

bool cudnn_rnn_applies(const at::Tensor& input, at::TensorList params, bool has_biases,
                       int64_t num_layers, bool bidirectional) {
  auto dtype = input.scalar_type();
  return t_cuda_target && !bidirectional && input.dim() == 3 &&
         (dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16) &&
         params.size() == size_t((has_biases ? 4 : 2) * num_layers);
}

// What _cudnn_impl calls: under autocast, AutocastRNN's reflatten first (a lower-precision flat
// copy of the weights, hx, cx and the input cast); else the weights' own flat buffer.
std::tuple<at::Tensor, at::Tensor, at::Tensor> cudnn_rnn_call(at::Tensor input, at::Tensor hx,
                                                              c10::optional<at::Tensor> cx,
                                                              at::TensorList params,
                                                              bool has_biases, int64_t mode,
                                                              int64_t num_layers, double dropout,
                                                              bool train, bool batch_first) {
  std::vector<at::Tensor> weights(params.begin(), params.end());
  // Stands for the flat buffer the weights are views of; the real one requires no grad. A model
  // cast to bf16 or fp16 as a whole was measured without one (cuDNN copies its weights at each
  // call: 2 bytes per parameter, kept for the backward).
  c10::optional<at::Tensor> buf;
  if (input.scalar_type() == at::kFloat) buf = weights[0].detach();
  auto lower = autocast_lower();
  if (lower && input.scalar_type() == at::kFloat) {
    AutocastPause pause;
    buf = at::zeros({numel_of(params)}, params[0].options().dtype(*lower));
    int64_t offset = 0;
    for (auto& w : weights) {
      // set_ onto the buffer's storage (not a view of it, for autograd): each weight's copy is
      // its own CopyBackwards, whose gradient is cast back to fp32 per weight.
      at::Tensor part = at::empty({0}, buf->options());
      part.set_(buf->storage(), offset, w.sizes(), c10::contiguous_strides(w.sizes()));
      offset += w.numel();
      part.copy_(w);
      w = part;
    }
    hx = hx.to(*lower);
    if (cx) cx = cx->to(*lower);
    input = input.to(*lower);
  }
  AutocastPause pause;
  auto out = at::_cudnn_rnn(input, weights, has_biases ? 4 : 2, buf, hx, cx, mode, hx.size(2), 0,
                            num_layers, batch_first, dropout, train, false, {}, c10::nullopt);
  return {std::get<0>(out), std::get<1>(out), std::get<2>(out)};
}

// nn.GRU on the CPU target. aten::gru (aten/src/ATen/native/RNN.cpp) runs _rnn_impl_with_concat
// over FullLayer, whose CPU branch (`inputs.device().is_cpu()`) projects the whole input sequence
// through the input weights at once and feeds each step's slice to the cell; on any other device,
// meta included, each step projects its own slice. The input projection [T, B, 3H] then lives
// through the whole layer. This does what the CPU branch does, with the same calls and lifetimes:
// the cell is GRUCell's non-fused path; each layer's step outputs are stacked before they and the
// projection are freed; dropout between layers in training; the final hiddens stacked. A
// bidirectional layer does the same per direction (FullBidirectionalLayer, below).
struct GruParams {
  at::Tensor w_ih, w_hh, b_ih, b_hh;
};

at::Tensor gru_cell_precomputed(const at::Tensor& igates, const at::Tensor& hidden,
                                const GruParams& p) {
  const auto chunked_igates = igates.unsafe_chunk(3, 1);
  const auto chunked_hgates = at::linear(hidden, p.w_hh, p.b_hh).unsafe_chunk(3, 1);
  const auto reset_gate = chunked_hgates[0].add_(chunked_igates[0]).sigmoid_();
  const auto input_gate = chunked_hgates[1].add_(chunked_igates[1]).sigmoid_();
  const auto new_gate = chunked_igates[2].add(chunked_hgates[2].mul_(reset_gate)).tanh_();
  return (hidden - new_gate).mul_(input_gate).add_(new_gate);
}

std::pair<at::Tensor, at::Tensor> gru_layer_cpu(const at::Tensor& inputs, const at::Tensor& h0,
                                                const GruParams& p) {
  const auto inputs_w = at::linear(inputs, p.w_ih, p.b_ih);
  std::vector<at::Tensor> outputs;
  at::Tensor hidden = h0;
  for (const auto& step : inputs_w.unbind(0)) {
    hidden = gru_cell_precomputed(step, hidden, p);
    outputs.push_back(hidden);
  }
  TORCH_CHECK(!outputs.empty(), "Expected sequence length to be larger than 0 in RNN");
  return {at::stack(outputs, 0), hidden};
}

// FullBidirectionalLayer's CPU branch: the forward direction's input projection, its steps and
// their stack; then the backward direction's projection (the first one freed once its step views
// go), its steps over the reversed inputs, their stack, and the two stacks concatenated.
std::pair<at::Tensor, std::pair<at::Tensor, at::Tensor>> gru_bidirectional_layer_cpu(
    const at::Tensor& input, const at::Tensor& h_fw, const at::Tensor& h_bw, const GruParams& fw,
    const GruParams& bw) {
  auto run = [](const std::vector<at::Tensor>& steps, at::Tensor hidden, const GruParams& p) {
    std::vector<at::Tensor> outputs;
    for (const auto& step : steps) {
      hidden = gru_cell_precomputed(step, hidden, p);
      outputs.push_back(hidden);
    }
    return std::make_pair(std::move(outputs), hidden);
  };
  at::Tensor input_w = at::linear(input, fw.w_ih, fw.b_ih);
  std::vector<at::Tensor> step_inputs = input_w.unbind(0);
  auto fw_result = run(step_inputs, h_fw, fw);
  TORCH_CHECK(!fw_result.first.empty(), "Expected sequence length to be larger than 0 in RNN");
  at::Tensor fw_output = at::stack(fw_result.first, 0);
  input_w = at::linear(input, bw.w_ih, bw.b_ih);
  step_inputs = input_w.unbind(0);
  std::reverse(step_inputs.begin(), step_inputs.end());
  auto rev_result = run(step_inputs, h_bw, bw);
  std::reverse(rev_result.first.begin(), rev_result.first.end());
  at::Tensor rev_output = at::stack(rev_result.first, 0);
  return {at::cat({fw_output, rev_output}, fw_output.dim() - 1),
          {fw_result.second, rev_result.second}};
}

std::tuple<at::Tensor, at::Tensor> gru(const at::Tensor& input, const at::Tensor& hx,
                                       at::TensorList params, bool has_biases, int64_t num_layers,
                                       double dropout, bool train, bool bidirectional,
                                       bool batch_first) {
  const size_t per_layer = has_biases ? 4 : 2;
  if (cudnn_rnn_applies(input, params, has_biases, num_layers, bidirectional)) {
    auto out = cudnn_rnn_call(input, hx, c10::nullopt, params, has_biases, kCudnnGru, num_layers,
                              dropout, train, batch_first);
    return {std::get<0>(out), std::get<1>(out)};
  }
  const int64_t directions = bidirectional ? 2 : 1;
  if (t_cuda_target || params.size() != per_layer * size_t(num_layers * directions))
    return at::native::gru(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                           batch_first);
  at::Tensor layer_input = batch_first ? input.transpose(0, 1) : input;
  auto hiddens = hx.unbind(0);
  std::vector<at::Tensor> final_hiddens;
  auto params_of = [&](int64_t index) {
    const at::Tensor* w = params.data() + index * per_layer;
    return GruParams{w[0], w[1], has_biases ? w[2] : at::Tensor(),
                     has_biases ? w[3] : at::Tensor()};
  };
  for (int64_t l = 0; l < num_layers; ++l) {
    at::Tensor outputs;
    if (bidirectional) {
      auto [out, final_hidden] = gru_bidirectional_layer_cpu(
          layer_input, hiddens[2 * l], hiddens[2 * l + 1], params_of(2 * l), params_of(2 * l + 1));
      final_hiddens.push_back(final_hidden.first);
      final_hiddens.push_back(final_hidden.second);
      outputs = out;
    } else {
      auto [out, final_hidden] = gru_layer_cpu(layer_input, hiddens[l], params_of(l));
      final_hiddens.push_back(final_hidden);
      outputs = out;
    }
    layer_input = outputs;
    if (dropout != 0 && train && l < num_layers - 1)
      layer_input = at::dropout(layer_input, dropout, /*train=*/true);
  }
  at::Tensor hy = at::stack(final_hiddens, 0);
  if (batch_first) layer_input.transpose_(0, 1);
  return {layer_input, hy};
}

// nn.LSTM on the CPU target: oneDNN's fused LSTM. aten::lstm (aten/src/ATen/native/RNN.cpp) takes
// lstm_mkldnn_stub for CPU tensors when use_mkldnn holds (fp32 here; an LSTM without proj_size);
// mkldnn/RNN.cpp's mkldnn_rnn then runs one at::mkldnn_rnn_layer per layer and direction. On meta
// the composite runs LSTMCell step by step, whose gates and cell states the real run never makes.
// What each layer allocates is oneDNN 3.10.2's (the version PyTorch 2.11 bundles; ref_rnn.cpp,
// rnn_utils.hpp/.cpp, x64/rnn/rnn_brgemm_utils.cpp), for fp32 on an AVX-512 CPU at one thread:
//   - forward in training (grad mode): the workspace (ideep's workspace_desc, kept for the
//     backward); both weights reordered to ldigo with a good leading dimension (the plain ref path:
//     oneDNN's brgemm RNN refuses f32 training); the primitive's scratchpad; then all three freed;
//   - forward in inference: the brgemm path, both weights reordered to ldgOi32o (the gate's output
//     units padded to 32) and a scratchpad that also holds the states (no workspace);
//   - backward: both weights reordered to ldgoi where the good leading dimension differs from the
//     plain one, the two weight gradients in ldigo, a bias-sized diff buffer and the scratchpad.
// Every byte count was checked against the pinned torch's profiler at one thread on 16 forward
// and 4 backward shapes (docs/memory.md), to the byte.
constexpr int64_t kOnednnLstm = 2;  // ideep::rnn_kind::LSTM, as mkldnn_rnn_layer's `mode`

int64_t round_up(int64_t x, int64_t m) {
  return (x + m - 1) / m * m;
}

// rnn_utils::get_good_ld for fp32: a multiple of 64 bytes, one cache line more at a multiple of 256
// elements (to avoid 4K aliasing).
int64_t good_ld(int64_t dim) {
  const int64_t ld = round_up(dim, 16);
  return ld % 256 == 0 ? ld + 16 : ld;
}

// rnn_utils::set_offsets: each part of the workspace or scratchpad starts on a 4096-byte page.
int64_t paged(std::initializer_list<int64_t> parts) {
  int64_t offset = 0;
  for (int64_t part : parts) offset = round_up(offset, 4096) + part;
  return round_up(offset, 4096);  // the last register_space (ws_grid_comp, scratch_cell) rounds
}

// A rule keyed by version (docs/versions.md): oneDNN before 3.9 (3.7.1 in torch 2.9, 3.8 in
// none of the supported releases) books more for the same LSTM. Its set_offsets registers
// ws_states_iter twice more (rnn_utils.cpp:128-130 at v3.7.1 and v3.8.2, gone at v3.9), each on a
// page of its own and never used; and pd_t::init_scratchpad books the rnn space's gates, ht and
// diff ht again (ref_rnn.cpp:598-602), through book<T>(key, bytes), which multiplies the byte
// count by sizeof(T) = 4 and aligns each entry to 128 bytes. The release is the one this torch
// bundles, read from at::show_config()'s "MKL-DNN v3.7.1" (torch.__config__.show() in Python).
bool onednn_before_3_9() {
  static const bool before = [] {
    const std::string config = at::show_config();
    const size_t at = config.find("MKL-DNN v");
    int major = 0, minor = 0;
    if (at == std::string::npos ||
        std::sscanf(config.c_str() + at + 9, "%d.%d", &major, &minor) != 2)
      return false;
    return major < 3 || (major == 3 && minor < 9);
  }();
  return before;
}

struct OnednnLstmLayer {
  int64_t T, B, I, H;  // steps, batch rows, input and hidden units (one layer, one direction)
  bool before_3_9 = onednn_before_3_9();
  int64_t states() const { return 2 * (T + 1) * B * good_ld(std::max(I, H)) * 4; }
  int64_t cells() const { return 2 * (T + 1) * B * H * 4; }
  // set_workspace_sizes + set_offsets, training: gates, ht, states, cell states, and the three
  // diff states (filled by the backward); before 3.9 the states twice more, after the first.
  int64_t workspace() const {
    const int64_t gates = T * B * good_ld(4 * H) * 4, ht = T * B * good_ld(H) * 4;
    const int64_t s = states(), c = cells();
    return before_3_9 ? paged({gates, ht, s, s, s, c, s, s, c}) : paged({gates, ht, s, c, s, s, c});
  }
  // ref_rnn's init_scratchpad: the rnn space (scratch gates for every step when the layer GEMM is
  // merged across steps, else one; scratch ht; scratch diff ht in training), booked with 4096-B
  // alignment, the three weight-pointer arrays and the bias pointers (128-B aligned); the brgemm
  // path adds its batch elements (40 B each, one K block per GEMM, two GEMMs fused when input and
  // hidden sizes are equal).
  enum Pass { kInference, kTraining, kBackward };
  int64_t scratchpad(Pass pass) const {
    // init_conf's merge_gemm_layer: forward (ref) below 128 rows, backward always; the brgemm
    // inference merges the layer GEMM across steps for one row (configure_brgemm).
    const bool merge = pass == kBackward || (pass == kTraining && B < 128) ||
                       (pass == kInference && B <= 1 && T >= 2);
    const int64_t gates = (merge ? T : 1) * B * good_ld(4 * H) * 4;
    const int64_t ht = B * good_ld(H) * 4;
    // Without a workspace (inference) the states go to the scratchpad first.
    const int64_t s = states();
    const int64_t space = pass != kInference ? paged({gates, ht, ht})
                          : before_3_9       ? paged({s, s, s, cells(), gates, ht})
                                             : paged({s, cells(), gates, ht});
    int64_t total = space + 4096 + 3 * (8 + 128) + (32 + 128);
    if (pass == kInference) total += 2 * (I == H && !merge ? 2 : 1) * 40 + 128;
    if (before_3_9)  // gates, ht and (training) diff ht booked again, 4x their bytes, 128-aligned
      for (int64_t b : {gates, ht, pass == kInference ? int64_t(0) : ht})
        if (b > 0) total += 4 * b + 128;
    return total;
  }
};

// ideep's reorders and scratchpad inside one primitive call: allocated in order, freed in reverse.
void onednn_scratch(std::initializer_list<int64_t> bytes, const at::TensorOptions& options) {
  std::vector<at::Tensor> held;
  for (int64_t b : bytes)
    if (b > 0) held.push_back(at::empty({b}, options.dtype(at::kByte)));
  while (!held.empty()) held.pop_back();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> mkldnn_rnn_layer(
    const at::Tensor& input, const at::Tensor& w0, const at::Tensor& w1, const at::Tensor& w2,
    const at::Tensor& w3, const at::Tensor& hx, const at::Tensor& cx, bool, at::IntArrayRef,
    int64_t, int64_t hidden, int64_t, bool has_biases, bool, bool, bool) {
  const OnednnLstmLayer l{input.size(0), input.size(1), input.size(2), hidden};
  at::Tensor output = at::empty({l.T, l.B, hidden}, input.options());
  at::Tensor hy = at::empty(hx.sizes(), hx.options());
  at::Tensor cy = at::empty(cx.sizes(), cx.options());
  at::Tensor weight_ih = w0.contiguous(), weight_hh = w1.contiguous();  // _shuffle_weight
  at::Tensor bias = has_biases ? w2 + w3 : at::zeros({4 * hidden}, w0.options());
  at::Tensor workspace;
  if (at::GradMode::is_enabled()) {
    workspace = at::empty({l.workspace()}, input.options().dtype(at::kByte));
    // ldigo with one input unit and no padding is the plain layout: ideep reorders nothing.
    const bool plain_ih = l.I == 1 && good_ld(4 * hidden) == 4 * hidden;
    onednn_scratch({plain_ih ? 0 : l.I * good_ld(4 * hidden) * 4, hidden * good_ld(4 * hidden) * 4,
                    l.scratchpad(OnednnLstmLayer::kTraining)},
                   input.options());
  } else {
    const int64_t padded = 4 * round_up(hidden, 32);  // ldgOi32o
    onednn_scratch(
        {padded * l.I * 4, padded * hidden * 4, l.scratchpad(OnednnLstmLayer::kInference)},
        input.options());
  }
  return {output, hy, cy, workspace};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
mkldnn_rnn_layer_backward(const at::Tensor& input, const at::Tensor& w0, const at::Tensor& w1,
                          const at::Tensor& w2, const at::Tensor& w3, const at::Tensor& hx,
                          const at::Tensor& cx_tmp, const at::Tensor& output, const at::Tensor&,
                          const at::Tensor&, const c10::optional<at::Tensor>& grad_output_r,
                          const c10::optional<at::Tensor>& grad_hy_r,
                          const c10::optional<at::Tensor>& grad_cy_r, bool, int64_t, int64_t hidden,
                          int64_t, bool has_biases, bool, bool, at::IntArrayRef, bool,
                          const at::Tensor&) {
  auto given = [](const c10::optional<at::Tensor>& t) { return t && t->defined(); };
  if (!given(grad_output_r) && !given(grad_hy_r) && !given(grad_cy_r)) return {};
  at::Tensor grad_output =
      given(grad_output_r) ? grad_output_r->contiguous() : at::zeros_like(output);
  at::Tensor grad_hy = given(grad_hy_r) ? grad_hy_r->contiguous() : at::zeros_like(hx);
  at::Tensor grad_cy = given(grad_cy_r) ? grad_cy_r->contiguous() : at::zeros_like(cx_tmp);
  at::Tensor bias = has_biases ? w2 + w3 : at::zeros({4 * hidden}, w0.options());
  at::Tensor cx = hx.storage().is_alias_of(cx_tmp.storage()) ? cx_tmp.clone() : cx_tmp;
  const auto f32 = input.options().dtype(at::kFloat);
  at::Tensor diff_x = at::empty(input.sizes(), f32);
  at::Tensor diff_hx = at::empty(hx.sizes(), f32);
  at::Tensor diff_cx = at::empty(cx.sizes(), f32);
  at::Tensor diff_w1 = at::empty(w0.sizes(), f32);
  at::Tensor diff_w2 = at::empty(w1.sizes(), f32);
  at::Tensor diff_b = at::empty(bias.sizes(), f32);
  const int64_t I = input.size(2), gates = 4 * hidden;
  onednn_scratch({good_ld(I) != I ? gates * good_ld(I) * 4 : 0,
                  good_ld(hidden) != hidden ? gates * good_ld(hidden) * 4 : 0,
                  I * good_ld(gates) * 4, hidden * good_ld(gates) * 4, gates * 4,
                  OnednnLstmLayer{input.size(0), input.size(1), I, hidden}.scratchpad(
                      OnednnLstmLayer::kBackward)},
                 input.options());
  at::Tensor diff_b2 = diff_b.clone();
  return {diff_x, diff_w1, diff_w2, diff_b, diff_b2, diff_hx, diff_cx};
}

bool onednn_lstm_applies(const at::Tensor& input, at::TensorList hx, at::TensorList params,
                         bool has_biases, int64_t num_layers, bool bidirectional) {
  // Under autocast (whose bf16 path oneDNN blocks otherwise) LibTorch's composite runs, as before.
  return !t_cuda_target && !autocast_lower() && at::globalContext().userEnabledMkldnn() &&
         input.dim() == 3 && input.scalar_type() == at::kFloat && input.numel() != 0 &&
         hx.size() == 2 && hx[0].size(2) == hx[1].size(2) &&
         params.size() == size_t((has_biases ? 4 : 2) * num_layers * (bidirectional ? 2 : 1));
}

// mkldnn_rnn, as it is: the input made time-major and contiguous, one mkldnn_rnn_layer per layer
// and direction (zeros of the weights' shapes stand for missing biases), the directions'
// outputs concatenated, dropout between layers in training, the final states stacked.
std::tuple<at::Tensor, at::Tensor, at::Tensor> onednn_lstm(
    const at::Tensor& input_, at::TensorList hx_, at::TensorList params, bool has_biases,
    int64_t num_layers, double dropout, bool train, bool bidirectional, bool batch_first) {
  at::Tensor input = (batch_first ? input_.transpose(0, 1) : input_).contiguous();
  at::Tensor hx = hx_[0].contiguous(), cx = hx_[1].contiguous();
  const int64_t directions = bidirectional ? 2 : 1, per_layer = has_biases ? 4 : 2;
  const int64_t hidden = hx.size(2);
  at::Tensor layer_input = input;
  std::vector<at::Tensor> layer_output(directions), layer_hy, layer_cy;
  for (int64_t layer = 0; layer < num_layers; ++layer) {
    for (int64_t direction = 0; direction < directions; ++direction) {
      const int64_t index = layer * directions + direction;
      const at::Tensor* w = params.data() + index * per_layer;
      auto out = at::mkldnn_rnn_layer(layer_input, w[0], w[1],
                                      has_biases ? w[2] : at::zeros(w[0].sizes(), w[0].options()),
                                      has_biases ? w[3] : at::zeros(w[1].sizes(), w[1].options()),
                                      hx[index], cx[index], direction > 0, {}, kOnednnLstm, hidden,
                                      num_layers, has_biases, bidirectional, batch_first, train);
      layer_output[direction] = std::get<0>(out);
      layer_hy.push_back(std::get<1>(out));
      layer_cy.push_back(std::get<2>(out));
    }
    layer_input = directions == 1 ? layer_output[0] : at::cat(layer_output, -1);
    if (dropout != 0 && train && layer < num_layers - 1)
      layer_input = at::dropout(layer_input, dropout, /*train=*/true);
  }
  at::Tensor hy = at::stack(layer_hy, 0), cy = at::stack(layer_cy, 0);
  if (batch_first) layer_input = layer_input.transpose(0, 1);
  return {layer_input, hy, cy};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm(const at::Tensor& input, at::TensorList hx,
                                                    at::TensorList params, bool has_biases,
                                                    int64_t num_layers, double dropout, bool train,
                                                    bool bidirectional, bool batch_first) {
  if (onednn_lstm_applies(input, hx, params, has_biases, num_layers, bidirectional))
    return onednn_lstm(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                       batch_first);
  if (!cudnn_rnn_applies(input, params, has_biases, num_layers, bidirectional) || hx.size() != 2 ||
      hx[0].size(2) != hx[1].size(2))
    return at::native::lstm(input, hx, params, has_biases, num_layers, dropout, train,
                            bidirectional, batch_first);
  return cudnn_rnn_call(input, hx[0], hx[1], params, has_biases, kCudnnLstm, num_layers, dropout,
                        train, batch_first);
}

// nn.MultiheadAttention's inference fast path, as 1.13's native_multi_head_attention_cpu
// allocates (aten/src/ATen/native/transformers/attention.cpp): the packed projection [B, T, 3D],
// q, k and v with the bias added and q scaled, [3, B, H, T, d], after which the projection is
// freed; the scores [B, H, T, T], soft-maxed in place, with the context written over q; the
// context back in [B, T, D] for the output projection, freed once that is made; q, k and v freed
// on return. The scores are returned (averaged over heads: a new [B, T, T]) only when asked for.
// PyTorch 2.11's CPU and CUDA kernels first try scaled_dot_product_attention: for
// self-attention (query, key and value one tensor), a head dim that is a multiple of 8 and no
// weights asked for, when the target's backend choice for the heads viewed from the query is a
// fused kernel (sdp_backend: flash on the CPU; flash, memory-efficient or cuDNN attention with no
// mask on CUDA), they run linear -> chunk -> sdpa -> linear and keep no scores (attention.cpp,
// native_multi_head_attention_cpu; attention.cu, native_multi_head_attention_cuda, whose
// sequence an H200 showed for vit_b_16's fp32 inference).
std::tuple<at::Tensor, at::Tensor> native_multi_head_attention(
    const at::Tensor& query, const at::Tensor& key, const at::Tensor& value, int64_t embed_dim,
    int64_t num_head, const at::Tensor& qkv_weight, const at::Tensor& qkv_bias,
    const at::Tensor& proj_weight, const at::Tensor& proj_bias,
    const c10::optional<at::Tensor>& mask, bool need_weights, bool average_attn_weights,
    c10::optional<int64_t>) {
  const int64_t B = query.size(0), T = query.size(1), D = embed_dim, H = num_head;
  const int64_t d = D / H;
  if (query.is_same(key) && key.is_same(value) && d % 8 == 0 && !need_weights) {
    at::Tensor heads = query.view({B, -1, H, d}).transpose(1, 2);
    const int64_t backend = sdp_backend(heads, heads, heads, mask, 0.0);
    const bool no_mask = !mask || !mask->defined();
    if (backend == kSdpFlash ||
        (t_cuda_target && no_mask && (backend == kSdpEfficient || backend == kSdpCudnn))) {
      at::Tensor x = at::linear(query, qkv_weight, qkv_bias);
      auto chunks = x.chunk(3, -1);
      for (auto& c : chunks) c = c.view({B, -1, H, d}).transpose(1, 2);
      at::Tensor y =
          at::scaled_dot_product_attention(chunks[0], chunks[1], chunks[2], mask, 0.0, false);
      at::Tensor past = y.transpose(1, 2).reshape({B, -1, D});
      return {at::linear(past, proj_weight, proj_bias), at::Tensor()};
    }
  }
  auto o = query.options();
  at::Tensor qkv = at::empty({B, T, 3 * D}, o);
  at::Tensor q_k_v = at::empty({3, B, H, T, D / H}, o);
  qkv.reset();
  at::Tensor scores = at::empty({B, H, T, T}, o);
  if (!need_weights) scores.reset();
  at::Tensor context = at::empty({B, T, D}, o);
  at::Tensor out = at::empty({B, T, D}, o);
  context.reset();
  if (need_weights && average_attn_weights) scores = at::empty({B, T, T}, o);
  return {out, scores};
}

// native_layer_norm as layer_norm_cuda and layer_norm_cpu allocate: a contiguous copy of a
// non-contiguous input (freed on return), the output, then mean and rstd of M elements (M the
// product of the dims before normalized_shape) viewed with ones for the normalized dims. They are
// in CUDA's accumulation type: fp32 for fp16 and bf16 inputs (1.13's CPU kernel keeps the input's
// dtype; the same for fp32). Without this kernel 1.13 runs the composite math_native_layer_norm on
// meta, through native_batch_norm and addcmul: one more output-sized temporary, and statistics in
// the input's dtype.
std::tuple<at::Tensor, at::Tensor, at::Tensor> native_layer_norm(const at::Tensor& input,
                                                                 at::IntArrayRef normalized_shape,
                                                                 const c10::optional<at::Tensor>&,
                                                                 const c10::optional<at::Tensor>&,
                                                                 double) {
  at::Tensor x = input.contiguous();
  at::Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
  int64_t axis = input.dim() - int64_t(normalized_shape.size());
  std::vector<int64_t> stat_shape;
  int64_t m = 1;
  for (int64_t i = 0; i < input.dim(); ++i) {
    stat_shape.push_back(i < axis ? input.size(i) : 1);
    if (i < axis) m *= input.size(i);
  }
  auto dtype = input.scalar_type();
  if (dtype == at::kHalf || dtype == at::kBFloat16) dtype = at::kFloat;
  at::Tensor mean = at::empty({m}, x.options().dtype(dtype)).view(stat_shape);
  at::Tensor rstd = at::empty({m}, x.options().dtype(dtype)).view(stat_shape);
  return {y, mean, rstd};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> native_layer_norm_backward(
    const at::Tensor&, const at::Tensor& input, at::IntArrayRef, const at::Tensor&,
    const at::Tensor&, const c10::optional<at::Tensor>& weight,
    const c10::optional<at::Tensor>& bias, std::array<bool, 3> mask) {
  return {grad_if(mask[0], input), grad_if(mask[1], weight.value_or(at::Tensor())),
          grad_if(mask[2], bias.value_or(at::Tensor()))};
}

at::Tensor adaptive_avg_pool2d_backward(const at::Tensor&, const at::Tensor& self) {
  return at::empty_like(self);
}

at::Tensor hardtanh_backward(const at::Tensor&, const at::Tensor& self, const at::Scalar&,
                             const at::Scalar&) {
  return at::empty_like(self);
}

// aten::where.self: the three shapes broadcast, at the type promotion of self and other.
std::vector<int64_t> where_shape(const at::Tensor& condition, const at::Tensor& self,
                                 const at::Tensor& other) {
  return at::infer_size(at::infer_size(condition.sizes(), self.sizes()), other.sizes());
}

at::Tensor where(const at::Tensor& condition, const at::Tensor& self, const at::Tensor& other) {
  return at::empty(where_shape(condition, self, other),
                   self.options().dtype(at::result_type(self, other)));
}

// aten::where.self_out (nn.MultiheadAttention's backward in training calls it): into `out`,
// resized as every out= op resizes (at::native::resize_output).
at::Tensor& where_out(const at::Tensor& condition, const at::Tensor& self, const at::Tensor& other,
                      at::Tensor& out) {
  at::native::resize_output(out, where_shape(condition, self, other));
  return out;
}

// aten::native_dropout_backward: grad * mask * scale, shaped like grad.
at::Tensor native_dropout_backward(const at::Tensor& grad, const at::Tensor&, double) {
  return at::empty_like(grad);
}

// nn.Dropout in training on the CUDA target: aten::dropout (Dropout.cpp) takes the fused kernel
// where is_fused_kernel_acceptable (a CUDA tensor, 0 < p < 1, not empty), which keeps a boolean
// mask, 1 byte per element; the composite a meta tensor takes (and the CPU runs) keeps a mask of
// the input's dtype. native_dropout's CUDA kernel (cuda/Dropout.cu, dropout_cuda) makes the mask,
// then the output (measured on an H200).
at::Tensor dropout(const at::Tensor& input, double p, bool train) {
  if (t_cuda_target && train && p > 0 && p < 1 && input.numel() > 0)
    return std::get<0>(at::native_dropout(input, p, train));
  return at::native::dropout(input, p, train);
}

// index_select(self, dim, index): self's shape with dim replaced by the index's length.
at::Tensor index_select(const at::Tensor& self, int64_t dim, const at::Tensor& index) {
  auto shape = self.sizes().vec();
  if (!shape.empty()) shape[c10::maybe_wrap_dim(dim, self.dim())] = index.numel();
  return at::empty(shape, self.options());
}

at::Tensor embedding_dense_backward(const at::Tensor& grad, const at::Tensor&, int64_t num_weights,
                                    int64_t, bool) {
  return at::empty({num_weights, grad.size(-1)}, grad.options());
}

at::Tensor mse_loss_backward(const at::Tensor&, const at::Tensor& self, const at::Tensor&,
                             int64_t) {
  return at::empty_like(self);
}

thread_local bool t_guessed = false;

void guessing_fallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto& schema = op.schema();
  const size_t n_args = schema.arguments().size();
  std::vector<c10::IValue> args(stack->end() - n_args, stack->end());
  torch::jit::drop(*stack, n_args);
  std::vector<at::Tensor> tensors;
  for (const auto& a : args) {
    if (a.isTensor() && a.toTensor().defined()) tensors.push_back(a.toTensor());
    if (a.isTensorList())
      for (const at::Tensor& t : a.toTensorList().vec()) tensors.push_back(t);
  }
  const std::string prefix = schema.name() + ": no kernel for the meta device in this LibTorch";
  TORCH_CHECK_NOT_IMPLEMENTED(!tensors.empty(), prefix,
                              ", and no tensor input to shape its result");
  std::vector<int64_t> shape = tensors[0].sizes().vec();
  for (size_t i = 1; i < tensors.size(); ++i) {
    try {
      shape = at::infer_size(shape, tensors[i].sizes());
    } catch (const c10::Error&) {  // not broadcastable: keep the first input's shape
    }
  }
  for (const auto& ret : schema.returns()) {
    TORCH_CHECK_NOT_IMPLEMENTED(
        ret.type()->kind() == c10::TypeKind::TensorType, prefix, ", and it returns a ",
        ret.type()->str(),
        ": the model reads a tensor's values (as .item() or an `if` on a tensor do), which a run "
        "without data cannot give");
    // In-place and out= ops return the argument they wrote.
    const at::Tensor* written = nullptr;
    if (ret.alias_info() && ret.alias_info()->isWrite())
      for (size_t i = 0; i < n_args && !written; ++i)
        if (schema.arguments()[i].alias_info() && args[i].isTensor() &&
            *schema.arguments()[i].alias_info() == *ret.alias_info())
          written = &args[i].toTensor();
    stack->emplace_back(written ? *written : at::empty(shape, tensors[0].options()));
  }
  t_guessed = true;
}

}  // namespace

void set_cuda_target(bool cuda, int sm, int multiprocessors) {
  t_cuda_target = cuda;
  t_cuda_sm = sm;
  t_cuda_multiprocessors = multiprocessors;
}

std::optional<PendingReduction> reduction_before(const c10::OperatorHandle& op,
                                                 const std::vector<c10::IValue>& stack) {
  if (!t_cuda_target) return std::nullopt;
  const auto& name = op.operator_name();
  if (name.name != "aten::sum" && name.name != "aten::mean") return std::nullopt;
  const bool by_dim = name.overload_name == "dim_IntList" || name.overload_name == "dim";
  if (!by_dim && !name.overload_name.empty()) return std::nullopt;  // out=, dimension names
  const size_t n = op.schema().arguments().size();
  if (stack.size() < n || !stack[stack.size() - n].isTensor()) return std::nullopt;
  PendingReduction r;
  r.self = stack[stack.size() - n].toTensor();
  if (by_dim) {
    const auto& dim = stack[stack.size() - n + 1];
    if (dim.isIntList()) r.dims = dim.toIntVector();
    r.keepdim = stack[stack.size() - n + 2].toBool();
  }
  return r;
}

void reduction_after(const PendingReduction& r, const std::vector<c10::IValue>& stack) {
  if (stack.empty() || !stack.back().isTensor()) return;
  reduction_buffers(r, stack.back().toTensor());
}

bool take_guessed_op() {
  bool g = t_guessed;
  t_guessed = false;
  return g;
}

bool meta_kernel_is_python(const c10::OperatorHandle& op) {
  if (!op.hasKernelForDispatchKey(c10::DispatchKey::Meta)) return false;
  // The dispatcher's state names where each kernel was registered; a Python registration names
  // its .py file ("Meta: registered at .../torch/_meta_registrations.py:53 :: ...").
  std::string state = op.dumpState();
  size_t at = state.find("\nMeta: registered at ");
  if (at == std::string::npos && state.rfind("Meta: registered at ", 0) == 0) at = 0;
  if (at == std::string::npos) return false;
  size_t end = state.find('\n', at + 1);
  std::string line = state.substr(at, end == std::string::npos ? std::string::npos : end - at);
  return line.find(".py:") != std::string::npos;
}

void register_missing_meta_kernels() {
  static torch::Library lib(torch::Library::IMPL, "aten", c10::DispatchKey::Meta, __FILE__,
                            __LINE__);
  auto impl = [&](const char* name, auto fn) {
    if (!has_meta_kernel((std::string("aten::") + name).c_str())) lib.impl(name, fn);
  };
  impl("convolution_overrideable", TORCH_FN(convolution));
  impl("native_batch_norm", TORCH_FN(native_batch_norm));
  impl("_adaptive_avg_pool2d", TORCH_FN(adaptive_avg_pool2d));
  impl("relu", TORCH_FN(unary));
  impl("hardswish", TORCH_FN(unary));
  impl("hardtanh", TORCH_FN(hardtanh));
  impl("roll", TORCH_FN(roll));
  impl("native_dropout", TORCH_FN(native_dropout));
  impl("convolution_backward_overrideable", TORCH_FN(convolution_backward));
  impl("native_batch_norm_backward", TORCH_FN(native_batch_norm_backward));
  impl("native_layer_norm", TORCH_FN(native_layer_norm));
  impl("native_layer_norm_backward", TORCH_FN(native_layer_norm_backward));
  impl("_adaptive_avg_pool2d_backward", TORCH_FN(adaptive_avg_pool2d_backward));
  impl("hardtanh_backward", TORCH_FN(hardtanh_backward));
  impl("index_select", TORCH_FN(index_select));
  impl("where.self", TORCH_FN(where));
  impl("where.self_out", TORCH_FN(where_out));
  impl("native_dropout_backward", TORCH_FN(native_dropout_backward));
  impl("embedding_dense_backward", TORCH_FN(embedding_dense_backward));
  impl("mse_loss_backward", TORCH_FN(mse_loss_backward));
  impl("_native_multi_head_attention", TORCH_FN(native_multi_head_attention));
  impl("_cudnn_rnn", TORCH_FN(cudnn_rnn));
  impl("_cudnn_rnn_backward", TORCH_FN(cudnn_rnn_backward));
  impl("mkldnn_rnn_layer", TORCH_FN(mkldnn_rnn_layer));
  impl("mkldnn_rnn_layer_backward", TORCH_FN(mkldnn_rnn_layer_backward));
  // nn.TransformerEncoderLayer's fast path: LibTorch's own CPU and CUDA implementation
  // (aten/src/ATen/native/transformers/transformer.cpp) is device-agnostic ATen calls (layer_norm,
  // _native_multi_head_attention, linear, relu/gelu, add_), so it runs on meta as it is and
  // records the real op sequence.
  impl("_transformer_encoder_layer_fwd", TORCH_FN(at::native::transformer_encoder_layer_forward));
  impl("_scaled_dot_product_flash_attention_for_cpu", TORCH_FN(flash_attention_for_cpu));
  impl("_scaled_dot_product_flash_attention", TORCH_FN(flash_attention_cuda));
  impl("_scaled_dot_product_flash_attention_backward", TORCH_FN(flash_attention_cuda_backward));
  impl("_scaled_dot_product_efficient_attention", TORCH_FN(efficient_attention_cuda));
  impl("_scaled_dot_product_efficient_attention_backward",
       TORCH_FN(efficient_attention_cuda_backward));
  impl("_scaled_dot_product_cudnn_attention", TORCH_FN(cudnn_attention_cuda));
  impl("_scaled_dot_product_cudnn_attention_backward", TORCH_FN(cudnn_attention_cuda_backward));
  impl("_scaled_dot_product_flash_attention_for_cpu_backward",
       TORCH_FN(flash_attention_for_cpu_backward));
  static torch::Library autograd(torch::Library::IMPL, "aten", c10::DispatchKey::AutogradMeta,
                                 __FILE__, __LINE__);
  autograd.impl("scaled_dot_product_attention", TORCH_FN(scaled_dot_product_attention));
  autograd.impl("gru.input", TORCH_FN(gru));
  lib.impl("gru.input", TORCH_FN(gru));
  autograd.impl("lstm.input", TORCH_FN(lstm));
  lib.impl("lstm.input", TORCH_FN(lstm));
  autograd.impl("dropout", TORCH_FN(dropout));
  lib.impl("dropout", TORCH_FN(dropout));
  lib.impl("scaled_dot_product_attention", TORCH_FN(scaled_dot_product_attention));
  // The guess, for every other aten op that meta cannot run. LibTorch 2.x registers a Meta
  // backend fallback of its own (MetaFallbackKernel.cpp: it throws "no fake impl or Meta
  // kernel"), and a key takes one fallback only, so the guess is registered op by op instead:
  // for each op with no Meta kernel and no composite kernel (which would run on meta by calling
  // other ops). Ops registered later (a Python extension's) keep LibTorch's error.
  for (const c10::OperatorName& name : c10::Dispatcher::singleton().getAllOpNames()) {
    if (name.name.rfind("aten::", 0) != 0) continue;
    auto op = c10::Dispatcher::singleton().findOp(name);
    if (!op || op->hasKernelForDispatchKey(c10::DispatchKey::Meta)) continue;
    bool composite = false;
    for (auto key : {c10::DispatchKey::CompositeImplicitAutograd,
                     c10::DispatchKey::CompositeImplicitAutogradNestedTensor,
                     c10::DispatchKey::CompositeExplicitAutograd,
                     c10::DispatchKey::CompositeExplicitAutogradNonFunctional})
      composite = composite || op->hasKernelForDispatchKey(key);
    if (composite) continue;
    std::string qualified = name.name.substr(6);
    if (!name.overload_name.empty()) qualified += "." + name.overload_name;
    lib.impl(qualified.c_str(), torch::CppFunction::makeFromBoxedFunction<&guessing_fallback>());
  }
}

}  // namespace footprint::detail
