// Every hostile file of issue 6, built byte by byte (no binary blob is committed), with the
// piece of the one-line error each must give. The CLI tests, the memory-limit test and the
// fuzzers' seed corpus all use this one list.
#pragma once

#include <string>
#include <vector>

namespace footprint_test {

struct HostileFile {
  std::string name;      // a test name: "pickle_os_system"
  std::string filename;  // what it is written as: "evil.pth"
  std::string bytes;
  std::string expected;  // a piece of the error message
};

// `marker` is the file a pickle's command would create if anything ran it.
std::vector<HostileFile> hostile_files(const std::string& marker);
// The names alone, and one file by name: cheap, for tests that run one case per process.
std::vector<std::string> hostile_names();
HostileFile hostile_file(const std::string& name, const std::string& marker);

struct Seed {
  std::string target;  // the fuzz target: safetensors, zip, pickle, hf_config, shape
  std::string name;
  std::string bytes;
};
// Good and hostile inputs for each fuzz target.
std::vector<Seed> seed_files();

}  // namespace footprint_test
