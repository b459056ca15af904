// torch.export programs (.pt2, torch.export.save), read from the archive's JSON, never executed.
// A .pt2 is a zip whose entries sit under one folder (the file's stem):
//   <p>/archive_format                        "pt2"
//   <p>/models/<name>.json                    the ExportedProgram, serialized as
//                                             torch/_export/serde/schema.py describes:
//     graph_module.graph.tensor_values        name -> TensorMeta {dtype (schema.ScalarType),
//                                             sizes [{"as_int": n} | symbolic], strides,
//                                             storage_offset, requires_grad}
//     graph_module.graph.nodes                {target "torch.ops.aten.conv2d.default", inputs
//                                             [{name, arg}], outputs [arg], metadata
//                                             {nn_module_stack "key,path,type;..."}}
//     graph_module.signature.input_specs      which graph inputs are parameters, buffers
//                                             (persistent or not), tensor constants, user inputs
//   <p>/data/weights/model_weights_config.json  fqn -> {path_name, use_pickle, tensor_meta}:
//                                             parameters and buffers sharing a path_name share
//                                             their bytes (tied)
//   <p>/data/weights/<path_name>              raw bytes, or a torch.save pickle when use_pickle
// Programs saved by torch 2.1-2.5 keep the same JSON in serialized_exported_program.json.
// Checks: each JSON is at most kMaxPt2Json bytes and nests at most kMaxPt2Nesting deep (scanned
// before it is parsed); every field is type-checked; dtypes are known. A weight stored as a
// pickle is read with footprint's pickle reader (formats/pickle.h), which refuses code.
#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "footprint/error.h"
#include "footprint/read.h"
#include "formats/readers.h"

namespace footprint {
namespace detail {
namespace {

using nlohmann::json;

// torch/_export/serde/schema.py's ScalarType.
std::optional<DType> scalar_type(int64_t t) {
  switch (t) {
    case 1:
      return DType::kUInt8;
    case 2:
      return DType::kInt8;
    case 3:
      return DType::kInt16;
    case 4:
      return DType::kInt32;
    case 5:
      return DType::kInt64;
    case 6:
      return DType::kFloat16;
    case 7:
      return DType::kFloat32;
    case 8:
      return DType::kFloat64;
    case 10:
      return DType::kComplex64;
    case 11:
      return DType::kComplex128;
    case 12:
      return DType::kBool;
    case 13:
      return DType::kBFloat16;
    case 28:
      return DType::kUInt16;
    case 29:
    case 31:
      return DType::kFloat8E4M3;  // E4M3FN, E4M3FNUZ: one byte each
    case 30:
    case 32:
      return DType::kFloat8E5M2;
    default:
      return std::nullopt;
  }
}

class Json {
 public:
  Json(const json& j, std::string where) : j_(j), where_(std::move(where)) {}
  const json& raw() const { return j_; }
  const std::string& where() const { return where_; }
  Json at(const std::string& key) const {
    if (!j_.is_object() || !j_.contains(key))
      throw Error(
          fmt::format("{}: no '{}'; expected a torch.export program (schema.py)", where_, key));
    return Json(j_[key], where_ + "." + key);
  }
  std::optional<Json> find(const std::string& key) const {
    if (!j_.is_object() || !j_.contains(key) || j_[key].is_null()) return std::nullopt;
    return Json(j_[key], where_ + "." + key);
  }
  std::vector<Json> items() const {
    if (!j_.is_array()) throw Error(fmt::format("{} is not a list", where_));
    std::vector<Json> out;
    for (size_t i = 0; i < j_.size(); ++i)
      out.emplace_back(j_[i], fmt::format("{}[{}]", where_, i));
    return out;
  }
  std::string text() const {
    if (!j_.is_string()) throw Error(fmt::format("{} is {}; expected a string", where_, j_.dump()));
    return j_.get<std::string>();
  }
  int64_t integer() const {
    if (!j_.is_number_integer())
      throw Error(fmt::format("{} is {}; expected an integer", where_, j_.dump().substr(0, 80)));
    return j_.get<int64_t>();
  }

