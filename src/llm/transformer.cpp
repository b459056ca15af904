// The transformer families, after Hugging Face transformers 5's modeling_llama.py,
// modeling_qwen2.py, modeling_gpt2.py and modeling_bert.py, and its cache_utils.py and
// masking_utils.py (the op sequences tests/python/test_llm.py and LlmReal hold them to; comments
// name the lines followed), with PEFT's LoRA and torch.utils.checkpoint's recomputation.
#include "llm/transformer.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/autograd.h>

#include <cmath>
#include <limits>

#include "footprint/error.h"
#include "torch/autocast.h"

namespace footprint::lm {
namespace {

using at::indexing::Ellipsis;
using at::indexing::None;
using at::indexing::Slice;
using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::TensorOptions meta(c10::ScalarType dtype) {
  return at::TensorOptions().device(at::kMeta).dtype(dtype);
}

// torch.finfo(dtype).min, the masks' fill value.
double lowest(c10::ScalarType t) {
  switch (t) {
    case at::kBFloat16:
      return -3.3895313892515355e38;
    case at::kHalf:
      return -65504.0;
    default:
      return std::numeric_limits<float>::lowest();
  }
}

// What every layer needs besides the hidden states: rotary cos/sin, the attention mask, and
// whether this is a training run on which target (a checkpointed layer's autocast).
struct Aux {
  Tensor cos, sin, mask;  // undefined where the family has none
  bool train = false;
  bool cuda = true;
};

// A Python number in a tensor expression: PyTorch passes it as a wrapped-number tensor, so that
// `x * 0.5` is mul.Tensor (MulBackward0), not mul.Scalar (MulBackward1) as C++'s `x * 0.5` is.
Tensor python_number(const c10::Scalar& v) {
  Tensor t = at::scalar_to_tensor(v);
  t.unsafeGetTensorImpl()->set_wrapped_number(true);
  return t;
}

// torch.tensor(data, dtype=..., device=...): made on the host, moved to the device (a no-op `to`
// when it is the host), lifted and detached: empty, to, lift_fresh, detach_.
Tensor python_tensor(at::IntArrayRef shape, c10::ScalarType dtype, c10::Device device) {
  Tensor host = at::empty(shape, at::TensorOptions().dtype(dtype).device(at::kCPU));
  return at::lift_fresh(host.to(device)).detach_();
}

// F.dropout: aten::dropout, which the engine runs as the target does (a 1-byte mask from CUDA's
// fused kernel, a mask of the input's dtype on the CPU; src/torch/meta_kernels.cpp). F.dropout
// always calls the op: with p = 0 or in eval it returns its input (no memory).
Tensor dropout(const Tensor& x, double p, const Aux& aux) {
  return at::dropout(x, p, aux.train);
}

// A projection: nn.Linear (weight [out, in]) or GPT-2's Conv1D (weight [in, out], addmm), with
// PEFT's LoRA when asked: result = base(x); result = result + lora_B(lora_A(x)) * scaling.
class ProjImpl : public torch::nn::Module {
 public:
  ProjImpl(int64_t in, int64_t out, bool bias, bool conv1d, c10::ScalarType dtype, int64_t rank,
           double alpha)
      : conv1d_(conv1d), out_(out) {
    weight_ = register_parameter(
        "weight", at::empty(conv1d ? std::vector<int64_t>{in, out} : std::vector<int64_t>{out, in},
                            meta(dtype)));
    if (bias) bias_ = register_parameter("bias", at::empty({out}, meta(dtype)));
    if (rank > 0) {
      weight_.set_requires_grad(false);
      if (bias_.defined()) bias_.set_requires_grad(false);
      lora_a_ = register_module("lora_A",
                                std::make_shared<ProjImpl>(in, rank, false, false, dtype, 0, 0.0));
      lora_b_ = register_module("lora_B",
                                std::make_shared<ProjImpl>(rank, out, false, false, dtype, 0, 0.0));
      scaling_ = alpha / double(rank);
    }
  }
  Tensor forward(const Tensor& x) {
    Tensor result;
    if (conv1d_) {  // transformers.pytorch_utils.Conv1D.forward
      auto size_out = x.sizes().vec();
      size_out.back() = out_;
      result = at::addmm(bias_, x.view({-1, x.size(-1)}), weight_).view(size_out);
    } else {
      result = at::linear(x, weight_, bias_);
    }
    if (lora_a_) {
      // peft's _cast_input_dtype: the input at the adapters' dtype (an fp32 copy of a bf16 input
      // under autocast, as at o_proj and down_proj).
      c10::ScalarType adapter = lora_a_->weight_.scalar_type();
      Tensor update =
          lora_b_->forward(lora_a_->forward(x.scalar_type() == adapter ? x : x.to(adapter)));
      update = update * python_number(scaling_);  // a Python float: MulBackward0
      c10::ScalarType out = result.scalar_type();
      result = result + update;
      result = result.to(out);  // peft's result.to(torch_result_dtype): a no-op, still an op
    }
    return result;
  }

 private:
  bool conv1d_;
  int64_t out_;
  Tensor weight_, bias_;
  std::shared_ptr<ProjImpl> lora_a_, lora_b_;
  double scaling_ = 1;
};

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t n, int64_t dim, c10::ScalarType dtype) {
    weight = register_parameter("weight", at::empty({n, dim}, meta(dtype)));
  }
  Tensor forward(const Tensor& ids) { return at::embedding(weight, ids); }
  Tensor weight;
};

// LlamaRMSNorm.forward.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, c10::ScalarType dtype) : eps_(eps) {
    weight_ = register_parameter("weight", at::empty({dim}, meta(dtype)));
  }
  Tensor forward(const Tensor& x) {
    auto input_dtype = x.scalar_type();
    Tensor h = x.to(at::kFloat);
    Tensor variance = h.pow(2).mean(-1, true);  // a local: lives until the return
    // `hidden_states * torch.rsqrt(variance + self.variance_epsilon)`, each temporary freed once
    // read.
    Tensor inv;
    {
      Tensor shifted = variance + python_number(eps_);
      inv = at::rsqrt(shifted);
    }
    Tensor scaled = h * inv;
    inv.reset();
    h = std::move(scaled);
    return weight_ * h.to(input_dtype);
  }

 private:
  double eps_;
  Tensor weight_;
};

