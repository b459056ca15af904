// TensorInfo helpers and the name rule for files that do not record parameters vs buffers.
#include "footprint/model.h"

#include <set>
#include <string>

namespace footprint {

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // readers check that this cannot overflow
  return n;
}

int64_t TensorInfo::bytes() const {
  return precision_bytes(Precision::kStored, dtype, numel());
}

std::string tie_key(const TensorInfo& t) {
  if (t.storage.empty()) return "";
  std::string key = t.file + '\n' + t.storage + '\n' + std::to_string(t.storage_offset) + '\n' +
                    std::to_string(int(t.dtype));
  for (int64_t d : t.shape) key += ',' + std::to_string(d);
  key += ';';
  for (int64_t s : t.strides) key += ',' + std::to_string(s);
  return key;
}

std::vector<const TensorInfo*> untied_tensors(const Model& model) {
  std::vector<const TensorInfo*> out;
  std::set<std::string> seen;
  for (const auto& t : model.tensors) {
    std::string key = tie_key(t);
    if (key.empty() || seen.insert(key).second) out.push_back(&t);
  }
  return out;
}

TensorRole role_by_name(const std::string& name, DType dtype) {
  if (!dtype_is_floating(dtype)) return TensorRole::kBuffer;  // only float tensors can require grad
  std::string last = name.substr(name.rfind('.') + 1);
  // torch.nn's persistent float buffers: BatchNorm/InstanceNorm running statistics.
  if (last == "running_mean" || last == "running_var") return TensorRole::kBuffer;
  return TensorRole::kParameter;
}

}  // namespace footprint
