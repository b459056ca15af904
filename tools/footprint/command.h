// What the command line's commands share (cli.cpp dispatches to them; one file each:
// cmd_params.cpp, cmd_summary.cpp, cmd_memory.cpp for memory and fit, cmd_llm.cpp): exit statuses,
// the option helpers built on the planner's vocabularies (footprint/plan.h), the sandbox's options,
// the pictures, and the way a command reports. The engine's process supervision is supervise.h.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "cli.h"
#include "footprint/footprint.h"
#include "footprint/plan.h"

namespace footprint::cli {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitIncomplete = 3;
constexpr int kExitDoesNotFit = 4;

// The part of every help that runs a model: the sandbox, its limits and the exit status.
extern const char* const kSandboxHelp;

// A usage error found after parsing (exit 2, one line, no JSON).
struct UsageError : Error {
  using Error::Error;
};

// A float option's check: a finite number in [lo, hi] (CLI::Range lets NaN through).
CLI::Validator finite_in(double lo, double hi);

// An option that takes one of a vocabulary's names (footprint/plan.h): its choices and their help
// come from the planner's table.
CLI::Option* add_choice(CLI::App* c, const std::string& flag, std::string& value, Vocabulary v,
                        const std::string& lead);

// A CLI11 check made of a parser: "" when the text parses, else the parser's message, worded for
// the command line (a usage error, exit 2).
using Check = std::function<std::string(const std::string&)>;
Check parses_with(std::function<void(const std::string&)> parse);
extern const Check check_inputs;      // --input: several inputs separated by ';'
extern const Check check_gpu;         // --gpu: a GPU footprint knows, or a size
extern const Check check_alloc_conf;  // --alloc-conf

bool ends_with(const std::string& s, const std::string& suffix);
// --guess on a model that is not Python code: one line, and the usage status.
int refuse_guess(const std::string& file);
// The first line of a message, for an exception that should not have reached the command (a
// LibTorch error carries its C++ stack on the lines after).
std::string first_line(const std::string& text);

// --snapshot and --html: the pictures of a report, written where asked.
struct PictureArgs {
  std::string snapshot, html;
  bool any() const { return !snapshot.empty() || !html.empty(); }
};
void add_picture_options(CLI::App* c, PictureArgs& p, const char* which);
// Before the run, so that a path that cannot be written costs no capture.
void check_writable(const std::string& option, const std::string& path, const std::string& model);
void write_pictures(const PictureArgs& p, const MemoryReport& r);

// The sandbox's options, shared by the commands that run a model (kSandboxHelp).
struct EngineArgs {
  double seconds = 40;
  int64_t ops = 2'000'000;
  std::string cpu_memory = "256MiB", memory, prints = "stderr";  // memory "": the path's default
  bool check = false;
  std::vector<std::string> guess;  // Python models: ops to run with a guessed output
  std::string memory_for(bool python_code) const;
  // The limits inside footprint-engine (a TorchScript file, a .pt2 summary, the C++ llm path).
  EngineLimits limits() const;
  // The exit status of a printed report: 4 with --check when it does not fit, else the gaps'.
  int status(int gap_status, bool does_not_fit) const {
    return check && does_not_fit ? kExitDoesNotFit : gap_status;
  }
};
void add_engine_options(CLI::App* c, EngineArgs& e, bool fits);

// Runs the engine for this command (supervise.h): footprint-engine with the same arguments, or
// for Python code `python -I` with them and the limits the engine is to apply itself.
int run_engine(char** argv, const EngineArgs& ea, const std::string& file, bool json, FILE* out,
               bool python = false);

// What every command shares: the sandbox's options and the pictures.
struct Shared {
  EngineArgs engine;
  PictureArgs pictures;
};

// How a command reports, once parsed: the report on `out`; errors, warnings and gaps one line
// each on stderr.
struct Output {
  FILE* out = stdout;
  std::string model_file;
  bool json = false;
  bool error_object = true;  // with --format json, an error is also {"error": ...} on stdout
  int fail(const std::string& message) const;  // exit 1
  void warn(const std::vector<std::string>& lines) const;
  int gaps(const std::vector<std::string>& lines) const;  // 3 when there are any
};

// One command: its subcommand, the file it names and its format once parsed, and its run.
struct Command {
  CLI::App* app = nullptr;
  std::function<std::string()> file;
  std::function<std::string()> format;
  std::function<int(char** argv, const Engine* engine, const Output& output)> run;
};

Command add_params(CLI::App& app);
Command add_summary(CLI::App& app, Shared& shared);
std::vector<Command> add_memory_and_fit(CLI::App& app, Shared& shared);
Command add_llm(CLI::App& app, Shared& shared);

}  // namespace footprint::cli
