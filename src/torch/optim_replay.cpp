// torch.optim's allocations, op for op (src/torch/optim_replay.h). Each function below follows the
// Python function named in its comment (torch/optim/*.py, PyTorch 2.x; 1.13's single-tensor paths
// allocate the same). A Python variable that is rebound frees its old tensor only once the new one
// exists; the C++ variables below are declared where that gives the same order of frees.
#include "torch/optim_replay.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "footprint/error.h"

namespace footprint::detail {
namespace {

constexpr double kLr = 1e-3, kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8, kAlpha = 0.99;

}  // namespace

PyOptimizer::PyOptimizer(const OptimizerSpec& spec, std::vector<at::Tensor> params,
                         bool counters_on_device)
    : spec_(spec), params_(std::move(params)), counters_on_device_(counters_on_device) {
  state_.resize(params_.size());
  // Adagrad.__init__: state["step"] and state["sum"] for every parameter, at construction.
  if (spec_.kind == OptimizerKind::kAdagrad)
    for (size_t i = 0; i < params_.size(); ++i) make_state(i);
}

// _init_group: the per-parameter state, in the order Python creates it.
void PyOptimizer::make_state(size_t i) {
  State& s = state_[i];
  if (s.made) return;
  s.made = true;
  const at::Tensor& p = params_[i];
  bool counter = counters_on_device_ || spec_.impl == OptimizerImpl::kFused;
  auto zeros = [&] { return at::zeros_like(p); };
  switch (spec_.kind) {
    case OptimizerKind::kSgd:
      break;  // the momentum buffer is cloned from the gradient inside the step
    case OptimizerKind::kAdam:
    case OptimizerKind::kAdamW:
      if (counter) s.counter = at::zeros({}, p.options().dtype(at::kFloat));
      s.a = zeros();
      s.b = zeros();
      if (spec_.amsgrad) s.c = zeros();
      break;
    case OptimizerKind::kAdagrad:
      if (counter) s.counter = at::zeros({}, p.options().dtype(at::kFloat));
      s.a = at::full_like(p, 0.0);
      break;
    case OptimizerKind::kRmsprop:
      if (counter) s.counter = at::zeros({}, p.options().dtype(at::kFloat));
      s.a = zeros();
      if (spec_.momentum > 0) s.b = zeros();
      if (spec_.centered) s.c = zeros();
      break;
  }
}

void PyOptimizer::zero_grad(bool set_to_none) {
  for (auto& p : params_) {
    at::Tensor& g = p.mutable_grad();
    if (!g.defined()) continue;
    if (set_to_none)
      g.reset();
    else
      g.detach().zero_();
  }
}

void PyOptimizer::step() {
  at::NoGradGuard no_grad;  // @_use_grad_for_differentiable
  std::vector<size_t> live;
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].grad().defined()) live.push_back(i);
  // SGD makes no state up front; the others make all of it before updating anything.
  if (spec_.kind != OptimizerKind::kSgd)
    for (size_t i : live) make_state(i);
  if (spec_.impl == OptimizerImpl::kForLoop)
    step_for_loop(live);
  else
    step_foreach(live);  // fused: the same state, updated in place (below)
}

