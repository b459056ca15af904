// torch.save checkpoints and TorchScript archives: both are zip files (stored, not compressed):
//   <archive>/data.pkl        the pickle: a state_dict (torch.save) or the module objects
//   (TorchScript) <archive>/data/<key>      one entry per storage, raw bytes; never read here, only
//   its size <archive>/version         serialization version <archive>/constants.pkl   TorchScript
//   only <archive>/code/__torch__/<module path>.py
//                             TorchScript only: each class's source, whose header lists
//                             __parameters__ = ["weight", "bias", ] and __buffers__ = [...]
// Only the zip's central directory, data.pkl and (for TorchScript) the code of the classes used
// are read. The pickle is parsed as data (formats/pickle.h).
#include <fmt/format.h>
#include <zip.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "footprint/error.h"
#include "formats/pickle.h"
#include "formats/readers.h"

namespace footprint::detail {
namespace {

using pickle::Kind;
using pickle::Value;

class Zip final : public Archive {
 public:
  explicit Zip(const ByteSource& src) : name_(src.name()) {
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* zs = nullptr;
    if (src.memory()) {
      zs = zip_source_buffer_create(src.memory()->data(), src.memory()->size(), 0, &error);
    } else {
      constexpr zip_int64_t kToEnd = -1;  // libzip 1.7: -1 means "to the end of the file"
      zs = zip_source_file_create(src.path().c_str(), 0, kToEnd, &error);
    }
    if (zs) {
      z_ = zip_open_from_source(zs, ZIP_RDONLY | ZIP_CHECKCONS, &error);
      if (!z_) zip_source_free(zs);
    }
    if (!z_) {
      std::string why = zip_error_strerror(&error);
      zip_error_fini(&error);
      throw Error(
          fmt::format("{}: not a readable zip archive ({}); a torch.save or TorchScript file "
                      "may be truncated or corrupt",
                      name_, why));
    }
    zip_error_fini(&error);
    zip_int64_t n = zip_get_num_entries(z_, 0);
    if (n < 0 || n > 4 * kMaxTensors) {
      zip_discard(z_);
      throw Error(fmt::format("{}: zip archive has {} entries; at most {} are allowed", name_, n,
                              4 * kMaxTensors));
    }
    for (zip_int64_t i = 0; i < n; ++i) {
      zip_stat_t st;
      zip_stat_init(&st);
      if (zip_stat_index(z_, static_cast<zip_uint64_t>(i), 0, &st) != 0 ||
          !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE))
        continue;
      entries_[st.name] = {static_cast<zip_uint64_t>(i), st.size};
    }
  }
  ~Zip() {
    if (z_) zip_discard(z_);
  }
  Zip(const Zip&) = delete;
  Zip& operator=(const Zip&) = delete;

  struct Entry {
    zip_uint64_t index;
    uint64_t size;
  };
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& [name, e] : entries_) out.push_back(name);
    return out;
  }
  std::optional<uint64_t> size(const std::string& name) const override {
    auto it = entries_.find(name);
    if (it == entries_.end()) return std::nullopt;
    return it->second.size;
  }

  std::string read(const std::string& entry_name, uint64_t limit,
                   const char* limit_name) const override {
    auto e = entries_.find(entry_name);
    if (e == entries_.end())
      throw Error(fmt::format("{}: zip archive has no entry '{}'", name_, entry_name));
    if (e->second.size > limit)
      throw Error(fmt::format("{}: '{}' is {} bytes, over the {} limit of {} bytes", name_,
                              entry_name, e->second.size, limit_name, limit));
    zip_file_t* f = zip_fopen_index(z_, e->second.index, 0);
    if (!f)
      throw Error(
          fmt::format("{}: cannot open '{}' in the zip: {}", name_, entry_name, zip_strerror(z_)));
    std::string data(e->second.size, '\0');
    zip_int64_t got = zip_fread(f, data.data(), e->second.size);
    std::string why = got < 0 ? zip_file_strerror(f) : "";
    zip_fclose(f);
    if (got < 0 || static_cast<uint64_t>(got) != e->second.size)
      throw Error(
          fmt::format("{}: '{}' is truncated or corrupt ({})", name_, entry_name,
                      got < 0 ? why : fmt::format("read {} of {} bytes", got, e->second.size)));
    return data;
  }

 private:
  std::string name_;
  zip_t* z_ = nullptr;
  std::map<std::string, Entry> entries_;
};

