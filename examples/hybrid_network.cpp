// The first seed's three approaches for its HybridNetwork, from C++:
// footprint::params(module) counts every parameter tensor (approach 2) and gives the bytes at
// each precision (approach 1, parameters x bytes per element); footprint::summary(module, ...)
// runs it on the meta device for the profilers' numbers (approach 3: thop's two lines).
#include <fmt/format.h>
#include <footprint/engine.h>
#include <footprint/torch.h>

#include "seed_models.h"

int main() {
  footprint_examples::HybridNetwork model;
  footprint::ParamOptions options;
  options.precisions = {footprint::Precision::kFp32, footprint::Precision::kFp16};
  options.depth = 2;
  footprint::ParamReport report = footprint::params(*model, options);

  // The seed's lines, in binary units as the seed defines them (1 MB = 1024^2 bytes).
  fmt::print("Total Parameters: {}\n", footprint::with_commas(report.params.numel));
  fmt::print("Total Memory: {:.2f} MiB = {} bytes (fp32), {} bytes (fp16)\n",
             report.params.bytes_at[0] / 1048576.0,
             footprint::with_commas(report.params.bytes_at[0]),
             footprint::with_commas(report.params.bytes_at[1]));
  fmt::print("Trainable Parameters: {}\n", footprint::with_commas(report.trainable.numel));
  fmt::print("Trainable Memory: {:.2f} MiB (fp32)\n", report.trainable.bytes_at[0] / 1048576.0);
  fmt::print("Enumerated Parameter Count: {}\n\n", report.params.numel);

  footprint::PrintOptions print;
  fmt::print("{}\n", footprint::print_params(report, print));

  // Approach 3, thop's profile(model, inputs=(torch.randn(1, 1, 28, 28),)), corrected. The
  // module's weights move to the meta device: it is the last thing done with them here.
  footprint::SummaryOptions run;
  run.inputs = footprint::parse_inputs("1x1x28x28");
  footprint::Summary summary = footprint::summary(model, run);
  fmt::print("{}", footprint::print_thop_lines(summary));
}
