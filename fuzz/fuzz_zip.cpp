// libFuzzer target: torch.save / TorchScript zips on arbitrary bytes: the zip directory, the
// pickle inside, the TorchScript class sources and the checks against the storage entries.
#include "footprint/error.h"
#include "formats/readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto src =
      footprint::detail::open_memory({reinterpret_cast<const char*>(data), size}, "fuzz.pth");
  try {
    footprint::detail::read_torch_zip(*src);
  } catch (const footprint::Error&) {
  }
  return 0;
}
