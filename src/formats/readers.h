// The format readers behind footprint::read_model. Each takes a ByteSource, so tests and fuzzers
// can feed bytes from memory.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "footprint/hf_config.h"
#include "footprint/model.h"
#include "footprint/shape.h"
#include "footprint/trace.h"
#include "formats/byte_source.h"

namespace footprint::detail {

// Limits on what a file may make a reader allocate; each error message names its limit.
constexpr uint64_t kMaxSafetensorsHeader = 100ull
                                           << 20;   // bytes; the safetensors crate's own limit
constexpr uint64_t kMaxPickleBytes = 256ull << 20;  // bytes of data.pkl, uncompressed
constexpr uint64_t kMaxCodeBytes = 64ull << 20;     // bytes of one TorchScript code file
constexpr int64_t kMaxTensors = 10'000'000;         // tensors in one file
constexpr uint64_t kMaxIndexBytes = 256ull << 20;   // bytes of a sharded checkpoint's index

constexpr uint64_t kMaxGgufString = 64ull << 20;  // bytes of one GGUF string
constexpr int kMaxGgufNesting = 8;                // GGUF arrays inside arrays

constexpr uint64_t kMaxOnnxString = 64ull << 20;  // bytes of one ONNX name or attribute string
constexpr int kMaxOnnxNesting = 64;               // subgraphs inside subgraphs
constexpr uint64_t kMaxPt2Json = 64ull << 20;     // bytes of a .pt2's model or weights JSON
constexpr int kMaxPt2Nesting = 128;               // JSON arrays/objects inside each other
constexpr int64_t kMaxPt2Nodes = 1 << 20;         // nodes of a program's graph
constexpr int kMaxModuleDepth = 64;               // modules in one node's nn_module_stack

Model read_safetensors(const ByteSource& src);
Model read_onnx(const ByteSource& src);  // onnx.cpp

// GGUF (gguf.cpp): the header's metadata, kept for the scalars (arrays keep their element type
// and count), and the tensors as a Model.
struct GgufValue {
  uint32_t type = 0;  // gguf.md's value type: 0 u8 ... 8 string, 9 array, ... 12 f64
  int64_t i = 0;      // integers (u64 above 2^63 - 1 saturate here; `u` has them)
  uint64_t u = 0;     // unsigned integers
  double f = 0;       // floats, and every number as a double
  bool b = false;
  std::string s;
  uint32_t array_type = 0;
  uint64_t array_count = 0;
};
struct GgufFile {
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // where the tensor data starts
  std::map<std::string, GgufValue> metadata;
  Model model;
  const GgufValue* get(const std::string& key) const;
};
GgufFile read_gguf(const ByteSource& src);
Model read_gguf_model(const ByteSource& src);
// The transformer a GGUF file's metadata describes (llama and qwen2 architectures), for
// `footprint llm FILE.gguf`: <arch>.embedding_length, block_count, attention.head_count(_kv),
// feed_forward_length, context_length; the vocabulary from token_embd.weight.
TransformerConfig config_from_gguf(const GgufFile& g);
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
Model read_sharded(const ByteSource& index);
// A zip file as an Archive (torch_zip.cpp); `src` must outlive it.
std::unique_ptr<Archive> open_zip(const ByteSource& src);

// torch.export programs (pt2.cpp): archives with a <name>/archive_format entry.
bool is_pt2(const Archive& archive);
Model read_pt2(const Archive& archive, const std::string& source);
// The program's tensors, and its graph as a Trace (one forward op per node, the module calls of
// its nn_module_stack, the outputs' allocations and frees after their last use): what `footprint
// summary FILE.pt2` reports without LibTorch. `dynamic` when a size is symbolic.
struct Pt2Program {
  Model model;
  Trace trace;
  std::vector<InputSpec> inputs;  // the user's inputs, as exported
  bool dynamic = false;
};
// `seconds` > 0: the reading stops with footprint::Error past that many seconds (--time-limit).
Pt2Program read_pt2_program(const std::string& path, double seconds = 0);
Pt2Program read_pt2_archive(const Archive& archive, const std::string& source, double seconds = 0);
// The program as the Python package's runner reads it (python/footprint/_pt2.py), as JSON that
// footprint wrote itself from the checked fields: its parameters, buffers and constants
// (name, graph value, shape, torch dtype, strides, storage), its inputs (dims: a number, or
// {"symbol", "hint"}), its range constraints ("symbols"), its module calls ("calls": path, type,
// parent, from the nodes' nn_module_stack), its nodes (target "aten::op.overload" or a Python
// operator on sizes; args, kwargs and outputs, with {"ref": value} for what the graph made) and
// its outputs and mutations. Throws footprint::Error for anything the runner could not run.
std::string pt2_document(const Archive& archive, const std::string& source, double seconds = 0);
std::string pt2_document_file(const std::string& path, double seconds = 0);

// Rejects JSON that nests deeper than `limit` before it is parsed: a scan of the brackets
// outside strings (hf_config.cpp).
void check_json_nesting(std::string_view text, const std::string& name,
                        int limit);  // *.index.json; shards are opened beside it
// Detects a file's format and reads it; an index is accepted only where allow_index is set, so an
// index cannot name itself (or another index) as a shard.
Model read_path(const std::string& path, bool allow_index);

// Multiplies a shape's dimensions, throwing footprint::Error (naming `what`) on a negative
// dimension or an element count that does not fit in int64.
int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what);

}  // namespace footprint::detail
