// footprint/dtype.h: element types as stored in model files, and the precisions a user can ask
// "what would the weights take at ...?" about.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace footprint {

// Element types of stored tensors. Names follow torch (torch.float32 -> "float32").
enum class DType {
  kBool,
  kUInt8,
  kInt8,
  kInt16,
  kUInt16,
  kInt32,
  kUInt32,
  kInt64,
  kUInt64,
  kFloat16,
  kBFloat16,
  kFloat32,
  kFloat64,
  kComplex64,
  kComplex128,
  kFloat8E4M3,
  kFloat8E5M2,
};

int dtype_bits(DType t);               // storage bits per element: float32 -> 32
bool dtype_is_floating(DType t);       // true for the float and complex types
std::string_view dtype_name(DType t);  // "float32"
// Parses torch names ("float32", "torch.float32", "float", "half"), safetensors names ("F32",
// "BF16", "F8_E4M3") and footprint's short names ("fp32", "bf16").
std::optional<DType> dtype_parse(std::string_view s);
// The safetensors spelling ("F32"); used in error messages about safetensors files.
std::string_view dtype_safetensors_name(DType t);
// Every name dtype_parse accepts in safetensors spelling, for error messages.
std::string dtype_safetensors_names();

// A precision the user asks about with --dtype. kStored means "as the file stores it".
enum class Precision { kStored, kFp32, kFp16, kBf16, kFp8, kInt8, kInt4 };

std::string_view precision_name(Precision p);  // "fp32", ..., "stored"
std::optional<Precision> precision_parse(std::string_view s);
// Parses "fp32,fp16,int4" (comma separated); throws footprint::Error naming the bad item.
std::vector<Precision> precision_parse_list(std::string_view s);

// Bytes that `numel` elements take: stored as `stored`, at precision `p`. Casting applies only to
// floating-point tensors (integer and bool tensors keep their type, as model.half() does). int4
// packs two elements per byte, rounded up per tensor. Quantization scales are not included.
int64_t precision_bytes(Precision p, DType stored, int64_t numel);

}  // namespace footprint
