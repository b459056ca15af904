#include "footprint/versions.h"

#include "footprint/version.h"

namespace footprint {

namespace {

std::string_view release(std::string_view v) {
  return v.substr(0, v.find('+'));
}

}  // namespace

std::string_view torch_min() {
  return FOOTPRINT_TORCH_MIN;
}
std::string_view torch_max() {
  return FOOTPRINT_TORCH_MAX;
}
std::string_view torch_built() {
  return FOOTPRINT_TORCH_BUILT;
}

const std::vector<RuleSource>& rule_sources() {
  // Each entry's figures are in the file it names; docs/versions.md has the table per release.
  static const std::vector<RuleSource> sources = {
      {"cpu", "CPU kernels' allocations and the CPU allocator (--device cpu)",
       "2.9.1, 2.11.0, 2.13.0, 2.15.0",
       "real CPU runs under the profiler, one thread, oneDNN at AVX-512 with bf16 "
       "(tests/reference/cpu/torch-*.json)"},
      {"cuda",
       "the CUDA caching allocator, cuBLAS and cuDNN workspaces, CUDA kernels' temporaries, the "
       "CUDA context",
       "2.11.0",
       "an NVIDIA H200 (sm_90), CUDA 13.0, cuDNN 9.19.0, 2026-11-27 (tests/reference/cuda)"},
      {"llm", "the C++ path of `footprint llm`: transformers' decoder code, op by op", "2.11.0",
       "transformers 5.17.0 (tests/python/test_llm.py holds the two paths together)"},
  };
  return sources;
}

std::string rules_line(std::string_view rules, std::string_view running) {
  for (const auto& s : rule_sources()) {
    if (s.rules != rules) continue;
    std::string line = std::string(rules == "cuda" ? "CUDA" : "CPU") +
                       " rules measured with torch " + std::string(s.torch) + " on " +
                       std::string(s.measured);
    if (running.empty()) return line;
    bool measured_here = false;  // s.torch lists releases, ", " between them
    for (std::string_view list = s.torch; !list.empty();) {
      size_t comma = list.find(", ");
      measured_here |= list.substr(0, comma) == release(running);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 2);
    }
    line += measured_here
                ? "; this run's torch " + std::string(release(running)) + " is one of them"
                : "; carried over to this run's torch " + std::string(release(running));
    return line;
  }
  return "";
}

std::string version_text() {
  std::string out = std::string("footprint ") + FOOTPRINT_VERSION + "\n";
  out += "torch: supports " + std::string(torch_min()) + " to " + std::string(torch_max());
  out += torch_built().empty() ? std::string(" (built without LibTorch)")
                               : "; built against " + std::string(torch_built());
  out += "\n";
  for (const auto& s : rule_sources())
    out += std::string(s.rules) + " rules (" + std::string(s.what) + "): torch " +
           std::string(s.torch) + ", " + std::string(s.measured) + "\n";
  return out;
}

}  // namespace footprint
