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
  int bits;
  bool floating;
  const char* name;         // torch spelling
  const char* safetensors;  // safetensors spelling
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, 8, false, "bool", "BOOL"},
    {DType::kUInt8, 8, false, "uint8", "U8"},
    {DType::kInt8, 8, false, "int8", "I8"},
    {DType::kInt16, 16, false, "int16", "I16"},
    {DType::kUInt16, 16, false, "uint16", "U16"},
    {DType::kInt32, 32, false, "int32", "I32"},
    {DType::kUInt32, 32, false, "uint32", "U32"},
    {DType::kInt64, 64, false, "int64", "I64"},
    {DType::kUInt64, 64, false, "uint64", "U64"},
    {DType::kFloat16, 16, true, "float16", "F16"},
    {DType::kBFloat16, 16, true, "bfloat16", "BF16"},
    {DType::kFloat32, 32, true, "float32", "F32"},
    {DType::kFloat64, 64, true, "float64", "F64"},
    {DType::kComplex64, 64, true, "complex64", "C64"},
    {DType::kComplex128, 128, true, "complex128", "C128"},
    {DType::kFloat8E4M3, 8, true, "float8_e4m3fn", "F8_E4M3"},
    {DType::kFloat8E5M2, 8, true, "float8_e5m2", "F8_E5M2"},
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
  for (const auto& i : kDTypes) out += (out.empty() ? "" : ", ") + std::string(i.safetensors);
  return out;
}

std::optional<DType> dtype_parse(std::string_view s) {
  if (s.substr(0, 6) == "torch.") s.remove_prefix(6);
  for (const auto& i : kDTypes)
    if (s == i.name || s == i.safetensors) return i.type;
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
          fmt::format("--dtype: unknown precision '{}'; expected a comma-separated list of "
                      "fp32, fp16, bf16, fp8, int8, int4, stored",
                      item));
    if (std::find(out.begin(), out.end(), *p) == out.end()) out.push_back(*p);
    start = end + 1;
  }
  return out;
}

int64_t precision_bytes(Precision p, DType stored, int64_t numel) {
  int bits = dtype_bits(stored);
  if (p != Precision::kStored && dtype_is_floating(stored)) {
    for (const auto& i : kPrecisions)
      if (i.p == p) bits = i.bits;
  }
  // Round up per tensor: int4 stores two elements a byte, an odd count wastes half of one.
  return (numel * bits + 7) / 8;
}

}  // namespace footprint
