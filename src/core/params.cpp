// The parameter report: every tensor counted once (tied tensors are detected by storage identity),
// split into parameters and buffers, trainable and frozen, per dtype and per module.
#include "footprint/params.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace footprint {
namespace {

Tally empty_tally(size_t n_precisions) {
  Tally t;
  t.bytes_at.assign(n_precisions, 0);
  return t;
}

void add(Tally& tally, const TensorRow& row) {
  tally.tensors += 1;
  tally.numel += row.tensor.numel();
  tally.bytes += row.tensor.bytes();
  for (size_t i = 0; i < row.bytes_at.size(); ++i) tally.bytes_at[i] += row.bytes_at[i];
}

// "a.b.weight" -> {"", "a", "a.b"}
std::vector<std::string> ancestors(const std::string& name) {
  std::vector<std::string> out{""};
  for (size_t pos = name.find('.'); pos != std::string::npos; pos = name.find('.', pos + 1))
    out.push_back(name.substr(0, pos));
  return out;
}

int path_depth(const std::string& path) {
  return path.empty() ? 0 : 1 + static_cast<int>(std::count(path.begin(), path.end(), '.'));
}

// Builds the module rows in tree order: each parent is followed by its children, in the order
// their first tensor appears in the file.
class ModuleRollup {
 public:
  ModuleRollup(const Model& model, int max_depth, size_t n_precisions)
      : model_(model), max_depth_(max_depth), n_(n_precisions) {
    row("");
  }

  void add_tensor(const TensorRow& r) {
    std::string parent;
    for (const auto& path : ancestors(r.tensor.name)) {
      if (max_depth_ >= 0 && path_depth(path) > max_depth_) break;
      size_t idx = row(path, parent);
      add(r.tensor.role == TensorRole::kParameter ? rows_[idx].params : rows_[idx].buffers, r);
      parent = path;
    }
  }

  std::vector<ModuleRow> rows() const {
    std::vector<ModuleRow> out;
    flatten(0, out);
    return out;
  }

 private:
  size_t row(const std::string& path, const std::string& parent = "") {
    auto it = index_.find(path);
    if (it != index_.end()) return it->second;
    ModuleRow m;
    m.path = path;
    m.depth = path_depth(path);
    auto type = model_.module_types.find(path);
    if (type != model_.module_types.end()) m.type = type->second;
    m.params = empty_tally(n_);
    m.buffers = empty_tally(n_);
    rows_.push_back(m);
    children_.emplace_back();
    size_t idx = rows_.size() - 1;
    index_[path] = idx;
    if (idx != 0) children_[index_.at(parent)].push_back(idx);
    return idx;
  }

  void flatten(size_t idx, std::vector<ModuleRow>& out) const {
    out.push_back(rows_[idx]);
    for (size_t child : children_[idx]) flatten(child, out);
  }

  const Model& model_;
  int max_depth_;
  size_t n_;
  std::vector<ModuleRow> rows_;
  std::vector<std::vector<size_t>> children_;
  std::map<std::string, size_t> index_;
};

}  // namespace

ParamReport params(const Model& model, const ParamOptions& options) {
  const size_t n = options.precisions.size();
  ParamReport r;
  r.source = model.source;
  r.format = model.format;
  r.roles = model.roles;
  r.precisions = options.precisions;
  r.notes = model.notes;
  r.params = r.trainable = r.frozen = r.buffers = r.total = empty_tally(n);

  std::map<std::string, std::string> first_with;  // tie_key -> the first tensor's name
  std::map<DType, DTypeRow> by_dtype;
  ModuleRollup rollup(model, options.depth, n);

  for (const auto& t : model.tensors) {
    TensorRow row;
    row.tensor = t;
    for (Precision p : options.precisions)
      row.bytes_at.push_back(precision_bytes(p, t.dtype, t.numel()));
    if (std::string key = tie_key(t); !key.empty()) {
      auto [it, inserted] = first_with.emplace(key, t.name);
      if (!inserted) {
        row.tied_to = it->second;
        r.tied += 1;
        r.tensors.push_back(std::move(row));
        continue;
      }
    }
    bool is_param = t.role == TensorRole::kParameter;
    add(is_param ? r.params : r.buffers, row);
    if (is_param) add(t.trainable ? r.trainable : r.frozen, row);
    add(r.total, row);
    auto d = by_dtype.find(t.dtype);
    if (d == by_dtype.end())
      d = by_dtype.emplace(t.dtype, DTypeRow{t.dtype, empty_tally(n), empty_tally(n)}).first;
    add(is_param ? d->second.params : d->second.buffers, row);
    rollup.add_tensor(row);
    r.tensors.push_back(std::move(row));
  }
  for (auto& [dtype, row] : by_dtype) r.by_dtype.push_back(row);
  std::stable_sort(r.by_dtype.begin(), r.by_dtype.end(), [](const DTypeRow& a, const DTypeRow& b) {
    return a.params.bytes + a.buffers.bytes > b.params.bytes + b.buffers.bytes;  // largest first
  });
  r.modules = rollup.rows();
  if (r.tied > 0)
    r.notes.push_back(std::to_string(r.tied) +
                      " tied tensor(s) share storage with an earlier one and are counted once");
  if (model.roles == RoleSource::kByName && r.buffers.tensors > 0)
    r.notes.push_back(
        "this format does not record parameters vs buffers: running_mean, running_var and "
        "non-floating tensors are counted as buffers");
  return r;
}

}  // namespace footprint
