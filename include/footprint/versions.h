#pragma once
// footprint/versions.h: what this footprint is, which torch releases it supports, and on which
// versions of torch, cuDNN and transformers each set of its rules was measured (docs/versions.md).
// `footprint --version` and footprint.versions() print these; memory reports carry the line for
// their target.
#include <string>
#include <string_view>
#include <vector>

namespace footprint {

// The supported torch releases, by minor ("2.9" to "2.15"; torch-versions.txt), and the one the
// LibTorch engine was built against ("" in a build without it).
std::string_view torch_min();
std::string_view torch_max();
std::string_view torch_built();

// One set of rules and where its numbers come from.
struct RuleSource {
  std::string_view rules;     // "cuda", "cpu", "llm"
  std::string_view what;      // what the rules cover, in words
  std::string_view torch;     // the torch release(s) they were measured on
  std::string_view measured;  // the machine, libraries and date, and the file that holds the runs
};
const std::vector<RuleSource>& rule_sources();

// The report's line for the rules of `rules` ("cuda" or "cpu") when the run's torch is
// `running`: where they were measured, and "carried over" when `running` is another release.
std::string rules_line(std::string_view rules, std::string_view running);

// `footprint --version`: footprint's version, the torch it was built against and the range it
// supports, and each set of rules' source, one line each.
std::string version_text();

}  // namespace footprint
