// The capture: run a module once with a global RecordFunction observer and a tracking allocator,
// and write down every op and every allocation as a Trace (footprint/trace.h).
//
// What the observer relies on (checked on LibTorch 1.13, docs/engine.md):
//   - scopes FUNCTION (aten ops), BACKWARD_FUNCTION (autograd nodes, with the seqNr of the forward
//     op that created them) and TORCHSCRIPT_FUNCTION (one per interpreter frame: a module's
//     forward, a method on self, a free function);
//   - inputs() of an op called from TorchScript holds the interpreter stack: the op's own
//     arguments are the last schema.arguments().size() entries; outputs() likewise;
//   - torch::jit::currentModuleHierarchy() names the interpreter's frames, innermost last
//     ("TOP(ResNet)::forward", "layer1(Sequential)::forward", "SELF(Conv2d)::_conv_forward"). At a
//     frame's own start it is not up to date, so each frame is resolved at its first op;
//   - begin and end callbacks nest (LIFO) on the thread that runs the ops, backward included.
// RecordFunction::inputs() asserts a flag in debug builds that the NDEBUG-built libtorch never
// sets, so this file must be compiled with NDEBUG (CMakeLists.txt sees to it).
#include <ATen/record_function.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/runtime/interpreter.h>
#include <torch/version.h>

#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "footprint/engine.h"
#include "footprint/error.h"
#include "footprint/plan.h"
#include "footprint/read.h"
#include "footprint/torch.h"
#include "torch/autocast.h"
#include "torch/meta.h"
#include "torch/optim_replay.h"
#include "torch/sandbox.h"

#ifndef NDEBUG
#error \
    "capture.cpp calls RecordFunction::inputs(), which needs NDEBUG with the NDEBUG-built LibTorch"
#endif

