#include "test_util.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <zip.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace footprint_test {

#ifdef FOOTPRINT_MODELS  // not in the fuzzers' seed maker, which shares this file
const nlohmann::json& models_expected() {
  static const nlohmann::json j = [] {
    std::ifstream f(std::string(FOOTPRINT_MODELS) + "/expected.json");
    return nlohmann::json::parse(f);
  }();
  return j;
}
#endif

namespace {

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

}  // namespace

PickleWriter::PickleWriter(int protocol) {
  out_ += '\x80';
  out_ += static_cast<char>(protocol);
}
PickleWriter& PickleWriter::raw(const std::string& bytes) {
  out_ += bytes;
  return *this;
}
PickleWriter& PickleWriter::op(char opcode) {
  out_ += opcode;
  return *this;
}
PickleWriter& PickleWriter::global(const std::string& module, const std::string& name) {
  out_ += 'c' + module + '\n' + name + '\n';
  return *this;
}
PickleWriter& PickleWriter::str(const std::string& s) {
  out_ += 'X' + le32(static_cast<uint32_t>(s.size())) + s;
  return *this;
}
PickleWriter& PickleWriter::integer(int32_t v) {
  out_ += 'J' + le32(static_cast<uint32_t>(v));
  return *this;
}
PickleWriter& PickleWriter::boolean(bool v) {
  return op(v ? '\x88' : '\x89');
}
PickleWriter& PickleWriter::mark() {
  return op('(');
}
PickleWriter& PickleWriter::tuple() {
  return op('t');
}
PickleWriter& PickleWriter::empty_dict() {
  return op('}');
}
PickleWriter& PickleWriter::setitems() {
  return op('u');
}
PickleWriter& PickleWriter::reduce() {
  return op('R');
}
PickleWriter& PickleWriter::stop() {
  return op('.');
}

PickleWriter& PickleWriter::tensor(const std::string& storage_type, const std::string& key,
                                   int64_t numel, const std::vector<int32_t>& shape,
                                   const std::vector<int32_t>& stride, int32_t offset,
                                   bool requires_grad) {
  global("torch._utils", "_rebuild_tensor_v2").mark();
  mark()
      .str("storage")
      .global("torch", storage_type)
      .str(key)
      .str("cpu")
      .integer(static_cast<int32_t>(numel))
      .tuple();
  op('Q');  // BINPERSID
  integer(offset);
  mark();
  for (int32_t d : shape) integer(d);
  tuple();
  mark();
  for (int32_t s : stride) integer(s);
  tuple();
  boolean(requires_grad);
  global("collections", "OrderedDict").op(')').reduce();
  tuple();
  return reduce();
}

PickleWriter& PickleWriter::state_dict(const std::vector<Entry>& entries,
                                       const std::string& storage_type) {
  global("collections", "OrderedDict").op(')').reduce().mark();
  for (const auto& e : entries) {
    std::vector<int32_t> stride(e.shape.size(), 1);
    for (int i = static_cast<int>(e.shape.size()) - 2; i >= 0; --i)
      stride[i] = stride[i + 1] * e.shape[i + 1];
    str(e.name).tensor(storage_type, e.key, e.numel, e.shape, stride);
  }
  return setitems();
}

std::string safetensors_bytes(const std::string& header, uint64_t data_size) {
  std::string s(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s + header + std::string(data_size, '\0');
}

std::string make_temp_dir() {
  std::string tmpl = "/tmp/footprint-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_zip(const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& entries, bool deflate) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!z) throw std::runtime_error("zip_open failed for " + path);
  for (const auto& [name, data] : entries) {
    zip_source_t* src = zip_source_buffer(z, data.data(), data.size(), 0);
    zip_int64_t idx = zip_file_add(z, name.c_str(), src, ZIP_FL_OVERWRITE);
    if (idx < 0) throw std::runtime_error("zip_file_add failed");
    zip_set_file_compression(z, static_cast<zip_uint64_t>(idx),
                             deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  if (zip_close(z) != 0) throw std::runtime_error("zip_close failed for " + path);
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

RunResult run(const std::string& command) {
  std::string dir = make_temp_dir();
  std::string out = dir + "/out", err = dir + "/err";
  int raw = std::system((command + " >" + out + " 2>" + err).c_str());
  RunResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  r.out = read_file(out);
  r.err = read_file(err);
  std::remove(out.c_str());
  std::remove(err.c_str());
  std::remove(dir.c_str());
  return r;
}

}  // namespace footprint_test