class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps, c10::ScalarType dtype) : dim_(dim), eps_(eps) {
    weight_ = register_parameter("weight", at::empty({dim}, meta(dtype)));
    bias_ = register_parameter("bias", at::empty({dim}, meta(dtype)));
  }
  Tensor forward(const Tensor& x) { return at::layer_norm(x, {dim_}, weight_, bias_, eps_); }

 private:
  int64_t dim_;
  double eps_;
  Tensor weight_, bias_;
};

// modeling_llama.repeat_kv: (batch, kv_heads, n, dim) -> (batch, heads, n, dim), a copy.
Tensor repeat_kv(const Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  int64_t B = x.size(0), KV = x.size(1), N = x.size(2), D = x.size(3);
  // Python's indexing, as C++'s index() runs it too: a slice per ':' (views; the op sequence is
  // tested against PyTorch's) and an unsqueeze per None.
  Tensor x5 = x.index({Slice(), Slice(), None, Slice(), Slice()});
  return x5.expand({B, KV, n_rep, N, D}).reshape({B, KV * n_rep, N, D});
}

// transformers 5's sdpa_attention_forward (integrations/sdpa_attention.py):
// F.scaled_dot_product_attention itself, whose backend and buffers the engine models for the target
// (src/torch/meta_kernels.cpp), and the output back in [batch, tokens, heads, dim], contiguous.
// Without a mask (no padding, no static cache), fewer key/value heads go in as they are
// (enable_gqa, for head dims up to 256) and the attention is causal when asked and there is more
// than one query, over as many keys as queries; with a mask (sdpa_mask), keys and values
// are repeated and the mask does the rest.
Tensor sdpa(const Tensor& q, Tensor k, Tensor v, bool causal, double dropout_p,
            const Tensor& mask = {}) {
  int64_t n_rep = q.size(1) / k.size(1);
  bool gqa = !mask.defined() && n_rep > 1 && k.size(-1) == v.size(-1) && k.size(-1) <= 256;
  if (n_rep > 1 && !gqa) {
    k = repeat_kv(k, n_rep);
    v = repeat_kv(v, n_rep);
  }
  int64_t q_len = q.size(2);
  bool is_causal = causal && q_len > 1 && !mask.defined();
  if (is_causal && k.size(2) > q_len) {
    k = k.index({Slice(), Slice(), Slice(None, q_len), Slice()});
    v = v.index({Slice(), Slice(), Slice(None, q_len), Slice()});
  }
  double scale = 1.0 / std::sqrt(double(q.size(-1)));
  // No mask is None, as the Python call passes it: an undefined tensor in the optional would
  // reach the kernel's dtype check (the memory-efficient backend's, for fp32 at head dim 32).
  std::optional<Tensor> attn_mask;
  if (mask.defined()) attn_mask = mask;
  Tensor out =
      at::scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale, gqa);
  return out.transpose(1, 2).contiguous();
}

// Shards of one tensor-parallel rank.
struct Dims {
  int64_t hidden, heads, kv_heads, head_dim, inter, vocab, layers;
};

Dims dims_of(const TransformerConfig& c, int64_t tp) {
  auto divide = [&](int64_t n, const char* what) {
    if (n % tp != 0)
      throw Error(fmt::format("{}: {} {} cannot be split over tensor-parallel degree {}", c.source,
                              n, what, tp));
    return n / tp;
  };
  Dims d;
  d.hidden = c.hidden_size;
  d.heads = divide(c.num_heads, "attention heads");
  d.kv_heads = divide(c.num_kv_heads, "key/value heads");
  d.head_dim = c.head_dim;
  d.inter = divide(c.intermediate_size, "MLP units");
  d.vocab = (c.vocab_size + tp - 1) / tp;  // Megatron pads the vocabulary to a multiple
  d.layers = c.num_layers;
  return d;
}

// A decoder or encoder layer, runnable with or without recomputation.
class Layer : public torch::nn::Module {
 public:
  virtual Tensor run(const Tensor& hidden, const Aux& aux) = 0;
  virtual void begin_cache() {}  // the forward's DynamicCache is made
};

// torch.utils.checkpoint (use_reentrant=True, transformers' default): forward without grad keeping
// only the layer's input; backward recomputes the layer with grad, under the autocast state of
// the forward, and runs backward through it.
struct Checkpoint : public torch::autograd::Function<Checkpoint> {
  // `aux` points at the caller's Aux, read during this call only.
  static Tensor forward(AutogradContext* ctx, Tensor hidden, int64_t layer, int64_t aux) {
    const Aux& a = *reinterpret_cast<const Aux*>(aux);
    ctx->save_for_backward({hidden});
    ctx->saved_data["layer"] = layer;
    ctx->saved_data["cuda"] = a.cuda;
    for (const auto& [name, t] : {std::pair{"cos", a.cos}, {"sin", a.sin}, {"mask", a.mask}})
      if (t.defined()) ctx->saved_data[name] = t;
    auto lower = detail::autocast_lower();
    ctx->saved_data["autocast"] = lower ? int64_t(*lower) : int64_t(-1);
    torch::NoGradGuard no_grad;
    return reinterpret_cast<Layer*>(layer)->run(hidden, a);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    Tensor hidden = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    auto* layer = reinterpret_cast<Layer*>(ctx->saved_data["layer"].toInt());
    Aux aux;
    auto tensor = [&](const char* name) {
      auto it = ctx->saved_data.find(name);
      return it == ctx->saved_data.end() ? Tensor() : it->second.toTensor();
    };
    aux.cos = tensor("cos");
    aux.sin = tensor("sin");
    aux.mask = tensor("mask");
    aux.train = true;
    aux.cuda = ctx->saved_data["cuda"].toBool();
    Tensor out;
    {
      torch::AutoGradMode grad(true);
      std::optional<detail::AutocastScope> amp;
      int64_t lower = ctx->saved_data["autocast"].toInt();
      if (lower >= 0) amp.emplace(c10::ScalarType(lower), aux.cuda);
      out = layer->run(hidden, aux);
    }
    torch::autograd::backward({out}, {grads[0]});
    return {hidden.grad(), Tensor(), Tensor()};
  }
};

