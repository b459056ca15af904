// footprint params: parameters and buffers of model files, from their metadata alone.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "command.h"

namespace footprint::cli {

namespace {

constexpr const char* kParamsHelp = R"(Examples:
  footprint params model.pt                      TorchScript (torch.jit.save)
  footprint params checkpoint.pth --depth 2      torch.save state_dict, modules two levels deep
  footprint params model.safetensors --dtype fp16,int4
  footprint params model.safetensors.index.json  a sharded checkpoint, all shards
  footprint params model.pt --tensors --format csv > tensors.csv
  footprint params llama-3-8b.Q4_K_M.gguf         a llama.cpp file: every ggml type, bits per weight
  footprint params model.onnx                     an ONNX export (external data named, not read)
  footprint params program.pt2                    a torch.export program

Only metadata is read (the zip directory, the pickle, the safetensors or GGUF header, ONNX's
field headers, a .pt2's JSON), never the tensor bytes, and nothing in a file is executed. Sizes
use binary units: 1 MiB = 1024^2 bytes. In --format json every byte count is exact; with several
files JSON is an array and CSV one table with a source column. A state_dict, safetensors, GGUF
or ONNX file does not record which tensors are buffers: there running_mean, running_var and
non-float tensors count as buffers (a state_dict saved with keep_vars=True records it, and is read
exactly). Docs: docs/formats.md.

Exit status: 0 when every file was read; 1 when one could not be (one line on stderr names the
file and the problem; the other files are still reported); 2 for a usage error.)";

struct ParamsArgs {
  std::vector<std::string> files;
  std::string dtypes, format = "table";
  int depth = 1;
  bool tensors = false;
};

int run_params(const ParamsArgs& a, const Output& output) {
  ParamOptions options;
  options.precisions = precision_parse_list(a.dtypes.empty() ? "stored" : a.dtypes);
  options.precisions.erase(
      std::remove(options.precisions.begin(), options.precisions.end(), Precision::kStored),
      options.precisions.end());
  options.depth = a.depth;
  PrintOptions print;
  print.format = *format_parse(a.format);
  print.tensors = a.tensors;
  std::vector<ParamReport> reports;
  std::string first_error;
  for (const auto& f : a.files) {
    try {
      reports.push_back(footprint::params(read_model(f), options));
    } catch (const Error& e) {
      std::string line = escape_text(word_options(e.what(), FrontEnd::kCommandLine));
      fmt::print(stderr, "footprint: {}\n", line);
      if (first_error.empty()) first_error = line;
    }
  }
  if (!reports.empty())
    fmt::print(output.out, "{}", print_params(reports, print));
  else if (output.json)  // nothing to report: the error, as the other commands give it
    fmt::print(output.out, "{}\n",
               nlohmann::json{{"error", first_error}, {"exit_status", kExitError}}.dump(2));
  return first_error.empty() ? 0 : kExitError;
}

}  // namespace

Command add_params(CLI::App& app) {
  auto a = std::make_shared<ParamsArgs>();
  CLI::App* params =
      app.add_subcommand("params", "Count parameters and buffers in model files, exactly.");
  params
      ->add_option("FILE", a->files,
                   "TorchScript .pt, torch.save .pth/.bin, .safetensors, *.index.json, .gguf, "
                   ".onnx, or a torch.export .pt2")
      ->required();
  params
      ->add_option("--dtype", a->dtypes,
                   "Also show bytes at these precisions: fp32,fp16,bf16,fp8,int8,int4")
      ->check(parses_with([](const std::string& s) { precision_parse_list(s); }));
  params
      ->add_option("--depth", a->depth,
                   "Module roll-up depth (0: whole model only, -1: every level)")
      ->default_val(1)
      ->check(CLI::Range(-1, 1000));
  params->add_flag("--tensors", a->tensors, "List every tensor: name, shape, dtype, numel, bytes");
  params->add_option("--format", a->format, "Output format")
      ->default_val("table")
      ->check(CLI::IsMember({"table", "json", "csv", "md"}));
  params->footer(kParamsHelp);
  Command c;
  c.app = params;
  c.file = [a] { return a->files.empty() ? std::string() : a->files.front(); };
  c.format = [a] { return a->format; };
  c.run = [a](char**, const Engine*, const Output& output) { return run_params(*a, output); };
  return c;
}

}  // namespace footprint::cli
