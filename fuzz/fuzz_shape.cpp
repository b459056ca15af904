// libFuzzer target: the --input shape parser on arbitrary text.
#include "footprint/error.h"
#include "footprint/shape.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    footprint::parse_inputs({reinterpret_cast<const char*>(data), size});
  } catch (const footprint::Error&) {
  }
  return 0;
}
