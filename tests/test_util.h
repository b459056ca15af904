// Helpers shared by the tests: build pickles, safetensors files and zips byte by byte (no binary
// blobs are committed), make temporary folders, and run the footprint command.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "footprint/error.h"

namespace footprint_test {

// What PyTorch said about the generated models: FOOTPRINT_MODELS/expected.json, written by
// tests/gen/make_models.py at test time. Read once.
const nlohmann::json& models_expected();

// The message of the footprint::Error that f() throws, or "" if it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const footprint::Error& e) {
    return e.what();
  }
  return "";
}

// Writes pickle opcodes (protocol 2 unless told otherwise), as torch.save does.
class PickleWriter {
 public:
  explicit PickleWriter(int protocol = 2);
  PickleWriter& raw(const std::string& bytes);
  PickleWriter& op(char opcode);
  PickleWriter& global(const std::string& module, const std::string& name);
  PickleWriter& str(const std::string& s);
  PickleWriter& integer(int32_t v);
  PickleWriter& boolean(bool v);
  PickleWriter& mark();
  PickleWriter& tuple();  // TUPLE: everything since the last mark
  PickleWriter& empty_dict();
  PickleWriter& setitems();
  PickleWriter& reduce();
  PickleWriter& stop();
  // ('storage', torch.<type>, key, 'cpu', numel) as a persistent id, then _rebuild_tensor_v2.
  PickleWriter& tensor(const std::string& storage_type, const std::string& key, int64_t numel,
                       const std::vector<int32_t>& shape, const std::vector<int32_t>& stride,
                       int32_t offset = 0, bool requires_grad = false);
  // OrderedDict() then SETITEMS of name -> tensor for each (name, key, numel, shape).
  struct Entry {
    std::string name, key;
    int64_t numel;
    std::vector<int32_t> shape;
  };
  PickleWriter& state_dict(const std::vector<Entry>& entries,
                           const std::string& storage_type = "FloatStorage");
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

// 8-byte little-endian length, the header, then data_size zero bytes.
std::string safetensors_bytes(const std::string& header, uint64_t data_size);

std::string make_temp_dir();
void write_file(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);
// Stored (uncompressed) zip entries, as torch.save writes them; deflated with `deflate`.
void write_zip(const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& entries,
               bool deflate = false);

struct RunResult {
  int status = -1;
  std::string out, err;
};
// Runs a shell command line, capturing stdout and stderr.
RunResult run(const std::string& command);
std::string shell_quote(const std::string& s);

}  // namespace footprint_test
