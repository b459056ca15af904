// libFuzzer target: the GGUF header reader (src/formats/gguf.cpp) on arbitrary bytes, and the
// transformer config llm reads from its metadata.
#include "footprint/error.h"
#include "formats/readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto src =
      footprint::detail::open_memory({reinterpret_cast<const char*>(data), size}, "fuzz.gguf");
  try {
    auto g = footprint::detail::read_gguf(*src);
    footprint::detail::config_from_gguf(g);
  } catch (const footprint::Error&) {
  }
  return 0;
}
