// Element types and precisions: sizes, names and parsing.
#include "footprint/dtype.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "footprint/error.h"

namespace footprint {
namespace {

struct DTypeInfo {
  DType type;
  int bits;  // 0 for a block-quantized type
  bool floating;
  const char* name;         // torch spelling (ggml's for its block types)
  const char* safetensors;  // safetensors spelling; "" where safetensors has none
  int ggml = -1;            // ggml.h's enum ggml_type, where GGUF stores it
  int64_t block = 1;        // elements per block
  int64_t block_bytes = 0;  // bytes per block; bits / 8 for the plain types
};

// ggml's block sizes and bytes are ggml.c's type_traits (blck_size, type_size), as the gguf
// package's GGML_QUANT_SIZES gives them; tests/formats_test.py holds this table to that one.
constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, 8, false, "bool", "BOOL"},
    {DType::kUInt8, 8, false, "uint8", "U8"},
    {DType::kInt8, 8, false, "int8", "I8", 24},
    {DType::kInt16, 16, false, "int16", "I16", 25},
    {DType::kUInt16, 16, false, "uint16", "U16"},
    {DType::kInt32, 32, false, "int32", "I32", 26},
    {DType::kUInt32, 32, false, "uint32", "U32"},
    {DType::kInt64, 64, false, "int64", "I64", 27},
    {DType::kUInt64, 64, false, "uint64", "U64"},
    {DType::kFloat16, 16, true, "float16", "F16", 1},
    {DType::kBFloat16, 16, true, "bfloat16", "BF16", 30},
    {DType::kFloat32, 32, true, "float32", "F32", 0},
    {DType::kFloat64, 64, true, "float64", "F64", 28},
    {DType::kComplex64, 64, true, "complex64", "C64"},
    {DType::kComplex128, 128, true, "complex128", "C128"},
    {DType::kFloat8E4M3, 8, true, "float8_e4m3fn", "F8_E4M3"},
    {DType::kFloat8E5M2, 8, true, "float8_e5m2", "F8_E5M2"},
    {DType::kQ4_0, 0, true, "Q4_0", "", 2, 32, 18},
    {DType::kQ4_1, 0, true, "Q4_1", "", 3, 32, 20},
    {DType::kQ5_0, 0, true, "Q5_0", "", 6, 32, 22},
    {DType::kQ5_1, 0, true, "Q5_1", "", 7, 32, 24},
    {DType::kQ8_0, 0, true, "Q8_0", "", 8, 32, 34},
    {DType::kQ8_1, 0, true, "Q8_1", "", 9, 32, 40},
    {DType::kQ2_K, 0, true, "Q2_K", "", 10, 256, 84},
    {DType::kQ3_K, 0, true, "Q3_K", "", 11, 256, 110},
    {DType::kQ4_K, 0, true, "Q4_K", "", 12, 256, 144},
    {DType::kQ5_K, 0, true, "Q5_K", "", 13, 256, 176},
    {DType::kQ6_K, 0, true, "Q6_K", "", 14, 256, 210},
    {DType::kQ8_K, 0, true, "Q8_K", "", 15, 256, 292},
    {DType::kIQ2_XXS, 0, true, "IQ2_XXS", "", 16, 256, 66},
    {DType::kIQ2_XS, 0, true, "IQ2_XS", "", 17, 256, 74},
    {DType::kIQ3_XXS, 0, true, "IQ3_XXS", "", 18, 256, 98},
    {DType::kIQ1_S, 0, true, "IQ1_S", "", 19, 256, 50},
    {DType::kIQ4_NL, 0, true, "IQ4_NL", "", 20, 32, 18},
    {DType::kIQ3_S, 0, true, "IQ3_S", "", 21, 256, 110},
    {DType::kIQ2_S, 0, true, "IQ2_S", "", 22, 256, 82},
    {DType::kIQ4_XS, 0, true, "IQ4_XS", "", 23, 256, 136},
    {DType::kIQ1_M, 0, true, "IQ1_M", "", 29, 256, 56},
    {DType::kTQ1_0, 0, true, "TQ1_0", "", 34, 256, 54},
    {DType::kTQ2_0, 0, true, "TQ2_0", "", 35, 256, 66},
    {DType::kMXFP4, 0, true, "MXFP4", "", 39, 32, 17},
    {DType::kNVFP4, 0, true, "NVFP4", "", 40, 64, 36},
    {DType::kQ1_0, 0, true, "Q1_0", "", 41, 128, 18},
};

const DTypeInfo& info(DType t) {
  for (const auto& i : kDTypes)
    if (i.type == t) return i;
  return kDTypes[0];  // unreachable: every enumerator is in the table
}