namespace footprint {
namespace {

// What the fallback kernel's message starts with (meta_kernels.cpp): an op the meta device
// cannot run. The capture stops there and keeps what it has.
constexpr const char* kNoMetaKernel = "no kernel for the meta device";

struct Capture {
  Trace trace;
  Phase phase = Phase::kForward;
  int iteration = 0;
  // Where each phase began: (events recorded so far, phase, iteration).
  std::vector<std::tuple<size_t, Phase, int>> marks;
  std::vector<int> open;    // the ops running, innermost last
  std::vector<int> frames;  // the TorchScript frames open: the call each resolved to, or -1
  // Module calls a driver marks (CaptureSession: Python's module hooks), innermost last.
  std::vector<int> modules;
  // C++ modules: parameter -> the path of the module holding it.
  std::unordered_map<const c10::TensorImpl*, std::string> owner;
  std::map<std::string, std::string> types;  // module path -> type
  detail::MemoryRecorder* recorder = nullptr;
  // The schema's argument and return counts, per op name (the name's storage is the op's own).
  std::unordered_map<const char*, std::pair<size_t, size_t>> arity;
  // Whether the op's Meta kernel is a Python decomposition, per op name.
  std::unordered_map<const char*, bool> python_meta;
  bool meta = true;  // the capture runs on meta
};

// Whether the op's meta kernel is a Python one (a decomposition: TraceOp::decomposition).
bool decomposed_on_meta(Capture& c, const at::RecordFunction& fn) {
  if (!c.meta || fn.scope() != at::RecordScope::FUNCTION) return false;
  auto it = c.python_meta.find(fn.name());
  if (it == c.python_meta.end()) {
    bool python = false;
    if (auto name = fn.operator_name())
      if (auto op = c10::Dispatcher::singleton().findOp(*name))
        python = detail::meta_kernel_is_python(*op);
    it = c.python_meta.emplace(fn.name(), python).first;
  }
  return it->second;
}

thread_local Capture* t_capture = nullptr;

OpValue value_from(const c10::IValue& v) {
  OpValue out;
  auto tensor = [](const at::Tensor& t) {
    return TensorMeta{t.sizes().vec(), detail::dtype_from(t.scalar_type()),
                      t.dim() == 4 && t.suggest_memory_format() == at::MemoryFormat::ChannelsLast,
                      t.is_contiguous(t.suggest_memory_format())};
  };
  try {
    if (v.isTensor()) {
      const at::Tensor& t = v.toTensor();
      if (!t.defined()) return out;
      out.kind = OpValue::Kind::kTensor;
      out.tensors.push_back(tensor(t));
    } else if (v.isTensorList()) {
      out.kind = OpValue::Kind::kTensorList;
      for (const at::Tensor& t : v.toTensorList().vec())
        if (t.defined()) out.tensors.push_back(tensor(t));
    } else if (v.isBool()) {
      out.kind = OpValue::Kind::kBool;
      out.ints.push_back(v.toBool());
    } else if (v.isInt()) {
      out.kind = OpValue::Kind::kInt;
      out.ints.push_back(v.toInt());
    } else if (v.isIntList()) {
      out.kind = OpValue::Kind::kIntList;
      out.ints = v.toIntVector();
    } else if (v.isBoolList()) {
      out.kind = OpValue::Kind::kIntList;
      for (bool b : v.toBoolList()) out.ints.push_back(b);
    } else if (v.isDouble()) {
      out.kind = OpValue::Kind::kDouble;
      out.real = v.toDouble();
    } else if (v.isString()) {
      out.kind = OpValue::Kind::kString;
      out.text = v.toStringRef();
    } else if (!v.isNone()) {
      out.kind = OpValue::Kind::kOther;
    }
  } catch (const std::exception&) {  // a tensor with no sizes (sparse, nested): not described
    out = OpValue{};
    out.kind = OpValue::Kind::kOther;
  }
  return out;
}

// The last n values: TorchScript passes the whole interpreter stack.
template <class Values>
std::vector<OpValue> values_from(const Values& all, size_t n) {
  if (n > all.size()) n = all.size();
  std::vector<OpValue> out;
  out.reserve(n);
  for (size_t i = all.size() - n; i < all.size(); ++i) out.push_back(value_from(all[i]));
  return out;
}

int add_call(Capture& c, std::string path, std::string type, int parent) {
  c.trace.calls.push_back({std::move(path), std::move(type), parent});
  return int(c.trace.calls.size()) - 1;
}

// The path of a submodule called as `name` from the module at `parent`. TorchScript unrolls
// containers that are iterated rather than called (a ModuleList's "0" is reached from its owner
// directly), so a name not found under the parent is looked for one container deeper.
std::string module_path(const Capture& c, const std::string& parent, const std::string& name,
                        const std::string& type) {
  std::string prefix = parent.empty() ? "" : parent + ".";
  std::string direct = prefix + name;
  if (c.types.empty() || c.types.count(direct)) return direct;
  std::string suffix = "." + name;
  for (const auto& [path, t] : c.types)
    if (path.size() > prefix.size() + suffix.size() &&
        path.compare(0, prefix.size(), prefix) == 0 &&
        path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0 && t == type &&
        path.find('.', prefix.size()) == path.size() - suffix.size())
      return path;
  return direct;
}

// The module call of a top-level forward op, from the interpreter's frames.
int resolve_call(Capture& c) {
  if (c.frames.empty()) return 0;
  if (c.frames.back() >= 0) return c.frames.back();
  std::vector<std::string> hierarchy = torch::jit::currentModuleHierarchy();
  size_t F = c.frames.size(), H = hierarchy.size();
  if (H == 0 || H > F) return 0;  // not the frames we know: the root keeps the op
  int call = 0;
  for (size_t i = 0; i < H; ++i) {
    int& frame = c.frames[F - H + i];
    if (frame >= 0) {
      call = frame;
      continue;
    }
    const std::string& h = hierarchy[i];
    auto open = h.find('('), close = h.find(')');
    bool module = i > 0 && open != std::string::npos && close != std::string::npos &&
                  h.rfind("SELF(", 0) != 0 && h.rfind("CALL_FUNCTION", 0) != 0;
    if (module) {
      std::string type = h.substr(open + 1, close - open - 1);
      call = add_call(c, module_path(c, c.trace.calls[call].path, h.substr(0, open), type), type,
                      call);
    }
    frame = call;
  }
  return call;
}

// A C++ module's op: the module whose parameter it reads, one call per op.
int call_by_parameter(Capture& c, const at::RecordFunction& fn) {
  for (const auto& v : fn.inputs()) {
    if (!v.isTensor()) continue;
    auto it = c.owner.find(v.toTensor().unsafeGetTensorImpl());
    if (it == c.owner.end()) continue;
    auto type = c.types.find(it->second);
    return add_call(c, it->second, type == c.types.end() ? "" : type->second, 0);
  }
  return 0;
}

constexpr const char* kEvaluateFunction = "autograd::engine::evaluate_function: ";

// InputBuffer::accumulate (torch/csrc/autograd/input_buffer.cpp) adds a second gradient for one
// tensor in place into the first (the buffer's old value) when that one passes
// can_accumulate_inplace: dense, not a tensor subclass, and held only by the buffer (use_count
// and storage use_count 1); the second is the in-place candidate only when the first is sparse.
// A meta tensor always counts as a subclass, so meta adds out of place; the rest of the test is
// the same on meta, and is made here, while the add begins. The operands seen here carry one
// reference more: the dispatcher's boxed copy for the observer. Measured with the pinned torch on
// CPU: a tied weight's gradients from a Linear (a transposed view of mm's result, whose base it
// holds) then an embedding (a fresh tensor) are added out of place, as an H200 did for GPT-2.
int accumulates_in_place(c10::ArrayRef<c10::IValue> all, size_t n) {
  if (n == SIZE_MAX || n < 2 || all.size() < n) return -1;
  const c10::IValue& old_var = all[all.size() - n];
  if (!old_var.isTensor()) return -1;
  const at::Tensor& t = old_var.toTensor();
  return t.defined() && !t.is_sparse() && t.is_non_overlapping_and_dense() && t.use_count() == 2 &&
                 t.has_storage() && t.storage().use_count() == 1
             ? 0
             : -1;
}

std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction& fn) {
  Capture* c = t_capture;
  if (!c) return nullptr;
  if (fn.scope() == at::RecordScope::TORCHSCRIPT_FUNCTION) {
    c->frames.push_back(-1);
    return nullptr;
  }
  int index = int(c->trace.ops.size());
  TraceOp op;
  op.name = fn.name();
  op.phase = c->phase;
  op.iteration = c->iteration;
  op.parent = c->open.empty() ? -1 : c->open.back();
  op.seq = fn.seqNr();
  op.node = fn.scope() == at::RecordScope::BACKWARD_FUNCTION;
  op.weight_cast = detail::in_weight_cast();
  op.decomposition = decomposed_on_meta(*c, fn);
  auto arity = c->arity.find(fn.name());
  if (arity == c->arity.end()) {
    auto schema = fn.operator_schema();
    std::pair<size_t, size_t> n{SIZE_MAX, SIZE_MAX};
    if (schema) n = {schema->arguments().size(), schema->returns().size()};
    arity = c->arity.emplace(fn.name(), n).first;
  }
  op.inputs = values_from(fn.inputs(), arity->second.first);
  if (op.parent >= 0 && op.name == "aten::add" &&
      c->trace.ops[op.parent].name.rfind(kEvaluateFunction, 0) == 0)
    op.in_place_operand = accumulates_in_place(fn.inputs(), arity->second.first);
  if (op.phase == Phase::kBackward) {
    op.call = 0;  // set from the forward op afterwards
  } else if (op.parent >= 0) {
    op.call = c->trace.ops[op.parent].call;
  } else if (!c->frames.empty()) {
    op.call = resolve_call(*c);
  } else if (!c->modules.empty()) {
    op.call = c->modules.back();
  } else if (!c->owner.empty() && op.phase == Phase::kForward) {
    op.call = call_by_parameter(*c, fn);
  }
  c->trace.ops.push_back(std::move(op));
  c->open.push_back(index);
  if (c->recorder) c->recorder->current_op = index;
  return nullptr;
}

void on_exit(const at::RecordFunction& fn, at::ObserverContext*) {
  Capture* c = t_capture;
  if (!c) return;
  if (fn.scope() == at::RecordScope::TORCHSCRIPT_FUNCTION) {
    if (!c->frames.empty()) c->frames.pop_back();
    return;
  }
  if (c->open.empty()) return;
  TraceOp& op = c->trace.ops[c->open.back()];
  if (op.name == "aten::resize_" && !fn.outputs().empty() && fn.outputs().back().isTensor())
    detail::account_meta_resize(fn.outputs().back().toTensor());
  c->open.pop_back();
  if (c->recorder) c->recorder->current_op = c->open.empty() ? -1 : c->open.back();
  auto arity = c->arity.find(fn.name());
  op.outputs = values_from(fn.outputs(), arity == c->arity.end() ? SIZE_MAX : arity->second.second);
  if (detail::take_guessed_op()) op.guessed = true;
}

// Installs the observer for one capture on this thread, and removes it again.
class Observe {
 public:
  explicit Observe(Capture& c) : previous_(t_capture) {
    t_capture = &c;
    handle_ = at::addGlobalCallback(
        at::RecordFunctionCallback(&on_enter, &on_exit)
            .needsInputs(true)
            .needsOutputs(true)
            .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION,
                     at::RecordScope::TORCHSCRIPT_FUNCTION}));
  }
  ~Observe() {
    at::removeCallback(handle_);
    t_capture = previous_;
  }

 private:
  Capture* previous_;
  at::CallbackHandle handle_;
};

