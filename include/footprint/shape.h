// footprint/shape.h: input shapes as users write them on the command line:
//   "1x3x224x224" or "1,3,224,224"; several inputs separated by ';'; an optional dtype after ':'
//   ("1x128:int64" for token ids). Every size must be at least 1.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "footprint/dtype.h"

namespace footprint {

struct InputSpec {
  std::vector<int64_t> shape;
  std::optional<DType> dtype;  // unset: the model's default
};

// Limits, each named in its error message.
constexpr size_t kMaxInputs = 64;       // inputs in one --input
constexpr size_t kMaxInputDims = 64;    // dimensions of one input
constexpr size_t kMaxInputText = 4096;  // characters of one --input

// Throws footprint::Error naming the text, the bad piece and what was expected.
std::vector<InputSpec> parse_inputs(std::string_view text);
// The inputs as --input writes them: "1x3x224x224; 2x128:int64".
std::string inputs_text(const std::vector<InputSpec>& inputs);

}  // namespace footprint
