// libFuzzer target: a torch.export program's JSON (src/formats/pt2.cpp): the parameters and the
// graph as summary reads them (read_pt2_archive), and as the Python runner reads them
// (pt2_document, the JSON memory and fit run op by op). The zip around it is faked (as
// fuzz_checkpoint does for pickles): the input is the archive's m/models/model.json.
#include "footprint/error.h"
#include "formats/readers.h"

namespace {

namespace fd = footprint::detail;

class FakeArchive final : public fd::Archive {
 public:
  explicit FakeArchive(std::string json) : json_(std::move(json)) {}
  std::vector<std::string> names() const override {
    return {"m/archive_format", "m/models/model.json"};
  }
  std::optional<uint64_t> size(const std::string& entry) const override {
    if (entry == "m/archive_format") return 3;
    if (entry == "m/models/model.json") return json_.size();
    return std::nullopt;
  }
  std::string read(const std::string& entry, uint64_t limit, const char*) const override {
    auto n = size(entry);
    if (!n || *n > limit) throw footprint::Error("fake archive: no entry " + entry);
    return entry == "m/archive_format" ? std::string("pt2") : json_;
  }

 private:
  std::string json_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FakeArchive archive(std::string(reinterpret_cast<const char*>(data), size));
  try {
    fd::read_pt2_archive(archive, "fuzz.pt2");
  } catch (const footprint::Error&) {
  }
  try {
    fd::pt2_document(archive, "fuzz.pt2");
  } catch (const footprint::Error&) {
  }
  return 0;
}