struct Common {
  const TransformerConfig& c;
  const BuildOptions& o;
  Dims d;
  std::vector<Tensor>* dynamic_cache = nullptr;  // the model's output_held, when o.dynamic_cache
  // The first static cache layer's cumulative length (StaticLayer.cumulative_length), which the
  // decode step's mask starts its queries at.
  mutable Tensor cache_offset;
  Aux aux(bool train) const {
    Aux a;
    a.train = train;
    a.cuda = o.cuda;
    return a;
  }
  bool lora(const std::string& name) const {
    return o.lora_rank > 0 &&
           std::find(o.lora_targets.begin(), o.lora_targets.end(), name) != o.lora_targets.end();
  }
  std::shared_ptr<ProjImpl> proj(const std::string& name, int64_t in, int64_t out, bool bias,
                                 bool conv1d = false) const {
    bool l = lora(name);
    return std::make_shared<ProjImpl>(in, out, bias, conv1d, o.dtype, l ? o.lora_rank : 0,
                                      o.lora_alpha);
  }
};

// The KV cache of one attention: static ([batch, kv_heads, cache_len, head_dim] buffers, for
// inference) or, in training, DynamicLayer's (cache_utils.py): empty tensors the keys and values
// are concatenated onto.
struct Cache {
  Tensor k, v, cumulative;
  std::vector<Tensor>* dynamic = nullptr;
  // A sliding window (mistral): DynamicSlidingWindowLayer and StaticSlidingWindowLayer. The C++
  // path runs contexts up to the window (llm.cpp), where the static layer's slots are the
  // context's.
  int64_t window = 0;
  Tensor window_host;  // DynamicSlidingWindowLayer._sliding_window_tensor, before its first update
  std::vector<int64_t> shape;  // a static cache's; empty: none
  bool lazy = false;
  void make(torch::nn::Module& m, const Common& cm, int64_t kv_heads) {
    window = cm.c.sliding_window;
    if (cm.o.dynamic_cache) dynamic = cm.dynamic_cache;
    if (cm.o.cache_len <= 0) return;
    shape = {cm.o.cache_batch, kv_heads, cm.o.cache_len, cm.d.head_dim};
    if (cm.o.lazy_cache) {  // StaticLayer.__init__: torch.tensor(0, dtype=int), on the host
      lazy = true;
      cumulative = at::zeros({}, at::TensorOptions().dtype(at::kLong));
      return;
    }
    k = m.register_buffer("k_cache", at::empty(shape, meta(cm.o.dtype)));
    v = m.register_buffer("v_cache", at::empty(shape, meta(cm.o.dtype)));
    cumulative = m.register_buffer("cumulative_length", at::empty({}, meta(at::kLong)));
    if (!cm.cache_offset.defined()) cm.cache_offset = cumulative;
  }
  // DynamicCache(config=...), which a training forward makes after the embedding: a sliding layer's
  // torch.tensor(sliding_window, dtype=torch.long), made on the host.
  void begin() {
    if (!dynamic || !window) return;
    window_host = python_tensor({}, at::kLong, at::kCPU);
  }
  // Writes this step's keys and values after those already there and returns the whole cache.
  std::pair<Tensor, Tensor> update(const Tensor& key, const Tensor& value) {
    if (dynamic) {  // DynamicLayer.lazy_initialization, then update
      // Both at the keys' dtype: values of another dtype (bf16 from an autocast projection, where
      // the rotated keys are fp32) are promoted to it by the cat.
      // torch.tensor([], dtype=key_states.dtype, device=key_states.device), twice.
      Tensor keys = python_tensor({0}, key.scalar_type(), key.device());
      Tensor values = python_tensor({0}, key.scalar_type(), key.device());
      if (window) {  // DynamicSlidingWindowLayer: the window's tensor moved to the device
        dynamic->push_back(window_host.to(key.device()));  // the host's is rebound, freed
        window_host = Tensor();
      }
      keys = at::cat({keys, key}, -2);
      values = at::cat({values, value}, -2);
      if (window) {  // it keeps the last window - 1 tokens: views, which hold the whole states
        dynamic->push_back(keys.index({Slice(), Slice(), Slice(-window + 1, None), Slice()}));
        dynamic->push_back(values.index({Slice(), Slice(), Slice(-window + 1, None), Slice()}));
      } else {
        dynamic->push_back(keys);
        dynamic->push_back(values);
      }
      return {keys, values};
    }
    if (shape.empty()) return {key, value};
    if (lazy && !k.defined()) {  // StaticLayer.lazy_initialization, in the prefill
      k = at::zeros(shape, key.options());
      v = at::zeros(shape, key.options());
      cumulative = cumulative.to(key.device());
    }
    // StaticLayer.update: the slots written (from the cumulative length on), then index_copy_
    // into them.
    Tensor slots = at::arange(key.size(2), key.options().dtype(at::kLong)) + cumulative;
    if (!window) cumulative.add_(key.size(2));
    k.index_copy_(2, slots, key);
    v.index_copy_(2, slots, value);
    if (window) cumulative.add_(key.size(2));  // StaticSlidingWindowLayer adds after the copies
    return {k, v};  // every slot, written or not (the mask, or causal SDPA, hides the rest)
  }
};

// masking_utils.sdpa_mask, as create_causal_mask calls it: bool [batch, 1, queries, kv_len], true
// where query q_offset + i may see key j (j <= its position). SDPA gets it for a StaticCache's
// decode step (a compileable cache and one query: not skipped for is_causal; a prefill without
// padding skips it, SDPA being causal over the prompt's keys); eager attention always (eager_mask
// below). `offset`: StaticLayer's cumulative length, which _preprocess_mask_arguments moves to the
// device; undefined for no cache or a DynamicCache (a Python int, 0 at a training forward).
// With a sliding window (create_sliding_window_causal_mask; StaticSlidingWindowLayer's offset is a
// Python int): and_masks(sliding_window_overlay, causal_mask_function).
Tensor sdpa_mask(int64_t batch, int64_t queries, const Tensor& offset, int64_t kv_len,
                 int64_t window, const at::TensorOptions& long_) {
  Tensor q_offset;
  if (offset.defined()) q_offset = window ? offset : offset.to(offset.device());
  Tensor batch_arange = at::arange(batch, long_);
  Tensor head_arange = at::arange(1, long_);
  Tensor q_arange =
      q_offset.defined() ? at::arange(queries, long_) + q_offset : at::arange(queries, long_) + 0;
  Tensor kv_arange = at::arange(kv_len, long_) + 0;
  // _non_vmap_expansion_sdpa, then the mask function.
  Tensor b = batch_arange.index({Slice(), None, None, None});
  Tensor h = head_arange.index({None, Slice(), None, None});
  Tensor q = q_arange.index({None, None, Slice(), None});
  Tensor kv = kv_arange.index({None, None, None, Slice()});
  if (window) {
    Tensor mask = q.new_ones({}, long_.dtype(at::kBool));
    Tensor seen = kv > q - python_number(window);  // sliding_window_overlay
    mask = at::__and__(mask, seen.to(mask.device()));
    seen = kv <= q;  // causal_mask_function
    mask = at::__and__(mask, seen.to(mask.device()));
    return mask.expand({batch, -1, queries, kv_len});
  }
  Tensor mask = kv <= q;  // causal_mask_function
  return mask.expand({batch, -1, queries, kv_len});
}

