// Autocast replayed on meta tensors (src/torch/autocast.h). The policy, per op, is PyTorch 2.x's
// CUDA autocast (aten/src/ATen/autocast_mode.cpp):
//   - lower precision: convolutions, matmul-like ops, linear, RNN cells, attention: floating
//     tensor arguments are cast to fp16/bf16;
//   - fp32: numerically sensitive ops (losses, norms, exp/log family, ...): cast to float;
//   - fp32 output (set_opt_dtype: softmax, log_softmax, sum, prod, cumsum, cumprod): the op's
//     dtype argument is set to float, so it reads the input as it is and writes float;
//   - promote (cat, stack, addcmul, ...): every tensor to the widest floating type among them;
//   - everything else runs as it is.
// A cast of an fp32 leaf that requires grad (a weight) to the lower precision is cached until the
// scope ends (cached_cast), so each weight is cast once per forward.
#include "torch/autocast.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>
#include <torch/version.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "footprint/error.h"
#include "torch/meta.h"

namespace footprint::detail {
namespace {

// Meta tensors have no autocast key of their own, so the replay borrows the key of a backend that
// no footprint user runs: IPU (Graphcore's, out of tree and discontinued). LibTorch 2.11 gives it
// neither a fallback nor op kernels (AutocastXPU, which 1.13 left free, has both now).
constexpr c10::DispatchKey kKey = c10::DispatchKey::AutocastIPU;

enum class Policy { kLower, kFp32, kFp32Output, kPromote };

const std::unordered_map<std::string, Policy>& policies() {
  static const auto* table = [] {
    auto* t = new std::unordered_map<std::string, Policy>;
    for (const char* op : {"_convolution",
                           "conv1d",
                           "conv2d",
                           "conv3d",
                           "conv_tbc",
                           "conv_transpose1d",
                           "conv_transpose2d",
                           "conv_transpose3d",
                           "convolution",
                           "prelu",
                           "addmm",
                           "addmv",
                           "addr",
                           "matmul",
                           "einsum",
                           "mm",
                           "mv",
                           "linear",
                           "addbmm",
                           "baddbmm",
                           "bmm",
                           "chain_matmul",
                           "linalg_multi_dot",
                           "_thnn_fused_lstm_cell",
                           "_thnn_fused_gru_cell",
                           "lstm_cell",
                           "gru_cell",
                           "rnn_tanh_cell",
                           "rnn_relu_cell",
                           "scaled_dot_product_attention"})
      (*t)[std::string("aten::") + op] = Policy::kLower;
    for (const char* op : {"acos",
                           "asin",
                           "cosh",
                           "erfinv",
                           "exp",
                           "expm1",
                           "log",
                           "log10",
                           "log2",
                           "log1p",
                           "reciprocal",
                           "rsqrt",
                           "sinh",
                           "tan",
                           "pow",
                           "softplus",
                           "layer_norm",
                           "native_layer_norm",
                           "group_norm",
                           "frobenius_norm",
                           "nuclear_norm",
                           "cosine_similarity",
                           "poisson_nll_loss",
                           "cosine_embedding_loss",
                           "nll_loss",
                           "nll_loss2d",
                           "hinge_embedding_loss",
                           "kl_div",
                           "l1_loss",
                           "smooth_l1_loss",
                           "huber_loss",
                           "mse_loss",
                           "margin_ranking_loss",
                           "multilabel_margin_loss",
                           "soft_margin_loss",
                           "triplet_margin_loss",
                           "multi_margin_loss",
                           "binary_cross_entropy_with_logits",
                           "dist",
                           "pdist",
                           "cdist",
                           "renorm",
                           "logsumexp",
                           "upsample_nearest1d",
                           "upsample_nearest2d",
                           "upsample_nearest3d",
                           "upsample_linear1d",
                           "upsample_bilinear2d",
                           "upsample_trilinear3d",
                           "upsample_bicubic2d",
                           "grid_sampler",
                           "cross_entropy_loss",
                           "ctc_loss",
                           "norm",
                           "linalg_vector_norm",
                           "linalg_matrix_norm"})
      (*t)[std::string("aten::") + op] = Policy::kFp32;
    for (const char* op : {"softmax", "log_softmax", "sum", "prod", "cumsum", "cumprod"})
      (*t)[std::string("aten::") + op] = Policy::kFp32Output;
    for (const char* op : {"addcdiv", "addcmul", "atan2", "bilinear", "cross", "dot",
                           "grid_sampler", "index_put", "scatter_add", "tensordot", "cat", "stack"})
      (*t)[std::string("aten::") + op] = Policy::kPromote;
    return t;
  }();
  return *table;
}

struct State {
  bool on = false;
  c10::ScalarType lower = at::kHalf;
  std::unordered_map<const c10::TensorImpl*, at::Tensor> cache;
  bool casting_weight = false;
};
thread_local State t_state;

at::Tensor cast(const at::Tensor& t, at::ScalarType to) {
  if (!t.defined() || !t.is_floating_point() || t.scalar_type() == at::kDouble ||
      t.scalar_type() == to)
    return t;
  // cached_cast's condition, with !InferenceMode::is_enabled() from torch 2.11 (pytorch#158232:
  // tensors made in inference mode cannot serve a later training step). A rule keyed by version
  // (docs/versions.md): 2.9 and 2.10 cache in inference mode too, so every cast weight stays until
  // the autocast region ends (measured: resnet18's bf16-autocast inference at batch 1 peaks at
  // 74,752,200 B with 2.9.1 and 2.10.0, 57,136,968 B with 2.11.0, 2.13.0 and 2.15.0).
  constexpr bool kInferenceModeSkipsCache =
      TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 11);
  bool cacheable = !(kInferenceModeSkipsCache && c10::InferenceMode::is_enabled()) &&
                   to == t_state.lower && t.scalar_type() == at::kFloat && t.requires_grad() &&
                   t.is_leaf() && !t.is_view();
  if (cacheable) {
    auto it = t_state.cache.find(t.unsafeGetTensorImpl());
    if (it != t_state.cache.end()) return it->second;
  }
  t_state.casting_weight = cacheable;
  at::Tensor out = t.to(to);
  t_state.casting_weight = false;
  if (cacheable) t_state.cache.emplace(t.unsafeGetTensorImpl(), out);
  return out;
}

void kernel(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(kKey);
  auto policy = policies().find(op.schema().name());
  if (t_state.on && policy != policies().end()) {
    const auto& args = op.schema().arguments();
    size_t n = args.size();
    auto first = stack->end() - static_cast<std::ptrdiff_t>(n);
    at::ScalarType to = policy->second == Policy::kLower ? t_state.lower : at::kFloat;
    if (policy->second == Policy::kPromote) {
      to = at::kHalf;
      bool any = false;
      auto widen = [&](const at::Tensor& t) {
        if (!t.defined() || !t.is_floating_point()) return;
        to = any ? at::promoteTypes(to, t.scalar_type()) : t.scalar_type();
        any = true;
      };
      for (auto it = first; it != stack->end(); ++it) {
        if (it->isTensor()) widen(it->toTensor());
        if (it->isTensorList())
          for (const at::Tensor& t : it->toTensorList().vec()) widen(t);
      }
      if (!any) to = at::kFloat;
    }
    if (policy->second == Policy::kFp32Output) {
      // The op's own dtype argument, when the caller left it unset and the input is reduced.
      for (size_t i = 0; i < n; ++i) {
        c10::IValue& v = *(first + static_cast<std::ptrdiff_t>(i));
        if (args[i].name() == "dtype" && v.isNone() && first->isTensor() &&
            first->toTensor().is_floating_point() &&
            first->toTensor().scalar_type() != at::kFloat &&
            first->toTensor().scalar_type() != at::kDouble)
          v = c10::IValue(static_cast<int64_t>(at::kFloat));
      }
    } else {
      for (auto it = first; it != stack->end(); ++it) {
        if (it->isTensor()) {
          *it = cast(it->toTensor(), to);
        } else if (it->isTensorList()) {
          std::vector<at::Tensor> list = it->toTensorList().vec();
          for (auto& t : list) t = cast(t, to);
          *it = c10::IValue(c10::List<at::Tensor>(list));
        }
      }
    }
  }
  op.redispatchBoxed(keys & c10::DispatchKeySet(c10::DispatchKeySet::FULL_AFTER, kKey), stack);
}

void install() {
  claim_fallback(
      kKey, [] { return torch::CppFunction::makeFromBoxedFunction<&kernel>(); },
      "autocast cannot be modelled");
}

}  // namespace

