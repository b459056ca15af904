// libFuzzer target: the pickle reader on arbitrary bytes, as a checkpoint and as TorchScript.
#include "footprint/error.h"
#include "formats/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (bool torchscript : {false, true}) {
    footprint::detail::pickle::Options options;
    options.torchscript = torchscript;
    try {
      footprint::detail::pickle::parse(bytes, "fuzz.pkl", options);
    } catch (const footprint::Error&) {
    }
  }
  return 0;
}