// masking_utils.eager_mask: sdpa_mask's, never skipped, as an additive mask of `dtype` (the
// embeddings'): torch.where(mask, torch.tensor(0.0, device=..., dtype=dtype), min_dtype).
Tensor eager_mask(const Tensor& mask, c10::ScalarType dtype) {
  return at::where(mask, python_tensor({}, dtype, mask.device()), lowest(dtype));
}

// The mask a decoder's forward makes (create_causal_mask, or create_sliding_window_causal_mask):
// eager's always; SDPA's for a StaticCache's one-query step, else none (is_causal).
Tensor decoder_mask(const Common& cm, int64_t batch, int64_t S, int64_t position,
                    c10::ScalarType dtype, const at::TensorOptions& long_) {
  bool cached = cm.o.cache_len > 0;
  bool eager = cm.o.attention == AttentionKernel::kEager;
  if (!eager && !(cached && S == 1)) return Tensor();
  // A StaticCache not yet initialized (the prefill's) has a Python int 0 as its length.
  Tensor mask = sdpa_mask(batch, S, cached && !cm.o.lazy_cache ? cm.cache_offset : Tensor(),
                          cached ? cm.o.cache_len : position + S, cm.c.sliding_window, long_);
  return eager ? eager_mask(mask, dtype) : mask;
}

// ---------------------------------------------------------------- llama, mistral, qwen2

// modeling_llama.rotate_half and apply_rotary_pos_emb. Python evaluates left to right and frees
// a temporary as soon as the op that reads it returns; C++ leaves the order of operands open and
// keeps temporaries to the end of the statement. So each step is its own statement, as here
// (the op order and the peaks are tested against PyTorch).
Tensor rotate_half(const Tensor& x) {
  int64_t half = x.size(-1) / 2;
  Tensor x1 = x.index({Ellipsis, Slice(None, half)});
  Tensor x2 = x.index({Ellipsis, Slice(half, None)});
  Tensor neg = -x2;
  return at::cat({neg, x1}, -1);
}
Tensor rotary(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  Tensor a = x * cos;
  Tensor b = rotate_half(x) * sin;
  return a + b;
}
// apply_rotary_pos_emb returns both, so the caller's q and k live until k's rotation is done.
std::pair<Tensor, Tensor> apply_rotary_pos_emb(const Tensor& q, const Tensor& k, const Tensor& cos,
                                               const Tensor& sin) {
  Tensor c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  Tensor q_embed = rotary(q, c, s);
  Tensor k_embed = rotary(k, c, s);
  return {q_embed, k_embed};
}

// An attention interface's result: the output, transposed back and contiguous, and the eager
// path's softmax weights (which LlamaDecoderLayer keeps until it returns; undefined for SDPA).
struct AttentionOut {
  Tensor out, weights;
};

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  explicit LlamaAttentionImpl(const Common& cm) : cm_(cm) {
    const Dims& d = cm.d;
    bool bias = cm.c.attention_bias;
    q_ = register_module("q_proj", cm.proj("q_proj", d.hidden, d.heads * d.head_dim, bias));
    k_ = register_module("k_proj", cm.proj("k_proj", d.hidden, d.kv_heads * d.head_dim, bias));
    v_ = register_module("v_proj", cm.proj("v_proj", d.hidden, d.kv_heads * d.head_dim, bias));
    // qwen2 has biases on q, k and v only.
    o_ = register_module("o_proj", cm.proj("o_proj", d.heads * d.head_dim, d.hidden,
                                           bias && !cm.c.family->qkv_bias));
    cache_.make(*this, cm, d.kv_heads);
  }
  void begin_cache() { cache_.begin(); }
  // LlamaAttention.forward (transformers 5): returns the output and eager's attention weights.
  AttentionOut forward(const Tensor& h, const Aux& aux) {
    const Dims& d = cm_.d;
    int64_t B = h.size(0), S = h.size(1);
    Tensor q = q_->forward(h).view({B, S, -1, d.head_dim}).transpose(1, 2);
    Tensor k = k_->forward(h).view({B, S, -1, d.head_dim}).transpose(1, 2);
    Tensor v = v_->forward(h).view({B, S, -1, d.head_dim}).transpose(1, 2);
    std::tie(q, k) = apply_rotary_pos_emb(q, k, aux.cos, aux.sin);
    std::tie(k, v) = cache_.update(k, v);
    AttentionOut a = attend(q, k, v, aux);
    a.out = a.out.reshape({B, S, -1}).contiguous();
    a.out = o_->forward(a.out);
    return a;
  }

 private:
  const Common& cm_;
  // sdpa_attention_forward (sdpa above) or eager_attention_forward, which repeats the keys and
  // values (they die when it returns) and gives its softmax weights back.
  AttentionOut attend(const Tensor& q, const Tensor& key, const Tensor& value, const Aux& aux) {
    AttentionOut a;
    if (cm_.o.attention == AttentionKernel::kSdpa) {
      a.out = sdpa(q, key, value, true, aux.train ? cm_.c.attention_dropout : 0.0, aux.mask);
      return a;
    }
    // eager_attention_forward (transformers 5): the mask as made, scaling a Python float.
    int64_t n_rep = cm_.d.heads / cm_.d.kv_heads;
    Tensor k = repeat_kv(key, n_rep);
    Tensor v = repeat_kv(value, n_rep);
    Tensor w = at::matmul(q, k.transpose(2, 3)) * python_number(std::pow(cm_.d.head_dim, -0.5));
    if (aux.mask.defined()) w = w + aux.mask;
    w = at::softmax(w, -1, at::kFloat).to(q.scalar_type());
    w = dropout(w, cm_.c.attention_dropout, aux);  // rebinds: the undropped weights may go
    a.out = at::matmul(w, v);
    a.weights = w;
    a.out = a.out.transpose(1, 2).contiguous();
    return a;
  }

  std::shared_ptr<ProjImpl> q_, k_, v_, o_;
  Cache cache_;
};