// _single_tensor_sgd, _single_tensor_adam (AdamW: decoupled decay), _single_tensor_adagrad,
// _single_tensor_rmsprop.
void PyOptimizer::step_for_loop(const std::vector<size_t>& live) {
  const double wd = spec_.weight_decay;
  at::Tensor grad, denom;  // rebound per parameter, as in Python
  for (size_t i : live) {
    at::Tensor& p = params_[i];
    State& s = state_[i];
    grad = p.grad();
    if (s.counter.defined()) s.counter.add_(1);
    switch (spec_.kind) {
      case OptimizerKind::kSgd:
        if (wd != 0) grad = grad.add(p, wd);
        if (spec_.momentum != 0) {
          if (!s.a.defined()) {
            s.a = grad.clone().detach();  // torch.clone(grad).detach()
            s.made = true;
          } else {
            s.a.mul_(spec_.momentum).add_(grad);
          }
          if (spec_.nesterov)
            grad = grad.add(s.a, spec_.momentum);
          else
            grad = s.a;
        }
        p.add_(grad, -kLr);
        break;
      case OptimizerKind::kAdam:
      case OptimizerKind::kAdamW: {
        if (spec_.kind == OptimizerKind::kAdam && wd != 0) grad = grad.add(p, wd);
        if (spec_.kind == OptimizerKind::kAdamW) p.mul_(1 - kLr * wd);
        s.a.mul_(kBeta1).add_(grad, 1 - kBeta1);
        s.b.mul_(kBeta2).addcmul_(grad, grad, 1 - kBeta2);
        const at::Tensor& v = spec_.amsgrad ? s.c : s.b;
        if (spec_.amsgrad) at::maximum_out(s.c, s.c, s.b);
        at::Tensor root = v.sqrt();
        at::Tensor d = root / 0.5;  // / bias_correction2_sqrt
        root.reset();
        d.add_(kEps);
        denom = d;  // the previous parameter's denom is freed here
        d.reset();
        p.addcdiv_(s.a, denom, -kLr);
        break;
      }
      case OptimizerKind::kAdagrad: {
        if (wd != 0) grad = grad.add(p, wd);
        s.a.addcmul_(grad, grad, 1);
        at::Tensor std = s.a.sqrt();
        std.add_(kEps);
        denom = std;
        std.reset();
        p.addcdiv_(grad, denom, -kLr);
        break;
      }
      case OptimizerKind::kRmsprop: {
        if (wd != 0) grad = grad.add(p, wd);
        s.a.mul_(kAlpha).addcmul_(grad, grad, 1 - kAlpha);
        at::Tensor avg;
        if (spec_.centered) {
          s.c.mul_(kAlpha).add_(grad, 1 - kAlpha);
          avg = s.a.addcmul(s.c, s.c, -1).sqrt_();
        } else {
          avg = s.a.sqrt();
        }
        avg.add_(kEps);
        denom = avg;
        avg.reset();
        if (spec_.momentum > 0) {
          s.b.mul_(spec_.momentum).addcdiv_(grad, denom);
          p.add_(s.b, -kLr);
        } else {
          p.addcdiv_(grad, denom, -kLr);
        }
        break;
      }
    }
  }
}