// Other spellings torch and users write.
struct Alias {
  const char* name;
  DType type;
};
constexpr Alias kAliases[] = {
    {"float", DType::kFloat32},       {"fp32", DType::kFloat32},        {"half", DType::kFloat16},
    {"fp16", DType::kFloat16},        {"bf16", DType::kBFloat16},       {"double", DType::kFloat64},
    {"fp64", DType::kFloat64},        {"long", DType::kInt64},          {"int", DType::kInt32},
    {"short", DType::kInt16},         {"byte", DType::kUInt8},          {"char", DType::kInt8},
    {"cfloat", DType::kComplex64},    {"cdouble", DType::kComplex128},  {"fp8", DType::kFloat8E4M3},
    {"fp8_e4m3", DType::kFloat8E4M3}, {"fp8_e5m2", DType::kFloat8E5M2},
};

struct PrecisionInfo {
  Precision p;
  const char* name;
  int bits;  // 0 for kStored
};
constexpr PrecisionInfo kPrecisions[] = {
    {Precision::kStored, "stored", 0}, {Precision::kFp32, "fp32", 32},
    {Precision::kFp16, "fp16", 16},    {Precision::kBf16, "bf16", 16},
    {Precision::kFp8, "fp8", 8},       {Precision::kInt8, "int8", 8},
    {Precision::kInt4, "int4", 4},
};

}  // namespace

int dtype_bits(DType t) {
  return info(t).bits;
}
int64_t dtype_block(DType t) {
  return info(t).block;
}
int64_t dtype_block_bytes(DType t) {
  const DTypeInfo& i = info(t);
  return i.bits ? i.bits / 8 : i.block_bytes;
}
std::optional<DType> dtype_from_ggml(uint32_t id) {
  for (const auto& i : kDTypes)
    if (i.ggml >= 0 && uint32_t(i.ggml) == id) return i.type;
  return std::nullopt;
}
bool dtype_is_floating(DType t) {
  return info(t).floating;
}
std::string_view dtype_name(DType t) {
  return info(t).name;
}
std::string_view dtype_safetensors_name(DType t) {
  return info(t).safetensors;
}

std::string dtype_safetensors_names() {
  std::string out;
  for (const auto& i : kDTypes)
    if (*i.safetensors) out += (out.empty() ? "" : ", ") + std::string(i.safetensors);
  return out;
}

std::optional<DType> dtype_parse(std::string_view s) {
  if (s.substr(0, 6) == "torch.") s.remove_prefix(6);
  for (const auto& i : kDTypes)
    if (i.bits && (s == i.name || s == i.safetensors)) return i.type;
  for (const auto& a : kAliases)
    if (s == a.name) return a.type;
  return std::nullopt;
}

std::string_view precision_name(Precision p) {
  for (const auto& i : kPrecisions)
    if (i.p == p) return i.name;
  return "stored";
}

std::optional<Precision> precision_parse(std::string_view s) {
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& i : kPrecisions)
    if (lower == i.name) return i.p;
  if (lower == "float32" || lower == "float") return Precision::kFp32;
  if (lower == "float16" || lower == "half") return Precision::kFp16;
  if (lower == "bfloat16") return Precision::kBf16;
  return std::nullopt;
}

std::vector<Precision> precision_parse_list(std::string_view s) {
  std::vector<Precision> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string_view::npos) end = s.size();
    std::string_view item = s.substr(start, end - start);
    auto p = precision_parse(item);
    if (!p)
      throw Error(
          fmt::format("`precisions`: unknown precision '{}'; expected a comma-separated list of "
                      "fp32, fp16, bf16, fp8, int8, int4, stored",
                      item));
    if (std::find(out.begin(), out.end(), *p) == out.end()) out.push_back(*p);
    start = end + 1;
  }
  return out;
}

int64_t precision_bytes(Precision p, DType stored, int64_t numel) {
  int bits = dtype_bits(stored);
  if (bits == 0 && p == Precision::kStored) {
    int64_t block = dtype_block(stored);
    return (numel + block - 1) / block * dtype_block_bytes(stored);
  }
  if (p != Precision::kStored && dtype_is_floating(stored)) {
    for (const auto& i : kPrecisions)
      if (i.p == p) bits = i.bits;
  }
  // Round up per tensor: int4 stores two elements a byte, an odd count wastes half of one. In
  // 128 bits: numel * bits overflows 64 long before the bytes do.
  return int64_t((__int128(numel) * bits + 7) / 8);
}

}  // namespace footprint
