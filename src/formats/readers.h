// The format readers behind footprint::read_model. Each takes a ByteSource, so tests and fuzzers
// can feed bytes from memory.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "footprint/model.h"
#include "formats/byte_source.h"

namespace footprint::detail {

// Limits on what a file may make a reader allocate; each error message names its limit.
constexpr uint64_t kMaxSafetensorsHeader = 100ull
                                           << 20;   // bytes; the safetensors crate's own limit
constexpr uint64_t kMaxPickleBytes = 256ull << 20;  // bytes of data.pkl, uncompressed
constexpr uint64_t kMaxCodeBytes = 64ull << 20;     // bytes of one TorchScript code file
constexpr int64_t kMaxTensors = 10'000'000;         // tensors in one file
constexpr uint64_t kMaxIndexBytes = 256ull << 20;   // bytes of a sharded checkpoint's index

Model read_safetensors(const ByteSource& src);
Model read_torch_zip(const ByteSource& src);  // torch.save checkpoints and TorchScript archives

// The entries of a torch.save or TorchScript archive, as that reader needs them: their names and
// sizes, and the bytes of the few it reads. Zip files implement it; the checkpoint fuzzer
// (fuzz/fuzz_checkpoint.cpp) fakes one, to reach the walk past the zip's CRC checks.
class Archive {
 public:
  virtual ~Archive() = default;
  virtual std::vector<std::string> names() const = 0;
  virtual std::optional<uint64_t> size(const std::string& entry) const = 0;
  // The entry's bytes; throws footprint::Error if it is missing, over `limit` or unreadable.
  virtual std::string read(const std::string& entry, uint64_t limit,
                           const char* limit_name) const = 0;
};
// Reads an archive's data.pkl (and TorchScript class sources) into a Model named `source`.
Model read_torch_archive(const Archive& archive, const std::string& source);
Model read_sharded(const ByteSource& index);  // *.index.json; shards are opened beside it
// Detects a file's format and reads it; an index is accepted only where allow_index is set, so an
// index cannot name itself (or another index) as a shard.
Model read_path(const std::string& path, bool allow_index);

// Multiplies a shape's dimensions, throwing footprint::Error (naming `what`) on a negative
// dimension or an element count that does not fit in int64.
int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what);

}  // namespace footprint::detail
