// The footprint command: parse options, call the library, print. Errors a user can cause come
// back as footprint::Error and leave as one line on stderr with exit status 1; usage errors exit 2;
// a report printed with gaps (an op not counted or not run exactly) exits 3; with --check, a run
// that does not fit exits 4. The commands that run a model do it in a child process, the engine,
// under limits (run_engine, supervise.h).
#include "cli.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "footprint/footprint.h"
#include "supervise.h"

namespace footprint::cli {
namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitIncomplete = 3;
constexpr int kExitDoesNotFit = 4;

// The part of every help that runs a model: the sandbox, its limits and the exit status.
constexpr const char* kSandboxHelp =
    R"(The model runs in a sandbox, in a child process (docs/engine.md, "The sandbox"): every
tensor it makes is a meta tensor, whatever device its code names; ops that read or write files or
talk to other processes are refused; --max-cpu-memory, --max-ops, --time-limit and --max-memory
bound the rest, and a crash inside LibTorch becomes one line. A file is data: a TorchScript
file's code and a .pt2's graph run only as ops in the sandbox, and nothing in a file is unpickled
or evaluated. A FILE.py:NAME is your own Python code: footprint imports and runs it as Python
does, with your rights (its module code and factory run outside the op sandbox, and its forward
can call anything Python can): run only files you would run yourself. The model's print()s go to
stderr as "footprint: the model prints: ..." (--model-output drop: nowhere), so that stdout holds
only the report; with --format json, a failure is reported on stdout as {"error": ...} instead.)";

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

constexpr const char* kLlmHelp = R"(Examples:
  footprint llm examples/llm/llama-7b.json                          parameters, weights, KV cache, inference
  footprint llm examples/llm/deepseek-v3.json --gpu h200            another architecture: transformers' code
  footprint llm config.json --weights int4 --batch 8 --context 4096 --gpu rtx4090
  footprint llm config.json --gpu h100 --fit batch                  the largest batch at this context
  footprint llm model.Q4_K_M.gguf --context 8192 --gpu rtx4090      a GGUF file, at its own quantization
  footprint llm config.json --train --gpu h100                      full fine-tuning, bf16-amp AdamW
  footprint llm config.json --train --checkpointing --lora 16 --lora-targets q_proj,v_proj --gpu a100-40gb
  footprint llm llama-2-70b.json --train --shard zero3 --gpus 64 --tp 8 --checkpointing --gpu h100

The config.json of a Hugging Face model is enough: no weights are read or downloaded. For llama,
mistral, qwen2, gpt2 and bert footprint builds the architecture as C++ modules that follow
transformers' modeling code op for op (the fast path); any other architecture transformers knows
(qwen3, gemma2, phi3, mixtral, qwen3_moe, deepseek_v3, t5, BertForMaskedLM, ...) is built by the
installed transformers itself, in Python (the python path: --path python; docs/llm.md), and so is
a mistral context longer than its sliding window. Either way it runs on the meta device: every op,
shape and allocation is the real one, and a 70B model costs no memory. The python path has --lora
(peft's get_peft_model), --fit, --html and --snapshot too; --weights int8/int4, --group-size and
--attention are the C++ path's.

Inference: a static KV cache of batch x context tokens; prefill runs a prompt of the whole context
and keeps the last position's logits (as generate() does); decode runs one token against the full
cache. int8/int4 weights are group-quantized projections (one fp16 scale and one zero point per
--group-size inputs; embeddings, norms and the head stay 16-bit).

Training: one step as docs/memory.md measures it, twice (zero_grad, forward with the causal-LM
loss, backward, optimizer step; the output's logits and transformers' DynamicCache live through
backward). --precision bf16-amp is torch.autocast over fp32 weights (16 bytes
per parameter in model states). Per GPU: --tp T builds one tensor-parallel rank (heads, MLP and
vocabulary split T ways, as Megatron-LM); --shard divides model states over the gpus/T data-parallel
ranks (zero1: optimizer state; zero2: + gradients; zero3 and fsdp: + parameters, gathered two layers
at a time). docs/llm.md explains every number and compares them with the published formulas.

Exit status: 0; 1 when the config cannot be read or the model cannot be built (one line on stderr);
2 for a usage error; 4 with --check when a phase does not fit (or --fit finds nothing that fits).)";

// A usage error found after parsing (exit 2, one line, no JSON).
struct UsageError : Error {
  using Error::Error;
};

// A float option's check: a finite number in [lo, hi] (CLI::Range lets NaN through).
CLI::Validator finite_in(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        char* end = nullptr;
        double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !std::isfinite(v) || v < lo || v > hi)
          return fmt::format("'{}': expected a number from {:g} to {:g}", text, lo, hi);
        return {};
      },
      fmt::format("FLOAT in [{:g} - {:g}]", lo, hi));
}