// The first line of an error that says what went wrong, without TorchScript's traceback.
std::string error_line(const std::exception& e) {
  auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string msg = c10_error ? c10_error->what_without_backtrace() : e.what();
  auto marker = msg.find(kNoMetaKernel);
  if (marker != std::string::npos) {
    auto start = msg.rfind("aten::", marker);
    auto end = msg.find('\n', marker);
    return msg.substr(start == std::string::npos ? 0 : start,
                      end == std::string::npos ? std::string::npos : end - start);
  }
  // TorchScript ends with the original error ("RuntimeError: ..."); a kernel's error is its
  // first line.
  std::vector<std::string> lines;
  size_t at = 0;
  while (at < msg.size()) {
    size_t nl = msg.find('\n', at);
    std::string line = msg.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
    if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(line);
    at = nl == std::string::npos ? msg.size() : nl + 1;
  }
  if (lines.empty()) return "unknown error";
  bool traceback = msg.find("Traceback of TorchScript") != std::string::npos;
  std::string line = traceback ? lines.back() : lines.front();
  for (const char* prefix : {"RuntimeError: ", "builtins.RuntimeError: "})
    if (line.rfind(prefix, 0) == 0) line = line.substr(std::strlen(prefix));
  // A compile error's first line introduces the source it highlights ("undefined value x:").
  if (!traceback && lines.size() > 1 && line.size() > 1 && line.back() == ':') line.pop_back();
  return line;
}

at::Tensor make_input(const InputSpec& spec, const CaptureOptions& o) {
  DType dtype = spec.dtype.value_or(o.dtype.value_or(DType::kFloat32));
  auto options = at::TensorOptions()
                     .dtype(detail::scalar_type_from(dtype))
                     .device(o.device == CaptureDevice::kMeta ? at::kMeta : at::kCPU);
  if (o.device == CaptureDevice::kMeta) return at::empty(spec.shape, options);
  // Real values on CPU: class 0 token ids, random floats.
  return dtype_is_floating(dtype) ? at::randn(spec.shape, options) : at::zeros(spec.shape, options);
}

at::Tensor first_tensor(const c10::IValue& v) {
  if (v.isTensor()) return v.toTensor();
  if (v.isTuple())
    for (const auto& e : v.toTupleRef().elements()) {
      auto t = first_tensor(e);
      if (t.defined()) return t;
    }
  if (v.isList())
    for (const auto& e : v.toListRef()) {
      auto t = first_tensor(e);
      if (t.defined()) return t;
    }
  if (v.isGenericDict())
    for (const auto& e : v.toGenericDict()) {
      auto t = first_tensor(e.value());
      if (t.defined()) return t;
    }
  return {};
}

