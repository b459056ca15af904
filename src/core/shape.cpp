// The --input parser. Written by hand: it is a dozen lines of grammar, and its errors must point
// at the character that is wrong.
#include "footprint/shape.h"

#include <fmt/format.h>

#include "footprint/error.h"

namespace footprint {
namespace {

[[noreturn]] void bad(std::string_view text, size_t pos, const std::string& what) {
  std::string shown(text.substr(0, 80));
  throw Error(
      fmt::format("`input` '{}'{}: {} at position {}; expected sizes like 1x3x224x224 or "
                  "1,3,224,224, inputs separated by ';', an optional ':dtype'",
                  shown, text.size() > 80 ? "..." : "", what, pos + 1));
}

InputSpec parse_one(std::string_view text, size_t start, size_t end) {
  InputSpec spec;
  size_t colon = text.find(':', start);
  size_t dims_end = (colon != std::string_view::npos && colon < end) ? colon : end;
  if (dims_end < end) {
    std::string_view name = text.substr(colon + 1, end - colon - 1);
    spec.dtype = dtype_parse(name);
    if (!spec.dtype) bad(text, colon + 1, fmt::format("unknown dtype '{}'", name));
  }
  size_t pos = start;
  __int128 numel = 1;
  while (true) {
    size_t begin = pos;
    int64_t v = 0;
    while (pos < dims_end && text[pos] >= '0' && text[pos] <= '9') {
      if (v > (INT64_MAX - 9) / 10) bad(text, begin, "a size that does not fit in 64 bits");
      v = v * 10 + (text[pos] - '0');
      ++pos;
    }
    if (pos == begin)
      bad(text, pos,
          pos < dims_end ? fmt::format("'{}' is not a size", text[pos]) : "a size is missing");
    if (v < 1) bad(text, begin, "a size of 0");
    if (spec.shape.size() == kMaxInputDims)
      bad(text, begin, fmt::format("more than {} dimensions (the dimension limit)", kMaxInputDims));
    spec.shape.push_back(v);
    numel *= v;
    if (numel > INT64_MAX / 16) bad(text, begin, "an element count that overflows 64 bits");
    if (pos == dims_end) break;
    if (text[pos] != 'x' && text[pos] != 'X' && text[pos] != ',' && text[pos] != '*')
      bad(text, pos, fmt::format("'{}' between sizes", text[pos]));
    ++pos;
  }
  return spec;
}

}  // namespace

std::vector<InputSpec> parse_inputs(std::string_view text) {
  if (text.size() > kMaxInputText)
    throw Error(
        fmt::format("`input` is {} characters, over the limit of {}", text.size(), kMaxInputText));
  std::vector<InputSpec> out;
  size_t start = 0;
  while (true) {
    size_t end = text.find(';', start);
    if (end == std::string_view::npos) end = text.size();
    if (out.size() == kMaxInputs)
      bad(text, start, fmt::format("more than {} inputs (the input-count limit)", kMaxInputs));
    out.push_back(parse_one(text, start, end));
    if (end == text.size()) break;
    start = end + 1;
  }
  return out;
}

std::string inputs_text(const std::vector<InputSpec>& inputs) {
  std::string out;
  for (const auto& in : inputs) {
    std::string dims;
    for (int64_t d : in.shape) dims += (dims.empty() ? "" : "x") + std::to_string(d);
    out += (out.empty() ? "" : "; ") + dims +
           (in.dtype ? ":" + std::string(dtype_name(*in.dtype)) : "");
  }
  return out;
}

}  // namespace footprint