// --gpu (a profile or a size: on CPU, the memory to fit in), --context/--cuda-context (MiB) and
// --alloc-conf, into the memory options of a run whose target is already set.
void device_options(MemoryOptions& m, const std::string& gpu, double context_mib,
                    const std::string& alloc_conf) {
  if (!gpu.empty()) {
    DeviceProfile p = device_parse(gpu);
    if (m.target == Target::kCpu) {
      m.capacity = p.total;
    } else {
      if (context_mib >= 0) p.context = int64_t(context_mib * 1024 * 1024);
      m.gpu = p;
    }
  }
  if (!alloc_conf.empty()) m.allocator = parse_allocator_config(alloc_conf);
}

// --snapshot and --html: the pictures of a report, written where asked.
struct PictureArgs {
  std::string snapshot, html;
  bool any() const { return !snapshot.empty() || !html.empty(); }
};

void add_picture_options(CLI::App* c, PictureArgs& p, const char* which) {
  c->add_option("--snapshot", p.snapshot,
                fmt::format("Write {} as a memory_viz snapshot (the pickle that "
                            "torch.cuda.memory._dump_snapshot writes): drop it on "
                            "pytorch.org/memory_viz",
                            which))
      ->type_name("FILE");
  c->add_option("--html", p.html,
                fmt::format("Write {} as one self-contained HTML page: live memory over time by "
                            "category, the peak, the modules and the allocator's segments",
                            which))
      ->type_name("FILE");
}

void write_file(const std::string& option, const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  if (out) out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out || !out.flush())
    throw Error(
        fmt::format("{} {}: cannot write the file: {}", option, path, std::strerror(errno)));
}