// The archive's top folder: the one holding data.pkl.
std::string find_prefix(const Archive& archive, const std::string& name) {
  for (const auto& entry : archive.names()) {
    auto slash = entry.find('/');
    if (slash != std::string::npos && entry.substr(slash) == "/data.pkl")
      return entry.substr(0, slash);
  }
  throw Error(fmt::format(
      "{}: zip archive has no <archive>/data.pkl entry; expected a torch.save checkpoint "
      "or a TorchScript file",
      name));
}

struct ClassInfo {
  bool is_module = false;
  std::set<std::string> parameters, buffers;
};

// Reads `__parameters__` and `__buffers__` from TorchScript class sources, one file at a time.
class TorchScriptClasses {
 public:
  TorchScriptClasses(const Archive& archive, std::string prefix, std::string name)
      : archive_(archive), prefix_(std::move(prefix)), name_(std::move(name)) {}

  const ClassInfo& get(const std::string& qualname) {
    auto it = classes_.find(qualname);
    if (it != classes_.end()) return it->second;
    auto dot = qualname.rfind('.');
    std::string module = qualname.substr(0, dot);
    if (!files_read_.insert(module).second || dot == std::string::npos)
      return classes_[qualname];  // the file was read and has no such class: not a module
    std::string path = module;
    for (char& c : path)
      if (c == '.') c = '/';
    path = prefix_ + "/code/" + path + ".py";
    if (!archive_.size(path))
      throw Error(
          fmt::format("{}: TorchScript class {} has no source entry '{}'", name_, qualname, path));
    parse(module, archive_.read(path, kMaxCodeBytes, "TorchScript code size"));
    return classes_[qualname];
  }

 private:
  static std::set<std::string> quoted_names(const std::string& line) {
    std::set<std::string> out;
    for (size_t a = line.find('"'); a != std::string::npos; a = line.find('"', a + 1)) {
      size_t b = line.find('"', a + 1);
      if (b == std::string::npos) break;
      out.insert(line.substr(a + 1, b - a - 1));
      a = b;
    }
    return out;
  }

  void parse(const std::string& module, const std::string& code) {
    ClassInfo* current = nullptr;
    size_t start = 0;
    while (start < code.size()) {
      size_t end = code.find('\n', start);
      if (end == std::string::npos) end = code.size();
      std::string line = code.substr(start, end - start);
      start = end + 1;
      if (line.rfind("class ", 0) == 0) {
        size_t paren = line.find('(');
        std::string cls =
            line.substr(6, paren == std::string::npos ? std::string::npos : paren - 6);
        while (!cls.empty() && (cls.back() == ':' || cls.back() == ' ')) cls.pop_back();
        current = &classes_[module + "." + cls];
        current->is_module = line.find("(Module)") != std::string::npos;
      } else if (current && line.rfind("  __parameters__ = ", 0) == 0) {
        current->parameters = quoted_names(line);
      } else if (current && line.rfind("  __buffers__ = ", 0) == 0) {
        current->buffers = quoted_names(line);
      }
    }
  }

  const Archive& archive_;
  std::string prefix_, name_;
  std::map<std::string, ClassInfo> classes_;
  std::set<std::string> files_read_;
};

// Collects tensors from the pickle's values, checking each against its storage entry.
class Collector {
 public:
  Collector(const Archive& archive, std::string prefix, Model& model)
      : archive_(archive), prefix_(std::move(prefix)), model_(model) {}

