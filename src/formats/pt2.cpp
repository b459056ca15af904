// torch.export programs (.pt2, torch.export.save), read from the archive's JSON, never executed.
// A .pt2 is a zip whose entries sit under one folder (the file's stem):
//   <p>/archive_format                        "pt2"
//   <p>/models/<name>.json                    the ExportedProgram, serialized as
//                                             torch/_export/serde/schema.py describes:
//     graph_module.graph.tensor_values        name -> TensorMeta {dtype (schema.ScalarType),
//                                             sizes [{"as_int": n} | {"as_expr": {expr_str,
//                                             hint}}], strides, storage_offset, requires_grad}
//     graph_module.graph.nodes                {target "torch.ops.aten.conv2d.default", inputs
//                                             [{name, arg, kind}], outputs [arg], metadata
//                                             {nn_module_stack "key,path,type;..."}}
//     graph_module.signature.input_specs      which graph inputs are parameters, buffers
//                                             (persistent or not), tensor constants, user inputs
//     graph_module.signature.output_specs     user outputs, buffer mutations
//     range_constraints                       symbol -> {min_val, max_val}
//   <p>/data/weights/model_weights_config.json  fqn -> {path_name, use_pickle, tensor_meta}:
//                                             parameters and buffers sharing a path_name share
//                                             their bytes (tied)
//   <p>/data/weights/<path_name>              raw bytes, or a torch.save pickle when use_pickle
//   <p>/data/sample_inputs/<name>.pt          a pickle: never read
// Programs saved by torch 2.1-2.5 keep the same JSON in serialized_exported_program.json.
//
// Everything is data here. torch.export.load would unpickle the weights and sample inputs with
// weights_only=False and eval each symbolic size's expr_str with sympy; footprint does neither:
// a pickled weight goes through footprint's pickle reader (formats/pickle.h), which refuses code;
// a symbolic size is read as a symbol's name ("s0", or sympy's srepr "Symbol('s0', ...)") or
// taken as an expression it does not read, whose hint stands.
//
// Checks: each JSON is at most kMaxPt2Json bytes and nests at most kMaxPt2Nesting deep (scanned
// before it is parsed); every field is type-checked; dtypes are known; every tensor's size is
// checked in 128 bits; at most kMaxPt2Nodes nodes, kMaxModuleDepth modules in a node's
// nn_module_stack; every value a node reads was made before it; every op is an aten op that the
// sandbox does not refuse. The graph is read in one pass, in time linear in its size, against
// the caller's deadline.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "core/refused.h"
#include "footprint/error.h"
#include "footprint/read.h"
#include "formats/readers.h"