// ../shared/MEASUREMENT.md's loss: cross-entropy for classifiers, else y.float().square().mean().
at::Tensor make_loss(const at::Tensor& y, LossKind kind, const at::Tensor& labels) {
  bool classifier = y.dim() == 2 && y.is_floating_point();
  if (kind == LossKind::kCrossEntropy && !classifier)
    throw Error(
        fmt::format("the cross-entropy loss needs a 2-D (batch x classes) floating output; "
                    "the model returned {} {}",
                    fmt::join(y.sizes(), "x"), c10::toString(y.scalar_type())));
  if (kind == LossKind::kOutput) return y;
  // The labels are made for every loss but mean-square: the policy's `labels` is true.
  if (resolve_loss(kind, int(y.dim()), y.is_floating_point(), true) == LossKind::kCrossEntropy) {
    if (labels.defined() && labels.size(0) == y.size(0)) return at::cross_entropy_loss(y, labels);
    return at::cross_entropy_loss(y, at::zeros({y.size(0)}, y.options().dtype(at::kLong)));
  }
  return y.to(at::kFloat).square().mean();
}

// A meta tensor is "tensor-subclass-like" (ATen/TensorSubclassLikeUtils.h: the Meta backend bit
// is in kTensorSubclassLike), so code written for composite compliance takes its out-of-place
// branch on meta where CPU and CUDA work in place. Two such places allocate a second
// output-sized tensor on meta only:
//   - linear's bias (aten/src/ATen/native/Linear.cpp): `output = at::add(output, *bias)` for a
//     subclass-like bias, `output.add_(*bias)` otherwise, when the input is not 2-D or 3-D
//     contiguous (which fold the bias into addmm);
//   - the autograd engine's sum of two gradients for one input (InputBuffer::accumulate in
//     torch/csrc/autograd/input_buffer.cpp): `old_var.add_(var)` when can_accumulate_inplace(),
//     which requires a tensor that is not subclass-like, else `old_var + var`.
// The trace takes the in-place form: the add's allocation and the free of the tensor it would
// have written into (released by the parent right after) both go, the add's result keeps that
// tensor's allocation, and the op is aten::add_.
bool adds_in_place_on_device(const Trace& t, const TraceOp& op) {
  if (op.name != "aten::add" || op.parent < 0) return false;
  return t.ops[op.parent].name == "aten::linear" || op.in_place_operand >= 0;
}

void subclass_like_adds_in_place(Trace& t) {
  std::unordered_map<int, size_t> alloc_of;  // op -> its first allocation
  for (size_t k = 0; k < t.memory.size(); ++k)
    if (t.memory[k].bytes > 0 && t.memory[k].op >= 0) alloc_of.emplace(t.memory[k].op, k);
  std::vector<bool> drop(t.memory.size(), false);
  std::unordered_map<uint64_t, uint64_t> renamed;
  for (size_t i = 0; i < t.ops.size(); ++i) {
    TraceOp& op = t.ops[i];
    if (!adds_in_place_on_device(t, op)) continue;
    auto a = alloc_of.find(int(i));
    if (a == alloc_of.end()) continue;
    const MemoryEvent& made = t.memory[a->second];
    // The parent frees the first operand (the buffer's old value, which the sum overwrites) first.
    for (size_t k = a->second + 1; k < t.memory.size(); ++k) {
      const MemoryEvent& e = t.memory[k];
      if (e.op == op.parent && e.bytes == -made.bytes) {
        drop[a->second] = drop[k] = true;
        // A sum of sums (three gradients for one input) writes into a tensor already renamed.
        uint64_t into = e.id;
        for (auto r = renamed.find(into); r != renamed.end(); r = renamed.find(into))
          into = r->second;
        renamed[made.id] = into;
        op.name = "aten::add_";
        break;
      }
    }
  }
  if (renamed.empty()) return;
  std::vector<MemoryEvent> kept;
  for (size_t k = 0; k < t.memory.size(); ++k) {
    if (drop[k]) continue;
    MemoryEvent e = t.memory[k];
    auto r = renamed.find(e.id);
    if (r != renamed.end()) e.id = r->second;
    kept.push_back(e);
  }
  t.memory = std::move(kept);
}

// The recorder's events up to `kept` (what the run did; the rest is teardown), each with the phase
// and iteration it happened in.
void record_events(Capture& c, const std::vector<detail::AllocEvent>& events, size_t kept) {
  size_t mark = 0;
  Phase phase = Phase::kSetup;
  int iteration = 0;
  for (size_t i = 0; i < events.size() && i < kept; ++i) {
    while (mark < c.marks.size() && std::get<0>(c.marks[mark]) <= i) {
      phase = std::get<1>(c.marks[mark]);
      iteration = std::get<2>(c.marks[mark]);
      ++mark;
    }
    const auto& e = events[i];
    c.trace.memory.push_back({e.id, e.bytes, e.op, phase, iteration});
  }
}