class LlamaMLPImpl : public torch::nn::Module {
 public:
  explicit LlamaMLPImpl(const Common& cm) {
    const Dims& d = cm.d;
    bool bias = cm.c.mlp_bias;
    gate_ = register_module("gate_proj", cm.proj("gate_proj", d.hidden, d.inter, bias));
    up_ = register_module("up_proj", cm.proj("up_proj", d.hidden, d.inter, bias));
    down_ = register_module("down_proj", cm.proj("down_proj", d.inter, d.hidden, bias));
  }
  Tensor forward(const Tensor& x) {
    Tensor product;
    {  // Python frees the operands once the product exists
      Tensor gate = at::silu(gate_->forward(x));
      Tensor up = up_->forward(x);
      product = gate * up;
    }
    return down_->forward(product);
  }

 private:
  std::shared_ptr<ProjImpl> gate_, up_, down_;
};

class LlamaLayer : public Layer {
 public:
  explicit LlamaLayer(const Common& cm) {
    attn_ = register_module("self_attn", std::make_shared<LlamaAttentionImpl>(cm));
    mlp_ = register_module("mlp", std::make_shared<LlamaMLPImpl>(cm));
    ln1_ = register_module("input_layernorm",
                           std::make_shared<RMSNormImpl>(cm.d.hidden, cm.c.norm_eps, cm.o.dtype));
    ln2_ = register_module("post_attention_layernorm",
                           std::make_shared<RMSNormImpl>(cm.d.hidden, cm.c.norm_eps, cm.o.dtype));
  }
  void begin_cache() override { attn_->begin_cache(); }
  // LlamaDecoderLayer.forward. `hidden_states, self_attn_weights = self.self_attn(...)` keeps the
  // eager attention weights until the layer returns, through the MLP.
  Tensor run(const Tensor& hidden, const Aux& aux) override {
    Tensor residual = hidden;
    Tensor h = ln1_->forward(hidden);
    AttentionOut a = attn_->forward(h, aux);
    h = std::move(a.out);  // a keeps only the weights
    h = residual + h;
    residual = h;
    h = ln2_->forward(h);
    h = mlp_->forward(h);
    return residual + h;
  }

 private:
  std::shared_ptr<LlamaAttentionImpl> attn_;
  std::shared_ptr<LlamaMLPImpl> mlp_;
  std::shared_ptr<RMSNormImpl> ln1_, ln2_;
};

// The layers, run in order, each through Checkpoint when asked.
Tensor run_layers(const std::vector<std::shared_ptr<Layer>>& layers, Tensor h, const Aux& aux,
                  bool checkpointing) {
  for (const auto& layer : layers) {
    if (checkpointing && aux.train) {
      // PEFT/transformers' enable_input_require_grads: with a frozen embedding, the first
      // checkpoint's input must require grad for backward to reach the layers.
      if (!h.requires_grad()) h = h.detach().requires_grad_(true);
      h = Checkpoint::apply(h, reinterpret_cast<int64_t>(static_cast<Layer*>(layer.get())),
                            reinterpret_cast<int64_t>(&aux));
    } else {
      h = layer->run(h, aux);
    }
  }
  return h;
}

// ForCausalLMLoss (transformers.loss.loss_utils): logits in fp32, labels shifted by padding.
Tensor causal_lm_loss(const Tensor& logits, const Tensor& labels) {
  Tensor l = logits.to(at::kFloat);
  Tensor padded = at::pad(labels, {0, 1}, "constant", -100);
  Tensor shift = padded.index({Ellipsis, Slice(1, None)}).contiguous();
  Tensor flat_logits = l.view({-1, l.size(-1)});
  Tensor flat_labels = shift.view({-1});
  flat_labels = flat_labels.to(flat_logits.device());  // "Enable model parallelism"
  return at::cross_entropy_loss(flat_logits, flat_labels, {}, at::Reduction::Mean, -100);
}

class LlamaModel : public CausalModel {
 public:
  LlamaModel(const TransformerConfig& c, const BuildOptions& o)
      : cm_{c, o, dims_of(c, o.tp), &output_held, {}} {
    const Dims& d = cm_.d;
    auto model = register_module("model", std::make_shared<torch::nn::Module>("LlamaModel"));
    embed_ = model->register_module("embed_tokens",
                                    std::make_shared<EmbeddingImpl>(d.vocab, d.hidden, o.dtype));
    auto list = model->register_module("layers", std::make_shared<torch::nn::Module>("ModuleList"));
    for (int64_t i = 0; i < d.layers; ++i)
      layers_.push_back(
          list->register_module(std::to_string(i), std::make_shared<LlamaLayer>(cm_)));
    norm_ = model->register_module("norm",
                                   std::make_shared<RMSNormImpl>(d.hidden, c.norm_eps, o.dtype));
    // LlamaRotaryEmbedding's inv_freq (persistent=False).
    auto rotary = model->register_module("rotary_emb",
                                         std::make_shared<torch::nn::Module>("RotaryEmbedding"));
    inv_freq_ = rotary->register_buffer("inv_freq", at::empty({d.head_dim / 2}, meta(at::kFloat)));
    if (c.tie_word_embeddings && o.tp == 1) {
      head_weight_ = embed_->weight;
      auto head = register_module("lm_head", std::make_shared<torch::nn::Module>("Linear"));
      head->register_parameter("weight", head_weight_);
    } else {
      head_ = register_module("lm_head", cm_.proj("lm_head", d.hidden, d.vocab, false));
    }
  }

