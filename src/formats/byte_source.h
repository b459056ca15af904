// Where a reader's bytes come from: a file on disk or a buffer in memory. Readers take a
// ByteSource, so the tests and the fuzzers feed them bytes without touching the disk.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

namespace footprint::detail {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  const std::string& name() const { return name_; }  // used in every error message
  virtual uint64_t size() const = 0;
  // Reads exactly n bytes at offset; throws footprint::Error if they are not there.
  virtual void read(uint64_t offset, void* dst, size_t n) const = 0;
  std::string read_string(uint64_t offset, size_t n) const;
  // The path, for readers (libzip) that open files themselves; empty for memory.
  virtual std::string path() const { return {}; }
  // The whole buffer, for memory sources; null for files.
  virtual const std::string_view* memory() const { return nullptr; }

 protected:
  explicit ByteSource(std::string name) : name_(std::move(name)) {}

 private:
  std::string name_;
};

// Reads a source front to back through a 1 MiB buffer, so that a header of many small fields
// (GGUF's tokenizer strings, ONNX's protobuf fields) costs a few reads, and skipping a tensor's
// bytes costs none. Every read and skip is checked against the bytes left and names `what`.
class SequentialReader {
 public:
  explicit SequentialReader(const ByteSource& src, uint64_t at = 0, uint64_t end = UINT64_MAX);
  uint64_t at() const { return at_; }
  uint64_t left() const { return end_ - at_; }
  const std::string& file() const { return src_.name(); }
  void bytes(void* dst, uint64_t n, const char* what);
  void skip(uint64_t n, const char* what);
  // A little-endian integer or IEEE float of T's size, whatever the host's byte order.
  template <class T>
  T get(const char* what) {
    static_assert(sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);
    using Bits = std::conditional_t<
        sizeof(T) == 8, uint64_t,
        std::conditional_t<sizeof(T) == 4, uint32_t,
                           std::conditional_t<sizeof(T) == 2, uint16_t, uint8_t>>>;
    unsigned char b[sizeof(T)];
    bytes(b, sizeof(T), what);
    Bits v = 0;
    for (int i = int(sizeof(T)) - 1; i >= 0; --i) v = Bits((uint64_t(v) << 8) | b[i]);
    T out;
    std::memcpy(&out, &v, sizeof(T));
    return out;
  }
  // A u64 length, then that many bytes (at most `limit`).
  std::string string(const char* what, uint64_t limit);

 private:
  const ByteSource& src_;
  uint64_t at_, end_, buf_at_ = 0;
  std::string buf_;
};

// Opens a regular file. Errors name the path: missing, a directory, unreadable.
std::unique_ptr<ByteSource> open_file(const std::string& path);
// A view of bytes that the caller keeps alive.
std::unique_ptr<ByteSource> open_memory(std::string_view bytes, std::string name);

}  // namespace footprint::detail
