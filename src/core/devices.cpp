// GPU profiles (footprint/devices.h).
//
// total: the device memory as nvidia-smi reports memory.total (MiB) for the common board of each
// name, in published nvidia-smi outputs and NVIDIA's datasheets; cudaMemGetInfo's total is the same
// figure in bytes. context: what a PyTorch 2.x process on CUDA 12 with lazy module loading holds
// outside the caching allocator once its first kernels ran (the CUDA context, cuBLAS and cuDNN
// handles and the kernels loaded): nvidia-smi's used memory minus torch.cuda.memory_reserved() as
// published for these GPU generations. It varies by a few hundred MiB with the driver, the CUDA
// version and the libraries a model touches; override it with --context. cublas_workspace: cuBLAS
// takes its workspace from the caching allocator on first use (PyTorch's CublasHandlePool.cpp,
// getChosenWorkspaceSize: ":4096:2:16:8" = 2 x 4 MiB + 8 x 16 KiB by default, ":4096:8" = 32 MiB
// on Hopper).
// The H200's total and context are measured (below); the others are not yet: bench/cuda/measure.py
// records total, the context and the cuBLAS workspace on a real GPU (tests/reference/cuda/).
// sm: the compute capability, which decides scaled_dot_product_attention's kernel.
// multiprocessors: the SM count of the board, from NVIDIA's datasheets (H100 SXM and H200 132,
// A100 108, L4 58, RTX 4090 128, RTX 3090 82, T4 40, V100 80).
#include "footprint/devices.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <string>

#include "footprint/error.h"

namespace footprint {
namespace {

constexpr int64_t MiB = 1 << 20;
constexpr int64_t kCublasHopper = 8 * 4096 * 1024;  // ":4096:8"
constexpr const char* kSource =
    "memory.total: nvidia-smi as published for the board; context: typical PyTorch 2.x + "
    "CUDA 12 (not measured by footprint)";
// The H200, measured (tests/reference/cuda/h200-vision.json, PyTorch 2.11.0+cu130, driver
// 580.159.04): torch.cuda.mem_get_info's total, 615 MiB under nvidia-smi's 143,771 MiB; the
// context: the device's used memory less the allocator's reserved bytes after vit_b_16's AdamW
// step at batch 1129 (804,061,184 B; 552,402,944 B right after CUDA starts, 736,952,320 B once
// cuBLAS, cuDNN and flash attention have run). With these, resnet50's and convnext_tiny's
// largest batches (1710 and 1351, AdamW, fp32) fit and the next ones do not, as measured.
constexpr int64_t kH200Total = 150109880320;
constexpr int64_t kH200Context = 804061184;
constexpr const char* kH200Source =
    "measured on an H200 with PyTorch 2.11 (tests/reference/cuda/h200-vision.json): "
    "cudaMemGetInfo's total, and the context after a training step";

}  // namespace

const std::vector<DeviceProfile>& device_profiles() {
  static const std::vector<DeviceProfile> profiles{
      {"h100", "NVIDIA H100 80GB HBM3", 81559 * MiB, 520 * MiB, kCublasHopper, kSource, 90, 132},
      {"h200", "NVIDIA H200 141GB HBM3e", kH200Total, kH200Context, kCublasHopper, kH200Source, 90,
       132},
      {"a100-80gb", "NVIDIA A100-SXM4-80GB", 81920 * MiB, 420 * MiB, kCublasWorkspaceDefault,
       kSource, 80, 108},
      {"a100-40gb", "NVIDIA A100-SXM4-40GB", 40960 * MiB, 420 * MiB, kCublasWorkspaceDefault,
       kSource, 80, 108},
      {"l4", "NVIDIA L4", 23034 * MiB, 400 * MiB, kCublasWorkspaceDefault, kSource, 89, 58},
      {"rtx4090", "NVIDIA GeForce RTX 4090", 24564 * MiB, 400 * MiB, kCublasWorkspaceDefault,
       kSource, 89, 128},
      {"rtx3090", "NVIDIA GeForce RTX 3090", 24576 * MiB, 380 * MiB, kCublasWorkspaceDefault,
       kSource, 86, 82},
      {"t4", "Tesla T4", 15360 * MiB, 330 * MiB, kCublasWorkspaceDefault, kSource, 75, 40},
      {"v100-16gb", "Tesla V100-SXM2-16GB", 16160 * MiB, 330 * MiB, kCublasWorkspaceDefault,
       kSource, 70, 80},
      {"v100-32gb", "Tesla V100-SXM2-32GB", 32768 * MiB, 330 * MiB, kCublasWorkspaceDefault,
       kSource, 70, 80},
  };
  return profiles;
}

std::optional<int64_t> size_parse(std::string_view text) {
  std::string s;
  for (char ch : text) s += char(std::tolower(static_cast<unsigned char>(ch)));
  // A sign, digits with an optional fraction, a unit.
  size_t i = s.empty() || (s[0] != '-' && s[0] != '+') ? 0 : 1;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  std::string number = s.substr(0, i), unit = s.substr(i);
  static const std::vector<std::pair<std::string, double>> units{
      {"b", 1},        {"kib", 1024.0}, {"kb", 1e3},   {"mib", double(MiB)}, {"mb", 1e6},
      {"gib", 0x1p30}, {"gb", 1e9},     {"g", 0x1p30}, {"tib", 0x1p40},      {"tb", 1e12}};
  for (const auto& [name, scale] : units) {
    if (unit != name) continue;
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(number, &used);
    } catch (const std::exception&) {
      return std::nullopt;
    }
    if (used != number.size() || !(std::abs(v * scale) < 0x1p62)) return std::nullopt;
    return int64_t(v * scale);
  }
  return std::nullopt;
}

DeviceProfile device_parse(std::string_view text) {
  std::string s;
  for (char ch : text) s += char(std::tolower(static_cast<unsigned char>(ch)));
  for (const auto& p : device_profiles()) {
    if (s == p.key) return p;
  }
  if (s == "a100") return device_parse("a100-80gb");
  if (s == "v100") return device_parse("v100-32gb");
  if (auto total = size_parse(text)) {
    if (*total <= 0)
      throw Error(fmt::format("`gpu` '{}': a device's memory must be more than 0 bytes", text));
    DeviceProfile p;
    p.key = std::string(text);
    p.name = fmt::format("a GPU with {} of memory", text);
    p.total = *total;
    p.context = 400 * MiB;
    p.cublas_workspace = kCublasWorkspaceDefault;
    p.source = "the size given; context: typical PyTorch 2.x + CUDA 12 (not measured)";
    return p;
  }
  std::string known;
  for (const auto& p : device_profiles()) known += (known.empty() ? "" : ", ") + p.key;
  throw Error(fmt::format("`gpu` '{}': not a GPU footprint knows ({}) or a size such as 24GiB",
                          text, known));
}

}  // namespace footprint