// A Python meta kernel is a decomposition into other ops, whose temporaries the real kernel never
// allocates: what is allocated and freed again inside the outermost such op is dropped; its
// outputs (alive when it returns) stay.
void drop_decomposition_temporaries(Trace& t) {
  std::vector<int> root(t.ops.size(), -1);
  bool any = false;
  for (size_t i = 0; i < t.ops.size(); ++i) {
    int parent = t.ops[i].parent;
    root[i] =
        parent >= 0 && root[parent] >= 0 ? root[parent] : (t.ops[i].decomposition ? int(i) : -1);
    any = any || root[i] >= 0;
  }
  if (!any) return;
  std::unordered_map<uint64_t, int> allocated_in;  // allocation id -> its decomposition root
  std::unordered_set<uint64_t> dropped;
  for (const auto& e : t.memory) {
    int r = e.op >= 0 && size_t(e.op) < root.size() ? root[e.op] : -1;
    if (e.bytes > 0) {
      if (r >= 0) allocated_in[e.id] = r;
    } else {
      auto it = allocated_in.find(e.id);
      if (it != allocated_in.end() && it->second == r) dropped.insert(e.id);
    }
  }
  std::vector<MemoryEvent> kept;
  kept.reserve(t.memory.size());
  for (const auto& e : t.memory)
    if (!dropped.count(e.id)) kept.push_back(e);
  t.memory = std::move(kept);
}

// The trace as the analyses read it: a Python decomposition's temporaries dropped, meta's
// out-of-place adds made in place, and backward ops given their modules. Backward ops belong to
// the module whose forward op created their autograd node: the node's sequence number is that
// op's. Each top-level backward op takes the call of the first node inside it (AccumulateGrad,
// with none, stays with the root).
Trace finish_trace(Capture& c, bool meta) {
  if (meta) {
    drop_decomposition_temporaries(c.trace);
    subclass_like_adds_in_place(c.trace);
  }
  auto& ops = c.trace.ops;
  std::unordered_map<int64_t, int> call_of_seq;
  for (const auto& op : ops)
    if (op.phase != Phase::kBackward && op.seq >= 0) call_of_seq.emplace(op.seq, op.call);
  for (size_t i = 0; i < ops.size();) {
    size_t end = i + 1;
    while (end < ops.size() && ops[end].parent != -1) ++end;
    if (ops[i].phase == Phase::kBackward) {
      int call = 0;
      for (size_t k = i; k < end; ++k)
        if (ops[k].node && ops[k].seq >= 0) {
          auto it = call_of_seq.find(ops[k].seq);
          if (it != call_of_seq.end()) call = it->second;
          break;
        }
      for (size_t k = i; k < end; ++k) ops[k].call = call;
    }
    i = end;
  }
  return std::move(c.trace);
}

// The kernels meta stands for (the capture's target), until the scope ends.
struct TargetScope {
  TargetScope(bool cuda, int sm, int multiprocessors) {
    detail::set_cuda_target(cuda, sm, multiprocessors);
  }
  ~TargetScope() { detail::set_cuda_target(true); }
  TargetScope(const TargetScope&) = delete;
  TargetScope& operator=(const TargetScope&) = delete;
};

