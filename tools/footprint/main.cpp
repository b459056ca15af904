// footprint: the command without LibTorch. `summary`, `memory` and `fit` are run by
// footprint-engine (command.cpp, run_engine).
#include "cli.h"

int main(int argc, char** argv) {
  return footprint::cli::run(argc, argv, nullptr);
}