  void add(const Value* t, const std::string& name, TensorRole role, bool trainable) {
    if (static_cast<int64_t>(model_.tensors.size()) >= kMaxTensors)
      throw Error(fmt::format("{}: more than {} tensors (the tensor-count limit)", model_.source,
                              kMaxTensors));
    const pickle::TensorView& v = *t->view;
    const Value* s = v.storage;
    std::string where = fmt::format("{}: tensor '{}'", model_.source, name);
    if (v.shape.size() != v.strides.size())
      throw Error(
          fmt::format("{} has {} sizes but {} strides", where, v.shape.size(), v.strides.size()));
    int64_t numel = checked_numel(v.shape, where);
    // The view must lie inside its storage: offset + sum((size-1)*stride) < storage numel.
    if (numel > 0) {
      __int128 last = v.offset;
      for (size_t i = 0; i < v.shape.size(); ++i) {
        if (v.strides[i] < 0) throw Error(fmt::format("{} has a negative stride", where));
        last += static_cast<__int128>(v.shape[i] - 1) * v.strides[i];
      }
      if (v.offset < 0 || last >= s->integer)
        throw Error(fmt::format("{} reaches element {} of storage '{}', which holds {}", where,
                                static_cast<int64_t>(std::min<__int128>(last, INT64_MAX)), s->str,
                                s->integer));
    }
    std::string entry = prefix_ + "/data/" + s->str;
    auto e = archive_.size(entry);
    if (!e)
      throw Error(fmt::format("{} refers to storage '{}', but the zip has no entry '{}'", where,
                              s->str, entry));
    __int128 need = static_cast<__int128>(s->integer) * (dtype_bits(s->dtype) / 8);
    if (need != static_cast<__int128>(*e))
      throw Error(fmt::format(
          "{}: storage '{}' declares {} elements of {} ({} bytes) but '{}' holds {} bytes",
          model_.source, s->str, s->integer, dtype_name(s->dtype),
          static_cast<int64_t>(std::min<__int128>(need, INT64_MAX)), entry, *e));
    TensorInfo info;
    info.name = name;
    info.shape = v.shape;
    info.dtype = s->dtype;
    info.role = role;
    info.trainable = role == TensorRole::kParameter && trainable;
    info.storage = s->str;
    info.storage_offset = v.offset;
    info.strides = v.strides;
    model_.tensors.push_back(std::move(info));
  }

 private:
  const Archive& archive_;
  std::string prefix_;
  Model& model_;
};

