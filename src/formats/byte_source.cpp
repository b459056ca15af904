// File and memory byte sources. Files are read with pread, so a 15 GB checkpoint costs only the
// bytes a reader asks for.
#include "formats/byte_source.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "footprint/error.h"

namespace footprint::detail {
namespace {

class FileSource final : public ByteSource {
 public:
  FileSource(const std::string& path, int fd, uint64_t size)
      : ByteSource(path), fd_(fd), size_(size) {}
  ~FileSource() override { ::close(fd_); }
  uint64_t size() const override { return size_; }
  std::string path() const override { return name(); }
  void read(uint64_t offset, void* dst, size_t n) const override {
    if (offset > size_ || n > size_ - offset)
      throw Error(fmt::format("{}: truncated: needs {} bytes at offset {}, but the file has {}",
                              name(), n, offset, size_));
    auto* out = static_cast<char*>(dst);
    while (n > 0) {
      ssize_t got = ::pread(fd_, out, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        throw Error(fmt::format("{}: read failed at offset {}: {}", name(), offset,
                                got < 0 ? std::strerror(errno) : "unexpected end of file"));
      out += got;
      offset += static_cast<uint64_t>(got);
      n -= static_cast<size_t>(got);
    }
  }

 private:
  int fd_;
  uint64_t size_;
};

class MemorySource final : public ByteSource {
 public:
  MemorySource(std::string_view bytes, std::string name)
      : ByteSource(std::move(name)), bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  const std::string_view* memory() const override { return &bytes_; }
  void read(uint64_t offset, void* dst, size_t n) const override {
    if (offset > bytes_.size() || n > bytes_.size() - offset)
      throw Error(fmt::format("{}: truncated: needs {} bytes at offset {}, but there are {}",
                              name(), n, offset, bytes_.size()));
    std::memcpy(dst, bytes_.data() + offset, n);
  }

 private:
  std::string_view bytes_;
};

}  // namespace

std::string ByteSource::read_string(uint64_t offset, size_t n) const {
  std::string s(n, '\0');
  read(offset, s.data(), n);
  return s;
}

std::unique_ptr<ByteSource> open_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error(
        fmt::format("{}: {}", path, errno == ENOENT ? "no such file" : std::strerror(errno)));
  if (S_ISDIR(st.st_mode))
    throw Error(
        fmt::format("{}: is a directory; expected a model file (.pt, .pth, .bin, .safetensors, "
                    "*.index.json)",
                    path));
  if (!S_ISREG(st.st_mode)) throw Error(fmt::format("{}: not a regular file", path));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  return std::make_unique<FileSource>(path, fd, static_cast<uint64_t>(st.st_size));
}

std::unique_ptr<ByteSource> open_memory(std::string_view bytes, std::string name) {
  return std::make_unique<MemorySource>(bytes, std::move(name));
}

}  // namespace footprint::detail
