// libFuzzer target: the ONNX initializer reader (src/formats/onnx.cpp) on arbitrary bytes.
#include "footprint/error.h"
#include "formats/readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto src =
      footprint::detail::open_memory({reinterpret_cast<const char*>(data), size}, "fuzz.onnx");
  try {
    footprint::detail::read_onnx(*src);
  } catch (const footprint::Error&) {
  }
  return 0;
}
