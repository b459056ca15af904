// The footprint command, shared by its two programs: `footprint` (no LibTorch, so that `params`
// starts in milliseconds) and `footprint-engine` (LibTorch: `summary`). `footprint` runs the
// engine program for the commands that need it.
#pragma once

#include <functional>
#include <string>

#include "footprint/summary.h"

namespace footprint::cli {

// Runs a model file for the summary; null in the program without LibTorch.
using SummaryFn = std::function<Summary(const std::string& path, const SummaryOptions& options)>;

int run(int argc, char** argv, const SummaryFn& summary);

}  // namespace footprint::cli
