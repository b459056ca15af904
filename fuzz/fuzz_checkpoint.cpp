// libFuzzer target: the walk over a checkpoint's or TorchScript archive's pickle, past the zip.
// Mutated pickles inside a real zip mostly stop at the entry's CRC check; here the archive is
// faked around the input: the first byte chooses torch.save (even) or TorchScript (odd), the rest
// is data.pkl, every storage the pickle names exists with the size it declares, and every class
// source lists a parameter and a buffer.
#include <map>
#include <string>

#include "footprint/error.h"
#include "formats/pickle.h"
#include "formats/readers.h"

namespace {

namespace fd = footprint::detail;

class FakeArchive final : public fd::Archive {
 public:
  FakeArchive(std::string pickle, bool torchscript)
      : pickle_(std::move(pickle)), torchscript_(torchscript) {
    // Every storage the pickle names, with the size it declares, so that the walk goes on past
    // the storage checks. A pickle that does not parse fails the same way in the reader.
    try {
      fd::pickle::Options options;
      options.torchscript = torchscript_;
      auto doc = fd::pickle::parse(pickle_, "fake", options);
      for (const auto& v : doc.arena)
        if (v.kind == fd::pickle::Kind::kStorage)
          storages_[v.str] =
              static_cast<uint64_t>(v.integer) * (footprint::dtype_bits(v.dtype) / 8);
    } catch (const footprint::Error&) {
    }
  }

  std::vector<std::string> names() const override {
    std::vector<std::string> out{"a/data.pkl"};
    if (torchscript_) out.push_back("a/constants.pkl");
    return out;
  }
  std::optional<uint64_t> size(const std::string& entry) const override {
    if (entry == "a/data.pkl") return pickle_.size();
    if (entry == "a/constants.pkl") return torchscript_ ? std::optional<uint64_t>(1) : std::nullopt;
    if (entry.rfind("a/code/", 0) == 0) return kCode.size();
    if (entry.rfind("a/data/", 0) == 0) return storage_size(entry.substr(7));
    return std::nullopt;
  }
  std::string read(const std::string& entry, uint64_t limit, const char*) const override {
    auto n = size(entry);
    if (!n || *n > limit) throw footprint::Error("fake archive: no entry " + entry);
    return entry == "a/data.pkl" ? pickle_ : std::string(kCode);
  }

 private:
  static constexpr std::string_view kCode =
      "class M(Module):\n  __parameters__ = [\"weight\", \"bias\", ]\n  __buffers__ = "
      "[\"running_mean\", ]\n";

  std::optional<uint64_t> storage_size(const std::string& key) const {
    auto it = storages_.find(key);
    if (it == storages_.end()) return std::nullopt;
    return it->second;
  }

  std::string pickle_;
  bool torchscript_;
  std::map<std::string, uint64_t> storages_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  FakeArchive archive(std::string(reinterpret_cast<const char*>(data) + 1, size - 1), data[0] & 1);
  try {
    fd::read_torch_archive(archive, "fuzz.pth");
  } catch (const footprint::Error&) {
  }
  return 0;
}