 private:
  const json& j_;
  std::string where_;
};

json parse_json(const Archive& a, const std::string& entry, const std::string& source) {
  std::string text = a.read(entry, kMaxPt2Json, "JSON size");
  std::string name = source + ": " + entry;
  check_json_nesting(text, name, kMaxPt2Nesting);
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) throw Error(fmt::format("{}: not valid JSON", name));
  return j;
}

// A TensorMeta's shape, dtype and strides; `dynamic` is set for a symbolic size.
TensorMeta tensor_meta(const Json& m, bool* dynamic, std::vector<int64_t>* strides = nullptr) {
  TensorMeta t;
  int64_t code = m.at("dtype").integer();
  auto dtype = scalar_type(code);
  if (!dtype)
    throw Error(
        fmt::format("{}.dtype is {}, a ScalarType footprint does not know", m.where(), code));
  t.dtype = *dtype;
  for (const Json& s : m.at("sizes").items()) {
    if (auto n = s.find("as_int")) {
      int64_t v = n->integer();
      if (v < 0) throw Error(fmt::format("{} is {}; expected a size >= 0", n->where(), v));
      t.shape.push_back(v);
    } else {
      if (!dynamic) throw Error(fmt::format("{} is symbolic; expected a static size", s.where()));
      *dynamic = true;
      t.shape.push_back(0);
    }
  }
  if (strides)
    if (auto st = m.find("strides"))
      for (const Json& s : st->items())
        if (auto n = s.find("as_int")) strides->push_back(n->integer());
  return t;
}

// "torch.ops.aten.conv2d.default" -> "aten::conv2d".
std::string op_name(const std::string& target) {
  std::string t = target;
  if (t.rfind("torch.ops.", 0) == 0) {
    t = t.substr(10);
    auto dot = t.find('.');
    if (dot != std::string::npos) {
      auto second = t.find('.', dot + 1);
      return t.substr(0, dot) + "::" + t.substr(dot + 1, second - dot - 1);
    }
  }
  return t;
}

// Ops whose outputs are views of an input: they allocate nothing.
bool is_view(const std::string& op) {
  static const std::set<std::string> views = {"aten::view",
                                              "aten::_unsafe_view",
                                              "aten::reshape",
                                              "aten::t",
                                              "aten::transpose",
                                              "aten::permute",
                                              "aten::expand",
                                              "aten::slice",
                                              "aten::select",
                                              "aten::unsqueeze",
                                              "aten::squeeze",
                                              "aten::flatten",
                                              "aten::alias",
                                              "aten::as_strided",
                                              "aten::unflatten",
                                              "aten::split",
                                              "aten::split_with_sizes",
                                              "aten::chunk",
                                              "aten::unbind",
                                              "aten::narrow",
                                              "aten::detach",
                                              "aten::view_as",
                                              "aten::expand_as",
                                              "aten::diagonal",
                                              "_operator.getitem"};
  return views.count(op) > 0;
}

struct Program {
  Model model;
  Trace trace;
  std::vector<InputSpec> inputs;
  bool dynamic = false;
};

class Pt2 {
 public:
  Pt2(const Archive& a, std::string source) : a_(a), source_(std::move(source)) {}

  Program read(bool with_graph) {
    std::string root = find_root();
    json program = parse_json(a_, program_entry_, source_);
    Json gm = Json(program, source_ + ": " + program_entry_).at("graph_module");
    Json graph = gm.at("graph");
    Json values = graph.at("tensor_values");
    if (!values.raw().is_object()) throw Error(fmt::format("{} is not an object", values.where()));
    read_weights_config(root);

    Program p;
    p.model.source = source_;
    p.model.format = "torch.export program (.pt2)";
    if (auto v = Json(program, source_).find("torch_version"))
      if (v->raw().is_string()) p.model.format += ", saved by torch " + v->text();
    std::map<std::string, std::string> fqn_of;  // graph input name -> parameter/buffer name
    for (const Json& spec : gm.at("signature").at("input_specs").items()) {
      const char* kinds[] = {"parameter", "buffer", "tensor_constant"};
      for (const char* kind : kinds) {
        auto s = spec.find(kind);
        if (!s) continue;
        std::string arg = s->at("arg").at("name").text();
        std::string fqn = s->at(std::string(kind) + "_name").text();
        bool persistent = true;
        if (auto pers = s->find("persistent"))
          persistent = pers->raw().is_boolean() && pers->raw().get<bool>();
        fqn_of[arg] = fqn;
        TensorInfo t;
        t.name = fqn;
        std::vector<int64_t> strides;
        TensorMeta m = tensor_meta(values.at(arg), nullptr, &strides);
        t.shape = m.shape;
        t.dtype = m.dtype;
        t.strides = strides;
        t.role = std::string(kind) == "parameter" ? TensorRole::kParameter : TensorRole::kBuffer;
        if (auto rg = values.at(arg).find("requires_grad"))
          t.trainable =
              t.role == TensorRole::kParameter && rg->raw().is_boolean() && rg->raw().get<bool>();
        else
          t.trainable = t.role == TensorRole::kParameter;
        auto w = storage_.find(fqn);
        t.storage = w != storage_.end() ? w->second : fqn;
        if (auto off = values.at(arg).find("storage_offset"))
          if (auto n = off->find("as_int")) t.storage_offset = n->integer();
        checked_numel(t.shape, source_ + ": " + fqn);
        if (!persistent) ++non_persistent_;
        if (std::string(kind) == "tensor_constant") ++constants_;
        p.model.tensors.push_back(std::move(t));
      }
    }
    if (non_persistent_ || constants_)
      p.model.notes.push_back(fmt::format(
          "{} non-persistent buffers and {} tensor constants are counted as buffers (they are "
          "not in the program's state_dict)",
          non_persistent_, constants_));
    if (with_graph) graph_trace(graph, values, fqn_of, p);
    return p;
  }

