// footprint/model.h: what a model is made of, as read from a file or a C++ module: its tensors
// (name, shape, dtype, role, storage identity) and the types of its modules where the source says.
// Everything downstream reads only this.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "footprint/dtype.h"

namespace footprint {

enum class TensorRole {
  kParameter,  // nn.Parameter (or classified as one: see RoleSource)
  kBuffer,     // register_buffer
};

// How the file told parameters from buffers.
enum class RoleSource {
  kRecorded,  // the source records it (TorchScript, a C++ module)
  kByName,    // inferred: a state_dict or safetensors file does not record it (docs/formats.md)
};

struct TensorInfo {
  std::string name;            // dotted path, "layer1.0.conv1.weight"
  std::vector<int64_t> shape;  // empty for a scalar
  DType dtype = DType::kFloat32;
  TensorRole role = TensorRole::kParameter;
  bool trainable = true;  // requires_grad; buffers are never trainable
  // Storage identity: tensors with the same storage, offset, shape and strides are the same tensor
  // (tied weights). An empty storage means "unknown, assume unique".
  std::string storage;
  int64_t storage_offset = 0;  // in elements
  std::vector<int64_t> strides;
  std::string file;  // the file holding it (for sharded checkpoints); empty = the model's source

  int64_t numel() const;
  int64_t bytes() const;  // numel * element size, as stored
};

struct Model {
  std::string source;  // the path it was read from, or a description ("torch::nn::Module")
  std::string format;  // "TorchScript", "torch.save checkpoint", "safetensors", ...
  RoleSource roles = RoleSource::kRecorded;
  std::vector<TensorInfo> tensors;                  // in file order
  std::map<std::string, std::string> module_types;  // module path ("" = root) -> type name
  std::vector<std::string> notes;                   // things the reader wants the user to know
};

// "Tied", defined once for every report (params, summary, memory, llm): a tensor is tied to an
// earlier one when both view the same bytes the same way, the same storage in the same file at
// the same offset, shape, strides and dtype. tie_key is that identity ("" for a tensor with no
// storage identity, which is never tied); untied_tensors lists each tensor once, in model order,
// leaving out the repeats.
std::string tie_key(const TensorInfo& t);
std::vector<const TensorInfo*> untied_tensors(const Model& model);

// Parameter or buffer by the name's last component, for files that do not record it: BatchNorm's
// running_mean, running_var and num_batches_tracked, and every non-floating tensor, are buffers.
TensorRole role_by_name(const std::string& name, DType dtype);

}  // namespace footprint
