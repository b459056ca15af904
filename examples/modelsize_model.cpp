// The second seed's two-conv model. Its article prints "148480" bits for the parameters, which is
// 4,640 x 32: the loop there keeps only the last module's sizes. footprint counts both convs:
// conv0 has 16*1*3*3 + 16 = 160 parameters and conv1 has 32*16*3*3 + 32 = 4,640, so 4,800.
#include <fmt/format.h>
#include <footprint/torch.h>

#include "seed_models.h"

int main() {
  footprint_examples::ModelSizeModel model;
  footprint::ParamOptions options;
  options.precisions = {footprint::Precision::kFp32};
  footprint::ParamReport report = footprint::params(*model, options);
  fmt::print("Parameters: {} ({} bits at fp32; the article's 148480 bits count conv1 only)\n\n",
             footprint::with_commas(report.params.numel), report.params.bytes_at[0] * 8);
  fmt::print("{}", footprint::print_params(report, footprint::PrintOptions{}));
}
