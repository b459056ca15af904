// The footprint command: parse options, call the library, print. Errors a user can cause come
// back as footprint::Error and leave as one line on stderr with exit status 1; usage errors exit 2.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>

#include "footprint/footprint.h"

namespace {

constexpr const char* kParamsHelp = R"(Examples:
  footprint params model.pt                      TorchScript (torch.jit.save)
  footprint params checkpoint.pth --depth 2      torch.save state_dict, modules two levels deep
  footprint params model.safetensors --dtype fp16,int4
  footprint params model.safetensors.index.json  a sharded checkpoint, all shards
  footprint params model.pt --tensors --format csv > tensors.csv

Only metadata is read (the zip directory, the pickle, the safetensors header), never the tensor
bytes, and nothing in a file is executed. Sizes use binary units: 1 MiB = 1024^2 bytes. In
--format json every byte count is exact; with several files JSON is an array and CSV one table
with a source column. A state_dict or safetensors file does not record which tensors are
buffers: there running_mean, running_var and non-float tensors count as buffers (a state_dict
saved with keep_vars=True records it, and is read exactly). Docs: docs/formats.md.

Exit status: 0 when every file was read; 1 when one could not be (one line on stderr names the
file and the problem; the other files are still reported); 2 for a usage error.)";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"footprint: what a PyTorch model is made of, and whether it will fit.", "footprint"};
  app.set_version_flag("--version", std::string("footprint ") + FOOTPRINT_VERSION);
  app.require_subcommand(1);
  app.footer("Run 'footprint COMMAND --help' for a command's options and examples.");

  std::vector<std::string> files;
  std::string dtypes, format = "table";
  int depth = 1;
  bool tensors = false;
  CLI::App* params =
      app.add_subcommand("params", "Count parameters and buffers in model files, exactly.");
  params
      ->add_option("FILE", files,
                   "TorchScript .pt, torch.save .pth/.bin, .safetensors, or *.index.json")
      ->required();
  params
      ->add_option("--dtype", dtypes,
                   "Also show bytes at these precisions: fp32,fp16,bf16,fp8,int8,int4")
      ->check([](const std::string& s) -> std::string {
        try {
          footprint::precision_parse_list(s);
          return {};
        } catch (const footprint::Error& e) {
          return e.what();
        }
      });
  params
      ->add_option("--depth", depth, "Module roll-up depth (0: whole model only, -1: every level)")
      ->default_val(1)
      ->check(CLI::Range(-1, 1000));
  params->add_flag("--tensors", tensors, "List every tensor: name, shape, dtype, numel, bytes");
  params->add_option("--format", format, "Output format")
      ->default_val("table")
      ->check(CLI::IsMember({"table", "json", "csv", "md"}));
  params->footer(kParamsHelp);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    footprint::ParamOptions options;
    options.precisions = footprint::precision_parse_list(dtypes.empty() ? "stored" : dtypes);
    options.precisions.erase(std::remove(options.precisions.begin(), options.precisions.end(),
                                         footprint::Precision::kStored),
                             options.precisions.end());
    options.depth = depth;
    footprint::PrintOptions print;
    print.format = *footprint::format_parse(format);
    print.tensors = tensors;
    std::vector<footprint::ParamReport> reports;
    int status = 0;
    for (const auto& file : files) {
      try {
        reports.push_back(footprint::params(footprint::read_model(file), options));
      } catch (const footprint::Error& e) {
        fmt::print(stderr, "footprint: {}\n", e.what());
        status = 1;
      }
    }
    if (!reports.empty()) fmt::print("{}", footprint::print_params(reports, print));
    return status;
  } catch (const footprint::Error& e) {
    fmt::print(stderr, "footprint: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "footprint: internal error: {}\n", e.what());
    return 1;
  }
}