std::string join(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

std::string key_string(const Value* k) {
  if (k->kind == Kind::kStr) return k->str;
  if (k->kind == Kind::kInt) return std::to_string(k->integer);
  return "?";
}

void check_depth(size_t depth, const std::string& source) {
  if (depth > pickle::kMaxNesting)
    throw Error(fmt::format("{}: the pickle nests deeper than {} levels (the nesting limit)",
                            source, pickle::kMaxNesting));
}

void walk_torchscript(const Value* obj, const std::string& path, size_t depth,
                      TorchScriptClasses& classes, Collector& out, Model& model) {
  check_depth(depth, model.source);
  const std::string& qual = obj->cls->str;
  const ClassInfo& info = classes.get(qual);
  if (!info.is_module) return;  // a TorchScript class that is not an nn.Module has no parameters
  model.module_types[path] = qual.substr(qual.rfind('.') + 1);
  if (!obj->state || obj->state->kind != Kind::kDict) return;
  for (const auto& [k, v] : obj->state->entries) {
    if (k->kind != Kind::kStr) continue;
    std::string name = join(path, k->str);
    if (v->kind == Kind::kObject) {
      walk_torchscript(v, name, depth + 1, classes, out, model);
    } else if (v->kind == Kind::kTensor) {
      if (info.parameters.count(k->str))
        out.add(v, name, TensorRole::kParameter, v->requires_grad);
      else if (info.buffers.count(k->str))
        out.add(v, name, TensorRole::kBuffer, false);
    }
  }
}

// Counts the tensors under a value (for choosing the state dict in a nested checkpoint).
int64_t count_tensors(const Value* v, size_t depth, const std::string& source) {
  check_depth(depth, source);
  int64_t n = 0;
  if (v->kind == Kind::kTensor) return 1;
  if (v->kind == Kind::kDict)
    for (const auto& [k, x] : v->entries) n += count_tensors(x, depth + 1, source);
  if (v->kind == Kind::kList || v->kind == Kind::kTuple)
    for (const Value* x : v->items) n += count_tensors(x, depth + 1, source);
  return n;
}

// Adds every tensor under `v`, named by its path of keys. `parameter_flags` records, per tensor
// added, whether the pickle marked it as an nn.Parameter (torch._utils._rebuild_parameter).
void walk_dict(const Value* v, const std::string& path, size_t depth, Collector& out, Model& model,
               std::vector<bool>& parameter_flags) {
  check_depth(depth, model.source);
  if (v->kind == Kind::kTensor) {
    TensorRole role = v->is_parameter ? TensorRole::kParameter : role_by_name(path, v->dtype);
    out.add(v, path, role, v->is_parameter ? v->requires_grad : role == TensorRole::kParameter);
    parameter_flags.push_back(v->is_parameter);
  } else if (v->kind == Kind::kDict) {
    for (const auto& [k, x] : v->entries)
      walk_dict(x, join(path, key_string(k)), depth + 1, out, model, parameter_flags);
  } else if (v->kind == Kind::kList || v->kind == Kind::kTuple) {
    for (size_t i = 0; i < v->items.size(); ++i)
      walk_dict(v->items[i], join(path, std::to_string(i)), depth + 1, out, model, parameter_flags);
  }
}

// Keys under which training scripts nest the model's state_dict, in order of preference.
constexpr const char* kStateDictKeys[] = {
    "state_dict", "model_state_dict", "model",       "module",
    "net",        "network",          "model_state", "weights"};

// Finds the state dict in a torch.save checkpoint (see docs/formats.md, "Nested checkpoints").
const Value* find_state_dict(const Value* root, Model& model) {
  if (root->kind == Kind::kTensor) return root;
  if (root->kind != Kind::kDict)
    throw Error(fmt::format("{}: torch.save checkpoint holds no dict of tensors", model.source));
  bool flat = !root->entries.empty();
  for (const auto& [k, v] : root->entries) flat = flat && v->kind == Kind::kTensor;
  if (flat) return root;
  for (const char* key : kStateDictKeys) {
    const Value* sd = root->get(key);
    if (!sd || count_tensors(sd, 1, model.source) == 0) continue;
    model.notes.push_back(fmt::format("the state dict is the checkpoint's '{}' entry", key));
    for (const auto& [k, v] : root->entries) {
      int64_t n = count_tensors(v, 1, model.source);
      if (k->kind == Kind::kStr && k->str != key && n > 0)
        model.notes.push_back(
            fmt::format("not counted: the '{}' entry holds {} more tensor(s)", k->str, n));
    }
    return sd;
  }
  if (count_tensors(root, 0, model.source) == 0)
    throw Error(fmt::format("{}: torch.save checkpoint holds no tensors", model.source));
  model.notes.push_back("no state_dict entry found: every tensor in the checkpoint is counted");
  return root;
}

void read_checkpoint(const Value* root, Collector& out, Model& model) {
  const Value* sd = find_state_dict(root, model);
  std::vector<bool> parameter_flags;
  walk_dict(sd, sd->kind == Kind::kTensor ? "tensor" : "", 1, out, model, parameter_flags);
  // state_dict(keep_vars=True) pickles parameters as nn.Parameter: then the file records which
  // tensors are parameters, and every other tensor is a buffer. Otherwise the name rule stands.
  bool recorded =
      std::find(parameter_flags.begin(), parameter_flags.end(), true) != parameter_flags.end();
  model.roles = recorded ? RoleSource::kRecorded : RoleSource::kByName;
  if (!recorded) return;
  for (size_t i = 0; i < model.tensors.size(); ++i)
    if (!parameter_flags[i]) {
      model.tensors[i].role = TensorRole::kBuffer;
      model.tensors[i].trainable = false;
    }
}

}  // namespace

Model read_torch_archive(const Archive& archive, const std::string& source) {
  if (is_pt2(archive)) return read_pt2(archive, source);
  std::string prefix = find_prefix(archive, source);
  bool torchscript = archive.size(prefix + "/constants.pkl").has_value();
  Model model;
  model.source = source;
  model.format = torchscript ? "TorchScript" : "torch.save checkpoint";
  std::string pkl = archive.read(prefix + "/data.pkl", kMaxPickleBytes, "pickle size");
  pickle::Options options;
  options.torchscript = torchscript;
  pickle::Document doc = pickle::parse(pkl, source + ": " + prefix + "/data.pkl", options);
  Collector out(archive, prefix, model);
  if (torchscript) {
    if (doc.root->kind != Kind::kObject)
      throw Error(fmt::format("{}: TorchScript data.pkl does not hold a module object", source));
    TorchScriptClasses classes(archive, prefix, source);
    walk_torchscript(doc.root, "", 0, classes, out, model);
  } else {
    read_checkpoint(doc.root, out, model);
  }
  return model;
}

Model read_torch_zip(const ByteSource& src) {
  return read_torch_archive(Zip(src), src.name());
}

std::unique_ptr<Archive> open_zip(const ByteSource& src) {
  return std::make_unique<Zip>(src);
}

}  // namespace footprint::detail
