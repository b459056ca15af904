// safetensors (https://github.com/huggingface/safetensors), read from its header only:
//   bytes 0-7    N, the header length, unsigned 64-bit little-endian
//   bytes 8..8+N a JSON object: {"__metadata__": {str: str}, "<name>": {"dtype": "F32",
//                "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}
//   the rest     the tensors' bytes; offsets are relative to the start of this region
// Checks, as the safetensors crate makes them: N is at most 100 MiB and inside the file; every
// dtype is known; end - begin = numel x element size; the tensors tile the data region exactly,
// without overlap or gap; no name appears twice.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "footprint/error.h"
#include "formats/readers.h"

namespace footprint::detail {
namespace {

using nlohmann::ordered_json;

int64_t non_negative(const ordered_json& v, const std::string& where) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX))
    return v.get<int64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.get<int64_t>();
  throw Error(fmt::format("{} is {}; expected a non-negative integer below 2^63", where, v.dump()));
}

struct Span {
  int64_t begin, end;
  std::string name;
};

}  // namespace

Model read_safetensors(const ByteSource& src) {
  const std::string& file = src.name();
  uint64_t size = src.size();
  if (size < 8)
    throw Error(
        fmt::format("{}: {} bytes is too short for a safetensors file (an 8-byte header length, "
                    "then a JSON header)",
                    file, size));
  unsigned char len_bytes[8];
  src.read(0, len_bytes, 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > kMaxSafetensorsHeader)
    throw Error(fmt::format(
        "{}: safetensors header length is {} bytes, over the header-size limit of {} bytes", file,
        n, kMaxSafetensorsHeader));
  if (n > size - 8)
    throw Error(fmt::format(
        "{}: safetensors header length is {} bytes but only {} follow it (truncated file?)", file,
        n, size - 8));
  std::string text = src.read_string(8, n);

  // Parse once, noting duplicate top-level names, which a plain parse would silently merge.
  std::set<std::string> seen;
  std::string duplicate;
  ordered_json::parser_callback_t cb = [&](int depth, ordered_json::parse_event_t event,
                                           ordered_json& parsed) {
    if (depth == 1 && event == ordered_json::parse_event_t::key) {
      std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  ordered_json header;
  try {
    header = ordered_json::parse(text, cb);
  } catch (const ordered_json::exception& e) {
    std::string why = e.what();
    throw Error(fmt::format("{}: safetensors header is not valid JSON ({})", file,
                            why.substr(why.find(']') + 2)));
  }
  if (!header.is_object())
    throw Error(fmt::format("{}: safetensors header is not a JSON object", file));
  if (!duplicate.empty())
    throw Error(fmt::format("{}: safetensors header names tensor '{}' twice", file, duplicate));
  if (static_cast<int64_t>(header.size()) > kMaxTensors)
    throw Error(
        fmt::format("{}: safetensors header lists {} tensors, over the tensor-count limit of {}",
                    file, header.size(), kMaxTensors));

  const int64_t data_size = static_cast<int64_t>(size - 8 - n);
  Model model;
  model.source = file;
  model.format = "safetensors";
  model.roles = RoleSource::kByName;
  std::vector<Span> spans;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        throw Error(fmt::format("{}: safetensors __metadata__ is not an object of strings", file));
      continue;
    }
    std::string where = fmt::format("{}: tensor '{}'", file, name);
    if (!entry.is_object())
      throw Error(fmt::format("{} is not an object with dtype, shape and data_offsets", where));
    auto dt = entry.find("dtype");
    auto sh = entry.find("shape");
    auto off = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string())
      throw Error(fmt::format("{} has no string field 'dtype'", where));
    if (sh == entry.end() || !sh->is_array())
      throw Error(fmt::format("{} has no array field 'shape'", where));
    if (off == entry.end() || !off->is_array() || off->size() != 2)
      throw Error(fmt::format("{} has no field 'data_offsets' of two integers", where));
    std::string dtype_text = dt->get<std::string>();
    auto dtype = dtype_parse(dtype_text);
    if (!dtype || dtype_safetensors_name(*dtype) != dtype_text)
      throw Error(fmt::format("{} has unknown dtype '{}'; expected one of {}", where, dtype_text,
                              dtype_safetensors_names()));
    TensorInfo t;
    t.name = name;
    t.dtype = *dtype;
    t.role = role_by_name(name, *dtype);
    t.trainable = t.role == TensorRole::kParameter;
    for (size_t i = 0; i < sh->size(); ++i)
      t.shape.push_back(non_negative((*sh)[i], where + " shape[" + std::to_string(i) + "]"));
    int64_t numel = checked_numel(t.shape, where);
    int64_t begin = non_negative((*off)[0], where + " data_offsets[0]");
    int64_t end = non_negative((*off)[1], where + " data_offsets[1]");
    if (end < begin)
      throw Error(fmt::format("{} has data_offsets [{}, {}] that end before they begin", where,
                              begin, end));
    if (end > data_size)
      throw Error(fmt::format("{} has data_offsets [{}, {}] past the end of the data ({} bytes)",
                              where, begin, end, data_size));
    __int128 nbytes = static_cast<__int128>(numel) * (dtype_bits(*dtype) / 8);
    if (nbytes != end - begin)
      throw Error(fmt::format(
          "{} has shape {} of {} ({} bytes) but data_offsets [{}, {}] span {} bytes", where,
          sh->dump(), dtype_text, static_cast<int64_t>(std::min<__int128>(nbytes, INT64_MAX)),
          begin, end, end - begin));
    t.storage = fmt::format("@{}", begin);  // identity: two names on the same bytes would be tied
    spans.push_back({begin, end, name});
    model.tensors.push_back(std::move(t));
  }
  std::vector<size_t> order(spans.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(spans[a].begin, spans[a].end) < std::tie(spans[b].begin, spans[b].end);
  });
  int64_t covered = 0;
  const Span* previous = nullptr;
  for (size_t i : order) {
    const Span& s = spans[i];
    if (s.begin < covered)
      throw Error(fmt::format("{}: tensors '{}' and '{}' overlap (bytes {} to {})", file,
                              previous->name, s.name, s.begin, covered));
    if (s.begin > covered)
      throw Error(fmt::format("{}: no tensor covers data bytes {} to {} (before tensor '{}')", file,
                              covered, s.begin, s.name));
    covered = s.end;
    previous = &s;
  }
  if (covered != data_size)
    throw Error(
        fmt::format("{}: the tensors cover {} bytes of data but the file holds {} after the header",
                    file, covered, data_size));
  // File order: by data offset, as the tensors lie on disk.
  std::vector<TensorInfo> sorted;
  for (size_t i : order) sorted.push_back(std::move(model.tensors[i]));
  model.tensors = std::move(sorted);
  return model;
}

int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what) {
  __int128 n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0)
      throw Error(fmt::format("{} has negative dimension {} at index {}", what, shape[i], i));
    n *= shape[i];
    if (n > INT64_MAX / 16)  // leaves room for bytes = numel * (up to 16-byte elements)
      throw Error(fmt::format("{} has shape whose element count overflows 64 bits", what));
  }
  return static_cast<int64_t>(n);
}

}  // namespace footprint::detail
