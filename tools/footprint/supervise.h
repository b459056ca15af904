// The supervisor: `footprint` runs each model in a child process, the engine (footprint-engine,
// or for Python code `python -I` running footprint.cli.engine), and holds it to its limits from
// outside (docs/engine.md, "The process boundary").
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace footprint::cli {

struct Supervision {
  double seconds = 40;       // wall time, past which (plus a grace) the engine is killed
  int64_t memory_bytes = 0;  // resident memory of the engine, past which it is killed
  std::string memory_text;   // the --max-memory value as given, for the messages
  bool python = false;       // the engine is Python code (cli.engine), not footprint-engine
  std::string file;          // the model file, which the one-line messages name
  bool json = false;         // on failure, write {"error": ...} on `out` too
};

// Runs the engine with `args` (the command line after the program's name) and returns the exit
// status to leave with. The child runs in a process group of its own, with no core dump, a
// backstop on its address space and its CPU time, and dies with footprint (PR_SET_PDEATHSIG).
// Its stdout (the report) is held until it exits well, so that a report cut short is never
// printed; each line of its stderr is passed on escaped. Each op the engine starts names itself
// on a shared page, so that a death is one line naming the op. A Python engine ends its report
// with a status line (cli.py's STATUS_MARK), which decides the exit status: whatever the model's
// code did to the process. When the engine ends, its process group and every process it left
// behind (footprint is their subreaper) are killed.
int supervise(const std::vector<std::string>& args, const Supervision& s, FILE* out);

// Downloads `name`'s config.json (and its model.safetensors.index.json, where the repository has
// one) at `revision` into huggingface_hub's cache, by huggingface_hub itself in the engine's Python
// (its tokens, its endpoint, its timeouts). "" when it is there now, else the one line saying why.
std::string hub_download(const std::string& name, const std::string& revision);

}  // namespace footprint::cli