  // LlamaRotaryEmbedding.forward (transformers 5; default rope, attention_scaling 1.0); its
  // temporaries die when it returns.
  std::pair<Tensor, Tensor> rotary_embedding(const Tensor& x, const Tensor& position_ids) {
    // Qwen2RotaryEmbedding writes its casts apart: .float() before the expand, .to(x.device)
    // after it, and .float() again on both operands of the product.
    bool qwen2 = cm_.c.family->rotary_float_casts;
    Tensor inv = inv_freq_.index({None, Slice(), None});
    inv = qwen2 ? inv.to(at::kFloat).expand({position_ids.size(0), -1, 1}).to(x.device())
                : inv.expand({position_ids.size(0), -1, 1}).to(at::kFloat);
    Tensor pos = position_ids.index({Slice(), None, Slice()}).to(at::kFloat);
    Tensor cos, sin;
    {
      detail::AutocastPause no_amp;  // maybe_autocast(enabled=False) around it
      Tensor freqs = qwen2 ? at::matmul(inv.to(at::kFloat), pos.to(at::kFloat)).transpose(1, 2)
                           : at::matmul(inv, pos).transpose(1, 2);
      Tensor emb = at::cat({freqs, freqs}, -1);
      cos = emb.cos() * 1.0;
      sin = emb.sin() * 1.0;
    }
    Tensor c = cos.to(x.scalar_type());
    Tensor s = sin.to(x.scalar_type());
    return {c, s};
  }
  Tensor forward(const std::vector<Tensor>& in, int64_t position) override {
    const Tensor& ids = in.at(0);
    bool train = in.size() > 1;
    int64_t B = ids.size(0), S = ids.size(1);
    Aux aux = cm_.aux(is_training());
    output_held.clear();  // each forward makes its own (LlamaModel.forward's DynamicCache)
    Tensor h = embed_->forward(ids);
    for (auto& layer : layers_) layer->begin_cache();
    auto long_ = ids.options().dtype(at::kLong);
    Tensor cache_position = at::arange(S, long_) + position;
    Tensor position_ids = cache_position.unsqueeze(0);
    aux.mask = decoder_mask(cm_, B, S, position, h.scalar_type(), long_);
    std::tie(aux.cos, aux.sin) = rotary_embedding(h, position_ids);
    // LlamaModel keeps `inputs_embeds` (h here) through the layers: run_layers takes a copy.
    h = run_layers(layers_, h, aux, cm_.o.checkpointing);
    h = norm_->forward(h);
    // hidden_states[:, slice(-logits_to_keep, None), :]: 0 in training, 1 under generate()
    h = h.index({Slice(), Slice(train ? 0 : -1, None), Slice()});
    Tensor logits = head_ ? head_->forward(h) : at::linear(h, head_weight_);
    if (!train) return logits;
    output_held.push_back(logits);  // CausalLMOutputWithPast.logits
    return causal_lm_loss(logits, in.at(1));
  }

 private:
  Common cm_;
  std::shared_ptr<EmbeddingImpl> embed_;
  std::vector<std::shared_ptr<Layer>> layers_;
  std::shared_ptr<RMSNormImpl> norm_;
  std::shared_ptr<ProjImpl> head_;
  Tensor head_weight_, inv_freq_;
};

// ---------------------------------------------------------------- gpt2

// The MLP activation named by the config, as transformers' ACT2FN computes it.
Tensor activation(const std::string& name, const Tensor& x) {
  if (name == "gelu_new") {  // NewGELUActivation, written out in Python ops
    constexpr double kPi = 3.14159265358979323846;
    Tensor half = python_number(0.5) * x;
    Tensor t = at::pow(x, 3.0);
    t = python_number(0.044715) * t;
    t = x + t;
    t = python_number(std::sqrt(2.0 / kPi)) * t;
    t = at::tanh(t);
    t = python_number(1.0) + t;
    return half * t;
  }
  if (name == "gelu") return at::gelu(x);
  if (name == "gelu_pytorch_tanh") return at::gelu(x, "tanh");
  if (name == "relu") return at::relu(x);
  if (name == "silu" || name == "swish") return at::silu(x);
  throw Error(
      fmt::format("activation '{}' is not modelled; expected gelu_new, gelu, "
                  "gelu_pytorch_tanh, relu or silu",
                  name));
}

class GPT2AttentionImpl : public torch::nn::Module {
 public:
  explicit GPT2AttentionImpl(const Common& cm) : cm_(cm) {
    const Dims& d = cm.d;
    int64_t inner = d.heads * d.head_dim;
    c_attn_ = register_module("c_attn", cm.proj("c_attn", d.hidden, 3 * inner, true, true));
    c_proj_ = register_module("c_proj", cm.proj("c_proj", inner, d.hidden, true, true));
    cache_.make(*this, cm, d.heads);
  }
  // GPT2Attention.forward (transformers 5): the output, and eager's weights.
  AttentionOut forward(const Tensor& h, const Aux& aux) {
    const Dims& d = cm_.d;
    int64_t B = h.size(0), S = h.size(1), inner = d.heads * d.head_dim;
    auto qkv = c_attn_->forward(h).split(inner, 2);
    auto heads = [&](const Tensor& t) { return t.view({B, S, -1, d.head_dim}).transpose(1, 2); };
    Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);
    std::tie(k, v) = cache_.update(k, v);
    AttentionOut a;
    if (cm_.o.attention == AttentionKernel::kSdpa) {
      a.out = sdpa(q, k, v, true, aux.train ? cm_.c.attention_dropout : 0.0, aux.mask);
    } else {  // modeling_gpt2.eager_attention_forward (scale_attn_weights: head_dim ** -0.5)
      Tensor w = at::matmul(q, k.transpose(-1, -2)) * python_number(std::pow(d.head_dim, -0.5));
      if (aux.mask.defined()) w = w + aux.mask;
      w = at::softmax(w, -1);
      w = w.to(v.scalar_type());  // .type(value.dtype)
      w = dropout(w, cm_.c.attention_dropout, aux);
      a.out = at::matmul(w, v).transpose(1, 2);
      a.weights = w;
    }
    a.out = a.out.reshape({B, S, -1}).contiguous();
    a.out = dropout(c_proj_->forward(a.out), cm_.c.hidden_dropout, aux);
    return a;
  }

 private:
  const Common& cm_;
  std::shared_ptr<ProjImpl> c_attn_, c_proj_;
  Cache cache_;
};

