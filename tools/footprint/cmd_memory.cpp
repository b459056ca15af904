// footprint memory and footprint fit: the peak memory of inference or a training step, and the
// largest batch that fits. They share their options; the planner (footprint/plan.h) makes the run.
#include <fmt/format.h>

#include "command.h"

namespace footprint::cli {

namespace {

constexpr const char* kMemoryHelp = R"(Examples:
  footprint memory resnet50.pt --input 1x3x224x224                     inference, on CUDA
  footprint memory resnet50.pt --input 64x3x224x224 --train --gpu h100  AdamW (foreach), fp32
  footprint memory model.pt --input 8x3x224x224 --train --optimizer momentum --impl for-loop
  footprint memory model.pt --input 8x3x224x224 --train --device cpu    a CPU run (PyTorch 2.11)
  footprint memory model.pt --input 32x3x224x224 --train --gpu 24GiB --alloc-conf max_split_size_mb:128
  footprint memory twoconv.pt --input 1x1x32x32 --method seed           the seeds' formulas beside
  footprint memory model.pt --input 8x3x224x224 --train --html run.html --snapshot run.pickle
                                      see it: a page for the browser, a file for pytorch.org/memory_viz

The model's TorchScript code runs on the meta device, and every allocation and free is recorded:
parameters and buffers, the input, what each forward op keeps for backward, temporaries,
gradients and the optimizer's state, as torch.optim's Python code makes them. A training step is
what docs/memory.md measures against: zero_grad(set_to_none=True), forward, the loss, backward,
step; it is run twice, because the optimizer's state appears inside the first step (iteration 1)
and the steady state is iteration 2. On CUDA the sequence is replayed through a model of PyTorch's caching
allocator: "allocated" is what torch.cuda.max_memory_allocated() reports (blocks rounded to 512 B),
"reserved" is max_memory_reserved(), and the device needs reserved + the CUDA context. --device cpu
estimates a CPU run (bytes as requested; the profiler's count).

--html writes one page (no network needed) with live memory over the run by category, the peak
and its op, module and phase, what each module holds at the peak and the allocator's segments.
--snapshot writes what torch.cuda.memory._dump_snapshot() would: open it at pytorch.org/memory_viz.

Defaults follow PyTorch 2.x: --impl auto is foreach on CUDA and for-loop on CPU. Sizes use binary
units (1 MiB = 1024^2 bytes); JSON has exact bytes. docs/memory.md has the model, the checks
against real runs, and the GPU profiles' sources.

Exit status: 0; 1 when the file cannot be read or the model fails (one line on stderr); 2 for a
usage error; 3 when the report is printed but not exact (an op whose output shapes were guessed,
or a run that stopped early: each named on stderr); 4 with --check when it does not fit.)";
constexpr const char* kFitHelp = R"(Examples:
  footprint fit resnet50.pt --input 3x224x224 --gpu 24GiB --train
  footprint fit resnet50.pt --input 3x224x224 --gpu a100-40gb --train --optimizer sgd
  footprint fit bert.pt --input "128:int64;128:int64" --gpu t4

--input is one sample, without the batch dimension. footprint finds the largest batch whose run
fits the device, as footprint memory estimates it, and checks both sides: batch N fits and N+1 does
not, each captured in full (aiming from a straight line through the peaks it has seen, so a few
captures suffice). Prints N and both estimates.

Exit status: 0 (also when not even batch 1 fits: the answer is then 0, and with --check the
status is 4); 1 for errors; 2 for a usage error; 3 when printed but not exact (as memory's).)";

struct MemoryArgs {
  RunRequest q;  // the planner's options, as given
  std::string file, method = "footprint", format = "table";
  std::vector<std::string> inputs;
  int modules = 8;
};

void add_options(CLI::App* c, MemoryArgs& ma, EngineArgs& ea, bool fit) {
  c->add_option("FILE", ma.file,
                "A TorchScript file (torch.jit.script or trace, saved), or a model in Python: "
                "FILE.py:NAME (a class or factory in the file) or a torch.export .pt2, run in "
                "Python (docs/python.md)")
      ->required();
  c->add_option("--input", ma.inputs,
                fit ? "One sample's shape, without the batch: 3x224x224, or 128:int64; "
                      "';' between several inputs"
                    : "Input shape with the batch, as 8x3x224x224 (128:int64 for integer "
                      "inputs; ';' between several). Required, except for a torch.export "
                      "program (.pt2): its exported shapes")
      ->check(check_inputs);
  CLI::Option* train =
      c->add_flag("--train", ma.q.train,
                  "A training step (zero_grad, forward, loss, backward, optimizer step), twice");
  add_choice(c, "--optimizer", ma.q.optimizer, Vocabulary::kOptimizer,
             "torch.optim's, at its defaults")
      ->needs(train);
  add_choice(c, "--impl", ma.q.impl, Vocabulary::kImplementation, "The optimizer's implementation")
      ->needs(train);
  add_choice(c, "--precision", ma.q.precision, Vocabulary::kPrecision, "");
  add_choice(c, "--loss", ma.q.loss, Vocabulary::kLoss, "")->needs(train);
  add_choice(c, "--zero-grad", ma.q.zero_grad, Vocabulary::kZeroGrad, "")->needs(train);
  CLI::Option* gpu =
      c->add_option("--gpu", ma.q.gpu,
                    "h100, h200, a100-80gb, a100-40gb, l4, rtx4090, rtx3090, t4, v100-16gb, "
                    "v100-32gb, or a size (24GiB, 16000MiB); with --device cpu, a size: the "
                    "memory to fit in")
          ->check(check_gpu);
  if (fit) gpu->required();
  add_choice(c, "--device", ma.q.device, Vocabulary::kTarget, "");
  c->add_option("--context", ma.q.context_mib,
                "MiB the CUDA context and libraries take outside the allocator (default: the "
                "GPU profile's)")
      ->check(finite_in(0.0, 1e9));
  c->add_option("--alloc-conf", ma.q.alloc_conf,
                "PYTORCH_CUDA_ALLOC_CONF: max_split_size_mb, roundup_power2_divisions, "
                "expandable_segments")
      ->check(check_alloc_conf);
  c->add_option("--format", ma.format, "Output format")
      ->default_val("table")
      ->check(CLI::IsMember({"table", "json", "csv", "md"}));
  add_engine_options(c, ea, true);
  c->get_option("--check")->needs(gpu);
}

// The run the planner makes of the options, with the inputs (one sample's, for fit).
MemoryScenario scenario(const MemoryArgs& ma, const Shared& shared, bool per_sample) {
  MemoryScenario s = memory_scenario(plan_run(ma.q));
  for (const auto& text : ma.inputs)
    for (auto& in : parse_inputs(text)) {
      if (per_sample) in.shape.insert(in.shape.begin(), 1);
      s.inputs.push_back(std::move(in));
    }
  s.memory.timeline = shared.pictures.any();
  s.limits = shared.engine.limits();
  return s;
}

// Where the run goes: Python code and a .pt2 to the Python package's engine, a TorchScript file
// to footprint-engine; nullopt when this process is the engine.
std::optional<int> route(const MemoryArgs& ma, const Shared& shared, const char* command,
                         char** argv, const Engine* engine, const Output& output) {
  const EngineArgs& ea = shared.engine;
  plan_run(ma.q);  // the options' mistakes, before any engine starts
  if (ma.inputs.empty() && !ends_with(ma.file, ".pt2")) {
    fmt::print(stderr, "footprint {}: --input is required (the shapes to run {} on)\n", command,
               escape_text(ma.file));
    return kExitUsage;
  }
  if (ends_with(ma.file.substr(0, ma.file.rfind(':')), ".py") || ends_with(ma.file, ".pt2"))
    return run_engine(argv, ea, ma.file, output.json, output.out, /*python=*/true);
  if (!ea.guess.empty()) return refuse_guess(ma.file);
  if (!engine) return run_engine(argv, ea, ma.file, output.json, output.out);
  return std::nullopt;
}

}  // namespace

std::vector<Command> add_memory_and_fit(CLI::App& app, Shared& shared) {
  auto ma = std::make_shared<MemoryArgs>();
  CLI::App* memory = app.add_subcommand(
      "memory", "Peak memory of inference or a training step, by category, and whether it fits.");
  add_options(memory, *ma, shared.engine, false);
  memory
      ->add_option("--method", ma->method,
                   "seed: also print the seeds' formulas (parameters x 4 bytes; "
                   "pytorch_modelsize) beside the estimate")
      ->default_val("footprint")
      ->check(CLI::IsMember({"footprint", "seed"}));
  memory->add_option("--modules", ma->modules, "Rows of the largest modules at the peak")
      ->default_val(8)
      ->check(CLI::Range(0, 100000));
  add_picture_options(memory, shared.pictures, "the run");
  memory->footer(std::string(kMemoryHelp) + "\n\n" + kSandboxHelp);
  CLI::App* fit = app.add_subcommand("fit", "The largest batch that fits a GPU.");
  add_options(fit, *ma, shared.engine, true);
  add_picture_options(fit, shared.pictures, "the run at the batch found");
  fit->footer(std::string(kFitHelp) + "\n\n" + kSandboxHelp);

  Command m;
  m.app = memory;
  m.file = [ma] { return ma->file; };
  m.format = [ma] { return ma->format; };
  m.run = [ma, &shared](char** argv, const Engine* engine, const Output& output) {
    if (auto routed = route(*ma, shared, "memory", argv, engine, output)) return *routed;
    MemoryScenario s = scenario(*ma, shared, false);
    MemoryPrintOptions print;
    print.format = *format_parse(ma->format);
    print.modules = ma->modules;
    if (ma->method == "seed") print.seed = engine->seed(ma->file, s.inputs);
    MemoryReport r = engine->memory(ma->file, s);
    write_pictures(shared.pictures, r);
    fmt::print(output.out, "{}", print_memory(r, print));
    output.warn(r.warnings);
    return shared.engine.status(output.gaps(r.gaps), !fits(r));
  };
  Command f;
  f.app = fit;
  f.file = m.file;
  f.format = m.format;
  f.run = [ma, &shared](char** argv, const Engine* engine, const Output& output) {
    if (auto routed = route(*ma, shared, "fit", argv, engine, output)) return *routed;
    FitResult r = engine->fit(ma->file, scenario(*ma, shared, true));
    write_pictures(shared.pictures, r.fits);
    fmt::print(output.out, "{}", print_fit(r, *format_parse(ma->format)));
    output.warn(r.fits.warnings);
    return shared.engine.status(output.gaps(r.fits.gaps), r.batch == 0);
  };
  return {m, f};
}

}  // namespace footprint::cli
