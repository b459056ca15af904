// Shape-only Meta kernels for the aten ops that have none in LibTorch 1.13 (../shared/DESIGN.md):
// each one allocates its outputs with the shapes and dtypes the CPU kernel gives, and computes
// nothing. A kernel is registered only where the dispatcher has no Meta kernel of its own, so a
// newer LibTorch keeps its own. Registration happens at run time (torch::Library), so no
// whole-archive linking is needed.
//
// Every other op without a Meta kernel reaches a boxed fallback. It cannot know the op's shapes,
// so it guesses the broadcast shape of the tensor inputs (right for element-wise ops), says so
// through take_guessed_op(), and refuses ops that return anything but tensors.
#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "torch/meta.h"

namespace footprint::detail {
namespace {

// A kernel of the op's own for Meta. (Not the computed table: convolution_overrideable's
// CompositeExplicitAutograd default would count, and it only throws.)
bool has_meta_kernel(const char* name) {
  auto op = c10::Dispatcher::singleton().findSchema({name, ""});
  return op && op->hasKernelForDispatchKey(c10::DispatchKey::Meta);
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
at::Tensor& unary_(at::Tensor& x) {
  return x;
}
at::Tensor hardtanh(const at::Tensor& x, const at::Scalar&, const at::Scalar&) {
  return at::empty_like(x);
}
at::Tensor& hardtanh_(at::Tensor& x, const at::Scalar&, const at::Scalar&) {
  return x;
}

// The mask is bool, one per element.
std::tuple<at::Tensor, at::Tensor> native_dropout(const at::Tensor& x, double,
                                                  c10::optional<bool>) {
  return {at::empty_like(x), at::empty_like(x, x.options().dtype(at::kBool))};
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

// nn.MultiheadAttention's inference fast path, as 1.13's native_multi_head_attention_cpu
// allocates (aten/src/ATen/native/transformers/attention.cpp): the packed projection [B, T, 3D],
// q, k and v with the bias added and q scaled, [3, B, H, T, d], after which the projection is
// freed; the scores [B, H, T, T], soft-maxed in place, with the context written over q; the
// context back in [B, T, D] for the output projection, freed once that is made; q, k and v freed
// on return. The scores are returned (averaged over heads: a new [B, T, T]) only when asked for.
std::tuple<at::Tensor, at::Tensor> native_multi_head_attention(
    const at::Tensor& query, const at::Tensor&, const at::Tensor&, int64_t embed_dim,
    int64_t num_head, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
    const c10::optional<at::Tensor>&, bool need_weights, bool average_attn_weights,
    c10::optional<int64_t>) {
  const int64_t B = query.size(0), T = query.size(1), D = embed_dim, H = num_head;
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

// index_select(self, dim, index): self's shape with dim replaced by the index's length.
// aten::where.self: the three shapes broadcast, at the type promotion of self and other.
at::Tensor where(const at::Tensor& condition, const at::Tensor& self, const at::Tensor& other) {
  auto shape = at::infer_size(at::infer_size(condition.sizes(), self.sizes()), other.sizes());
  return at::empty(shape, self.options().dtype(at::result_type(self, other)));
}

// aten::native_dropout_backward: grad * mask * scale, shaped like grad.
at::Tensor native_dropout_backward(const at::Tensor& grad, const at::Tensor&, double) {
  return at::empty_like(grad);
}

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

bool take_guessed_op() {
  bool g = t_guessed;
  t_guessed = false;
  return g;
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
  impl("relu_", TORCH_FN(unary_));
  impl("hardswish", TORCH_FN(unary));
  impl("hardswish_", TORCH_FN(unary_));
  impl("hardtanh", TORCH_FN(hardtanh));
  impl("hardtanh_", TORCH_FN(hardtanh_));
  impl("native_dropout", TORCH_FN(native_dropout));
  impl("convolution_backward_overrideable", TORCH_FN(convolution_backward));
  impl("native_batch_norm_backward", TORCH_FN(native_batch_norm_backward));
  impl("native_layer_norm", TORCH_FN(native_layer_norm));
  impl("native_layer_norm_backward", TORCH_FN(native_layer_norm_backward));
  impl("_adaptive_avg_pool2d_backward", TORCH_FN(adaptive_avg_pool2d_backward));
  impl("hardtanh_backward", TORCH_FN(hardtanh_backward));
  impl("index_select", TORCH_FN(index_select));
  impl("where.self", TORCH_FN(where));
  impl("native_dropout_backward", TORCH_FN(native_dropout_backward));
  impl("embedding_dense_backward", TORCH_FN(embedding_dense_backward));
  impl("mse_loss_backward", TORCH_FN(mse_loss_backward));
  impl("_native_multi_head_attention", TORCH_FN(native_multi_head_attention));
  // A LibTorch that has a Meta fallback of its own keeps it (registering a second one throws).
  try {
    static torch::Library fallback(torch::Library::IMPL, "_", c10::DispatchKey::Meta, __FILE__,
                                   __LINE__);
    fallback.fallback(torch::CppFunction::makeFromBoxedFunction<&guessing_fallback>());
  } catch (const c10::Error&) {
  }
}

}  // namespace footprint::detail
