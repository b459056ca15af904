// footprint-engine: the command with LibTorch, which `footprint` runs for `summary`, `memory` and
// `fit`.
#include "cli.h"
#include "footprint/engine.h"

int main(int argc, char** argv) {
  footprint::cli::Engine engine;
  engine.summary = &footprint::summary_file;
  engine.memory = &footprint::memory_file;
  engine.fit = [](const std::string& path, const footprint::MemoryScenario& s) {
    return footprint::fit_file(path, s);
  };
  engine.seed = &footprint::seed_file;
  engine.llm = &footprint::llm_file;
  return footprint::cli::run(argc, argv, &engine);
}
