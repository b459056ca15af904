// File and memory byte sources. Files are read with pread, so a 15 GB checkpoint costs only the
// bytes a reader asks for.
#include "formats/byte_source.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

SequentialReader::SequentialReader(const ByteSource& src, uint64_t at, uint64_t end)
    : src_(src), at_(at), end_(std::min(end, src.size())) {}

void SequentialReader::bytes(void* dst, uint64_t n, const char* what) {
  if (n > left())
    throw Error(fmt::format("{}: {} at byte {} needs {} bytes, but only {} are left", file(), what,
                            at_, n, left()));
  auto* out = static_cast<unsigned char*>(dst);
  while (n > 0) {
    if (at_ < buf_at_ || at_ >= buf_at_ + buf_.size()) {
      buf_at_ = at_;
      buf_.resize(size_t(std::min<uint64_t>(1 << 20, end_ - at_)));
      src_.read(at_, buf_.data(), buf_.size());
    }
    uint64_t from = at_ - buf_at_;
    uint64_t take = std::min<uint64_t>(n, buf_.size() - from);
    std::memcpy(out, buf_.data() + from, take);
    out += take;
    at_ += take;
    n -= take;
  }
}

void SequentialReader::skip(uint64_t n, const char* what) {
  if (n > left())
    throw Error(fmt::format("{}: {} at byte {} is {} bytes long, but only {} are left", file(),
                            what, at_, n, left()));
  at_ += n;
}

std::string SequentialReader::string(const char* what, uint64_t limit) {
  uint64_t n = get<uint64_t>(what);
  if (n > limit)
    throw Error(fmt::format("{}: {} at byte {} is {} bytes long, over the limit of {} bytes",
                            file(), what, at_ - 8, n, limit));
  std::string s(size_t(n), '\0');
  bytes(s.data(), n, what);
  return s;
}

}  // namespace footprint::detail