// Runs `body` (forward and, for training, loss and backward) under the observer and the
// recorder, and returns the trace.
Trace run_capture(Capture& c, const CaptureOptions& o,
                  const std::function<c10::IValue(const std::vector<at::Tensor>&)>& forward,
                  const std::vector<at::Tensor>& parameters) {
  // No inlining: one interpreter frame per module call. Restored however this returns.
  struct NoOptimize {
    bool before = torch::jit::getGraphExecutorOptimize();
    NoOptimize() { torch::jit::setGraphExecutorOptimize(false); }
    ~NoOptimize() { torch::jit::setGraphExecutorOptimize(before); }
  } no_optimize;
  c.trace.device = o.device == CaptureDevice::kMeta ? "meta" : "cpu";
  c.trace.torch = TORCH_VERSION;
  c.trace.train = o.train;
  c.meta = o.device == CaptureDevice::kMeta;
  {
    detail::MemoryRecorder recorder(o.device == CaptureDevice::kMeta
                                        ? detail::MemoryRecorder::Device::kMeta
                                        : detail::MemoryRecorder::Device::kCpu);
    // On meta, real CPU memory is the model's code reaching past meta: bounded.
    detail::SandboxScope sandbox(o.limits, o.device == CaptureDevice::kMeta);
    c.recorder = &recorder;
    size_t kept = SIZE_MAX;
    auto set_phase = [&](Phase phase, int iteration) {
      c.phase = phase;
      c.iteration = iteration;
      c.marks.emplace_back(recorder.events().size(), phase, iteration);
    };
    try {
      // The inputs (and labels) are allocated, and recorded as no op's, before the observer starts.
      set_phase(Phase::kSetup, 0);
      std::vector<at::Tensor> inputs;
      for (const auto& spec : o.inputs) inputs.push_back(make_input(spec, o));
      at::Tensor labels;
      if (o.train && !o.inputs.empty() && !o.inputs[0].shape.empty() &&
          o.loss != LossKind::kMeanSquare && o.loss != LossKind::kOutput)
        labels = at::zeros({o.inputs[0].shape[0]},
                           at::TensorOptions().dtype(at::kLong).device(inputs[0].device()));
      std::unique_ptr<detail::PyOptimizer> optimizer;
      if (o.train && o.optimizer) {
        set_phase(Phase::kStep, 0);  // state made at construction (Adagrad) is the optimizer's
        std::vector<at::Tensor> trainable;
        for (const auto& p : parameters)
          if (p.requires_grad()) trainable.push_back(p);
        optimizer = std::make_unique<detail::PyOptimizer>(*o.optimizer, std::move(trainable),
                                                          o.counters_on_device);
      }
      detail::take_guessed_op();  // forget a guess made before this capture
      TargetScope target(o.target == footprint::Target::kCuda, o.cuda_sm, o.cuda_multiprocessors);
      Observe observe(c);
      auto autocast = [&](std::optional<detail::AutocastScope>& scope) {
        if (o.autocast)
          scope.emplace(detail::scalar_type_from(*o.autocast),
                        o.target == footprint::Target::kCuda);
      };
      if (!o.train) {
        set_phase(Phase::kForward, 0);
        // As ../shared/MEASUREMENT.md's inference runs: torch.inference_mode(), which also turns
        // off autocast's cache of cast weights in 2.x (autocast.cpp).
        c10::InferenceMode inference;
        std::optional<detail::AutocastScope> amp;
        autocast(amp);
        forward(inputs);
      } else {
        int iterations = optimizer ? std::max(1, o.iterations) : 1;
        c.trace.iterations = iterations;
        for (int it = 0; it < iterations; ++it) {
          if (optimizer) {
            set_phase(Phase::kZeroGrad, it);
            optimizer->zero_grad(o.set_to_none);
          }
          {
            set_phase(Phase::kForward, it);
            std::optional<detail::AutocastScope> amp;
            autocast(amp);
            c10::IValue output = forward(inputs);  // all of it lives until after backward
            at::Tensor y = first_tensor(output);
            set_phase(Phase::kLoss, it);
            if (!y.defined()) throw Error("the model returned no tensor to compute a loss from");
            at::Tensor loss = make_loss(y, o.loss, labels);
            amp.reset();  // autocast's exit: backward runs outside it
            set_phase(Phase::kBackward, it);
            if (loss.requires_grad()) loss.backward();
          }  // del y, loss (the whole output)
          if (optimizer) {
            set_phase(Phase::kStep, it);
            optimizer->step();
          }
        }
      }
      // What the run leaves (inputs, gradients, the optimizer's state) is freed from here on, by
      // this function's teardown: not part of the run.
      kept = recorder.events().size();
    } catch (const std::exception& e) {  // c10::Error, or TorchScript's JITException
      // A limit or a refused op, however the model's code passed the exception on.
      if (auto violation = sandbox.violation()) throw Error(*violation);
      if (dynamic_cast<const Error*>(&e)) throw;
      std::string line = error_line(e);
      if (dynamic_cast<const std::bad_alloc*>(&e) || line == "std::bad_alloc")
        throw Error(
            "the model's code ran out of memory: the engine's address space is limited "
            "(`max-memory`), and on meta a model should need little");
      if (line.find(kNoMetaKernel) == std::string::npos)
        throw Error(fmt::format("the model failed on input {}: {}", inputs_text(o.inputs), line));
      c.trace.stopped = line;
    }
    c.recorder = nullptr;
    record_events(c, recorder.events(), kept);
  }
  return finish_trace(c, o.device == CaptureDevice::kMeta);
}

}  // namespace

// The capture of CaptureSession: the same scopes as run_capture's, held between calls.
struct CaptureSession::State {
  CaptureOptions options;
  Capture c;
  detail::MemoryRecorder recorder{detail::MemoryRecorder::Device::kMeta};
  detail::SandboxScope sandbox;
  TargetScope target;
  std::optional<Observe> observer;
  std::optional<detail::AutocastScope> amp;
  std::optional<detail::AutocastPause> paused;
  bool finished = false;

  explicit State(const CaptureOptions& o)
      : options(o),
        // Real CPU memory is bounded where footprint owns the process (its engine); in the
        // user's own process (cpu_bytes 0) the CPU allocator is left as it is.
        sandbox(o.limits, /*limit_cpu=*/o.limits.cpu_bytes > 0),
        target(o.target == footprint::Target::kCuda, o.cuda_sm, o.cuda_multiprocessors) {}
};

CaptureSession::CaptureSession(const CaptureOptions& options, const std::string& root_type) {
  if (options.device != CaptureDevice::kMeta)
    throw Error("a capture session runs on the meta device only");
  detail::install_meta_runtime();
  state_ = std::make_unique<State>(options);
  Capture& c = state_->c;
  c.trace.device = "meta";
  c.trace.torch = TORCH_VERSION;
  c.trace.train = options.train;
  c.trace.calls.push_back({"", root_type, -1});
  c.recorder = &state_->recorder;
  detail::take_guessed_op();  // forget a guess made before this capture
  phase(Phase::kSetup, 0);
}

CaptureSession::~CaptureSession() {
  if (state_) state_->c.recorder = nullptr;
}

void CaptureSession::phase(Phase phase, int iteration) {
  Capture& c = state_->c;
  c.phase = phase;
  c.iteration = iteration;
  c.marks.emplace_back(state_->recorder.events().size(), phase, iteration);
  if (phase != Phase::kSetup && !state_->observer) state_->observer.emplace(c);
  if (iteration + 1 > c.trace.iterations) c.trace.iterations = iteration + 1;
}

void CaptureSession::enter_module(const std::string& path, const std::string& type) {
  Capture& c = state_->c;
  if (path.empty()) {
    c.modules.push_back(0);
    return;
  }
  int parent = c.modules.empty() ? 0 : c.modules.back();
  c.modules.push_back(add_call(c, path, type, parent));
}

void CaptureSession::exit_module() {
  if (!state_->c.modules.empty()) state_->c.modules.pop_back();
}

void CaptureSession::pause_autocast(bool paused) {
  if (paused && !state_->paused)
    state_->paused.emplace();
  else if (!paused)
    state_->paused.reset();
}