// Before the run, so that a path that cannot be written costs no capture: its directory must be
// there and writable.
void check_writable(const std::string& option, const std::string& path, const std::string& model) {
  if (path.empty()) return;
  struct stat a, b;
  if (stat(path.c_str(), &a) == 0 && stat(model.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
      a.st_ino == b.st_ino)
    throw UsageError(
        fmt::format("{} {}: that is the model's file; give the page another name", option, path));
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (access(dir.c_str(), W_OK) != 0)
    throw Error(
        fmt::format("{} {}: cannot write there: {}: {}", option, path, dir, std::strerror(errno)));
}

void write_pictures(const PictureArgs& p, const MemoryReport& r) {
  if (!p.snapshot.empty()) write_file("--snapshot", p.snapshot, memory_snapshot(r));
  if (!p.html.empty()) write_file("--html", p.html, memory_html(r));
}

// A CLI11 check made of a parser: "" when the text parses, else the parser's message (a usage
// error, exit 2).
template <class Parse>
std::function<std::string(const std::string&)> parses_with(Parse parse) {
  return [parse](const std::string& text) -> std::string {
    try {
      parse(text);
      return {};
    } catch (const Error& e) {
      return e.what();
    }
  };
}

// --input values: each may hold several inputs separated by ';'.
const auto check_inputs = parses_with([](const std::string& text) { parse_inputs(text); });
// --gpu: a GPU footprint knows, or a size.
const auto check_gpu = parses_with([](const std::string& text) { device_parse(text); });
const auto check_optimizer =
    parses_with([](const std::string& text) { plan_optimizer(Target::kCuda, text, "auto"); });
const auto check_alloc_conf =
    parses_with([](const std::string& text) { parse_allocator_config(text); });

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The sandbox's options, shared by the commands that run a model (kSandboxHelp).
// Defaults: --time-limit 40 s, several times what the largest models footprint knows take
// (DeepSeek-V3's training step on the python path: 5.6 s, whole process); --max-memory 1 GiB of
// resident memory for the engines that run files (TorchScript and .pt2; a Llama-2-70B training
// step with the for-loop AdamW peaks at 490 MiB), 2 GiB where Python code and transformers run
// (DeepSeek-V3's training step: 1.0 GiB).
constexpr double kDefaultSeconds = 40;
constexpr const char* kDefaultMemory = "1GiB";
constexpr const char* kDefaultPythonMemory = "2GiB";
constexpr int64_t kLeastMemory = int64_t(512) << 20;  // the engine alone: about 450 MiB

struct EngineArgs {
  double seconds = kDefaultSeconds;
  int64_t ops = 2'000'000;
  std::string cpu_memory = "256MiB", memory, prints = "stderr";  // memory "": the path's default
  bool check = false;
  std::vector<std::string> guess;  // Python models: ops to run with a guessed output
  std::string memory_for(bool python_code) const {
    return !memory.empty() ? memory : python_code ? kDefaultPythonMemory : kDefaultMemory;
  }
  // The limits inside footprint-engine (a TorchScript file, a .pt2 summary, the C++ llm path).
  EngineLimits limits() const {
    EngineLimits l;
    l.seconds = seconds;
    l.ops = ops;
    l.cpu_bytes = *size_parse(cpu_memory);
    l.memory_bytes = *size_parse(memory_for(false));
    l.prints = prints == "drop" ? EngineLimits::Prints::kDrop : EngineLimits::Prints::kStderr;
    return l;
  }
};

std::string check_size(const std::string& text) {
  auto n = size_parse(text);
  if (!n) return fmt::format("'{}' is not a size such as 256MiB or 8GiB", text);
  if (*n <= 0) return fmt::format("'{}': the size must be more than 0 bytes", text);
  return {};
}

std::string check_memory(const std::string& text) {
  std::string bad = check_size(text);
  if (!bad.empty()) return bad;
  if (*size_parse(text) < kLeastMemory)
    return fmt::format(
        "'{}': the engine needs about 450 MiB to load LibTorch; give at least "
        "512MiB",
        text);
  return {};
}

void add_engine_options(CLI::App* c, EngineArgs& e, bool fits) {
  c->add_option("--guess", e.guess,
                "Python models (FILE.py:NAME, .pt2): run OP (ns::op), which has no meta "
                "implementation, with an output shaped like its first input; the report says so "
                "(a TorchScript file's aten ops are guessed without asking)")
      ->type_name("OP");
  c->add_option("--time-limit", e.seconds,
                "Seconds the run may take, in all (the engine is stopped past it)")
      ->default_val(kDefaultSeconds)
      ->check(finite_in(0.1, 1e6));
  c->add_option("--max-ops", e.ops, "aten ops one capture of the model may run")
      ->default_val(2'000'000)
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  c->add_option("--max-cpu-memory", e.cpu_memory,
                "Real CPU memory the model's tensors may hold during a capture (on meta, a "
                "model needs almost none)")
      ->default_val("256MiB")
      ->check(check_size);
  c->add_option("--max-memory", e.memory,
                fmt::format("Resident memory of the engine process, trace included (about 800 B "
                            "an op); default {}, {} for Python code and the llm python path",
                            kDefaultMemory, kDefaultPythonMemory))
      ->check(check_memory);
  c->add_option("--model-output", e.prints,
                "Where the model's print()s go: stderr, one line each, or drop")
      ->default_val("stderr")
      ->check(CLI::IsMember({"stderr", "drop"}));
  if (fits)
    c->add_flag("--check", e.check,
                "Exit with status 4 when the run does not fit the device (for CI jobs)");
}

// Runs the engine for this command (supervise.h): footprint-engine with the same arguments, or
// for Python code `python -I` with them and the limits the engine is to apply itself.
int run_engine(char** argv, const EngineArgs& ea, const std::string& file, bool json, FILE* out,
               bool python = false) {
  std::vector<std::string> args;
  for (char** a = argv + 1; *a; ++a) args.push_back(*a);
  Supervision s;
  s.seconds = ea.seconds;
  s.python = python;
  s.memory_text = ea.memory_for(python && !ends_with(file, ".pt2"));
  s.memory_bytes = *size_parse(s.memory_text);
  s.file = file;
  s.json = json;
  if (python)
    args.insert(args.end(),
                {"--time-limit", fmt::format("{:g}", ea.seconds), "--max-memory", s.memory_text,
                 "--max-ops", std::to_string(ea.ops), "--max-cpu-memory", ea.cpu_memory});
  return supervise(args, s, out);
}

// The first line of a message, for an exception that should not have reached the command (a
// LibTorch error carries its C++ stack on the lines after).
std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace

int run(int argc, char** argv, const Engine* engine, FILE* out) {
  CLI::App app{"footprint: what a PyTorch model is made of, and whether it will fit.", "footprint"};
  app.set_version_flag("--version", std::string("footprint ") + FOOTPRINT_VERSION);
  app.require_subcommand(1);
  // A usage error is one line, as every other error (CLI11's default adds a second).
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return fmt::format("footprint: {} (footprint --help)\n", escape_text(e.what()));
  });
  app.footer(
      "Run 'footprint COMMAND --help' for a command's options and examples. The docs/ files the "
      "helps name are in the source tree and, installed, in share/doc/footprint/. Exit status: "
      "0 ok; 1 a file or model problem; 2 a usage error; 3 printed, but not exact; 4 with --check, "
      "it does not fit.");

  std::vector<std::string> files;
  std::string dtypes, format = "table";
  int depth = 1;
  bool tensors = false;
  CLI::App* params =
      app.add_subcommand("params", "Count parameters and buffers in model files, exactly.");
  params
      ->add_option("FILE", files,
                   "TorchScript .pt, torch.save .pth/.bin, .safetensors, *.index.json, .gguf, "
                   ".onnx, or a torch.export .pt2")
      ->required();
  params
      ->add_option("--dtype", dtypes,
                   "Also show bytes at these precisions: fp32,fp16,bf16,fp8,int8,int4")
      ->check(parses_with([](const std::string& s) { precision_parse_list(s); }));
  params
      ->add_option("--depth", depth, "Module roll-up depth (0: whole model only, -1: every level)")
      ->default_val(1)
      ->check(CLI::Range(-1, 1000));
  params->add_flag("--tensors", tensors, "List every tensor: name, shape, dtype, numel, bytes");
  params->add_option("--format", format, "Output format")
      ->default_val("table")
      ->check(CLI::IsMember({"table", "json", "csv", "md"}));
  params->footer(kParamsHelp);

  std::string file, by = "module", columns = "default", run_dtype;
  std::vector<std::string> input_texts;
  bool train = false;
  int summary_depth = 3;
  CLI::App* summary = app.add_subcommand(
      "summary", "Run the model on the meta device: per-layer shapes, parameters, MACs, FLOPs.");
  summary
      ->add_option("FILE", file,
                   "A TorchScript file (torch.jit.script or trace, saved), a torch.export "
                   "program (.pt2, read without LibTorch), or Python code: FILE.py:NAME, a "
                   "class or factory in the file, run in Python (docs/python.md)")
      ->required();
  summary
      ->add_option("--input", input_texts,
                   "Input shape, as 1x3x224x224 or 1,3,224,224, with :dtype for integer inputs "
                   "(1x128:int64); repeat it, or separate with ';', for several inputs. "
                   "Required, except for a torch.export program (.pt2), whose shapes are fixed")
      ->check(check_inputs);
  summary->add_flag("--train", train, "A training pass: forward, loss and backward");
  summary
      ->add_option("--dtype", run_dtype,
                   "Run at this precision: fp32, fp16, bf16 (default: as stored)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "fp64"}));
  summary->add_option("--depth", summary_depth, "Rows down to this depth (-1: every level)")
      ->default_val(3)
      ->check(CLI::Range(-1, 1000));
  summary->add_option("--by", by, "Rows per module call, or per aten op (fvcore's by_operator)")
      ->default_val("module")
      ->check(CLI::IsMember({"module", "op"}));
  summary
      ->add_option("--columns", columns,
                   "torchstat adds memory read and write per layer and each layer's FLOP share")
      ->default_val("default")
      ->check(CLI::IsMember({"default", "torchstat"}));
  summary->add_option("--format", format, "Output format")
      ->default_val("table")
      ->check(CLI::IsMember({"table", "json", "csv", "md"}));
  EngineArgs ea;
  add_engine_options(summary, ea, false);
  summary->footer(std::string(kSummaryHelp) + "\n\n" + kSandboxHelp);

  // memory and fit share their options.
  struct MemoryArgs {
    std::string file, optimizer = "adamw", impl = "auto", precision = "fp32", loss = "auto",
                      zero_grad = "none", gpu, device = "cuda", alloc_conf, method = "footprint",
                      format = "table";
    std::vector<std::string> inputs;
    bool train = false;
    int modules = 8;
    double context_mib = -1;
  } ma;
  auto memory_options = [&](CLI::App* c, bool fit) {
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
        c->add_flag("--train", ma.train,
                    "A training step (zero_grad, forward, loss, backward, optimizer step), twice");
    c->add_option("--optimizer", ma.optimizer,
                  "sgd, momentum, nesterov, adam, adamw, amsgrad, adagrad, rmsprop, "
                  "rmsprop-centered (torch.optim's defaults; momentum 0.9, AdamW weight decay "
                  "0.01)")
        ->default_val("adamw")
        ->check(check_optimizer)
        ->needs(train);
    c->add_option("--impl", ma.impl,
                  "The optimizer's implementation: auto (PyTorch 2.x: foreach on CUDA, for-loop "
                  "on CPU), for-loop, foreach, fused")
        ->default_val("auto")
        ->check(CLI::IsMember({"auto", "for-loop", "foreach", "fused"}))
        ->needs(train);
    c->add_option("--precision", ma.precision,
                  "fp32; fp16 or bf16 (parameters, inputs and activations); bf16-amp or fp16-amp "
                  "(autocast over fp32 weights)")
        ->default_val("fp32")
        ->check(CLI::IsMember({"fp32", "fp16", "bf16", "bf16-amp", "fp16-amp"}));
    c->add_option("--loss", ma.loss,
                  "auto: cross-entropy for a 2-D output (a classifier), else mean of squares")
        ->default_val("auto")
        ->check(CLI::IsMember({"auto", "cross-entropy", "mean-square"}))
        ->needs(train);
    c->add_option("--zero-grad", ma.zero_grad,
                  "none: zero_grad(set_to_none=True), PyTorch 2.x's default; zeros: keep the "
                  "gradients and zero them")
        ->default_val("none")
        ->check(CLI::IsMember({"none", "zeros"}))
        ->needs(train);
    CLI::Option* gpu =
        c->add_option("--gpu", ma.gpu,
                      "h100, h200, a100-80gb, a100-40gb, l4, rtx4090, rtx3090, t4, v100-16gb, "
                      "v100-32gb, or a size (24GiB, 16000MiB); with --device cpu, a size: the "
                      "memory to fit in")
            ->check(check_gpu);
    if (fit) gpu->required();
    c->add_option("--device", ma.device, "cuda, or cpu to estimate a CPU run")
        ->default_val("cuda")
        ->check(CLI::IsMember({"cuda", "cpu"}));
    c->add_option("--context", ma.context_mib,
                  "MiB the CUDA context and libraries take outside the allocator (default: the "
                  "GPU profile's)")
        ->check(finite_in(0.0, 1e9));
    c->add_option("--alloc-conf", ma.alloc_conf,
                  "PYTORCH_CUDA_ALLOC_CONF: max_split_size_mb, roundup_power2_divisions, "
                  "expandable_segments")
        ->check(check_alloc_conf);
    c->add_option("--format", ma.format, "Output format")
        ->default_val("table")
        ->check(CLI::IsMember({"table", "json", "csv", "md"}));
    add_engine_options(c, ea, true);
    c->get_option("--check")->needs(gpu);
  };
  CLI::App* memory = app.add_subcommand(
      "memory", "Peak memory of inference or a training step, by category, and whether it fits.");
  memory_options(memory, false);
  memory
      ->add_option("--method", ma.method,
                   "seed: also print the seeds' formulas (parameters x 4 bytes; "
                   "pytorch_modelsize) beside the estimate")
      ->default_val("footprint")
      ->check(CLI::IsMember({"footprint", "seed"}));
  memory->add_option("--modules", ma.modules, "Rows of the largest modules at the peak")
      ->default_val(8)
      ->check(CLI::Range(0, 100000));
  PictureArgs pictures;
  add_picture_options(memory, pictures, "the run");
  memory->footer(std::string(kMemoryHelp) + "\n\n" + kSandboxHelp);
  CLI::App* fit = app.add_subcommand("fit", "The largest batch that fits a GPU.");
  memory_options(fit, true);
  add_picture_options(fit, pictures, "the run at the batch found");
  fit->footer(std::string(kFitHelp) + "\n\n" + kSandboxHelp);

  struct LlmArgs {
    std::string config, weights, precision = "bf16-amp", optimizer = "adamw", impl = "auto",
                                 lora_targets, shard = "none", attention = "auto", gpu,
                                 device = "cuda", alloc_conf, fit = "none", format = "table",
                                 path = "auto", cache = "auto";
    int64_t batch = 1, context = 0, group = 128, lora = 0, gpus = 1, tp = 1;
    double lora_alpha = 16, cuda_context_mib = -1;
    bool train = false, checkpointing = false;
  } la;
  CLI::App* llm = app.add_subcommand(
      "llm",
      "A language model from its config.json: parameters, weights, KV cache, and the memory "
      "of inference or training per GPU.");
  llm->add_option("CONFIG", la.config,
                  "A transformers config.json (any model_type; llama, mistral, qwen2, gpt2 and "
                  "bert by the C++ modules), or a GGUF file "
                  "(llama, qwen2)")
      ->required();
  llm->add_option("--batch", la.batch, "Sequences per batch")
      ->default_val(1)
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  llm->add_option("--context", la.context,
                  "Tokens: the KV cache's length (inference) or the sequence length (training); "
                  "default: max_position_embeddings, at most 4096")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  CLI::Option* train_llm = llm->add_flag(
      "--train", la.train, "A training step (forward, loss, backward, optimizer step)");
  llm->add_option("--weights", la.weights,
                  "Inference weights: fp32, fp16, bf16, int8, int4 (default: the config's "
                  "torch_dtype when 16-bit, else bf16)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "int8", "int4"}))
      ->excludes(train_llm);
  llm->add_option("--group-size", la.group, "int8/int4: inputs per quantization group")
      ->default_val(128)
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20))
      ->excludes(train_llm);
  llm->add_option("--precision", la.precision,
                  "Training: bf16-amp or fp16-amp (autocast over fp32 weights), fp32, bf16, fp16")
      ->default_val("bf16-amp")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "bf16-amp", "fp16-amp"}))
      ->needs(train_llm);
  llm->add_option("--optimizer", la.optimizer,
                  "As footprint memory's: adamw, adam, sgd, momentum, ...")
      ->default_val("adamw")
      ->check(check_optimizer)
      ->needs(train_llm);
  llm->add_option("--impl", la.impl,
                  "auto (foreach on CUDA, for-loop on CPU), for-loop, foreach, fused")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "for-loop", "foreach", "fused"}))
      ->needs(train_llm);
  llm->add_flag("--checkpointing", la.checkpointing,
                "Gradient checkpointing: each layer recomputed in backward")
      ->needs(train_llm);
  llm->add_option("--lora", la.lora, "LoRA rank (0: full fine-tuning); the base model is frozen")
      ->default_val(0)
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20))
      ->needs(train_llm);
  llm->add_option("--lora-alpha", la.lora_alpha, "LoRA's alpha (scaling = alpha / rank)")
      ->default_val(16)
      ->check(finite_in(-1e9, 1e9))
      ->needs(train_llm);
  llm->add_option("--lora-targets", la.lora_targets,
                  "Projections with adapters, comma-separated (q_proj,v_proj), or all-linear; "
                  "default: PEFT's for the family")
      ->needs(train_llm);
  llm->add_option("--shard", la.shard, "none, zero1, zero2, zero3, fsdp (full shard)")
      ->default_val("none")
      ->check(CLI::IsMember({"none", "zero1", "zero2", "zero3", "fsdp"}))
      ->needs(train_llm);
  llm->add_option("--gpus", la.gpus, "GPUs in all (data parallel x tensor parallel)")
      ->default_val(1)
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  llm->add_option("--tp", la.tp, "Tensor-parallel degree")
      ->default_val(1)
      ->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  llm->add_option("--attention", la.attention,
                  "auto (sdpa, transformers' default), eager (scores kept), sdpa "
                  "(F.scaled_dot_product_attention: the target's fused kernel)")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "eager", "sdpa"}));
  CLI::Option* llm_gpu = llm->add_option("--gpu", la.gpu,
                                         "h100, h200, a100-80gb, a100-40gb, l4, rtx4090, "
                                         "rtx3090, t4, v100-16gb, v100-32gb, or a size (24GiB)")
                             ->check(check_gpu);
  llm->add_option("--device", la.device, "cuda, or cpu to estimate a CPU run (PyTorch 2.11)")
      ->default_val("cuda")
      ->check(CLI::IsMember({"cuda", "cpu"}));
  llm->add_option("--cuda-context", la.cuda_context_mib,
                  "MiB the CUDA context and libraries take (default: the GPU profile's)")
      ->check(finite_in(0.0, 1e9));
  llm->add_option("--alloc-conf", la.alloc_conf, "PYTORCH_CUDA_ALLOC_CONF settings")
      ->check(check_alloc_conf);
  llm->add_option("--path", la.path,
                  "auto: the C++ modules for their families, else transformers' own code run "
                  "in Python (a Python with torch, transformers and footprint's package); "
                  "cpp; python (docs/llm.md)")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "cpp", "python"}));
  llm->add_option("--cache", la.cache,
                  "Decode's KV cache: auto; dynamic (generate()'s DynamicCache, the python "
                  "path's default); static (preallocated, as the C++ path's always is)")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "dynamic", "static"}));
  llm->add_option("--fit", la.fit, "With --gpu: the largest batch, or context, that fits")
      ->default_val("none")
      ->check(CLI::IsMember({"none", "batch", "context"}))
      ->needs(llm_gpu);
  llm->add_option("--format", la.format, "Output format")
      ->default_val("table")
      ->check(CLI::IsMember({"table", "json", "csv", "md"}));
  add_engine_options(llm, ea, true);
  llm->get_option("--check")->needs(llm_gpu);
  add_picture_options(llm, pictures,
                      "the training step (inference: the phase with the larger peak, prefill or "
                      "decode)");
  llm->footer(std::string(kLlmHelp) + "\n\n" + kSandboxHelp);

  auto scenario = [&](bool per_sample) {
    MemoryScenario s;
    for (const auto& text : ma.inputs)
      for (auto& in : parse_inputs(text)) {
        if (per_sample) in.shape.insert(in.shape.begin(), 1);
        s.inputs.push_back(std::move(in));
      }
    s.train = ma.train;
    bool cpu = ma.device == "cpu";
    s.memory.target = cpu ? Target::kCpu : Target::kCuda;
    if (ma.train) s.optimizer = plan_optimizer(s.memory.target, ma.optimizer, ma.impl);
    s.precision = *precision_mode_parse(ma.precision);
    s.loss = *loss_parse(ma.loss);
    s.set_to_none = ma.zero_grad == "none";
    device_options(s.memory, ma.gpu, ma.context_mib, ma.alloc_conf);
    s.memory.timeline = pictures.any();
    s.limits = ea.limits();
    return s;
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  // Conflicts CLI11's needs/excludes cannot say.
  if ((memory->parsed() || fit->parsed()) && ma.device == "cpu") {
    std::string problem;
    if (ma.context_mib >= 0) problem = "--context is the CUDA context's memory";
    if (!ma.gpu.empty() && !size_parse(ma.gpu))
      problem =
          fmt::format("--gpu {} names a GPU; give a size (64GiB) as the memory to fit in", ma.gpu);
    if (!problem.empty()) {
      fmt::print(stderr, "footprint: {}, and --device cpu estimates a CPU run\n",
                 escape_text(problem));
      return kExitUsage;
    }
  }
  if (llm->parsed() && la.device == "cpu" && !la.gpu.empty() && !size_parse(la.gpu)) {
    fmt::print(stderr,
               "footprint: --gpu {} names a GPU, and --device cpu estimates a CPU run; give a "
               "size (64GiB) as the memory to fit in\n",
               escape_text(la.gpu));
    return kExitUsage;
  }

  if ((memory->parsed() || fit->parsed()) && ma.inputs.empty() && !ends_with(ma.file, ".pt2")) {
    fmt::print(stderr, "footprint {}: --input is required (the shapes to run {} on)\n",
               memory->parsed() ? "memory" : "fit", escape_text(ma.file));
    return kExitUsage;
  }
  const std::string& model_file = llm->parsed() ? la.config : summary->parsed() ? file : ma.file;
  bool json = (params->parsed()    ? format
               : summary->parsed() ? format
               : llm->parsed()     ? la.format
                                   : ma.format) == "json";
  // One line on stderr; with --format json, also the error object on stdout.
  auto fail = [&](const std::string& message) {
    fmt::print(stderr, "footprint: {}\n", escape_text(message));
    if (json && !params->parsed())
      fmt::print(
          out, "{}\n",
          nlohmann::json{{"error", escape_text(message)}, {"exit_status", kExitError}}.dump(2));
    return kExitError;
  };
  auto warn = [&](const std::vector<std::string>& lines) {
    std::fflush(out);
    for (const auto& w : lines)
      fmt::print(stderr, "footprint: {}: warning: {}\n", escape_text(model_file), escape_text(w));
  };
  // Gaps on stderr, after the report; 3 when there are any.
  auto gaps = [&](const std::vector<std::string>& lines) {
    std::fflush(out);
    for (const auto& gap : lines)
      fmt::print(stderr, "footprint: {}: {}\n", escape_text(model_file), escape_text(gap));
    return lines.empty() ? 0 : kExitIncomplete;
  };
  auto with_check = [&](int gap_status, bool does_not_fit) {
    return ea.check && does_not_fit ? kExitDoesNotFit : gap_status;
  };

  try {
    check_writable("--snapshot", pictures.snapshot, model_file);
    check_writable("--html", pictures.html, model_file);
    bool program =
        summary->parsed() && file.size() > 4 && file.compare(file.size() - 4, 4, ".pt2") == 0;
    if (summary->parsed() && !program && input_texts.empty()) {
      fmt::print(stderr, "footprint summary: --input is required (the shapes to run {} on)\n",
                 escape_text(file));
      return kExitUsage;
    }
    // Python code (model.py:Class), and a .pt2 for memory and fit: the Python package's engine.
    bool python_model =
        !llm->parsed() && (ends_with(model_file.substr(0, model_file.rfind(':')), ".py") ||
                           (!summary->parsed() && ends_with(model_file, ".pt2")));
    if (python_model) return run_engine(argv, ea, model_file, json, out, /*python=*/true);
    if (!ea.guess.empty()) {
      fmt::print(stderr,
                 "footprint: --guess is for models written in Python (FILE.py:NAME or .pt2); "
                 "{} guesses the aten ops it cannot run by itself and says which\n",
                 escape_text(model_file));
      return kExitUsage;
    }
    // A config.json the C++ modules do not build (another family, or another class of theirs:
    // BertForMaskedLM), or --path python: transformers' own code, in Python, told so by --path.
    if (llm->parsed() && !engine &&
        (la.path == "python" || (la.path == "auto" && !ends_with(la.config, ".gguf") &&
                                 python_only(la.config, la.context)))) {
      std::vector<std::string> args;
      for (char** a = argv; *a; ++a) args.push_back(*a);
      if (la.path != "python") args.insert(args.end(), {"--path", "python"});
      std::vector<char*> with_path;
      for (auto& a : args) with_path.push_back(a.data());
      with_path.push_back(nullptr);
      return run_engine(with_path.data(), ea, la.config, json, out, /*python=*/true);
    }
    if ((memory->parsed() || fit->parsed() || llm->parsed() || (summary->parsed() && !program)) &&
        !engine)
      return run_engine(argv, ea, model_file, json, out);
    if (llm->parsed()) {
      if (la.cache == "dynamic") {
        fmt::print(stderr,
                   "footprint llm: --cache dynamic: the C++ path's KV cache is preallocated (as a "
                   "StaticCache); --path python runs transformers' DynamicCache\n");
        return kExitUsage;
      }
      LlmScenario s;
      s.batch = la.batch;
      s.context = la.context;
      s.train = la.train;
      if (!la.weights.empty()) s.weights = precision_parse(la.weights);
      s.group_size = la.group;
      s.precision = *precision_mode_parse(la.precision);
      bool cpu = la.device == "cpu";
      s.memory.target = cpu ? Target::kCpu : Target::kCuda;
      if (la.train) s.optimizer = plan_optimizer(s.memory.target, la.optimizer, la.impl);
      s.checkpointing = la.checkpointing;
      s.lora_rank = la.lora;
      s.lora_alpha = la.lora_alpha;
      for (size_t at = 0; !la.lora_targets.empty() && at <= la.lora_targets.size();) {
        size_t comma = la.lora_targets.find(',', at);
        if (comma == std::string::npos) comma = la.lora_targets.size();
        if (comma > at) s.lora_targets.push_back(la.lora_targets.substr(at, comma - at));
        at = comma + 1;
      }
      s.sharding = *sharding_parse(la.shard);
      s.gpus = la.gpus;
      s.tp = la.tp;
      s.attention = *attention_parse(la.attention);
      device_options(s.memory, la.gpu, la.cuda_context_mib, la.alloc_conf);
      s.fit = la.fit == "batch"     ? FitTarget::kBatch
              : la.fit == "context" ? FitTarget::kContext
                                    : FitTarget::kNone;
      s.memory.timeline = pictures.any();
      s.limits = ea.limits();
      LlmReport r = engine->llm(la.config, s);
      // The pictures before the report: a picture that cannot be written is the one error.
      if (pictures.any()) {
        const MemoryReport* pictured = r.train ? &*r.train : nullptr;
        for (const auto* phase : {&r.prefill, &r.decode})
          if (*phase && (!pictured || (*phase)->peak.bytes > pictured->peak.bytes))
            pictured = &**phase;
        if (!pictured)
          throw Error(
              fmt::format("{}: --snapshot/--html: this model has no run to picture", la.config));
        write_pictures(pictures, *pictured);
      }
      fmt::print(out, "{}", print_llm(r, *format_parse(la.format)));
      std::vector<std::string> lines;
      bool does_not_fit = r.fit_target != FitTarget::kNone && r.fit.value_or(0) == 0;
      for (const auto* run : {&r.prefill, &r.decode, &r.train})
        if (*run) {
          lines.insert(lines.end(), (*run)->gaps.begin(), (*run)->gaps.end());
          does_not_fit = does_not_fit || !fits(**run);
        }
      return with_check(gaps(lines), does_not_fit);
    }
    if (memory->parsed()) {
      MemoryScenario s = scenario(false);
      MemoryPrintOptions print;
      print.format = *format_parse(ma.format);
      print.modules = ma.modules;
      if (ma.method == "seed") print.seed = engine->seed(ma.file, s.inputs);
      MemoryReport r = engine->memory(ma.file, s);
      write_pictures(pictures, r);
      fmt::print(out, "{}", print_memory(r, print));
      warn(r.warnings);
      return with_check(gaps(r.gaps), !fits(r));
    }
    if (fit->parsed()) {
      MemoryScenario s = scenario(true);
      FitResult r = engine->fit(ma.file, s);
      write_pictures(pictures, r.fits);
      fmt::print(out, "{}", print_fit(r, *format_parse(ma.format)));
      warn(r.fits.warnings);
      return with_check(gaps(r.fits.gaps), r.batch == 0);
    }
    if (summary->parsed()) {
      SummaryOptions options;
      for (const auto& text : input_texts)
        for (auto& in : parse_inputs(text)) options.inputs.push_back(std::move(in));
      options.train = train;
      if (!run_dtype.empty()) options.dtype = dtype_parse(run_dtype);
      options.limits = ea.limits();
      Summary s = program ? summarize_program(file, options) : engine->summary(file, options);
      SummaryPrintOptions print;
      print.format = *format_parse(format);
      print.depth = summary_depth;
      print.by_op = by == "op";
      print.columns =
          columns == "torchstat" ? SummaryColumns::kTorchstat : SummaryColumns::kDefault;
      fmt::print(out, "{}", print_summary(s, print));
      warn(s.warnings);
      return gaps(s.gaps);
    }

    ParamOptions options;
    options.precisions = precision_parse_list(dtypes.empty() ? "stored" : dtypes);
    options.precisions.erase(
        std::remove(options.precisions.begin(), options.precisions.end(), Precision::kStored),
        options.precisions.end());
    options.depth = depth;
    PrintOptions print;
    print.format = *format_parse(format);
    print.tensors = tensors;
    std::vector<ParamReport> reports;
    std::string first_error;
    for (const auto& f : files) {
      try {
        reports.push_back(footprint::params(read_model(f), options));
      } catch (const Error& e) {
        fmt::print(stderr, "footprint: {}\n", escape_text(e.what()));
        if (first_error.empty()) first_error = escape_text(e.what());
      }
    }
    if (!reports.empty())
      fmt::print(out, "{}", print_params(reports, print));
    else if (json)  // nothing to report: the error, as the other commands give it
      fmt::print(out, "{}\n",
                 nlohmann::json{{"error", first_error}, {"exit_status", kExitError}}.dump(2));
    return first_error.empty() ? 0 : kExitError;
  } catch (const UsageError& e) {
    fmt::print(stderr, "footprint: {}\n", escape_text(e.what()));
    return kExitUsage;
  } catch (const Error& e) {
    return fail(e.what());
  } catch (const std::bad_alloc&) {
    return fail(
        fmt::format("{}: the engine ran out of memory (--max-memory {})", model_file, ea.memory));
  } catch (const std::exception& e) {
    return fail("internal error: " + first_line(e.what()));
  }
}

}  // namespace footprint::cli