std::optional<c10::ScalarType> autocast_lower() {
  if (!t_state.on) return std::nullopt;
  return t_state.lower;
}

bool in_weight_cast() {
  return t_state.casting_weight;
}

AutocastPause::AutocastPause() : was_on_(t_state.on) {
  t_state.on = false;
}
AutocastPause::~AutocastPause() {
  t_state.on = was_on_;
}

AutocastScope::AutocastScope(c10::ScalarType lower, bool cuda_target)
    : device_(cuda_target ? c10::DeviceType::CUDA : c10::DeviceType::CPU),
      was_enabled_(at::autocast::is_autocast_enabled(device_)),
      was_dtype_(at::autocast::get_autocast_dtype(device_)) {
  install();
  t_state.on = true;
  t_state.lower = lower;
  c10::impl::tls_set_dispatch_key_excluded(kKey, false);
  c10::impl::tls_set_dispatch_key_included(kKey, true);
  at::autocast::set_autocast_dtype(device_, lower);
  at::autocast::set_autocast_enabled(device_, true);
}

AutocastScope::~AutocastScope() {
  at::autocast::set_autocast_enabled(device_, was_enabled_);
  at::autocast::set_autocast_dtype(device_, was_dtype_);
  c10::impl::tls_set_dispatch_key_included(kKey, false);
  c10::impl::tls_set_dispatch_key_excluded(kKey, true);
  t_state.on = false;
  t_state.cache.clear();
}

}  // namespace footprint::detail
