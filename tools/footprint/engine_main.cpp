// footprint-engine: the command with LibTorch, which `footprint` runs as a child process for
// `summary`, `memory`, `fit` and `llm` (command.cpp, run_engine).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "cli.h"
#include "footprint/engine.h"

int main(int argc, char** argv) {
  // Only the report goes to stdout: it is written to a copy of fd 1, and fd 1 itself now points
  // at stderr, so that whatever else writes there (LibTorch's std::cout, a C library's printf)
  // cannot break a JSON report.
  FILE* out = stdout;
  int report = dup(STDOUT_FILENO);
  if (report >= 0 && dup2(STDERR_FILENO, STDOUT_FILENO) >= 0) {
    if (FILE* f = fdopen(report, "w")) out = f;
  }
  // The page the supervising `footprint` reads when this process dies (run_engine).
  if (const char* fd = std::getenv("FOOTPRINT_STATUS_FD")) {
    constexpr size_t kPage = 4096;
    void* page = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, std::atoi(fd), 0);
    if (page != MAP_FAILED) footprint::report_ops_to(static_cast<char*>(page), kPage);
  }
  footprint::leave_runs_to_exit(true);  // and std::_Exit below: one report, then the exit
  footprint::cli::Engine engine;
  engine.summary = &footprint::summary_file;
  engine.memory = &footprint::memory_file;
  engine.fit = [](const std::string& path, const footprint::MemoryScenario& s) {
    return footprint::fit_file(path, s);
  };
  engine.seed = &footprint::seed_file;
  engine.llm = &footprint::llm_file;
  int status = footprint::cli::run(argc, argv, &engine, out);
  std::fflush(nullptr);  // every C stream: the report, and std::cout's writes (synced to stdio)
  // Straight out, as clang does with -disable-free: returning would run LibTorch's static
  // destructors, which unregister each of its thousands of operators one by one (about 0.2 s,
  // a fifth of a Llama-2-70B training estimate). The process owns nothing else to release.
  std::_Exit(status);
}
