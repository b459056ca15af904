// libFuzzer target: the config.json reader on arbitrary text.
#include "footprint/error.h"
#include "footprint/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    footprint::parse_hf_config({reinterpret_cast<const char*>(data), size}, "fuzz.json");
  } catch (const footprint::Error&) {
  }
  return 0;
}
