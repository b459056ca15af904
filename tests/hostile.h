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
// Good files of the formats of issue 21, built by hand (tests/formats_test.cpp works out what
// they hold): a GGUF v3 file with llama metadata, a F32 [8, 4] tensor and a Q8_0 [2, 64] one; an
// ONNX model with a FLOAT [2, 3] initializer and an external INT64 [5] one.
std::string good_gguf();
// A GGUF tensor of dimensions ne = {2^40, 2^40, 0} (torch shape [0, 2^40, 2^40]): no elements
// (fuzz_gguf's first finding).
std::string gguf_empty_huge_tensor();
std::string good_onnx();

// Good and hostile inputs for each fuzz target.
std::vector<Seed> seed_files();

}  // namespace footprint_test