namespace footprint {
namespace detail {
namespace {

using nlohmann::json;

// torch/_export/serde/schema.py's ScalarType: footprint's dtype, and torch's own name (the two
// float8 E4M3 and E5M2 variants are one dtype each to footprint, four to torch).
struct ScalarType {
  DType dtype;
  const char* torch;
};

std::optional<ScalarType> scalar_type(int64_t t) {
  switch (t) {
    case 1:
      return ScalarType{DType::kUInt8, "uint8"};
    case 2:
      return ScalarType{DType::kInt8, "int8"};
    case 3:
      return ScalarType{DType::kInt16, "int16"};
    case 4:
      return ScalarType{DType::kInt32, "int32"};
    case 5:
      return ScalarType{DType::kInt64, "int64"};
    case 6:
      return ScalarType{DType::kFloat16, "float16"};
    case 7:
      return ScalarType{DType::kFloat32, "float32"};
    case 8:
      return ScalarType{DType::kFloat64, "float64"};
    case 10:
      return ScalarType{DType::kComplex64, "complex64"};
    case 11:
      return ScalarType{DType::kComplex128, "complex128"};
    case 12:
      return ScalarType{DType::kBool, "bool"};
    case 13:
      return ScalarType{DType::kBFloat16, "bfloat16"};
    case 28:
      return ScalarType{DType::kUInt16, "uint16"};
    case 29:
      return ScalarType{DType::kFloat8E4M3, "float8_e4m3fn"};
    case 30:
      return ScalarType{DType::kFloat8E5M2, "float8_e5m2"};
    case 31:
      return ScalarType{DType::kFloat8E4M3, "float8_e4m3fnuz"};
    case 32:
      return ScalarType{DType::kFloat8E5M2, "float8_e5m2fnuz"};
    default:
      return std::nullopt;
  }
}

// schema.py's MemoryFormat, by torch's names.
const char* memory_format_name(int64_t f) {
  switch (f) {
    case 1:
      return "contiguous_format";
    case 2:
      return "channels_last";
    case 3:
      return "channels_last_3d";
    case 4:
      return "preserve_format";
    default:
      return nullptr;
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
    out.reserve(j_.size());
    for (size_t i = 0; i < j_.size(); ++i)
      out.emplace_back(j_[i], fmt::format("{}[{}]", where_, i));
    return out;
  }
  std::string text() const {
    if (!j_.is_string()) throw Error(fmt::format("{} is {}; expected a string", where_, brief()));
    return j_.get<std::string>();
  }
  int64_t integer() const {
    if (!j_.is_number_integer())
      throw Error(fmt::format("{} is {}; expected an integer", where_, brief()));
    // nlohmann keeps integers above 2^63 - 1 as unsigned: those are not sizes either.
    if (j_.is_number_unsigned() && j_.get<uint64_t>() > uint64_t(INT64_MAX))
      throw Error(fmt::format("{} is {}; expected an integer below 2^63", where_, brief()));
    return j_.get<int64_t>();
  }
  bool boolean() const {
    if (!j_.is_boolean())
      throw Error(fmt::format("{} is {}; expected true or false", where_, brief()));
    return j_.get<bool>();
  }
  // A float as schema.py writes one: a number, or "Infinity", "-Infinity", "NaN".
  double real() const {
    if (j_.is_number()) return j_.get<double>();
    if (j_.is_string()) {
      const auto& s = j_.get_ref<const std::string&>();
      if (s == "Infinity") return INFINITY;
      if (s == "-Infinity") return -INFINITY;
      if (s == "NaN") return NAN;
    }
    throw Error(fmt::format("{} is {}; expected a number", where_, brief()));
  }

 private:
  std::string brief() const { return j_.dump().substr(0, 80); }
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

bool identifier(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

// A symbolic size's expr_str, read as data: the symbol's name when it is one ("s0", or sympy's
// srepr of it, "Symbol('s0', positive=True, integer=True)"), else nothing: an expression
// ("2*s0"), which footprint does not read.
std::optional<std::string> symbol_of(std::string_view expr) {
  if (identifier(expr)) return std::string(expr);
  constexpr std::string_view kOpen = "Symbol('";
  if (expr.substr(0, kOpen.size()) != kOpen || expr.back() != ')') return std::nullopt;
  expr.remove_prefix(kOpen.size());
  auto quote = expr.find('\'');
  if (quote == std::string_view::npos || !identifier(expr.substr(0, quote))) return std::nullopt;
  std::string_view rest = expr.substr(quote + 1, expr.size() - quote - 2);
  // ", positive=True, integer=True": assumptions, each name=True|False.
  while (!rest.empty()) {
    if (rest.substr(0, 2) != ", ") return std::nullopt;
    rest.remove_prefix(2);
    auto eq = rest.find('=');
    if (eq == std::string_view::npos || !identifier(rest.substr(0, eq))) return std::nullopt;
    rest.remove_prefix(eq + 1);
    if (rest.substr(0, 4) == "True")
      rest.remove_prefix(4);
    else if (rest.substr(0, 5) == "False")
      rest.remove_prefix(5);
    else
      return std::nullopt;
  }
  return std::string(expr.substr(0, quote));
}

// One dimension of a TensorMeta: a number, or a symbol (with its hint, the size at export).
struct Dim {
  int64_t size = 0;  // the size, or the hint (0 when there is none)
  std::optional<std::string> symbol;
  bool symbolic = false;
};

struct Meta {
  ScalarType type{DType::kFloat32, "float32"};
  std::vector<Dim> dims;
  std::vector<int64_t> strides;
  int64_t storage_offset = 0;
  std::optional<bool> requires_grad;
  bool symbolic() const {
    for (const auto& d : dims)
      if (d.symbolic) return true;
    return false;
  }
  TensorMeta tensor() const {
    TensorMeta t;
    t.dtype = type.dtype;
    for (const auto& d : dims) t.shape.push_back(d.symbolic ? 0 : d.size);
    return t;
  }
};

// A TensorMeta, checked: a known dtype, sizes >= 0 whose product and bytes fit in 63 bits
// (computed in 128), strides and offset when given.
Meta read_meta(const Json& m) {
  Meta t;
  int64_t code = m.at("dtype").integer();
  auto type = scalar_type(code);
  if (!type)
    throw Error(
        fmt::format("{}.dtype is {}, a ScalarType footprint does not know", m.where(), code));
  t.type = *type;
  __int128 numel = 1;
  bool overflow = false;
  for (const Json& s : m.at("sizes").items()) {
    Dim d;
    if (auto n = s.find("as_int")) {
      d.size = n->integer();
      if (d.size < 0)
        throw Error(fmt::format("{} is {}; expected a size >= 0", n->where(), d.size));
    } else if (auto e = s.find("as_expr")) {
      d.symbolic = true;
      d.symbol = symbol_of(e->at("expr_str").text());
      if (auto hint = e->find("hint"))
        if (auto n = hint->find("as_int")) d.size = std::max<int64_t>(0, n->integer());
    } else {
      throw Error(fmt::format("{} is neither as_int nor as_expr", s.where()));
    }
    numel *= d.size;
    overflow = overflow || numel > INT64_MAX;
    t.dims.push_back(std::move(d));
  }
  if (overflow || (numel * dtype_bits(t.type.dtype) + 7) / 8 > INT64_MAX) {
    std::string shape;
    for (const auto& d : t.dims) shape += (shape.empty() ? "" : ", ") + std::to_string(d.size);
    throw Error(
        fmt::format("{}: a tensor of shape [{}] is too large to model (more than 2^63 "
                    "bytes)",
                    m.where(), shape));
  }
  if (auto st = m.find("strides"))
    for (const Json& s : st->items())
      if (auto n = s.find("as_int")) t.strides.push_back(n->integer());
  if (auto off = m.find("storage_offset"))
    if (auto n = off->find("as_int")) t.storage_offset = n->integer();
  if (auto rg = m.find("requires_grad")) t.requires_grad = rg->raw().is_boolean() && rg->boolean();
  return t;
}

// "torch.ops.aten.conv2d.default" -> {"aten::conv2d", "default"}; other targets unchanged.
std::pair<std::string, std::string> op_name(const std::string& target) {
  if (target.rfind("torch.ops.", 0) == 0) {
    std::string t = target.substr(10);
    auto dot = t.find('.');
    if (dot != std::string::npos) {
      auto second = t.find('.', dot + 1);
      std::string overload = second == std::string::npos ? "" : t.substr(second + 1);
      return {t.substr(0, dot) + "::" + t.substr(dot + 1, second - dot - 1), overload};
    }
  }
  return {target, ""};
}

// The Python operators export records on symbolic sizes (_operator.mul(sym_size_int, 4)), which
// the runner applies to the numbers.
const std::set<std::string>& builtins() {
  static const std::set<std::string> names = {
      "_operator.getitem",  "_operator.add",     "_operator.sub", "_operator.mul",
      "_operator.floordiv", "_operator.truediv", "_operator.mod", "_operator.neg",
      "_operator.pow",      "_operator.eq",      "_operator.ne",  "_operator.lt",
      "_operator.le",       "_operator.gt",      "_operator.ge",  "torch.sym_max",
      "torch.sym_min",      "torch.sym_float",   "torch.sym_int", "torch.sym_not",
      "math.ceil",          "math.floor"};
  return names;
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

// What the reader makes: the Model, and with the graph either the summary's Trace or the
// runner's document (Pt2Graph::document in readers.h).
enum class Want { kModel, kTrace, kDocument };

struct Program {
  Model model;
  Trace trace;
  std::vector<InputSpec> inputs;
  bool dynamic = false;
  json document;
};

class Pt2 {
 public:
  Pt2(const Archive& a, std::string source, double seconds) : a_(a), source_(std::move(source)) {
    if (seconds > 0)
      deadline_ = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(seconds));
    seconds_ = seconds;
  }

  Program read(Want want) {
    std::string root = find_root();
    json program = parse_json(a_, program_entry_, source_);
    Json top(program, source_ + ": " + program_entry_);
    Json gm = top.at("graph_module");
    Json graph = gm.at("graph");
    Json values = graph.at("tensor_values");
    if (!values.raw().is_object()) throw Error(fmt::format("{} is not an object", values.where()));
    read_weights_config(root);

    Program p;
    p.model.source = source_;
    p.model.format = "torch.export program (.pt2)";
    if (auto v = top.find("torch_version"))
      if (v->raw().is_string()) p.model.format += ", saved by torch " + v->text();
    // Every value's meta, checked once; each node then looks its values up by name.
    for (auto it = values.raw().begin(); it != values.raw().end(); ++it) {
      tick(metas_.size());
      metas_.emplace(it.key(), read_meta(Json(it.value(), values.where() + "." + it.key())));
    }
    read_signature(gm.at("signature"), p);
    if (want == Want::kModel) return p;
    if (want == Want::kDocument && !unrunnable_.empty()) throw Error(unrunnable_);
    if (auto ranges = top.find("range_constraints")) read_ranges(*ranges);
    read_graph(graph, want, p);
    return p;
  }

 private:
  void tick(size_t i) {
    if ((i & 255) == 0 && deadline_ && std::chrono::steady_clock::now() > *deadline_)
      throw Error(
          fmt::format("{}: reading the program took longer than {:g} s, the limit "
                      "(`time-limit`)",
                      source_, seconds_));
  }

  const Meta& meta(const std::string& name, const std::string& where) const {
    auto it = metas_.find(name);
    if (it == metas_.end())
      throw Error(fmt::format("{}: '{}' has no entry in graph.tensor_values", where, name));
    return it->second;
  }

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

  // The parameters, buffers and constants (the Model), the user's inputs, outputs and mutations.
  void read_signature(const Json& signature, Program& p) {
    json params = json::array(), buffers = json::array(), constants = json::array(),
         inputs = json::array(), graph_constants = json::object();
    int non_persistent = 0, tensor_constants = 0;
    for (const Json& spec : signature.at("input_specs").items()) {
      bool known = false;
      for (const char* kind : {"parameter", "buffer", "tensor_constant"}) {
        auto s = spec.find(kind);
        if (!s) continue;
        known = true;
        std::string arg = s->at("arg").at("name").text();
        std::string fqn = s->at(std::string(kind) + "_name").text();
        bool persistent = true;
        if (auto pers = s->find("persistent"))
          persistent = pers->raw().is_boolean() && pers->raw().get<bool>();
        fqn_of_[arg] = fqn;
        bound_.insert(arg);
        const Meta& m = meta(arg, s->where());
        if (m.symbolic())
          throw Error(fmt::format("{}: {} '{}' has a symbolic size", s->where(), kind, fqn));
        TensorInfo t;
        t.name = fqn;
        t.shape = m.tensor().shape;
        t.dtype = m.type.dtype;
        t.strides = m.strides;
        t.storage_offset = m.storage_offset;
        t.role = std::string(kind) == "parameter" ? TensorRole::kParameter : TensorRole::kBuffer;
        t.trainable = t.role == TensorRole::kParameter && m.requires_grad.value_or(true);
        auto w = storage_.find(fqn);
        t.storage = w != storage_.end() ? w->second : fqn;
        if (!persistent) ++non_persistent;
        json entry = {{"name", fqn},           {"value", arg},         {"shape", t.shape},
                      {"dtype", m.type.torch}, {"strides", m.strides}, {"offset", m.storage_offset},
                      {"storage", t.storage}};
        if (t.role == TensorRole::kParameter) {
          entry["trainable"] = t.trainable;
          params.push_back(std::move(entry));
        } else if (std::string(kind) == "buffer") {
          entry["persistent"] = persistent;
          buffers.push_back(std::move(entry));
        } else {
          ++tensor_constants;
          constants.push_back(std::move(entry));
        }
        p.model.tensors.push_back(std::move(t));
      }
      if (auto u = spec.find("user_input")) {
        known = true;
        Json arg = u->at("arg");
        auto tensor = arg.find("as_tensor");
        if (!tensor) {
          unrunnable_ = fmt::format(
              "{}: the program takes an input that is not a tensor ({}); "
              "footprint runs programs whose inputs are tensors",
              u->where(), arg.raw().dump().substr(0, 60));
          continue;
        }
        std::string name = tensor->at("name").text();
        const Meta& m = meta(name, tensor->where());
        InputSpec in;
        in.shape = m.tensor().shape;
        in.dtype = m.type.dtype;
        p.inputs.push_back(in);
        p.dynamic = p.dynamic || m.symbolic();
        json dims = json::array();
        for (const auto& d : m.dims) {
          if (!d.symbolic)
            dims.push_back(d.size);
          else if (d.symbol)
            dims.push_back({{"symbol", *d.symbol}, {"hint", d.size}});
          else
            dims.push_back({{"expression", true}, {"hint", d.size}});
        }
        inputs.push_back({{"value", name}, {"shape", dims}, {"dtype", m.type.torch}});
        user_inputs_.insert(name);
        bound_.insert(name);
      }
      if (auto c = spec.find("constant_input")) {
        known = true;
        std::string name = c->at("name").text();
        Json v = c->at("value");
        json value;
        if (auto i = v.find("as_int"))
          value = i->integer();
        else if (auto f = v.find("as_float"))
          value = number(f->real());
        else if (auto b = v.find("as_bool"))
          value = b->boolean();
        else if (auto s = v.find("as_string"))
          value = json{{"string", s->text()}};
        else if (!v.find("as_none") && !v.raw().is_null() && !v.raw().contains("as_none"))
          unrunnable_ = fmt::format("{} is a constant footprint does not read", v.where());
        graph_constants[name] = value;
        bound_.insert(name);
      }
      if (!known)
        unrunnable_ = fmt::format(
            "{}: an input of a kind footprint does not run ({}); it runs "
            "parameters, buffers, constants and tensor inputs",
            spec.where(), spec.raw().dump().substr(0, 60));
    }
    if (non_persistent || tensor_constants)
      p.model.notes.push_back(fmt::format(
          "{} non-persistent buffers and {} tensor constants are counted as buffers (they are "
          "not in the program's state_dict)",
          non_persistent, tensor_constants));
    doc_ = {{"format_version", 1},
            {"source", source_},
            {"parameters", params},
            {"buffers", buffers},
            {"constants", constants},
            {"inputs", inputs},
            {"constant_inputs", graph_constants}};
    if (auto outs = signature.find("output_specs")) {
      output_specs_ = &outs->raw();
      output_specs_where_ = outs->where();
    }
  }

  void read_ranges(const Json& ranges) {
    if (!ranges.raw().is_object()) throw Error(fmt::format("{} is not an object", ranges.where()));
    json symbols = json::object();
    for (auto it = ranges.raw().begin(); it != ranges.raw().end(); ++it) {
      Json r(it.value(), ranges.where() + "." + it.key());
      auto symbol = symbol_of(it.key());
      if (!symbol) continue;  // an expression's range: footprint checks symbols only
      json range = json::object();
      for (const char* bound : {"min_val", "max_val"})
        if (auto v = r.find(bound))
          if (v->raw().is_number_integer()) range[bound] = v->integer();
      symbols[*symbol] = range;
    }
    doc_["symbols"] = symbols;
  }

  static json number(double v) {
    if (std::isfinite(v)) return v;
    return json{{"float", std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"}};
  }

  // One node's argument, for the runner: a literal (null, a bool, an int, a float, a list of
  // them), a reference to a value the graph made ({"ref": name}, lists of them, {"refs": [...]}
  // for tensor lists), or a typed constant ({"dtype": "float32"}, {"memory_format": ...},
  // {"device": ...}, {"string": ...}).
  json argument(const Json& arg, std::vector<std::string>& reads) {
    auto ref = [&](const std::string& name) {
      reads.push_back(name);
      return json{{"ref", name}};
    };
    auto sym = [&](const Json& s) -> json {  // a SymIntArgument (or Bool, Float)
      if (auto n = s.find("as_name")) return ref(n->text());
      if (auto i = s.find("as_int")) return i->integer();
      if (auto b = s.find("as_bool")) return b->boolean();
      if (auto f = s.find("as_float")) return number(f->real());
      throw Error(fmt::format("{} is not a symbolic value", s.where()));
    };
    if (arg.find("as_none") || arg.raw().is_null() || arg.raw().contains("as_none")) return nullptr;
    if (auto t = arg.find("as_tensor")) return ref(t->at("name").text());
    if (auto l = arg.find("as_tensors")) {
      json names = json::array();
      for (const Json& t : l->items()) names.push_back(ref(t.at("name").text())["ref"]);
      return json{{"refs", names}};
    }
    if (auto l = arg.find("as_optional_tensors")) {
      json names = json::array();
      for (const Json& t : l->items()) {
        if (auto tt = t.find("as_tensor"))
          names.push_back(ref(tt->at("name").text())["ref"]);
        else
          names.push_back(nullptr);
      }
      return json{{"refs", names}};
    }
    if (auto t = arg.find("as_optional_tensor")) {
      if (auto tt = t->find("as_tensor")) return ref(tt->at("name").text());
      return nullptr;
    }
    if (auto i = arg.find("as_int")) return i->integer();
    if (auto f = arg.find("as_float")) return number(f->real());
    if (auto b = arg.find("as_bool")) return b->boolean();
    if (auto s = arg.find("as_string")) return json{{"string", s->text()}};
    for (const char* list : {"as_ints", "as_floats", "as_bools", "as_sym_ints", "as_sym_bools",
                             "as_sym_floats", "as_strings"}) {
      auto l = arg.find(list);
      if (!l) continue;
      json out = json::array();
      for (const Json& x : l->items()) {
        std::string kind = list;
        if (kind == "as_ints")
          out.push_back(x.integer());
        else if (kind == "as_floats")
          out.push_back(number(x.real()));
        else if (kind == "as_bools")
          out.push_back(x.boolean());
        else if (kind == "as_strings")
          out.push_back(json{{"string", x.text()}});
        else
          out.push_back(sym(x));
      }
      return out;
    }
    for (const char* one : {"as_sym_int", "as_sym_bool", "as_sym_float"})
      if (auto s = arg.find(one)) return sym(*s);
    if (auto t = arg.find("as_scalar_type")) {
      auto type = scalar_type(t->integer());
      if (!type) throw Error(fmt::format("{} is a ScalarType footprint does not know", t->where()));
      return json{{"dtype", type->torch}};
    }
    if (auto f = arg.find("as_memory_format")) {
      const char* name = memory_format_name(f->integer());
      if (!name)
        throw Error(fmt::format("{} is a memory format footprint does not know", f->where()));
      return json{{"memory_format", name}};
    }
    if (auto l = arg.find("as_layout")) {
      if (l->integer() != 7)
        throw Error(
            fmt::format("{}: a layout other than strided (sparse, mkldnn) footprint does "
                        "not run",
                        l->where()));
      return json{{"layout", "strided"}};
    }
    // Every tensor runs on meta, whatever device the program names.
    if (arg.find("as_device")) return json{{"device", "meta"}};
    throw Error(
        fmt::format("{}: an argument footprint does not run ({}): graphs, custom objects "
                    "and operators as arguments belong to higher-order ops",
                    arg.where(), arg.raw().dump().substr(0, 60)));
  }

  // The nodes, in one pass: their module calls, what each reads and makes, and either the
  // summary's trace or the runner's document.
  void read_graph(const Json& graph, Want want, Program& p) {
    Trace& t = p.trace;
    t.device = "its exported graph";  // summary's header: "(inference, on its exported graph)"
    t.calls.push_back({"", "", -1});
    std::vector<std::pair<std::string, int>> open;  // module path, call
    // Values the graph has: those its signature binds (parameters, buffers, constants, the
    // user's inputs), then each node's outputs. A graph input the signature does not bind has
    // no value to run with.
    std::unordered_set<std::string> known(bound_.begin(), bound_.end());
    auto check_known = [&](const std::vector<std::string>& reads, const std::string& where) {
      for (const auto& r : reads)
        if (!known.count(r))
          throw Error(fmt::format("{} reads '{}', which no input or earlier node makes", where, r));
    };

    std::vector<Json> nodes = graph.at("nodes").items();
    if (nodes.size() > size_t(kMaxPt2Nodes))
      throw Error(fmt::format("{}: {} nodes; footprint reads programs of at most {}", graph.where(),
                              nodes.size(), kMaxPt2Nodes));
    std::vector<std::vector<std::string>> reads(nodes.size()), makes(nodes.size());
    json doc_nodes = json::array();
    for (size_t i = 0; i < nodes.size(); ++i) {
      tick(i);
      const Json& node = nodes[i];
      std::string target = node.at("target").text();
      auto [op, overload] = op_name(target);
      bool builtin = builtins().count(target) > 0;
      if (!builtin) {
        auto sep = op.find("::");
        bool aten = sep != std::string::npos && op.substr(0, sep) == "aten" &&
                    identifier(op.substr(sep + 2)) && identifier(overload);
        if (!aten)
          throw Error(
              fmt::format("{} calls {}, which footprint does not run: it runs programs "
                          "of aten ops (not higher-order or custom ops)",
                          node.where(), target.substr(0, 200)));
        if (auto why = refused_op(op))
          throw Error(
              fmt::format("{} calls {}, which {}: footprint refuses it", node.where(), op, *why));
      }
      int call = call_of(node, t, open);
      json args = json::array(), kwargs = json::object();
      TraceOp trace_op;
      for (const Json& input : node.at("inputs").items()) {
        Json arg = input.at("arg");
        if (want == Want::kDocument) {
          // An aten op takes every argument by its schema's name (self included), whatever
          // the kind says; a Python operator takes them in order.
          json v = argument(arg, reads[i]);
          if (builtin)
            args.push_back(std::move(v));
          else
            kwargs[input.at("name").text()] = std::move(v);
        } else {
          trace_op.inputs.push_back(value(arg, &p.dynamic, &reads[i]));
        }
      }
      check_known(reads[i], node.where());
      json outs = json::array();
      for (const Json& out : node.at("outputs").items()) {
        if (want == Want::kDocument)
          outs.push_back(output(out, makes[i]));
        else
          trace_op.outputs.push_back(value(out, &p.dynamic, &makes[i]));
      }
      for (const auto& m : makes[i])
        if (!known.insert(m).second)
          throw Error(fmt::format("{} makes '{}', which the graph already has", node.where(), m));
      if (want == Want::kDocument) {
        json n = {{"target", builtin ? target : op + "." + overload},
                  {"args", std::move(args)},
                  {"kwargs", std::move(kwargs)},
                  {"outputs", std::move(outs)},
                  {"call", call}};
        doc_nodes.push_back(std::move(n));
      } else {
        trace_op.name = op;
        trace_op.phase = Phase::kForward;
        trace_op.call = call;
        t.ops.push_back(std::move(trace_op));
      }
    }
    p.model.module_types[""] = t.calls[0].type;

    json outputs = json::array(), mutations = json::array();
    if (output_specs_)
      for (const Json& spec : Json(*output_specs_, output_specs_where_).items()) {
        std::vector<std::string> used;
        if (auto u = spec.find("user_output")) {
          json v = argument(u->at("arg"), used);
          if (want == Want::kDocument) outputs.push_back(std::move(v));
        } else if (auto b = spec.find("buffer_mutation")) {
          mutations.push_back(
              {{"target", b->at("buffer_name").text()}, {"value", b->at("arg").at("name").text()}});
          used.push_back(b->at("arg").at("name").text());
        } else if (auto m = spec.find("user_input_mutation")) {
          mutations.push_back({{"input", m->at("user_input_name").text()},
                               {"value", m->at("arg").at("name").text()}});
          used.push_back(m->at("arg").at("name").text());
        } else if (auto pm = spec.find("parameter_mutation")) {
          mutations.push_back({{"target", pm->at("parameter_name").text()},
                               {"value", pm->at("arg").at("name").text()}});
          used.push_back(pm->at("arg").at("name").text());
        } else {
          throw Error(
              fmt::format("{}: an output of a kind footprint does not run ({}); it runs "
                          "forward programs (user outputs and mutations)",
                          spec.where(), spec.raw().dump().substr(0, 60)));
        }
        check_known(used, spec.where());
        for (auto& u : used) outputs_of_graph_.push_back(std::move(u));
      }
    if (want == Want::kDocument) {
      doc_["calls"] = json::array();
      for (const auto& c : t.calls)
        doc_["calls"].push_back({{"path", c.path}, {"type", c.type}, {"parent", c.parent}});
      doc_["nodes"] = std::move(doc_nodes);
      doc_["outputs"] = std::move(outputs);
      doc_["mutations"] = std::move(mutations);
      p.document = std::move(doc_);
      t.calls.clear();
      return;
    }
    trace_memory(graph, reads, makes, p);
  }

  // An output slot of a node: a tensor, a list of tensors, a symbolic value, or none.
  json output(const Json& out, std::vector<std::string>& makes) {
    if (auto t = out.find("as_tensor")) {
      makes.push_back(t->at("name").text());
      return json{{"ref", makes.back()}};
    }
    if (auto l = out.find("as_tensors")) {
      json names = json::array();
      for (const Json& t : l->items()) {
        makes.push_back(t.at("name").text());
        names.push_back(makes.back());
      }
      return json{{"refs", names}};
    }
    for (const char* one : {"as_sym_int", "as_sym_bool", "as_sym_float"})
      if (auto s = out.find(one)) {
        if (auto n = s->find("as_name")) {
          makes.push_back(n->text());
          return json{{"ref", makes.back()}};
        }
        return nullptr;
      }
    if (out.find("as_none") || out.raw().is_null() || out.raw().contains("as_none")) return nullptr;
    throw Error(fmt::format("{}: an output footprint does not run ({})", out.where(),
                            out.raw().dump().substr(0, 60)));
  }

  // The summary's trace: the outputs' allocations (views allocate nothing) and their frees after
  // their last use. A view's root is found when the view is made, so the pass is linear.
  void trace_memory(const Json& graph, const std::vector<std::vector<std::string>>& reads,
                    const std::vector<std::vector<std::string>>& makes, Program& p) {
    Trace& t = p.trace;
    for (const Json& out : graph.at("outputs").items())  // as the signature's outputs say too
      if (auto tensor = out.find("as_tensor"))
        outputs_of_graph_.push_back(tensor->at("name").text());
    std::unordered_map<std::string, std::string> root;  // a view's output -> the tensor it views
    auto root_of = [&](const std::string& n) -> const std::string& {
      auto it = root.find(n);
      return it == root.end() ? n : it->second;
    };
    struct Made {
      uint64_t id;
      int64_t bytes;
    };
    std::unordered_map<std::string, Made> made;  // tensor -> its allocation, while live
    uint64_t next_id = 1;
    // The user's inputs are live from the start.
    for (const Json& in : graph.at("inputs").items()) {
      auto tensor = in.find("as_tensor");
      if (!tensor) continue;
      std::string name = tensor->at("name").text();
      if (!user_inputs_.count(name)) continue;
      int64_t bytes = meta(name, tensor->where()).tensor().bytes();
      made[name] = {next_id, bytes};
      t.memory.push_back({next_id++, bytes, -1, Phase::kForward, 0});
    }
    for (size_t i = 0; i < t.ops.size(); ++i)
      if (is_view(t.ops[i].name) && !reads[i].empty()) {
        std::string r = root_of(reads[i].front());
        for (const auto& n : makes[i]) root[n] = r;
      }
    std::unordered_map<std::string, size_t> last_use;  // root tensor -> the last op that reads it
    for (size_t i = 0; i < reads.size(); ++i)
      for (const auto& n : reads[i]) last_use[root_of(n)] = i;
    std::unordered_set<std::string> returned;
    for (const auto& o : outputs_of_graph_) returned.insert(root_of(o));
    for (size_t i = 0; i < t.ops.size(); ++i) {
      tick(i);
      for (const auto& n : makes[i]) {
        if (root.count(n) || !metas_.count(n)) continue;  // a view, or a symbolic value
        int64_t bytes = metas_.at(n).tensor().bytes();
        made[n] = {next_id, bytes};
        t.memory.push_back({next_id++, bytes, int(i), Phase::kForward, 0});
      }
      std::unordered_set<std::string> freed;
      for (const auto& n : reads[i]) {
        const std::string& r = root_of(n);
        auto it = made.find(r);
        if (last_use[r] != i || it == made.end() || returned.count(r) || !freed.insert(r).second)
          continue;
        t.memory.push_back({it->second.id, -it->second.bytes, int(i), Phase::kForward, 0});
        made.erase(it);
      }
    }
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
          if (stack.size() == size_t(kMaxModuleDepth))
            throw Error(fmt::format("{}.nn_module_stack nests more than {} modules, the limit",
                                    meta->where(), kMaxModuleDepth));
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

  // An argument or output as the summary's analyses read it; the names of the tensors it holds
  // (and of the symbolic values it reads) go to `names`.
  OpValue value(const Json& arg, bool* dynamic, std::vector<std::string>* names) {
    OpValue v;
    auto tensor_named = [&](const Json& a) {
      std::string name = a.at("name").text();
      names->push_back(name);
      const Meta& m = meta(name, a.where());
      *dynamic = *dynamic || m.symbolic();
      return m.tensor();
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
      for (const char* one : {"as_sym_int", "as_sym_bool", "as_sym_float"})
        if (auto s = arg.find(one)) {
          *dynamic = true;
          if (auto n = s->find("as_name")) names->push_back(n->text());
        }
    }
    return v;
  }

  const Archive& a_;
  std::string source_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  double seconds_ = 0;
  std::string program_entry_;
  std::map<std::string, std::string> storage_;  // fqn -> path_name
  std::unordered_map<std::string, Meta> metas_;
  std::map<std::string, std::string> fqn_of_;  // graph input name -> parameter/buffer name
  std::set<std::string> user_inputs_;
  std::set<std::string> bound_;  // the values the signature binds: what the graph starts with
  const json* output_specs_ = nullptr;  // the signature's, inside the program read() holds
  std::string output_specs_where_;
  std::vector<std::string> outputs_of_graph_;  // what the graph returns (never freed)
  std::string unrunnable_;  // why the runner cannot run the program (params still reads it)
  json doc_;
};

std::unique_ptr<Archive> open_program(const std::string& path, const ByteSource& src) {
  auto zip = open_zip(src);
  if (!is_pt2(*zip))
    throw Error(
        fmt::format("{}: not a torch.export program (no <name>/archive_format entry); "
                    "summary reads .pt2 files without LibTorch, and TorchScript files "
                    "with it",
                    path));
  return zip;
}

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
  return Pt2(archive, source, 0).read(Want::kModel).model;
}

Pt2Program read_pt2_program(const std::string& path, double seconds) {
  auto src = open_file(path);
  auto zip = open_program(path, *src);
  return read_pt2_archive(*zip, path, seconds);
}

Pt2Program read_pt2_archive(const Archive& archive, const std::string& source, double seconds) {
  Program p = Pt2(archive, source, seconds).read(Want::kTrace);
  return {std::move(p.model), std::move(p.trace), std::move(p.inputs), p.dynamic};
}

std::string pt2_document(const Archive& archive, const std::string& source, double seconds) {
  return Pt2(archive, source, seconds).read(Want::kDocument).document.dump();
}

std::string pt2_document_file(const std::string& path, double seconds) {
  auto src = open_file(path);
  auto zip = open_program(path, *src);
  return pt2_document(*zip, path, seconds);
}

}  // namespace detail

Summary summarize_program(const std::string& path, const SummaryOptions& options) {
  detail::Pt2Program p = detail::read_pt2_program(path, options.limits.seconds);
  if (options.train)
    throw Error(
        fmt::format("{}: a torch.export program holds its forward graph only; `train` "
                    "needs the model as TorchScript, or footprint memory {} --train",
                    path, path));
  if (options.dtype)
    throw Error(
        fmt::format("{}: `dtype`: a torch.export program runs at the dtypes it was "
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
          fmt::format("{}: the program was exported for input {}; `input` says {} "
                      "(a .pt2's shapes are fixed when it is exported)",
                      path, text(p.inputs), text(options.inputs)));
  }
  SummaryOptions o = options;
  o.inputs = p.inputs;
  return summarize(p.model, p.trace, o);
}

}  // namespace footprint