class GPT2Block : public Layer {
 public:
  explicit GPT2Block(const Common& cm) : cm_(cm) {
    const Dims& d = cm.d;
    ln1_ = register_module("ln_1",
                           std::make_shared<LayerNormImpl>(d.hidden, cm.c.norm_eps, cm.o.dtype));
    attn_ = register_module("attn", std::make_shared<GPT2AttentionImpl>(cm));
    ln2_ = register_module("ln_2",
                           std::make_shared<LayerNormImpl>(d.hidden, cm.c.norm_eps, cm.o.dtype));
    auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>("GPT2MLP"));
    c_fc_ = mlp->register_module("c_fc", cm.proj("c_fc", d.hidden, d.inter, true, true));
    c_proj_ = mlp->register_module("c_proj", cm.proj("c_proj", d.inter, d.hidden, true, true));
  }
  // GPT2Block.forward
  Tensor run(const Tensor& hidden, const Aux& aux) override {
    // `attn_output, _ = self.attn(...)`: `_` keeps eager's weights until the block returns.
    Tensor residual = hidden;
    AttentionOut a = attn_->forward(ln1_->forward(hidden), aux);
    Tensor h = std::move(a.out);
    h = h + residual;
    residual = h;
    Tensor m = c_proj_->forward(activation(cm_.c.hidden_act, c_fc_->forward(ln2_->forward(h))));
    m = dropout(m, cm_.c.hidden_dropout, aux);
    return residual + m;
  }

 private:
  const Common& cm_;
  std::shared_ptr<LayerNormImpl> ln1_, ln2_;
  std::shared_ptr<GPT2AttentionImpl> attn_;
  std::shared_ptr<ProjImpl> c_fc_, c_proj_;
};

class GPT2Model : public CausalModel {
 public:
  GPT2Model(const TransformerConfig& c, const BuildOptions& o)
      : cm_{c, o, dims_of(c, o.tp), &output_held, {}} {
    const Dims& d = cm_.d;
    auto t = register_module("transformer", std::make_shared<torch::nn::Module>("GPT2Model"));
    wte_ = t->register_module("wte", std::make_shared<EmbeddingImpl>(d.vocab, d.hidden, o.dtype));
    wpe_ = t->register_module("wpe",
                              std::make_shared<EmbeddingImpl>(c.max_positions, d.hidden, o.dtype));
    auto list = t->register_module("h", std::make_shared<torch::nn::Module>("ModuleList"));
    for (int64_t i = 0; i < d.layers; ++i)
      layers_.push_back(list->register_module(std::to_string(i), std::make_shared<GPT2Block>(cm_)));
    ln_f_ =
        t->register_module("ln_f", std::make_shared<LayerNormImpl>(d.hidden, c.norm_eps, o.dtype));
    // Tied (GPT2Config's default): the same tensor; else a weight of its own.
    head_weight_ =
        c.tie_word_embeddings ? wte_->weight : at::empty({d.vocab, d.hidden}, meta(o.dtype));
    auto head = register_module("lm_head", std::make_shared<torch::nn::Module>("Linear"));
    head->register_parameter("weight", head_weight_);
  }
  // GPT2LMHeadModel.forward
  Tensor forward(const std::vector<Tensor>& in, int64_t position) override {
    const Tensor& ids = in.at(0);
    bool train = in.size() > 1;
    int64_t S = ids.size(1);
    Aux aux = cm_.aux(is_training());
    output_held.clear();
    // GPT2Model.forward (transformers 5): the ids viewed [-1, S], then the positions.
    Tensor flat = ids.view({-1, S});
    Tensor inputs_embeds = wte_->forward(flat);
    Tensor position_ids = at::arange(S, ids.options().dtype(at::kLong)) + position;
    position_ids = position_ids.unsqueeze(0);
    Tensor position_embeds = wpe_->forward(position_ids);
    Tensor h = inputs_embeds + position_embeds.to(inputs_embeds.device());
    aux.mask = decoder_mask(cm_, ids.size(0), S, position, h.scalar_type(),
                            ids.options().dtype(at::kLong));
    h = dropout(h, cm_.c.embedding_dropout, aux);
    h = run_layers(layers_, h, aux, cm_.o.checkpointing);
    h = ln_f_->forward(h);
    h = h.view({ids.size(0), S, h.size(-1)});  // hidden_states.view(output_shape)
    h = h.index({Slice(), Slice(train ? 0 : -1, None), Slice()});  // logits_to_keep, as llama's
    Tensor logits = at::linear(h, head_weight_);
    if (!train) return logits;
    output_held.push_back(logits);  // CausalLMOutputWithPast.logits
    return causal_lm_loss(logits, in.at(1));
  }

 private:
  Common cm_;
  std::shared_ptr<EmbeddingImpl> wte_, wpe_;
  Tensor head_weight_;
  std::vector<std::shared_ptr<Layer>> layers_;
  std::shared_ptr<LayerNormImpl> ln_f_;
};

// ---------------------------------------------------------------- bert

class BertLayer : public Layer {
 public:
  explicit BertLayer(const Common& cm) : cm_(cm) {
    const Dims& d = cm.d;
    int64_t inner = d.heads * d.head_dim;
    auto attention =
        register_module("attention", std::make_shared<torch::nn::Module>("BertAttention"));
    auto self = attention->register_module(
        "self", std::make_shared<torch::nn::Module>("BertSelfAttention"));
    q_ = self->register_module("query", cm.proj("query", d.hidden, inner, true));
    k_ = self->register_module("key", cm.proj("key", d.hidden, inner, true));
    v_ = self->register_module("value", cm.proj("value", d.hidden, inner, true));
    auto so =
        attention->register_module("output", std::make_shared<torch::nn::Module>("BertSelfOutput"));
    attn_dense_ = so->register_module("dense", cm.proj("dense", inner, d.hidden, true));
    attn_ln_ = so->register_module(
        "LayerNorm", std::make_shared<LayerNormImpl>(d.hidden, cm.c.norm_eps, cm.o.dtype));
    auto inter =
        register_module("intermediate", std::make_shared<torch::nn::Module>("BertIntermediate"));
    inter_ = inter->register_module("dense", cm.proj("dense", d.hidden, d.inter, true));
    auto out = register_module("output", std::make_shared<torch::nn::Module>("BertOutput"));
    out_dense_ = out->register_module("dense", cm.proj("dense", d.inter, d.hidden, true));
    out_ln_ = out->register_module(
        "LayerNorm", std::make_shared<LayerNormImpl>(d.hidden, cm.c.norm_eps, cm.o.dtype));
  }
  // BertLayer.forward: BertSelfAttention, BertSelfOutput, BertIntermediate, BertOutput.
  // BertLayer.forward: `self_attention_output, _ = self.attention(...)` keeps eager's weights
  // through the feed-forward, until the layer returns.
  Tensor run(const Tensor& hidden, const Aux& aux) override {
    AttentionOut attended = attention(hidden, aux);
    Tensor a = std::move(attended.out);
    Tensor i = activation(cm_.c.hidden_act, inter_->forward(a));
    Tensor o = dropout(out_dense_->forward(i), cm_.c.hidden_dropout, aux);
    return out_ln_->forward(o + a);
  }