void CaptureSession::autocast(bool on) {
  if (!on) {
    state_->paused.reset();
    state_->amp.reset();
  } else if (state_->options.autocast && !state_->amp) {
    state_->amp.emplace(detail::scalar_type_from(*state_->options.autocast),
                        state_->options.target == footprint::Target::kCuda);
  }
}

Trace CaptureSession::finish(const std::string& error) {
  if (state_->finished) throw Error("the capture session has finished already");
  state_->finished = true;
  State& s = *state_;
  s.paused.reset();
  s.amp.reset();
  s.observer.reset();
  s.c.recorder = nullptr;
  if (auto violation = s.sandbox.violation()) throw Error(*violation);
  if (!error.empty()) {
    if (error.find(kNoMetaKernel) == std::string::npos) throw Error(error);
    auto start = error.rfind("aten::", error.find(kNoMetaKernel));
    auto end = error.find('\n', start == std::string::npos ? 0 : start);
    s.c.trace.stopped = error.substr(start == std::string::npos ? 0 : start,
                                     end == std::string::npos ? std::string::npos : end - start);
  }
  if (s.c.trace.iterations < 1) s.c.trace.iterations = 1;
  if (!s.options.train) s.c.trace.iterations = 1;
  record_events(s.c, s.recorder.events(), s.recorder.events().size());
  return finish_trace(s.c, /*meta=*/true);
}

namespace {

// The runtime, the mode, and the module's tensors on the capture's device at its dtype.
template <class Module>
void prepare(Module& module, const CaptureOptions& o) {
  detail::install_meta_runtime();
  if (o.device == CaptureDevice::kCpu) detail::install_cpu_tracking();
  if (o.inputs.empty()) throw Error("no input shape given: pass one, as in `input` 1x3x224x224");
  module.train(o.train);
  std::optional<c10::ScalarType> dtype;
  if (o.dtype) dtype = detail::scalar_type_from(*o.dtype);
  if (o.device == CaptureDevice::kMeta)
    detail::to_meta(module, dtype);
  else if (dtype)
    module.to(*dtype);
}

// The Model as the capture sees it: floating tensors at the requested dtype.
Model model_at(Model model, const std::optional<DType>& dtype) {
  if (dtype)
    for (auto& t : model.tensors)
      if (dtype_is_floating(t.dtype)) t.dtype = *dtype;
  return model;
}

}  // namespace

Trace capture(torch::jit::Module& module, const CaptureOptions& o) {
  if (o.device == CaptureDevice::kMeta) detail::sandbox_code(module);
  detail::keep_python_lifetimes(module);
  detail::see_cpu_tensors(module);
  if (o.device == CaptureDevice::kMeta) detail::map_devices_to_meta(module);
  prepare(module, o);
  Capture c;
  if (auto frozen = detail::frozen_mode(module, o.train)) c.trace.warnings.push_back(*frozen);
  c.types = model_from(module).module_types;
  c.trace.calls.push_back({"", module.type()->name() ? module.type()->name()->name() : "", -1});
  std::vector<at::Tensor> parameters;
  for (const auto& p : module.parameters()) parameters.push_back(p);
  return run_capture(
      c, o,
      [&](const std::vector<at::Tensor>& inputs) {
        return module.forward(std::vector<c10::IValue>(inputs.begin(), inputs.end()));
      },
      parameters);
}

Trace capture(torch::nn::Module& module, const ForwardFn& forward, const CaptureOptions& o) {
  prepare(module, o);
  Capture c;
  Model model = model_from(module);
  c.types = model.module_types;
  for (const auto& item : module.named_parameters()) {
    const std::string& name = item.key();
    auto dot = name.rfind('.');
    c.owner[item.value().unsafeGetTensorImpl()] =
        dot == std::string::npos ? "" : name.substr(0, dot);
  }
  c.trace.calls.push_back({"", c.types.count("") ? c.types.at("") : module.name(), -1});
  // Each tensor once, as Python's parameters() gives them: LibTorch lists a tied weight under each
  // module that registers it, and an optimizer given both would keep its state twice.
  std::vector<at::Tensor> parameters;
  std::unordered_set<const c10::TensorImpl*> seen;
  for (const auto& p : module.parameters())
    if (seen.insert(p.unsafeGetTensorImpl()).second) parameters.push_back(p);
  return run_capture(
      c, o, [&](const std::vector<at::Tensor>& inputs) { return forward(inputs); }, parameters);
}

Summary summary(torch::jit::Module& module, const SummaryOptions& options) {
  Model model = model_at(model_from(module), options.dtype);
  CaptureOptions o;
  o.inputs = options.inputs;
  o.train = options.train;
  o.dtype = options.dtype;
  o.limits = options.limits;
  return summarize(model, capture(module, o), options);
}

Summary summary(torch::nn::Module& module, const ForwardFn& forward,
                const SummaryOptions& options) {
  Model model = model_at(model_from(module), options.dtype);
  CaptureOptions o;
  o.inputs = options.inputs;
  o.train = options.train;
  o.dtype = options.dtype;
  o.limits = options.limits;
  return summarize(model, capture(module, forward, o), options);
}

