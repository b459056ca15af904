// Where a reader's bytes come from: a file on disk or a buffer in memory. Readers take a
// ByteSource, so the tests and the fuzzers feed them bytes without touching the disk.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

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

// Opens a regular file. Errors name the path: missing, a directory, unreadable.
std::unique_ptr<ByteSource> open_file(const std::string& path);
// A view of bytes that the caller keeps alive.
std::unique_ptr<ByteSource> open_memory(std::string_view bytes, std::string name);

}  // namespace footprint::detail
