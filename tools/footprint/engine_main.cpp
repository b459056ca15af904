// footprint-engine: the command with LibTorch, which `footprint` runs for `summary`.
#include "cli.h"
#include "footprint/engine.h"

int main(int argc, char** argv) {
  return footprint::cli::run(argc, argv, &footprint::summary_file);
}
