// Format detection: the file's first bytes decide, with the name as a tie-breaker
// (".safetensors", ".index.json").
#include <fmt/format.h>

#include <cstring>

#include "footprint/error.h"
#include "footprint/read.h"
#include "formats/readers.h"

namespace footprint {
namespace {

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

namespace detail {

Model read_path(const std::string& path, bool allow_index) {
  auto src = detail::open_file(path);
  if (src->size() == 0) throw Error(fmt::format("{}: empty file", path));
  auto sharded = [&]() {
    if (!allow_index)
      throw Error(
          fmt::format("{}: a shard that is itself an index; shards must be tensor files", path));
    return detail::read_sharded(*src);
  };
  if (ends_with(path, ".index.json")) return sharded();
  if (ends_with(path, ".safetensors")) return detail::read_safetensors(*src);
  if (ends_with(path, ".onnx")) return detail::read_onnx(*src);
  unsigned char head[9] = {};
  size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof head, src->size()));
  src->read(0, head, n);
  if (n >= 4 && head[0] == 'P' && head[1] == 'K' && (head[2] == 3 || head[2] == 5))
    return detail::read_torch_zip(*src);
  if (n >= 9 && head[8] == '{') return detail::read_safetensors(*src);
  if (n >= 2 && head[0] == 0x80 && head[1] <= 5)
    throw Error(fmt::format(
        "{}: a legacy (pre-1.6, non-zip) torch.save file, which footprint does not read; "
        "re-save it with torch.save from torch >= 1.6",
        path));
  if (n >= 4 && std::memcmp(head, "GGUF", 4) == 0) return detail::read_gguf_model(*src);
  if (head[0] == '{') {
    std::string text =
        src->read_string(0, static_cast<size_t>(std::min<uint64_t>(src->size(), 1 << 20)));
    if (text.find("\"weight_map\"") != std::string::npos) return sharded();
    throw Error(
        fmt::format("{}: a JSON file without 'weight_map'; expected a sharded checkpoint index "
                    "(model.safetensors.index.json)",
                    path));
  }
  throw Error(fmt::format(
      "{}: unknown format; expected a TorchScript or torch.save zip (.pt, .pth, .bin), a "
      "torch.export program (.pt2), a .safetensors, .gguf or .onnx file, or a sharded "
      "checkpoint index (*.index.json)",
      path));
}

}  // namespace detail

Model read_model(const std::string& path) {
  return detail::read_path(path, true);
}

}  // namespace footprint