// _multi_tensor_sgd, _multi_tensor_adam, _multi_tensor_adagrad, _multi_tensor_rmsprop: every
// _foreach_* that returns new tensors allocates one per parameter, all alive together. Fused
// (_fused_adam_, _fused_sgd_, ...) updates in place and allocates nothing beyond the state.
void PyOptimizer::step_foreach(const std::vector<size_t>& live) {
  const bool fused = spec_.impl == OptimizerImpl::kFused;
  const double wd = spec_.weight_decay;
  std::vector<at::Tensor> grads;
  for (size_t i : live) grads.push_back(params_[i].grad());
  auto each = [&](auto&& fn) {
    std::vector<at::Tensor> out;
    for (size_t k = 0; k < live.size(); ++k)
      out.push_back(fn(k, params_[live[k]], state_[live[k]]));
    return out;
  };
  for (size_t i : live)
    if (state_[i].counter.defined()) state_[i].counter.add_(1);
  switch (spec_.kind) {
    case OptimizerKind::kSgd: {
      if (fused) {
        for (size_t k = 0; k < live.size(); ++k) {
          State& s = state_[live[k]];
          if (spec_.momentum != 0 && !s.a.defined()) s.a = grads[k].clone().detach();
        }
        break;
      }
      if (wd != 0)
        grads = each([&](size_t k, at::Tensor& p, State&) { return grads[k].add(p, wd); });
      if (spec_.momentum != 0) {
        for (size_t k = 0; k < live.size(); ++k) {
          State& s = state_[live[k]];
          if (!s.a.defined())
            s.a = grads[k].clone().detach();
          else
            s.a.mul_(spec_.momentum).add_(grads[k]);
        }
        if (spec_.nesterov)
          for (size_t k = 0; k < live.size(); ++k) grads[k].add_(state_[live[k]].a, spec_.momentum);
      }
      break;
    }
    case OptimizerKind::kAdam:
    case OptimizerKind::kAdamW: {
      if (fused) break;
      if (spec_.kind == OptimizerKind::kAdam && wd != 0)
        grads = each([&](size_t k, at::Tensor& p, State&) { return grads[k].add(p, wd); });
      for (size_t k = 0; k < live.size(); ++k) {
        State& s = state_[live[k]];
        s.a.mul_(kBeta1).add_(grads[k], 1 - kBeta1);
        s.b.mul_(kBeta2).addcmul_(grads[k], grads[k], 1 - kBeta2);
      }
      grads.clear();  // del device_grads
      std::vector<at::Tensor> root = each([&](size_t, at::Tensor&, State& s) {
        if (spec_.amsgrad) at::maximum_out(s.c, s.c, s.b);
        return (spec_.amsgrad ? s.c : s.b).sqrt();
      });
      for (size_t k = 0; k < live.size(); ++k) {
        root[k].div_(0.5).add_(kEps);
        params_[live[k]].addcdiv_(state_[live[k]].a, root[k], -kLr);
      }
      break;
    }
    case OptimizerKind::kAdagrad: {
      if (fused) break;
      bool scaled_in_place = wd != 0;
      if (wd != 0)
        grads = each([&](size_t k, at::Tensor& p, State&) { return grads[k].add(p, wd); });
      for (size_t k = 0; k < live.size(); ++k) state_[live[k]].a.addcmul_(grads[k], grads[k], 1);
      std::vector<at::Tensor> std = each([&](size_t, at::Tensor&, State& s) { return s.a.sqrt(); });
      for (auto& t : std) t.add_(kEps);
      std::vector<at::Tensor> numerator;
      if (scaled_in_place) {
        for (auto& g : grads) g.mul_(-kLr);
        numerator = grads;
      } else {
        numerator = each([&](size_t k, at::Tensor&, State&) { return grads[k].mul(-kLr); });
      }
      for (size_t k = 0; k < live.size(); ++k) params_[live[k]].addcdiv_(numerator[k], std[k]);
      break;
    }
    case OptimizerKind::kRmsprop: {
      if (wd != 0)
        grads = each([&](size_t k, at::Tensor& p, State&) { return grads[k].add(p, wd); });
      for (size_t k = 0; k < live.size(); ++k)
        state_[live[k]].a.mul_(kAlpha).addcmul_(grads[k], grads[k], 1 - kAlpha);
      std::vector<at::Tensor> avg;
      if (spec_.centered) {
        for (size_t k = 0; k < live.size(); ++k)
          state_[live[k]].c.mul_(kAlpha).add_(grads[k], 1 - kAlpha);
        avg = each([&](size_t, at::Tensor&, State& s) { return s.a.addcmul(s.c, s.c, -1); });
        for (auto& t : avg) t.sqrt_();
      } else {
        avg = each([&](size_t, at::Tensor&, State& s) { return s.a.sqrt(); });
      }
      for (auto& t : avg) t.add_(kEps);
      for (size_t k = 0; k < live.size(); ++k) {
        State& s = state_[live[k]];
        if (spec_.momentum > 0) {
          s.b.mul_(spec_.momentum).addcdiv_(grads[k], avg[k]);
          params_[live[k]].add_(s.b, -kLr);
        } else {
          params_[live[k]].addcdiv_(grads[k], avg[k], -kLr);
        }
      }
      break;
    }
  }
}

}  // namespace footprint::detail
