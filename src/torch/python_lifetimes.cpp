// Python's variable lifetimes for a TorchScript module (src/torch/meta.h says why), and the
// device its fast paths see.
//
// The TorchScript interpreter frees a value at its last use. Eager Python, which is what
// ../shared/MEASUREMENT.md measures, frees a tensor when its last reference goes: a local variable
// holds its tensor until the name is bound again or the function returns. Where the two differ a
// TorchScript run peaks lower than the Python one (torchvision's densenet121 keeps
// `bottleneck_output` through conv2; a Bottleneck keeps `x` through its downsample; ViT's
// multi_head_attention_forward keeps its q, k and v).
//
// TorchScript keeps the names: a value made from a Python local carries it as its debug name
// ("out.3" for the third binding of `out`); temporaries have none. So in each function's graph,
// every tensor value with a name, defined in the function's top-level block or passed in, gets a
// use where Python would let go of it: right after the node that binds its name again, else at the
// return. That use is footprint::keep(...), an interpreter-only operator that pops its inputs:
// it runs no aten op, so the trace does not see it, and it is marked as having side effects so
// that dead-code elimination keeps it.
#include <fmt/format.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/runtime/custom_operator.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "footprint/error.h"
#include "torch/meta.h"
#include "torch/sandbox.h"

namespace footprint::detail {
namespace {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

c10::Symbol keep_symbol() {
  static const c10::Symbol s = c10::Symbol::fromQualString("footprint::keep");
  return s;
}

void register_keep() {
  static torch::jit::RegisterOperators reg({torch::jit::Operator(
      "footprint::keep(...) -> ()",
      [](const Node* node) -> torch::jit::Operation {
        size_t n = node->inputs().size();
        return [n](torch::jit::Stack& stack) { torch::jit::drop(stack, n); };
      },
      c10::AliasAnalysisKind::CONSERVATIVE)});
}

bool is_tensor(const Value* v) {
  return v->type()->kind() == c10::TypeKind::TensorType;
}

// The Python variable a value was bound to, or "" for a temporary. A saved file's code names
// each binding of a variable apart by appending digits (out, out0, out1), and names temporaries it
// had to spell out _0, _1: so the digits go, and "_" is no variable. (Two variables that differ
// only in trailing digits, x1 and x2, read as one: the first is then kept only until the second
// is bound, never longer than Python keeps it.)
std::string variable(const Value* v) {
  if (!v->hasDebugName() || !is_tensor(v)) return "";
  std::string base = v->debugNameBase();
  while (!base.empty() && std::isdigit(static_cast<unsigned char>(base.back()))) base.pop_back();
  return base == "_" ? "" : base;
}

// A list of tensors that the function appends to is a Python local too (a temporary list cannot be
// appended to and then read): torchvision's ASPP builds `_res` branch by branch and keeps it, and
// so every branch's output, until it returns, through its projection. A saved file names such a
// list `_0` when its own name begins with an underscore, so it may carry no name: it is then kept
// to the return.
bool appended_list(const Value* v) {
  auto list = v->type()->cast<c10::ListType>();
  if (!list || list->getElementType()->kind() != c10::TypeKind::TensorType) return false;
  for (const torch::jit::Use& use : v->uses())
    if (use.user->kind() == c10::aten::append) return true;
  return false;
}

bool already_done(const Graph& g) {
  for (const Node* n : g.nodes())
    if (n->kind() == keep_symbol()) return true;
  return false;
}

void keep_locals(Graph& g) {
  if (already_done(g)) return;
  std::vector<Node*> order(g.nodes().begin(), g.nodes().end());
  std::map<Node*, std::vector<Value*>> after;  // keep these right after the node
  std::vector<Value*> at_return;
  // From the end back: the node that next binds each name, so each value finds its own in one
  // look-up.
  std::unordered_map<std::string, Node*> next_binding;
  auto place = [&](Value* v, const std::string& name) {
    auto it = next_binding.find(name);
    if (it != next_binding.end())
      after[it->second].push_back(v);
    else
      at_return.push_back(v);
  };
  for (size_t i = order.size(); i-- > 0;) {
    std::vector<std::string> bound;
    for (Value* v : order[i]->outputs()) {
      std::string name = variable(v);
      if (name.empty() && appended_list(v)) name = "list " + std::to_string(v->unique());
      if (name.empty()) continue;
      place(v, name);
      bound.push_back(name);
    }
    for (const auto& name : bound) next_binding[name] = order[i];
  }
  for (Value* v : g.inputs()) {
    std::string name = variable(v);
    if (!name.empty()) place(v, name);
  }
  for (auto& [node, values] : after) {
    Node* k = g.create(keep_symbol(), values, 0);
    k->insertAfter(node);
  }
  if (!at_return.empty()) {
    Node* k = g.create(keep_symbol(), at_return, 0);
    k->insertBefore(g.return_node());
  }
}

// Every node of a graph, in nested blocks too.
std::vector<Node*> all_nodes(Graph& g) {
  std::vector<Node*> out;
  std::vector<torch::jit::Block*> blocks{g.block()};
  while (!blocks.empty()) {
    torch::jit::Block* b = blocks.back();
    blocks.pop_back();
    for (Node* n : b->nodes()) {
      out.push_back(n);
      for (torch::jit::Block* sub : n->blocks()) blocks.push_back(sub);
    }
  }
  return out;
}

// The graphs of a function and of every function and TorchScript class method it calls (not
// module methods: those come with their modules).
void add_functions(torch::jit::Function& f, std::set<torch::jit::Function*>& seen,
                   std::vector<std::shared_ptr<Graph>>& graphs) {
  if (!seen.insert(&f).second || !f.isGraphFunction()) return;
  auto g = toGraphFunction(f).graph();
  graphs.push_back(g);
  for (Node* n : all_nodes(*g))
    if (n->kind() == c10::prim::CallFunction) {
      if (auto type = n->input(0)->type()->cast<c10::FunctionType>())
        add_functions(*type->function(), seen, graphs);
    } else if (n->kind() == c10::prim::CallMethod) {
      auto type = n->input(0)->type()->cast<c10::ClassType>();
      if (type && !type->is_module())
        if (torch::jit::Function* m = type->findMethod(n->s(c10::attr::name)))
          add_functions(*m, seen, graphs);
    }
}

std::vector<std::shared_ptr<Graph>> all_graphs(torch::jit::Module& module) {
  std::set<torch::jit::Function*> seen;
  std::vector<std::shared_ptr<Graph>> graphs;
  for (const torch::jit::Module& m : module.modules())
    for (torch::jit::Function* f : m.type()->methods()) add_functions(*f, seen, graphs);
  return graphs;
}

}  // namespace

void keep_python_lifetimes(torch::jit::Module& module) {
  register_keep();
  for (auto& g : all_graphs(module)) keep_locals(*g);
}

void see_cpu_tensors(torch::jit::Module& module) {
  static const c10::Symbol mha = c10::Symbol::fromQualString("aten::_native_multi_head_attention");
  static const c10::Symbol encoder =
      c10::Symbol::fromQualString("aten::_transformer_encoder_layer_fwd");
  static const c10::Symbol type = c10::Symbol::fromQualString("prim::type");
  for (auto& g : all_graphs(module)) {
    std::vector<Node*> nodes = all_nodes(*g);
    if (std::none_of(nodes.begin(), nodes.end(),
                     [](Node* n) { return n->kind() == mha || n->kind() == encoder; }))
      continue;
    for (Node* n : nodes) {
      // str(x.device) (MultiheadAttention) and x.device.type (TransformerEncoderLayer).
      if ((n->kind() != c10::aten::str && n->kind() != type) || n->inputs().size() != 1 ||
          n->input(0)->node()->kind() != c10::prim::device)
        continue;
      torch::jit::WithInsertPoint here(n);
      n->output()->replaceAllUsesWith(g->insertConstant(std::string("cpu")));
    }
  }
}

void map_devices_to_meta(torch::jit::Module& module) {
  for (auto& g : all_graphs(module))
    for (Node* n : all_nodes(*g))
      if (n->kind() == c10::prim::Constant &&
          n->output()->type()->kind() == c10::TypeKind::DeviceObjType &&
          n->hasAttribute(c10::attr::value))
        n->s_(c10::attr::value, "meta");
}

namespace {

// "code/__torch__/model.py:12", where a node's code is, as the file's code/ folder has it.
std::string where(const Node* n) {
  const auto& range = n->sourceRange();
  auto source = range.source();
  if (!source) return "an unknown line of the model's code";
  std::string file = source->filename() ? *source->filename() : "the model's code";
  // Lines count from 0.
  return fmt::format("{}:{}", file,
                     source->lineno_to_source_lineno(source->lineno_for_offset(range.start())) + 1);
}

// The schema's index of a `device` argument, when the op makes tensors from no tensor (a factory:
// zeros, ones, arange, tensor, ...), for which no device means the CPU.
std::optional<size_t> factory_device(const Node* n) {
  const c10::FunctionSchema* schema = n->maybeSchema();
  if (!schema) return std::nullopt;
  std::optional<size_t> device;
  const auto& args = schema->arguments();
  for (size_t i = 0; i < args.size(); ++i) {
    auto type = args[i].type();
    if (auto optional = type->cast<c10::OptionalType>()) type = optional->getElementType();
    if (auto list = type->cast<c10::ListType>()) type = list->getElementType();
    if (type->kind() == c10::TypeKind::TensorType) return std::nullopt;
    if (args[i].name() == "device") device = i;
  }
  if (device && *device >= n->inputs().size()) return std::nullopt;
  return device;
}

}  // namespace

void sandbox_code(torch::jit::Module& module) {
  static const c10::Symbol device_op = c10::Symbol::fromQualString("aten::device");
  for (auto& g : all_graphs(module))
    for (Node* n : all_nodes(*g)) {
      std::string kind = n->kind().toQualString();
      if (auto why = refused_op(kind))
        throw Error(fmt::format("the model's code calls {} at {}, which {}: footprint refuses it",
                                kind, escape_text(where(n)), *why));
      if (n->kind() == device_op && n->inputs().size() == 1 &&
          n->input(0)->type()->kind() == c10::TypeKind::StringType) {
        // torch.device("cuda:0") made from a string as the code runs: the meta device instead.
        torch::jit::WithInsertPoint at(n);
        n->output()->replaceAllUsesWith(g->insertConstant(c10::Device(c10::kMeta)));
        continue;
      }
      auto device = factory_device(n);
      if (device && n->input(*device)->mustBeNone()) {
        torch::jit::WithInsertPoint at(n);
        n->replaceInput(*device, g->insertConstant(c10::Device(c10::kMeta)));
      }
    }
}

std::optional<std::string> frozen_mode(torch::jit::Module& module, bool train) {
  std::set<std::string> frozen;
  for (auto& g : all_graphs(module))
    for (Node* n : all_nodes(*g)) {
      const c10::FunctionSchema* schema = n->maybeSchema();
      if (!schema) continue;
      const auto& args = schema->arguments();
      for (size_t i = 0; i < args.size() && i < n->inputs().size(); ++i) {
        if (args[i].name() != "training" && args[i].name() != "train") continue;
        auto value = torch::jit::toIValue(n->input(i));
        if (value && value->isBool() && value->toBool() != train)
          frozen.insert(n->kind().toQualString());
      }
    }
  if (frozen.empty()) return std::nullopt;
  std::string ops;
  for (const auto& op : frozen) ops += (ops.empty() ? "" : ", ") + op;
  return fmt::format(
      "the file's code fixes {} to {} mode (a torch.jit.trace keeps the mode it was traced in), so "
      "this {} run takes their {} path; script the model, or trace it in {} mode",
      ops, train ? "eval" : "training", train ? "training" : "inference",
      train ? "eval" : "training", train ? "train()" : "eval()");
}

}  // namespace footprint::detail
