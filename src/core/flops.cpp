// FLOP rules, one per aten op, and the walk that counts each op once at its outermost ruled level.
// docs/flops.md is the table of these rules in prose; keep the two in step.
#include "footprint/flops.h"

#include <functional>
#include <string>
#include <unordered_map>

namespace footprint {
namespace {

using Fn = std::function<Rule(const TraceOp&)>;

const TensorMeta* input(const TraceOp& op, size_t i) {
  return i < op.inputs.size() && op.inputs[i].is_tensor() ? &op.inputs[i].tensor() : nullptr;
}
const TensorMeta* output(const TraceOp& op, size_t i = 0) {
  return i < op.outputs.size() && op.outputs[i].is_tensor() ? &op.outputs[i].tensor() : nullptr;
}
int64_t in_numel(const TraceOp& op, size_t i = 0) {
  auto* t = input(op, i);
  return t ? t->numel() : 0;
}
int64_t out_numel(const TraceOp& op, size_t i = 0) {
  auto* t = output(op, i);
  return t ? t->numel() : 0;
}
bool flag(const TraceOp& op, size_t i, bool otherwise) {
  if (i >= op.inputs.size()) return otherwise;
  const auto& v = op.inputs[i];
  return v.kind == OpValue::Kind::kBool && !v.ints.empty() ? v.ints[0] != 0 : otherwise;
}
std::vector<int64_t> ints(const TraceOp& op, size_t i) {
  if (i >= op.inputs.size()) return {};
  const auto& v = op.inputs[i];
  return v.kind == OpValue::Kind::kIntList || v.kind == OpValue::Kind::kInt
             ? v.ints
             : std::vector<int64_t>{};
}
int64_t product(const std::vector<int64_t>& v, size_t from = 0) {
  int64_t p = 1;
  for (size_t i = from; i < v.size(); ++i) p *= v[i];
  return p;
}

Rule compute(int64_t macs, int64_t other_flops, int64_t bias = 0) {
  return {RuleKind::kCompute, {macs, 2 * macs + other_flops + bias, bias}};
}
Rule flops_only(int64_t flops) {
  return compute(0, flops);
}
Rule none() {
  return {};
}

// MACs of a convolution from its weight: each output element of a direct convolution takes
// (C_in / groups) x prod(kernel) = prod(weight.shape[1:]) MACs; in a transposed one each *input*
// element is spread over (C_out / groups) x prod(kernel) = prod(weight.shape[1:]) outputs.
int64_t conv_macs(int64_t input_numel, int64_t output_numel, const TensorMeta& weight,
                  bool transposed) {
  return (transposed ? input_numel : output_numel) * product(weight.shape, 1);
}

// conv1d/2d/3d(input, weight, bias, ...), conv_transpose*(...), convolution(input, weight, bias,
// stride, padding, dilation, transposed, ...): transposed_at is the index of the flag, or -1.
Fn conv(int transposed_at, bool transposed_always = false) {
  return [=](const TraceOp& op) {
    auto* w = input(op, 1);
    if (!w || !output(op)) return none();
    bool transposed = transposed_always || (transposed_at >= 0 && flag(op, transposed_at, false));
    int64_t out = out_numel(op);
    int64_t bias = input(op, 2) ? out : 0;
    return compute(conv_macs(in_numel(op), out, *w, transposed), 0, bias);
  };
}

// convolution_backward(grad_out, input, weight, bias_sizes, stride, padding, dilation,
// transposed, output_padding, groups, output_mask): each requested gradient of input or weight
// costs the forward's MACs; the bias gradient is a sum over grad_out.
Fn conv_backward(size_t transposed_at) {
  return [=](const TraceOp& op) {
    auto* w = input(op, 2);
    if (!w || !input(op, 0) || !input(op, 1)) return none();
    auto mask = ints(op, op.inputs.size() - 1);
    if (mask.size() != 3) mask = {1, 1, 1};
    bool transposed = flag(op, transposed_at, false);
    int64_t macs = conv_macs(in_numel(op, 1), in_numel(op, 0), *w, transposed);
    int64_t bias = mask[2] ? in_numel(op, 0) : 0;
    return compute(macs * (mask[0] + mask[1]), 0, bias);
  };
}

// Element-wise: `per` FLOPs per output element.
Fn per_output(int64_t per) {
  return [=](const TraceOp& op) { return flops_only(per * out_numel(op)); };
}
// Reductions and the like: `per` FLOPs per element of the first input.
Fn per_input(int64_t per) {
  return [=](const TraceOp& op) { return flops_only(per * in_numel(op)); };
}

// Batch norm: normalise (x - mean) * invstd = 2 per element, the affine weight and bias 2 more;
// training also computes the statistics (mean 1, variance 3 per element).
Fn batch_norm(size_t training_at) {
  return [=](const TraceOp& op) {
    int64_t n = in_numel(op);
    int64_t per = 2 + (input(op, 1) ? 2 : 0) + (flag(op, training_at, false) ? 4 : 0);
    return flops_only(per * n);
  };
}
// Layer, group and instance norm always compute their statistics: 6 per element, + 2 affine.
Fn group_norm(size_t weight_at) {
  return
      [=](const TraceOp& op) { return flops_only((input(op, weight_at) ? 8 : 6) * in_numel(op)); };
}
// A norm's backward: twice its forward (the training forward, with the affine terms).
Fn norm_backward(int64_t forward_per_element, size_t input_at) {
  return [=](const TraceOp& op) {
    return flops_only(2 * forward_per_element * in_numel(op, input_at));
  };
}

// Pooling with a kernel argument at index 1: one comparison (max) or one add (avg) per kernel
// element per output.
Rule pool(const TraceOp& op) {
  auto k = ints(op, 1);
  return flops_only(out_numel(op) * product(k));
}

// einsum(equation, operands): for two operands, one MAC per combination of every index letter
// (the output's and the summed ones). Ellipses and other operand counts are left to the ops the
// einsum runs (bmm, mul, sum), which have rules of their own.
Rule einsum(const TraceOp& op) {
  if (op.inputs.size() < 2 || op.inputs[0].kind != OpValue::Kind::kString) return none();
  const std::string& eq = op.inputs[0].text;
  const auto& operands = op.inputs[1].tensors;
  if (eq.find("...") != std::string::npos || operands.size() != 2) return none();
  std::string lhs = eq.substr(0, eq.find("->"));
  std::unordered_map<char, int64_t> size;
  size_t which = 0, axis = 0;
  for (char c : lhs) {
    if (c == ',') {
      ++which, axis = 0;
    } else if (c != ' ') {
      if (which >= 2 || axis >= operands[which].shape.size()) return none();
      size[c] = operands[which].shape[axis++];
    }
  }
  int64_t macs = 1;
  for (auto& [c, n] : size) macs *= n;
  return compute(macs, 0);
}

// matmul(a, b) with broadcasting: each output element is a dot product of length a.shape[-1].
Rule matmul(const TraceOp& op) {
  auto* a = input(op, 0);
  if (!a || a->shape.empty() || !output(op)) return none();
  return compute(out_numel(op) * a->shape.back(), 0);
}

// scaled_dot_product_attention(q, k, v, ...): q k^T is L x S x E MACs per batch and head,
// (attention) v is L x S x Ev, and the softmax 5 per score.
Rule attention(const TraceOp& op) {
  auto *q = input(op, 0), *k = input(op, 1), *v = input(op, 2);
  if (!q || !k || !v || q->shape.size() < 2 || k->shape.size() < 2) return none();
  int64_t L = q->shape[q->shape.size() - 2], E = q->shape.back();
  int64_t S = k->shape[k->shape.size() - 2], Ev = v->shape.back();
  int64_t batch = q->numel() / (L * E);
  return compute(batch * L * S * (E + Ev), 5 * batch * L * S);
}

const std::unordered_map<std::string_view, Fn>& rules() {
  static const auto* table = [] {
    auto* t = new std::unordered_map<std::string_view, Fn>;
    auto set = [&](std::initializer_list<std::string_view> names, Fn fn) {
      for (auto n : names) (*t)[n] = fn;
    };
    auto kind = [](RuleKind k) { return [k](const TraceOp&) { return Rule{k, {}}; }; };

    // Convolutions, direct and transposed, at every level they are called at.
    set({"conv1d", "conv2d", "conv3d", "mkldnn_convolution", "thnn_conv2d", "_slow_conv2d_forward",
         "slow_conv3d", "slow_conv3d_forward", "slow_conv_dilated2d", "slow_conv_dilated3d",
         "cudnn_convolution", "_conv_depthwise2d", "conv_depthwise3d", "miopen_convolution",
         "_nnpack_spatial_convolution"},
        conv(-1));
    set({"conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "slow_conv_transpose2d",
         "slow_conv_transpose3d", "cudnn_convolution_transpose"},
        conv(-1, true));
    set({"convolution", "_convolution", "convolution_overrideable"}, conv(6));
    set({"convolution_backward"}, conv_backward(7));
    set({"convolution_backward_overrideable"}, conv_backward(6));

    // Matrix products. linear(x, W[out, in], b): one MAC per output element per input feature.
    (*t)["linear"] = [](const TraceOp& op) {
      auto* w = input(op, 1);
      if (!w || w->shape.size() != 2 || !output(op)) return none();
      int64_t out = out_numel(op);
      return compute(out * w->shape[1], 0, input(op, 2) ? out : 0);
    };
    (*t)["addmm"] = [](const TraceOp& op) {  // addmm(bias, m1[n,k], m2[k,m])
      auto *a = input(op, 1), *b = input(op, 2);
      if (!a || !b || a->shape.size() != 2 || b->shape.size() != 2) return none();
      return compute(a->shape[0] * a->shape[1] * b->shape[1], 0, out_numel(op));
    };
    (*t)["mm"] = [](const TraceOp& op) {
      auto *a = input(op, 0), *b = input(op, 1);
      if (!a || !b || a->shape.size() != 2 || b->shape.size() != 2) return none();
      return compute(a->shape[0] * a->shape[1] * b->shape[1], 0);
    };
    (*t)["bmm"] = [](const TraceOp& op) {
      auto *a = input(op, 0), *b = input(op, 1);
      if (!a || !b || a->shape.size() != 3 || b->shape.size() != 3) return none();
      return compute(a->shape[0] * a->shape[1] * a->shape[2] * b->shape[2], 0);
    };
    (*t)["baddbmm"] = [](const TraceOp& op) {  // baddbmm(bias, b1[B,n,k], b2[B,k,m])
      auto *a = input(op, 1), *b = input(op, 2);
      if (!a || !b || a->shape.size() != 3 || b->shape.size() != 3) return none();
      return compute(a->shape[0] * a->shape[1] * a->shape[2] * b->shape[2], 0, out_numel(op));
    };
    (*t)["addmv"] = [](const TraceOp& op) {  // addmv(bias, mat, vec)
      return compute(in_numel(op, 1), 0, out_numel(op));
    };
    (*t)["mv"] = [](const TraceOp& op) { return compute(in_numel(op, 0), 0); };
    set({"dot", "vdot"}, [](const TraceOp& op) { return compute(in_numel(op, 0), 0); });
    (*t)["matmul"] = matmul;
    (*t)["einsum"] = einsum;
    set({"scaled_dot_product_attention", "_scaled_dot_product_attention",
         "_scaled_dot_product_attention_math"},
        attention);

    // Softmax: max, subtract, exp, sum, divide = 5 per element; its backward 4.
    set({"softmax", "_softmax", "log_softmax", "_log_softmax"}, per_output(5));
    set({"_softmax_backward_data", "_log_softmax_backward_data"}, per_output(4));

    // Norms. batch_norm(input, weight, bias, mean, var, training, ...) has training at 5.
    set({"batch_norm", "native_batch_norm", "_batch_norm_impl_index", "cudnn_batch_norm",
         "miopen_batch_norm", "_native_batch_norm_legit"},
        batch_norm(5));
    set({"native_batch_norm_backward", "cudnn_batch_norm_backward", "miopen_batch_norm_backward"},
        norm_backward(8, 1));
    set({"layer_norm", "native_layer_norm"}, group_norm(2));  // (input, shape, weight, bias)
    set({"group_norm"}, group_norm(2));                       // (input, groups, weight, bias)
    set({"native_group_norm"}, group_norm(1));                // (input, weight, bias, N, C, ...)
    set({"instance_norm"}, group_norm(1));                    // (input, weight, bias, ...)
    set({"native_layer_norm_backward", "native_group_norm_backward"}, norm_backward(8, 1));
    set({"rms_norm"}, per_output(4));

    // Pooling.
    set({"max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
         "max_pool2d_with_indices", "max_pool3d_with_indices", "mkldnn_max_pool2d", "avg_pool1d",
         "avg_pool2d", "avg_pool3d"},
        pool);
    set({"adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
         "_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool1d",
         "adaptive_max_pool2d", "adaptive_max_pool3d"},
        per_input(1));
    // Pool backward: one add per element of the gradient written (grad_input, its output).
    set({"max_pool2d_with_indices_backward", "max_pool3d_with_indices_backward",
         "avg_pool2d_backward", "avg_pool3d_backward", "_adaptive_avg_pool2d_backward",
         "_adaptive_avg_pool3d_backward", "adaptive_max_pool2d_backward",
         "adaptive_max_pool3d_backward"},
        per_output(1));

    // Upsampling: per output element, a nearest gather is free; linear interpolation in d
    // dimensions weighs 2^d inputs: 2^d multiplies and 2^d - 1 adds.
    set({"upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
         "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d"},
        per_output(0));
    set({"upsample_linear1d"}, per_output(3));
    set({"upsample_bilinear2d", "_upsample_bilinear2d_aa"}, per_output(7));
    set({"upsample_trilinear3d"}, per_output(15));
    set({"upsample_bicubic2d", "_upsample_bicubic2d_aa"}, per_output(31));
    set({"upsample_nearest1d_backward", "upsample_nearest2d_backward",
         "upsample_nearest3d_backward"},
        per_input(1));
    set({"upsample_linear1d_backward"}, per_input(3));
    set({"upsample_bilinear2d_backward"}, per_input(7));
    set({"upsample_trilinear3d_backward"}, per_input(15));
    set({"upsample_bicubic2d_backward"}, per_input(31));

    // Element-wise, one FLOP per output element (activations included).
    set({"add",
         "sub",
         "mul",
         "div",
         "rsub",
         "neg",
         "abs",
         "relu",
         "relu6",
         "hardtanh",
         "threshold",
         "leaky_relu",
         "elu",
         "selu",
         "celu",
         "gelu",
         "silu",
         "sigmoid",
         "tanh",
         "hardsigmoid",
         "hardswish",
         "mish",
         "softplus",
         "exp",
         "log",
         "log1p",
         "expm1",
         "sqrt",
         "rsqrt",
         "pow",
         "reciprocal",
         "clamp",
         "clamp_min",
         "clamp_max",
         "maximum",
         "minimum",
         "where",
         "square",
         "sin",
         "cos",
         "erf",
         "sign",
         "floor",
         "ceil",
         "round",
         "remainder",
         "fmod",
         "prelu",
         "_add_relu",
         "masked_fill",
         "eq",
         "ne",
         "lt",
         "le",
         "gt",
         "ge",
         "logical_not",
         "logical_and",
         "logical_or",
         "bitwise_not",
         "native_dropout",
         "native_dropout_backward",
         "bernoulli",
         "uniform",
         "normal",
         "threshold_backward",
         "hardtanh_backward",
         "gelu_backward",
         "silu_backward",
         "sigmoid_backward",
         "tanh_backward",
         "leaky_relu_backward",
         "elu_backward",
         "hardswish_backward",
         "hardsigmoid_backward",
         "softplus_backward",
         "mish_backward",
         "prelu_backward",
         "_prelu_kernel"},
        per_output(1));
    // Dropout(input, p, train): the mask multiply in training, nothing in eval.
    set({"dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout"},
        [](const TraceOp& op) { return flops_only(flag(op, 2, false) ? out_numel(op) : 0); });
    // Two operations per element: a*b+c and a/b*c and a + w(b - a).
    set({"addcmul", "addcdiv", "lerp"}, per_output(2));

    // Reductions: one per input element; variance and standard deviation three.
    set({"sum", "mean", "amax", "amin", "max", "min", "argmax", "argmin", "prod", "cumsum",
         "cumprod", "logsumexp", "norm", "linalg_vector_norm", "all", "any", "count_nonzero",
         "nansum"},
        per_input(1));
    set({"var", "std", "var_mean", "std_mean"}, per_input(3));
    // Scatters: one add per element of the source they scatter (its index in the schema).
    auto scatter = [](size_t source_at) {
      return [=](const TraceOp& op) { return flops_only(in_numel(op, source_at)); };
    };
    set({"index_add", "scatter_add", "scatter", "scatter_reduce"}, scatter(3));
    set({"index_put", "_index_put_impl"}, scatter(2));
    set({"embedding_dense_backward", "embedding_backward"}, scatter(0));

    // Losses: mse and l1 subtract, square or abs, and sum (3 per element); nll gathers and sums
    // one value per target.
    set({"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"}, per_input(3));
    set({"mse_loss_backward", "l1_loss_backward", "smooth_l1_loss_backward", "huber_loss_backward"},
        per_input(2));
    set({"nll_loss", "nll_loss_forward", "nll_loss2d", "nll_loss2d_forward", "nll_loss_nd",
         "nll_loss_backward", "nll_loss2d_backward"},
        [](const TraceOp& op) {
          // (self, target, ...) forward; (grad, self, target, ...) backward
          bool backward = op.name.find("backward") != std::string::npos;
          return flops_only(in_numel(op, backward ? 2 : 1));
        });
    set({"binary_cross_entropy", "binary_cross_entropy_backward"}, per_input(4));

    // No arithmetic, but data is read and written.
    set({"clone",
         "copy",
         "contiguous",
         "_to_copy",
         "to",
         "cat",
         "_cat",
         "stack",
         "constant_pad_nd",
         "pad",
         "reflection_pad1d",
         "reflection_pad2d",
         "replication_pad1d",
         "replication_pad2d",
         "index_select",
         "gather",
         "index",
         "embedding",
         "repeat",
         "tile",
         "roll",
         "flip",
         "pixel_shuffle",
         "pixel_unshuffle",
         "channel_shuffle",
         "zeros_like",
         "ones_like",
         "full_like",
         "zeros",
         "ones",
         "full",
         "fill",
         "zero",
         "scalar_tensor",
         "arange",
         "masked_select",
         "type_as",
         "tril",
         "triu",
         "repeat_interleave",
         "new_zeros",
         "new_ones",
         "new_full",
         "lift_fresh_copy",
         "_reshape_copy",
         "narrow_copy",
         "unfold_backward",
         "slice_backward",
         "select_backward",
         "as_strided_backward",
         "_unsafe_index",
         "im2col",
         "col2im",
         "one_hot"},
        kind(RuleKind::kCopy));
    // Views and metadata: neither arithmetic nor memory traffic.
    set({"view",
         "_unsafe_view",
         "reshape",
         "_reshape_alias",
         "flatten",
         "unflatten",
         "squeeze",
         "unsqueeze",
         "transpose",
         "t",
         "permute",
         "expand",
         "expand_as",
         "as_strided",
         "slice",
         "select",
         "narrow",
         "split",
         "split_with_sizes",
         "chunk",
         "unbind",
         "detach",
         "alias",
         "view_as",
         "reshape_as",
         "movedim",
         "swapaxes",
         "swapdims",
         "broadcast_to",
         "unfold",
         "size",
         "numel",
         "dim",
         "item",
         "_local_scalar_dense",
         "resolve_conj",
         "resolve_neg",
         "is_nonzero",
         "lift_fresh",
         "lift",
         "set",
         "requires_grad",
         "_version",
         "result_type",
         "_has_compatible_shallow_copy_type",
         "is_same_size",
         "stride",
         "diagonal",
         "real",
         "imag",
         "view_as_real",
         "view_as_complex",
         "_neg_view",
         "_conj",
         "conj",
         "align_to",
         "refine_names",
         "rename",
         "_nested_tensor_size",
         "output_nr",
         "retain_grad",
         "_make_dual",
         "_unpack_dual"},
        kind(RuleKind::kView));
    set({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize",
         "resize_as", "_empty_affine_quantized", "empty_quantized"},
        kind(RuleKind::kAlloc));
    return t;
  }();
  return *table;
}

}  // namespace

std::string_view op_base_name(std::string_view name) {
  if (name.substr(0, 6) == "aten::") name.remove_prefix(6);
  if (name.size() > 2 && name.back() == '_' && name[name.size() - 2] != '_') name.remove_suffix(1);
  return name;
}

Rule flop_rule(const TraceOp& op) {
  if (op.node || op.name.rfind("aten::", 0) != 0) return none();  // autograd nodes: look inside
  auto it = rules().find(op_base_name(op.name));
  return it == rules().end() ? none() : it->second(op);
}

FlopCount count_flops(const Trace& trace) {
  const auto& ops = trace.ops;
  std::vector<std::vector<int>> children(ops.size());
  std::vector<int> roots;
  for (size_t i = 0; i < ops.size(); ++i) {
    int p = ops[i].parent;
    (p >= 0 && static_cast<size_t>(p) < ops.size() ? children[p] : roots).push_back(int(i));
  }
  FlopCount out;
  // What the ops under an unruled op did: counted something, only moved or viewed data, or only
  // allocated (computed into new memory by means no rule knows).
  struct Seen {
    bool compute = false, alloc = false;
  };
  std::function<Seen(int)> visit = [&](int i) -> Seen {
    Rule r = flop_rule(ops[i]);
    if (r.kind != RuleKind::kNone) {
      out.counted.push_back({i, r.kind, r.cost});
      return {r.kind == RuleKind::kCompute, r.kind == RuleKind::kAlloc};
    }
    // Only aten ops are reported: autograd nodes and the engine's wrappers are looked into.
    bool aten = !ops[i].node && ops[i].name.rfind("aten::", 0) == 0;
    if (children[i].empty()) {
      if (aten) out.uncounted.push_back(i);
      return {};
    }
    size_t counted_before = out.counted.size(), uncounted_before = out.uncounted.size();
    Seen seen;
    for (int c : children[i]) {
      Seen s = visit(c);
      seen.compute |= s.compute;
      seen.alloc |= s.alloc;
    }
    // An op with no rule that only allocated inside (a Meta kernel writes nothing) computed
    // something uncountable: it, not its children, is reported.
    if (!seen.compute && seen.alloc && aten && out.uncounted.size() == uncounted_before) {
      out.counted.resize(counted_before);
      out.uncounted.push_back(i);
    }
    return seen;
  };
  for (int r : roots) visit(r);
  return out;
}

}  // namespace footprint
