// footprint/params.h: the parameter report (the seed's approaches 1 and 2, exactly): counts,
// bytes at the stored dtypes and at any precision, a per-module roll-up, and every tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "footprint/dtype.h"
#include "footprint/model.h"

namespace footprint {

struct ParamOptions {
  // Extra byte columns, besides the stored dtypes.
  std::vector<Precision> precisions;
  // Module roll-up down to this depth (0 = the root only). Negative means every depth.
  int depth = 1;
};

// A count of tensors, their elements and their bytes. bytes_at[i] is at ParamReport::precisions[i].
struct Tally {
  int64_t tensors = 0;
  int64_t numel = 0;
  int64_t bytes = 0;  // as stored
  std::vector<int64_t> bytes_at;
};

struct DTypeRow {
  DType dtype;
  Tally params;
  Tally buffers;
};

struct ModuleRow {
  std::string path;  // "" for the whole model
  std::string type;  // empty when the file does not say
  int depth = 0;
  Tally params;
  Tally buffers;
};

struct TensorRow {
  TensorInfo tensor;
  std::string tied_to;  // name of the first tensor sharing its storage; empty if not tied
  std::vector<int64_t> bytes_at;
};

struct ParamReport {
  std::string source;
  std::string format;
  RoleSource roles = RoleSource::kRecorded;
  std::vector<Precision> precisions;
  Tally params;     // every parameter, tied ones once
  Tally trainable;  // requires_grad parameters
  Tally frozen;     // parameters that do not require grad
  Tally buffers;
  Tally total;       // params + buffers
  int64_t tied = 0;  // tensors that repeat an earlier one (not counted again)
  std::vector<DTypeRow> by_dtype;
  std::vector<ModuleRow> modules;  // depth-first, parents before children
  std::vector<TensorRow> tensors;  // every tensor, in file order, tied ones marked
  std::vector<std::string> notes;
};

ParamReport params(const Model& model, const ParamOptions& options = {});

}  // namespace footprint