 private:
  std::string find_root() {
    for (const auto& name : a_.names()) {
      if (name == "serialized_exported_program.json" ||
          (name.size() > 34 &&
           name.compare(name.size() - 34, 34, "/serialized_exported_program.json") == 0)) {
        program_entry_ = name;
        return name.substr(0, name.rfind('/') == std::string::npos ? 0 : name.rfind('/'));
      }
      auto models = name.find("/models/");
      if (models != std::string::npos && name.size() > 5 &&
          name.compare(name.size() - 5, 5, ".json") == 0 && name.find('/') == models) {
        if (!program_entry_.empty())
          throw Error(
              fmt::format("{}: holds more than one exported program ({} and {}); "
                          "footprint reads archives of one",
                          source_, program_entry_, name));
        program_entry_ = name;
      }
    }
    if (program_entry_.empty())
      throw Error(
          fmt::format("{}: a .pt2 archive without <name>/models/<model>.json; expected a "
                      "program saved by torch.export.save",
                      source_));
    return program_entry_.substr(0, program_entry_.find('/'));
  }

  void read_weights_config(const std::string& root) {
    for (const char* which :
         {"weights/model_weights_config.json", "constants/model_constants_config.json"}) {
      std::string entry = root + "/data/" + which;
      if (!a_.size(entry)) continue;
      json j = parse_json(a_, entry, source_);
      Json config = Json(j, source_ + ": " + entry).at("config");
      if (!config.raw().is_object())
        throw Error(fmt::format("{} is not an object", config.where()));
      for (auto it = config.raw().begin(); it != config.raw().end(); ++it) {
        Json w(it.value(), config.where() + "." + it.key());
        std::string path = w.at("path_name").text();
        storage_[it.key()] = path;
        auto pickled = w.find("use_pickle");
        if (pickled && pickled->raw().is_boolean() && pickled->raw().get<bool>()) {
          // A tensor saved with torch.save: its pickle is read as data, and refused if it is
          // not (the reader allows no code).
          std::string inner = root + "/data/" +
                              std::string(which).substr(0, std::string(which).find('/')) + "/" +
                              path;
          std::string bytes = a_.read(inner, kMaxPickleBytes, "pickle size");
          auto src = open_memory(bytes, source_ + ": " + inner);
          read_torch_zip(*src);
        }
      }
    }
  }