namespace {

// A TorchScript file, loaded; other files get an error naming what they are.
torch::jit::Module load_script(const std::string& path, const char* command) {
  Model model = read_model(path);  // checks the file without running anything
  if (model.format.rfind("torch.export program", 0) == 0)
    throw Error(fmt::format(
        "{}: is a torch.export program; footprint {} runs TorchScript files for now (footprint "
        "summary and params read a .pt2 as it is)",
        path, command));
  if (model.format != "TorchScript")
    throw Error(fmt::format(
        "{}: is a {}, which holds weights but no code; footprint {} runs the model's code, "
        "so it needs TorchScript (torch.jit.script or torch.jit.trace, then .save)",
        path, model.format, command));
  try {
    // Without the debug_pkl files: they map the code to its original source lazily, when an
    // error's what() highlights a range, and a corrupt one then throws out of what() (noexcept),
    // which terminates the process (the engine fuzzer's first finding). footprint shows one line
    // of an error, never the source it came from.
    return torch::jit::load(path, std::nullopt, /*load_debug_files=*/false);
  } catch (const std::bad_alloc&) {
    throw Error(fmt::format(
        "{}: loading it takes more memory than the engine may use (`max-memory`): LibTorch reads "
        "a TorchScript file's weights into memory before they move to meta",
        path));
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: LibTorch {} cannot load it as TorchScript: {}", path,
                            TORCH_VERSION, error_line(e)));
  }
}

CaptureOptions capture_options(const MemoryScenario& s) {
  CaptureOptions o;
  o.inputs = s.inputs;
  o.train = s.train;
  PrecisionPlan precision = plan_precision(s.precision);
  o.dtype = precision.parameters;
  o.autocast = precision.autocast;
  o.device = CaptureDevice::kMeta;
  TrainingPlan plan = plan_training(s.memory.target, s.optimizer);
  if (s.train) {
    o.optimizer = plan.optimizer;
    o.iterations = plan.iterations;
  }
  o.set_to_none = s.set_to_none;
  o.loss = s.loss;
  o.counters_on_device = plan.counters_on_device;
  o.target = s.memory.target;
  if (s.memory.gpu) o.target_gpu(*s.memory.gpu);
  o.limits = s.limits;
  return o;
}

template <class Capture>
MemoryReport memory_with(const Model& stored, const MemoryScenario& s, Capture&& run) {
  CaptureOptions o = capture_options(s);
  Model model = model_at(stored, o.dtype);
  MemoryReport r = analyze_memory(model, run(o), s.memory);
  r.inputs = s.inputs;
  r.precision = std::string(precision_mode_name(s.precision));
  r.set_to_none = s.set_to_none;
  if (o.optimizer) r.optimizer = optimizer_name(*o.optimizer);
  return r;
}

}  // namespace

MemoryReport memory(torch::jit::Module& module, const MemoryScenario& s) {
  return memory_with(model_from(module), s,
                     [&](const CaptureOptions& o) { return capture(module, o); });
}

MemoryReport memory(torch::nn::Module& module, const ForwardFn& forward, const MemoryScenario& s) {
  return memory_with(model_from(module), s,
                     [&](const CaptureOptions& o) { return capture(module, forward, o); });
}

MemoryReport memory_file(const std::string& path, const MemoryScenario& s) {
  torch::jit::Module module = load_script(path, "memory");
  try {
    MemoryReport r = memory(module, s);
    r.source = path;
    return r;
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

FitResult fit_file(const std::string& path, const MemoryScenario& scenario, int64_t max_batch) {
  if (scenario.memory.target == Target::kCuda && !scenario.memory.gpu && !scenario.memory.capacity)
    throw OptionError("fit needs a device: pass `gpu` with a name (h100) or a size (24GiB)");
  if (scenario.memory.target == Target::kCpu && !scenario.memory.capacity)
    throw OptionError(
        "fit on `device` 'cpu' needs `gpu` as a size: the memory to fit in (e.g. 64GiB)");
  for (const auto& in : scenario.inputs)
    if (in.shape.empty()) throw Error("fit varies the first dimension of each input; one is 0-D");
  torch::jit::Module module = load_script(path, "fit");
  Model stored = model_from(module);
  FitResult result;
  std::map<int64_t, MemoryReport> seen;
  auto at = [&](int64_t batch) -> const MemoryReport& {
    auto it = seen.find(batch);
    if (it != seen.end()) return it->second;
    MemoryScenario s = scenario;
    for (auto& in : s.inputs) in.shape[0] = batch;
    ++result.captures;
    MemoryReport r;
    try {
      r = memory_with(stored, s, [&](const CaptureOptions& o) { return capture(module, o); });
    } catch (const Error& e) {
      throw Error(fmt::format("{}: at batch {}: {}", path, batch, e.what()));
    }
    r.source = path;
    return seen.emplace(batch, std::move(r)).first->second;
  };
  result.batch =
      largest_fitting([&](int64_t n) { return fits(at(n)); },
                      [&](int64_t n) { return fit_need(at(n)); }, at(1).capacity, max_batch);
  result.fits = at(std::max<int64_t>(1, result.batch));
  result.next = at(result.batch + 1);
  return result;
}

SeedEstimate seed_file(const std::string& path, const std::vector<InputSpec>& inputs) {
  torch::jit::Module module = load_script(path, "memory --method seed");
  Model model = model_from(module);
  SummaryOptions o;
  o.inputs = inputs;
  return seed_estimate(model, summary(module, o));
}

Summary summary_file(const std::string& path, const SummaryOptions& options) {
  torch::jit::Module module = load_script(path, "summary");
  try {
    Summary s = summary(module, options);
    s.source = path;
    return s;
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

}  // namespace footprint
