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
  // ggml's block-quantized types (GGUF files): a block of dtype_block() weights takes
  // dtype_block_bytes() bytes. Dequantized they are floating point.
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kQ8_0,
  kQ8_1,
  kQ2_K,
  kQ3_K,
  kQ4_K,
  kQ5_K,
  kQ6_K,
  kQ8_K,
  kIQ2_XXS,
  kIQ2_XS,
  kIQ3_XXS,
  kIQ1_S,
  kIQ4_NL,
  kIQ3_S,
  kIQ2_S,
  kIQ4_XS,
  kIQ1_M,
  kTQ1_0,
  kTQ2_0,
  kMXFP4,
  kNVFP4,
  kQ1_0,
};

// Storage bits per element: float32 -> 32; 0 for the block-quantized types (dtype_block).
int dtype_bits(DType t);
int64_t dtype_block(DType t);        // elements per block: 1, or 32, 64, 128, 256 for ggml's
int64_t dtype_block_bytes(DType t);  // bytes per block: float32 -> 4, Q4_K -> 144
// The ggml type id of a GGUF tensor (ggml.h's enum ggml_type), or nullopt for an id footprint
// does not know. F32, F16, BF16, F64 and I8-I64 map to the plain types.
std::optional<DType> dtype_from_ggml(uint32_t id);
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

// Bytes that `numel` elements take: stored as `stored` (whole blocks for the block-quantized
// types), at precision `p`. Casting applies only to
// floating-point tensors (integer and bool tensors keep their type, as model.half() does). int4
// packs two elements per byte, rounded up per tensor. Quantization scales are not included.
int64_t precision_bytes(Precision p, DType stored, int64_t numel);

}  // namespace footprint
