// The command line's shared parts (command.h): option helpers on the planner's tables, the
// sandbox's options, the pictures, and the one-line reporting every command uses.
#include "command.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "supervise.h"

namespace footprint::cli {

const char* const kSandboxHelp =
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

CLI::Option* add_choice(CLI::App* c, const std::string& flag, std::string& value, Vocabulary v,
                        const std::string& lead) {
  std::string help = lead.empty() ? choice_help(v) : lead + ": " + choice_help(v);
  // The planner's own parser checks the name, so the command says what Python and the C++ API
  // say: "--precision 'fp8': expected fp32, fp16, bf16, bf16-amp or fp16-amp".
  std::string names;
  for (const auto& n : choice_names(v)) names += (names.empty() ? "" : ",") + n;
  return c->add_option(flag, value, help)
      ->default_val(value)
      ->type_name("{" + names + "}")
      ->check([v](const std::string& text) -> std::string {
        try {
          choose(v, text);
          return {};
        } catch (const OptionError& e) {  // CLI11 names the option itself: "--impl: 'x': ..."
          std::string m = e.what();
          return m.substr(std::min(m.size(), m.find("` ") + 2));
        }
      });
}

Check parses_with(std::function<void(const std::string&)> parse) {
  return [parse](const std::string& text) -> std::string {
    try {
      parse(text);
      return {};
    } catch (const Error& e) {
      return word_options(e.what(), FrontEnd::kCommandLine);
    }
  };
}

const Check check_inputs = parses_with([](const std::string& text) { parse_inputs(text); });
const Check check_gpu = parses_with([](const std::string& text) { device_parse(text); });
const Check check_alloc_conf =
    parses_with([](const std::string& text) { parse_allocator_config(text); });

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int refuse_guess(const std::string& file) {
  fmt::print(stderr,
             "footprint: --guess is for models written in Python (FILE.py:NAME or .pt2); {} "
             "guesses the aten ops it cannot run by itself and says which\n",
             escape_text(file));
  return kExitUsage;
}

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

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

namespace {

void write_file(const std::string& option, const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  if (out) out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out || !out.flush())
    throw Error(
        fmt::format("{} {}: cannot write the file: {}", option, path, std::strerror(errno)));
}

// Defaults: --time-limit 40 s, several times what the largest models footprint knows take
// (DeepSeek-V3's training step on the python path: 5.6 s, whole process); --max-memory 1 GiB of
// resident memory for the engines that run files (TorchScript and .pt2; a Llama-2-70B training
// step with the for-loop AdamW peaks at 490 MiB), 2 GiB where Python code and transformers run
// (DeepSeek-V3's training step: 1.0 GiB).
constexpr double kDefaultSeconds = 40;
constexpr const char* kDefaultMemory = "1GiB";
constexpr const char* kDefaultPythonMemory = "2GiB";
constexpr int64_t kLeastMemory = int64_t(512) << 20;  // the engine alone: about 450 MiB

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

}  // namespace

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

std::string EngineArgs::memory_for(bool python_code) const {
  return !memory.empty() ? memory : python_code ? kDefaultPythonMemory : kDefaultMemory;
}

EngineLimits EngineArgs::limits() const {
  EngineLimits l;
  l.seconds = seconds;
  l.ops = ops;
  l.cpu_bytes = *size_parse(cpu_memory);
  l.memory_bytes = *size_parse(memory_for(false));
  l.prints = prints == "drop" ? EngineLimits::Prints::kDrop : EngineLimits::Prints::kStderr;
  return l;
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

int run_engine(char** argv, const EngineArgs& ea, const std::string& file, bool json, FILE* out,
               bool python) {
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

int Output::fail(const std::string& message) const {
  std::string line = escape_text(word_options(message, FrontEnd::kCommandLine));
  fmt::print(stderr, "footprint: {}\n", line);
  if (json && error_object)
    fmt::print(out, "{}\n", nlohmann::json{{"error", line}, {"exit_status", kExitError}}.dump(2));
  return kExitError;
}

void Output::warn(const std::vector<std::string>& lines) const {
  std::fflush(out);
  for (const auto& w : lines)
    fmt::print(stderr, "footprint: {}: warning: {}\n", escape_text(model_file), escape_text(w));
}

int Output::gaps(const std::vector<std::string>& lines) const {
  std::fflush(out);
  for (const auto& gap : lines)
    fmt::print(stderr, "footprint: {}: {}\n", escape_text(model_file), escape_text(gap));
  return lines.empty() ? 0 : kExitIncomplete;
}

}  // namespace footprint::cli
