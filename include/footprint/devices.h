// footprint/devices.h: GPUs as footprint knows them: the memory a process can use, and what the
// CUDA context and libraries take outside the caching allocator. Sources are in devices.cpp and
// docs/memory.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace footprint {

struct DeviceProfile {
  std::string key;               // "h100", as --gpu takes it
  std::string name;              // "NVIDIA H100 80GB HBM3"
  int64_t total = 0;             // bytes: cudaMemGetInfo's total (nvidia-smi's memory.total)
  int64_t context = 0;           // bytes the CUDA context and loaded kernels take, outside PyTorch
  int64_t cublas_workspace = 0;  // bytes cuBLAS allocates through the caching allocator
  std::string source;            // where the numbers come from
  // Compute capability x 10 (90: Hopper): which attention kernel PyTorch picks (docs/memory.md).
  int sm = 90;
  // Streaming multiprocessors: how CUDA's reduction kernels split their work (and so the staging
  // buffer they allocate; docs/memory.md).
  int multiprocessors = 132;
};

// cuBLAS's workspace before Hopper through the caching allocator (CublasHandlePool.cpp,
// CUBLAS_WORKSPACE_CONFIG ":4096:2:16:8": 2 x 4 MiB + 8 x 16 KiB), for a GPU of no known profile.
constexpr int64_t kCublasWorkspaceDefault = 2 * 4096 * 1024 + 8 * 16 * 1024;

const std::vector<DeviceProfile>& device_profiles();
// "h100", "a100-40gb", ... or a size ("24GiB", "80GB", "16000MiB"): a GPU of that total with the
// context of a typical recent GPU. Throws Error listing the known names.
DeviceProfile device_parse(std::string_view text);
// A size with a binary or decimal unit: "24GiB", "16000MiB", "1.5TB", "512b" (case does not
// matter), in bytes, sign kept; nullopt when the text is not one or is 2^62 bytes or more.
std::optional<int64_t> size_parse(std::string_view text);

}  // namespace footprint