  // The graph as a Trace: one top-level op per node, in the module calls its nn_module_stack
  // names, with the allocations of its outputs (views allocate nothing) and their frees after
  // their last use, for `footprint summary FILE.pt2`.
  void graph_trace(const Json& graph, const Json& values,
                   const std::map<std::string, std::string>& fqn_of, Program& p) {
    Trace& t = p.trace;
    t.device = "its exported graph";  // summary's header: "(inference, on its exported graph)"
    t.calls.push_back({"", "", -1});
    std::vector<std::pair<std::string, int>> open;  // module path, call
    std::map<std::string, std::string> base;        // a view's output -> the tensor it views
    auto root_of = [&](std::string n) {
      for (int guard = 0; guard < 100000; ++guard) {
        auto it = base.find(n);
        if (it == base.end()) return n;
        n = it->second;
      }
      return n;
    };
    struct Made {
      uint64_t id;
      int64_t bytes;
    };
    std::map<std::string, Made> made;  // tensor -> its allocation, while live
    uint64_t next_id = 1;
    auto meta_of = [&](const std::string& name) {
      return tensor_meta(values.at(name), &p.dynamic);
    };
    // The user's inputs are live from the start.
    for (const Json& in : graph.at("inputs").items()) {
      auto tensor = in.find("as_tensor");
      if (!tensor) continue;
      std::string name = tensor->at("name").text();
      if (fqn_of.count(name)) continue;
      TensorMeta m = meta_of(name);
      p.inputs.push_back({m.shape, m.dtype});
      made[name] = {next_id, m.bytes()};
      t.memory.push_back({next_id++, m.bytes(), -1, Phase::kForward, 0});
    }
    std::vector<std::string> outputs_of_graph;
    for (const Json& out : graph.at("outputs").items())
      if (auto tensor = out.find("as_tensor"))
        outputs_of_graph.push_back(tensor->at("name").text());

    // First the ops, with the tensors each reads and makes; then, knowing each tensor's last
    // reader, the allocations and frees.
    std::vector<std::vector<std::string>> reads, makes;
    for (const Json& node : graph.at("nodes").items()) {
      TraceOp op;
      op.name = op_name(node.at("target").text());
      op.phase = Phase::kForward;
      op.call = call_of(node, t, open);
      std::vector<std::string> in_names, out_names;
      for (const Json& input : node.at("inputs").items())
        op.inputs.push_back(value(input.at("arg"), values, &p.dynamic, &in_names));
      for (const Json& out : node.at("outputs").items())
        op.outputs.push_back(value(out, values, &p.dynamic, &out_names));
      if (is_view(op.name) && !in_names.empty())
        for (const auto& n : out_names) base[n] = in_names.front();
      t.ops.push_back(std::move(op));
      reads.push_back(std::move(in_names));
      makes.push_back(std::move(out_names));
    }
    std::map<std::string, size_t> last_use;  // root tensor -> the last op that reads it
    for (size_t i = 0; i < reads.size(); ++i)
      for (const auto& n : reads[i]) last_use[root_of(n)] = i;
    std::set<std::string> returned;
    for (const auto& o : outputs_of_graph) returned.insert(root_of(o));
    for (size_t i = 0; i < t.ops.size(); ++i) {
      for (const auto& n : makes[i]) {
        if (base.count(n)) continue;  // a view: no bytes of its own
        int64_t bytes = meta_of(n).bytes();
        made[n] = {next_id, bytes};
        t.memory.push_back({next_id++, bytes, int(i), Phase::kForward, 0});
      }
      std::set<std::string> freed;
      for (const auto& n : reads[i]) {
        std::string r = root_of(n);
        auto it = made.find(r);
        if (last_use[r] != i || it == made.end() || returned.count(r) || !freed.insert(r).second)
          continue;
        t.memory.push_back({it->second.id, -it->second.bytes, int(i), Phase::kForward, 0});
        made.erase(it);
      }
    }
    p.model.module_types[""] = t.calls[0].type;
  }

  int call_of(const Json& node, Trace& t, std::vector<std::pair<std::string, int>>& open) {
    std::vector<std::pair<std::string, std::string>> stack;  // path, type
    if (auto meta = node.find("metadata"))
      if (auto s = meta->find("nn_module_stack")) {
        std::string text = s->text();
        size_t at = 0;
        while (at <= text.size()) {
          size_t semi = text.find(';', at);
          std::string entry =
              text.substr(at, semi == std::string::npos ? std::string::npos : semi - at);
          at = semi == std::string::npos ? text.size() + 1 : semi + 1;
          size_t c1 = entry.find(','), c2 = entry.rfind(',');
          if (c1 == std::string::npos || c2 == c1) continue;
          std::string path = entry.substr(c1 + 1, c2 - c1 - 1);
          std::string type = entry.substr(c2 + 1);
          type = type.substr(type.rfind('.') == std::string::npos ? 0 : type.rfind('.') + 1);
          if (path.empty()) {
            if (t.calls[0].type.empty()) t.calls[0].type = type;
            continue;
          }
          stack.push_back({path, type});
        }
      }
    size_t same = 0;
    while (same < open.size() && same < stack.size() && open[same].first == stack[same].first)
      ++same;
    open.resize(same);
    for (size_t k = same; k < stack.size(); ++k) {
      int parent = open.empty() ? 0 : open.back().second;
      t.calls.push_back({stack[k].first, stack[k].second, parent});
      open.push_back({stack[k].first, int(t.calls.size()) - 1});
    }
    return open.empty() ? 0 : open.back().second;
  }

