// footprint summary: the model run on meta, per-layer shapes, parameters, MACs and FLOPs.
#include <fmt/format.h>

#include "command.h"

namespace footprint::cli {

namespace {

constexpr const char* kSummaryHelp = R"(Examples:
  footprint summary resnet50.pt --input 1x3x224x224
  footprint summary resnet50.pt --input 8x3x224x224 --train --depth 2
  footprint summary program.pt2                   a torch.export program, at its exported shapes
  footprint summary model.pt --input 1x3x224x224 --columns torchstat
  footprint summary model.pt --input 1x3x224x224 --by op          per-op totals (fvcore style)
  footprint summary bert.pt --input "2x128:int64;2x128:int64" --format json
  footprint summary model.pt --input 1x3x224x224 --dtype bf16

The model's own TorchScript code runs on PyTorch's meta device: tensors have shapes and no data,
so every op, shape and allocation is exact and a batch of 256 costs what a batch of 1 does.
Functional ops (x @ w, softmax, F.relu) and modules called twice are counted. The file must be
TorchScript (torch.jit.script keeps train/eval behaviour; a torch.jit.trace bakes in the mode it
was traced in). Layers deeper than --depth are summed into their parent.

Columns: MACs count one multiply-accumulate once (thop, fvcore and torchinfo's convention);
FLOPs = 2 x MACs + bias adds + the other ops' rules (element-wise 1 per element, softmax 5, ...,
all in docs/flops.md); torchstat's MAdd is our FLOPs. Activations: the bytes the module's forward
ops allocate. --train adds the backward FLOPs of each module's ops; the loss is cross-entropy
against class 0 for a 2-D output, else the mean of squares (docs/engine.md).

Exit status: 0; 1 when the file cannot be read or the model fails on the input (one line on
stderr says why); 2 for a usage error; 3 when the summary is printed but not exact: an op with no
FLOP rule, or with no meta kernel (shapes guessed, or the run stopped there). Each such op is
named on stderr and marked * in the table.)";

struct SummaryArgs {
  std::string file, by = "module", columns = "default", dtype, format = "table";
  std::vector<std::string> inputs;
  bool train = false;
  int depth = 3;
};

}  // namespace

Command add_summary(CLI::App& app, Shared& shared) {
  auto a = std::make_shared<SummaryArgs>();
  CLI::App* summary = app.add_subcommand(
      "summary", "Run the model on the meta device: per-layer shapes, parameters, MACs, FLOPs.");
  summary
      ->add_option("FILE", a->file,
                   "A TorchScript file (torch.jit.script or trace, saved), a torch.export "
                   "program (.pt2, read without LibTorch), or Python code: FILE.py:NAME, a "
                   "class or factory in the file, run in Python (docs/python.md)")
      ->required();
  summary
      ->add_option("--input", a->inputs,
                   "Input shape, as 1x3x224x224 or 1,3,224,224, with :dtype for integer inputs "
                   "(1x128:int64); repeat it, or separate with ';', for several inputs. "
                   "Required, except for a torch.export program (.pt2), whose shapes are fixed")
      ->check(check_inputs);
  summary->add_flag("--train", a->train, "A training pass: forward, loss and backward");
  summary
      ->add_option("--dtype", a->dtype,
                   "Run at this precision: fp32, fp16, bf16 (default: as stored)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "fp64"}));
  summary->add_option("--depth", a->depth, "Rows down to this depth (-1: every level)")
      ->default_val(3)
      ->check(CLI::Range(-1, 1000));
  summary->add_option("--by", a->by, "Rows per module call, or per aten op (fvcore's by_operator)")
      ->default_val("module")
      ->check(CLI::IsMember({"module", "op"}));
  summary
      ->add_option("--columns", a->columns,
                   "torchstat adds memory read and write per layer and each layer's FLOP share")
      ->default_val("default")
      ->check(CLI::IsMember({"default", "torchstat"}));
  summary->add_option("--format", a->format, "Output format")
      ->default_val("table")
      ->check(CLI::IsMember({"table", "json", "csv", "md"}));
  add_engine_options(summary, shared.engine, false);
  summary->footer(std::string(kSummaryHelp) + "\n\n" + kSandboxHelp);
  Command c;
  c.app = summary;
  c.file = [a] { return a->file; };
  c.format = [a] { return a->format; };
  c.run = [a, &shared](char** argv, const Engine* engine, const Output& output) {
    const EngineArgs& ea = shared.engine;
    bool program = ends_with(a->file, ".pt2");
    if (!program && a->inputs.empty()) {
      fmt::print(stderr, "footprint summary: --input is required (the shapes to run {} on)\n",
                 escape_text(a->file));
      return kExitUsage;
    }
    // Python code (model.py:Class): the Python package's engine.
    if (ends_with(a->file.substr(0, a->file.rfind(':')), ".py"))
      return run_engine(argv, ea, a->file, output.json, output.out, /*python=*/true);
    if (!ea.guess.empty()) return refuse_guess(a->file);
    if (!program && !engine) return run_engine(argv, ea, a->file, output.json, output.out);
    SummaryOptions options;
    for (const auto& text : a->inputs)
      for (auto& in : parse_inputs(text)) options.inputs.push_back(std::move(in));
    options.train = a->train;
    if (!a->dtype.empty()) options.dtype = dtype_parse(a->dtype);
    options.limits = ea.limits();
    Summary s = program ? summarize_program(a->file, options) : engine->summary(a->file, options);
    SummaryPrintOptions print;
    print.format = *format_parse(a->format);
    print.depth = a->depth;
    print.by_op = a->by == "op";
    print.columns =
        a->columns == "torchstat" ? SummaryColumns::kTorchstat : SummaryColumns::kDefault;
    fmt::print(output.out, "{}", print_summary(s, print));
    output.warn(s.warnings);
    return output.gaps(s.gaps);
  };
  return c;
}

}  // namespace footprint::cli
