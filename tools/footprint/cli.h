// The footprint command, shared by its two programs: `footprint` (no LibTorch, so that `params`
// starts in milliseconds) and `footprint-engine` (LibTorch: `summary`). `footprint` runs the
// engine program for the commands that need it.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

#include "footprint/llm.h"
#include "footprint/memory.h"
#include "footprint/summary.h"

namespace footprint::cli {

// The commands that run a model file; the program without LibTorch passes none.
struct Engine {
  std::function<Summary(const std::string& path, const SummaryOptions& options)> summary;
  std::function<MemoryReport(const std::string& path, const MemoryScenario& scenario)> memory;
  std::function<FitResult(const std::string& path, const MemoryScenario& scenario)> fit;
  std::function<SeedEstimate(const std::string& path, const std::vector<InputSpec>& inputs)> seed;
  std::function<LlmReport(const std::string& path, const LlmScenario& scenario)> llm;
};

// Prints the report on `out` (footprint-engine passes its saved stdout, with fd 1 pointing at
// stderr so that nothing else reaches the report's stream). Returns the exit status.
int run(int argc, char** argv, const Engine* engine, FILE* out = stdout);

}  // namespace footprint::cli
