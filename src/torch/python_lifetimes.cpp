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
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/runtime/custom_operator.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "torch/meta.h"

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

// The graphs of a function and of every function it calls (not methods: those come with their
// modules).
void add_functions(torch::jit::Function& f, std::set<torch::jit::Function*>& seen,
                   std::vector<std::shared_ptr<Graph>>& graphs) {
  if (!seen.insert(&f).second || !f.isGraphFunction()) return;
  auto g = toGraphFunction(f).graph();
  graphs.push_back(g);
  for (Node* n : all_nodes(*g))
    if (n->kind() == c10::prim::CallFunction)
      if (auto type = n->input(0)->type()->cast<c10::FunctionType>())
        add_functions(*type->function(), seen, graphs);
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

}  // namespace footprint::detail
