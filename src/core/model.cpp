// TensorInfo helpers and the name rule for files that do not record parameters vs buffers.
#include "footprint/model.h"

namespace footprint {

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // readers check that this cannot overflow
  return n;
}

int64_t TensorInfo::bytes() const {
  return precision_bytes(Precision::kStored, dtype, numel());
}

TensorRole role_by_name(const std::string& name, DType dtype) {
  if (!dtype_is_floating(dtype)) return TensorRole::kBuffer;  // only float tensors can require grad
  std::string last = name.substr(name.rfind('.') + 1);
  // torch.nn's persistent float buffers: BatchNorm/InstanceNorm running statistics.
  if (last == "running_mean" || last == "running_var") return TensorRole::kBuffer;
  return TensorRole::kParameter;
}

}  // namespace footprint