  OpValue value(const Json& arg, const Json& values, bool* dynamic,
                std::vector<std::string>* names) {
    OpValue v;
    auto tensor_named = [&](const Json& a) {
      std::string name = a.at("name").text();
      names->push_back(name);
      return tensor_meta(values.at(name), dynamic);
    };
    if (auto a = arg.find("as_tensor")) {
      v.kind = OpValue::Kind::kTensor;
      v.tensors.push_back(tensor_named(*a));
    } else if (auto l = arg.find("as_tensors")) {
      v.kind = OpValue::Kind::kTensorList;
      for (const Json& a : l->items()) v.tensors.push_back(tensor_named(a));
    } else if (auto i = arg.find("as_int")) {
      v.kind = OpValue::Kind::kInt;
      v.ints.push_back(i->integer());
    } else if (auto is = arg.find("as_ints")) {
      v.kind = OpValue::Kind::kIntList;
      for (const Json& x : is->items()) v.ints.push_back(x.integer());
    } else if (auto f = arg.find("as_float")) {
      v.kind = OpValue::Kind::kDouble;
      v.real = f->raw().is_number() ? f->raw().get<double>() : 0;
    } else if (auto b = arg.find("as_bool")) {
      v.kind = OpValue::Kind::kBool;
      v.ints.push_back(b->raw().is_boolean() && b->raw().get<bool>());
    } else if (arg.find("as_none") || arg.raw().is_null()) {
      v.kind = OpValue::Kind::kNone;
    } else {
      v.kind = OpValue::Kind::kOther;
    }
    return v;
  }

  const Archive& a_;
  std::string source_;
  std::string program_entry_;
  std::map<std::string, std::string> storage_;  // fqn -> path_name
  int non_persistent_ = 0, constants_ = 0;
};

}  // namespace

bool is_pt2(const Archive& archive) {
  for (const auto& name : archive.names()) {
    auto slash = name.find('/');
    if ((slash != std::string::npos && name.substr(slash) == "/archive_format") ||
        name == "serialized_exported_program.json")
      return true;
  }
  return false;
}

Model read_pt2(const Archive& archive, const std::string& source) {
  return Pt2(archive, source).read(false).model;
}

Pt2Program read_pt2_program(const std::string& path) {
  auto src = open_file(path);
  auto zip = open_zip(*src);
  if (!is_pt2(*zip))
    throw Error(
        fmt::format("{}: not a torch.export program (no <name>/archive_format entry); "
                    "summary reads .pt2 files without LibTorch, and TorchScript files "
                    "with it",
                    path));
  return read_pt2_archive(*zip, path);
}

Pt2Program read_pt2_archive(const Archive& archive, const std::string& source) {
  Program p = Pt2(archive, source).read(true);
  return {std::move(p.model), std::move(p.trace), std::move(p.inputs), p.dynamic};
}

}  // namespace detail

Summary summarize_program(const std::string& path, const SummaryOptions& options) {
  detail::Pt2Program p = detail::read_pt2_program(path);
  if (options.train)
    throw Error(
        fmt::format("{}: a torch.export program holds its forward graph only; --train "
                    "needs the model as TorchScript",
                    path));
  if (options.dtype)
    throw Error(
        fmt::format("{}: --dtype: a torch.export program runs at the dtypes it was "
                    "exported with",
                    path));
  if (p.dynamic)
    throw Error(
        fmt::format("{}: the program has symbolic sizes; footprint summary reads "
                    "programs exported with static shapes",
                    path));
  auto text = [](const std::vector<InputSpec>& in) {
    std::string out;
    for (const auto& i : in) {
      if (!out.empty()) out += ";";
      for (size_t d = 0; d < i.shape.size(); ++d)
        out += (d ? "x" : "") + std::to_string(i.shape[d]);
    }
    return out;
  };
  if (!options.inputs.empty()) {
    bool same = options.inputs.size() == p.inputs.size();
    for (size_t i = 0; same && i < p.inputs.size(); ++i)
      same = options.inputs[i].shape == p.inputs[i].shape;
    if (!same)
      throw Error(
          fmt::format("{}: the program was exported for input {}; --input says {} "
                      "(a .pt2's shapes are fixed when it is exported)",
                      path, text(p.inputs), text(options.inputs)));
  }
  SummaryOptions o = options;
  o.inputs = p.inputs;
  return summarize(p.model, p.trace, o);
}

namespace detail {}  // namespace detail
}  // namespace footprint
