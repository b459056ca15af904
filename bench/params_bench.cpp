// How long `footprint params` takes on a sharded LLaMA-7B checkpoint (13.5 GB of sparse shards,
// tests/gen/make_llama7b.py), against the floor of the same run: reading the index and each
// shard's header with raw pread and nothing else. The ratio is what footprint's parsing and
// checking cost over the bytes it must read anyway.
//   params_bench DIR [--benchmark_* flags]
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "footprint/footprint.h"

namespace {

std::string g_dir;

void BM_footprint_params(benchmark::State& state) {
  const std::string index = g_dir + "/model.safetensors.index.json";
  // Checked once, outside the timing: LLaMA-7B has 6,738,415,616 parameters
  // (tests/gen/make_llama7b.py).
  if (footprint::params(footprint::read_model(index)).params.numel != 6738415616) {
    state.SkipWithError("LLaMA-7B must have 6,738,415,616 parameters");
    return;
  }
  for (auto _ : state) {
    auto report = footprint::params(footprint::read_model(index));
    benchmark::DoNotOptimize(report.params.numel);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  state.counters["maxrss_MiB"] = ru.ru_maxrss / 1024.0;
}

// The floor: read the index and each shard's 8-byte length and JSON header, parse nothing.
void BM_baseline_raw_headers(benchmark::State& state) {
  std::vector<std::string> files = {"model.safetensors.index.json",
                                    "model-00001-of-00002.safetensors",
                                    "model-00002-of-00002.safetensors"};
  std::string buf;
  for (auto _ : state) {
    for (size_t i = 0; i < files.size(); ++i) {
      int fd = ::open((g_dir + "/" + files[i]).c_str(), O_RDONLY);
      uint64_t n = 0;
      if (i == 0) {
        n = static_cast<uint64_t>(::lseek(fd, 0, SEEK_END));
        buf.resize(n);
        benchmark::DoNotOptimize(::pread(fd, buf.data(), n, 0));
      } else {
        benchmark::DoNotOptimize(::pread(fd, &n, 8, 0));
        buf.resize(n);
        benchmark::DoNotOptimize(::pread(fd, buf.data(), n, 8));
      }
      ::close(fd);
    }
    benchmark::ClobberMemory();
  }
}

}  // namespace

BENCHMARK(BM_baseline_raw_headers)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_footprint_params)->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(
        stderr,
        "usage: params_bench DIR [--benchmark flags]\n  DIR from tests/gen/make_llama7b.py\n");
    return 2;
  }
  g_dir = argv[1];
  argv[1] = argv[0];
  --argc;
  ++argv;
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
