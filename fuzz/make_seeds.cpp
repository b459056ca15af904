// Writes the fuzzers' starting corpus: the tests' hand-built files (tests/hostile.h and the good
// ones beside them), one folder per target.   make_seeds DIR
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "hostile.h"
#include "test_util.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR\n");
    return 2;
  }
  std::string dir = argv[1];
  int n = 0;
  for (const auto& target :
       {"safetensors", "zip", "checkpoint", "pickle", "hf_config", "shape", "gguf", "onnx", "pt2"})
    ::mkdir((dir + "/" + target).c_str(), 0755);
  for (const auto& seed : footprint_test::seed_files()) {
    // The fuzzers run with -max_len=65536 for speed; the large hostile files (a 100,000-deep
    // nesting, 8 MiB of opcodes) are exercised by the tests instead.
    if (seed.bytes.size() > 65536) continue;
    footprint_test::write_file(dir + "/" + seed.target + "/" + seed.name, seed.bytes);
    ++n;
    if (seed.target ==
        "pickle") {  // fuzz_checkpoint: a flag byte (0 torch.save, 1 TorchScript), then the pickle
      for (char flag : {'\0', '\1'})
        footprint_test::write_file(dir + "/checkpoint/" + seed.name + (flag ? "_ts" : "_ckpt"),
                                   flag + seed.bytes);
      n += 2;
    }
  }
  std::printf("make_seeds: %d seed files in %s\n", n, dir.c_str());
}