 private:
  // BertAttention.forward: BertSelfAttention, then BertSelfOutput; the attention's output (and
  // its queries, keys and values before it) die when it returns, as in Python; eager's weights
  // are returned.
  AttentionOut attention(const Tensor& hidden, const Aux& aux) {
    AttentionOut self = self_attention(hidden, aux);
    Tensor context = std::move(self.out);
    Tensor a = dropout(attn_dense_->forward(context), cm_.c.hidden_dropout, aux);
    self.out = attn_ln_->forward(a + hidden);
    return self;
  }
  // BertSelfAttention.forward (transformers 5): the heads as views, then the attention interface.
  AttentionOut self_attention(const Tensor& hidden, const Aux& aux) {
    const Dims& d = cm_.d;
    int64_t B = hidden.size(0), S = hidden.size(1);
    auto heads = [&](const Tensor& t) { return t.view({B, S, -1, d.head_dim}).transpose(1, 2); };
    Tensor q = heads(q_->forward(hidden));
    Tensor k = heads(k_->forward(hidden));
    Tensor v = heads(v_->forward(hidden));
    // BERT's attention is not causal, and a batch without padding has no mask
    // (create_bidirectional_mask skips it, for SDPA and eager alike).
    AttentionOut a;
    if (cm_.o.attention == AttentionKernel::kSdpa) {
      a.out = sdpa(q, k, v, false, aux.train ? cm_.c.attention_dropout : 0.0);
    } else {  // modeling_bert.eager_attention_forward (transformers 5)
      // attn_weights rebound at each step: the scaled scores die once softmax has read them.
      Tensor w = at::matmul(q, k.transpose(2, 3)) * python_number(std::pow(d.head_dim, -0.5));
      w = at::softmax(w, -1);
      w = dropout(w, cm_.c.attention_dropout, aux);
      a.out = at::matmul(w, v).transpose(1, 2).contiguous();
      a.weights = w;
    }
    a.out = a.out.reshape({B, S, -1}).contiguous();
    return a;
  }

  const Common& cm_;
  std::shared_ptr<ProjImpl> q_, k_, v_, attn_dense_, inter_, out_dense_;
  std::shared_ptr<LayerNormImpl> attn_ln_, out_ln_;
};

class BertModel : public CausalModel {
 public:
  BertModel(const TransformerConfig& c, const BuildOptions& o)
      : cm_{c, o, dims_of(c, o.tp), nullptr, {}} {
    const Dims& d = cm_.d;
    auto e = register_module("embeddings", std::make_shared<torch::nn::Module>("BertEmbeddings"));
    word_ = e->register_module("word_embeddings",
                               std::make_shared<EmbeddingImpl>(d.vocab, d.hidden, o.dtype));
    pos_ = e->register_module("position_embeddings",
                              std::make_shared<EmbeddingImpl>(c.max_positions, d.hidden, o.dtype));
    type_ = e->register_module("token_type_embeddings", std::make_shared<EmbeddingImpl>(
                                                            c.type_vocab_size, d.hidden, o.dtype));
    ln_ = e->register_module("LayerNorm",
                             std::make_shared<LayerNormImpl>(d.hidden, c.norm_eps, o.dtype));
    position_ids_ =
        e->register_buffer("position_ids", at::empty({1, c.max_positions}, meta(at::kLong)));
    token_type_ids_ =
        e->register_buffer("token_type_ids", at::empty({1, c.max_positions}, meta(at::kLong)));
    auto enc = register_module("encoder", std::make_shared<torch::nn::Module>("BertEncoder"));
    auto list = enc->register_module("layer", std::make_shared<torch::nn::Module>("ModuleList"));
    for (int64_t i = 0; i < d.layers; ++i)
      layers_.push_back(list->register_module(std::to_string(i), std::make_shared<BertLayer>(cm_)));
    auto pooler = register_module("pooler", std::make_shared<torch::nn::Module>("BertPooler"));
    pool_ = pooler->register_module("dense", cm_.proj("dense", d.hidden, d.hidden, true));
  }
  // BertModel.forward; training's loss is the mean square of the last hidden states.
  Tensor forward(const std::vector<Tensor>& in, int64_t) override {
    const Tensor& ids = in.at(0);
    bool train = in.size() > 1;
    Aux aux = cm_.aux(is_training());
    Tensor e = embeddings(ids, aux);  // its temporaries die with it, as in Python
    Tensor h = run_layers(layers_, e, aux, cm_.o.checkpointing);
    Tensor first = h.index({Slice(), 0});  // BertPooler
    Tensor pooled = at::tanh(pool_->forward(first));
    (void)pooled;
    if (!train) return h;
    h = h.to(at::kFloat);
    h = h.square();
    return h.mean();
  }

 private:
  // BertEmbeddings.forward (transformers 5).
  Tensor embeddings(const Tensor& ids, const Aux& aux) {
    int64_t B = ids.size(0), S = ids.size(1);
    Tensor position_ids = position_ids_.index({Slice(), Slice(0, S)});
    Tensor buffered = token_type_ids_.expand({position_ids.size(0), -1});
    buffered = at::gather(buffered, 1, position_ids);
    Tensor token_types = buffered.expand({B, S});
    Tensor inputs_embeds = word_->forward(ids);
    Tensor type_embeds = type_->forward(token_types);
    Tensor e = inputs_embeds + type_embeds;
    Tensor position_embeds = pos_->forward(position_ids);
    e = e + position_embeds;
    return dropout(ln_->forward(e), cm_.c.hidden_dropout, aux);
  }

  Common cm_;
  std::shared_ptr<EmbeddingImpl> word_, pos_, type_;
  std::shared_ptr<LayerNormImpl> ln_;
  Tensor position_ids_, token_type_ids_;
  std::vector<std::shared_ptr<Layer>> layers_;
  std::shared_ptr<ProjImpl> pool_;
};

}  // namespace

std::shared_ptr<CausalModel> build(const TransformerConfig& config, const BuildOptions& options) {
  if (!config.family)
    throw Error(
        fmt::format("{}: model_type '{}' has no C++ module", config.source, config.model_type));
  switch (config.family->module) {
    case ModuleKind::kLlama:
      return std::make_shared<LlamaModel>(config, options);
    case ModuleKind::kGpt2:
      return std::make_shared<GPT2Model>(config, options);
    case ModuleKind::kBert:
      break;
  }
  return std::make_shared<BertModel>(config, options);
}

}  // namespace footprint::lm
