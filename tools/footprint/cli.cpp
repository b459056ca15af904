// The footprint command: a thin dispatcher. Each command (command.h; cmd_params.cpp,
// cmd_summary.cpp, cmd_memory.cpp, cmd_llm.cpp) declares its options and runs; the planner
// (footprint/plan.h) turns them into a run. Errors a user can cause come back as footprint::Error
// and leave as one line on stderr with exit status 1; usage errors, and the planner's OptionError,
// exit 2; a report printed with gaps (an op not counted or not run exactly) exits 3; with
// --check, a run that does not fit exits 4. The commands that run a model do it in a child
// process, the engine, under limits (run_engine, supervise.h).
#include "cli.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "command.h"

namespace footprint::cli {

int run(int argc, char** argv, const Engine* engine, FILE* out) {
  CLI::App app{"footprint: what a PyTorch model is made of, and whether it will fit.", "footprint"};
  std::string version = version_text();
  version.pop_back();  // CLI11 ends the line
  app.set_version_flag("--version", version);
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

  Shared shared;
  std::vector<Command> commands{add_params(app), add_summary(app, shared)};
  for (auto& c : add_memory_and_fit(app, shared)) commands.push_back(std::move(c));
  commands.push_back(add_llm(app, shared));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  const Command* command = nullptr;
  for (const auto& c : commands)
    if (c.app->parsed()) command = &c;
  if (!command) return kExitUsage;
  Output output;
  output.out = out;
  output.model_file = command->file();
  output.json = command->format() == "json";
  output.error_object = command->app->get_name() != "params";  // params reports its own

  try {
    check_writable("--snapshot", shared.pictures.snapshot, output.model_file);
    check_writable("--html", shared.pictures.html, output.model_file);
    return command->run(argv, engine, output);
  } catch (const UsageError& e) {
    fmt::print(stderr, "footprint: {}\n", escape_text(e.what()));
    return kExitUsage;
  } catch (const OptionError& e) {
    fmt::print(stderr, "footprint: {}\n",
               escape_text(word_options(e.what(), FrontEnd::kCommandLine)));
    return kExitUsage;
  } catch (const Error& e) {
    return output.fail(e.what());
  } catch (const std::bad_alloc&) {
    return output.fail(fmt::format("{}: the engine ran out of memory (--max-memory {})",
                                   output.model_file, shared.engine.memory_for(false)));
  } catch (const std::exception& e) {
    return output.fail("internal error: " + first_line(e.what()));
  }
}

}  // namespace footprint::cli
