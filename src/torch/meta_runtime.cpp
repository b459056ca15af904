// The tracking allocators, the recorder and the module conversion.
//
// A c10::Allocator for the Meta device sees every tensor allocation with its exact bytes and no
// view. It returns a null data pointer and a non-null context: only then does the free reach the
// deleter. An allocator cannot be uninstalled (SetAllocator keeps the highest priority), so it is
// installed once and records only into the thread's current MemoryRecorder, if any.
//
// The CPU one must return DataPtr(p, p, deleter), context == data, and implement raw_deleter():
// mkldnn's convolution asserts otherwise.
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <fmt/format.h>
#include <torch/library.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "footprint/error.h"
#include "footprint/report.h"
#include "torch/libtorch_adapter.h"
#include "torch/meta.h"

namespace footprint::detail {

void register_missing_meta_kernels();  // meta_kernels.cpp

namespace {

thread_local MemoryRecorder* t_meta_recorder = nullptr;
MemoryRecorder* g_cpu_recorder = nullptr;  // guarded by g_cpu_mutex
std::mutex g_cpu_mutex;
std::atomic<uint64_t> g_next_id{1};
std::atomic<uint64_t> g_generation{0};

// What an allocation remembers until it is freed.
struct Block {
  uint64_t id;
  int64_t bytes;
  uint64_t generation;   // of the recorder alive when it was made; 0 for none
  bool limited = false;  // made under limit_cpu_memory: counts against the limit while it lives
};

// limit_cpu_memory's state, guarded by g_cpu_mutex.
int64_t g_cpu_limit = 0;  // 0: none
int64_t g_cpu_limited_live = 0;
std::string g_cpu_violation;

void meta_free(void* ctx) {
  auto* block = static_cast<Block*>(ctx);
  if (t_meta_recorder && block->generation == t_meta_recorder->generation())
    t_meta_recorder->on_free(block->id, block->bytes);
  delete block;
}

struct MetaAllocator final : TrackingAllocator {
  c10::DataPtr take(size_t n) override {
    auto* block = new Block{g_next_id++, static_cast<int64_t>(n),
                            t_meta_recorder ? t_meta_recorder->generation() : 0};
    if (t_meta_recorder) t_meta_recorder->on_alloc(block->id, block->bytes);
    return {nullptr, block, &meta_free, c10::Device(c10::DeviceType::Meta)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }
  // Meta tensors have no bytes: a copy between them (clone, contiguous) moves nothing.
  void copy_data(void*, const void*, std::size_t) const override {}
};

MetaAllocator g_meta_allocator;

std::unordered_map<void*, Block>& cpu_blocks() {  // guarded by g_cpu_mutex
  static auto* blocks = new std::unordered_map<void*, Block>;
  return *blocks;
}

void cpu_free(void* p) {
  if (p) {
    std::lock_guard<std::mutex> lock(g_cpu_mutex);
    auto it = cpu_blocks().find(p);
    if (it != cpu_blocks().end()) {
      if (g_cpu_recorder && it->second.generation == g_cpu_recorder->generation())
        g_cpu_recorder->on_free(it->second.id, it->second.bytes);
      if (it->second.limited) g_cpu_limited_live -= it->second.bytes;
      cpu_blocks().erase(it);
    }
    c10::profiledCPUMemoryReporter().Delete(p);
  }
  c10::free_cpu(p);
}

struct CpuTracker final : TrackingAllocator {
  c10::DataPtr take(size_t n) override {
    {
      std::lock_guard<std::mutex> lock(g_cpu_mutex);
      if (g_cpu_limit > 0 && n > static_cast<size_t>(g_cpu_limit - g_cpu_limited_live)) {
        g_cpu_violation = fmt::format(
            "the model's code allocated more real CPU memory than the limit of {} (`max-cpu-"
            "memory`): {} more bytes at once with {} held; on the meta device a model should "
            "allocate almost none",
            human_bytes(g_cpu_limit), n, g_cpu_limited_live);
        throw Error(g_cpu_violation);
      }
    }
    void* p = c10::alloc_cpu(n);
    if (p) {
      std::lock_guard<std::mutex> lock(g_cpu_mutex);
      Block b{g_next_id++, static_cast<int64_t>(n),
              g_cpu_recorder ? g_cpu_recorder->generation() : 0, g_cpu_limit > 0};
      if (b.limited) g_cpu_limited_live += b.bytes;
      cpu_blocks()[p] = b;
      if (g_cpu_recorder) g_cpu_recorder->on_alloc(b.id, b.bytes);
    }
    // As DefaultCPUAllocator reports to the profiler: the tracker stays installed for the rest of
    // the process, and a real run measured with torch.profiler afterwards must still be seen.
    if (p) c10::profiledCPUMemoryReporter().New(p, n);
    return {p, p, &cpu_free, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &cpu_free; }
  void copy_data(void* dest, const void* src, std::size_t n) const override {
    default_copy_data(dest, src, n);
  }
};

CpuTracker g_cpu_tracker;

at::Tensor meta_like(const at::Tensor& t, std::optional<c10::ScalarType> dtype) {
  auto options = t.options().device(at::kMeta);
  if (dtype && t.is_floating_point()) options = options.dtype(*dtype);
  return at::empty_strided(t.sizes(), t.strides(), options);
}

void swap_to_meta(const at::Tensor& t, std::optional<c10::ScalarType> dtype) {
  if (!t.defined() ||
      (t.is_meta() && (!dtype || !t.is_floating_point() || t.scalar_type() == *dtype)))
    return;
  // shallow_copy_from keeps the tensor's autograd metadata: requires_grad and leaf status stay.
  t.unsafeGetTensorImpl()->shallow_copy_from(meta_like(t, dtype).getIntrusivePtr());
}

}  // namespace

MemoryRecorder::MemoryRecorder(Device device) : device_(device), generation_(++g_generation) {
  if (device_ == Device::kMeta) {
    t_meta_recorder = this;
  } else {
    std::lock_guard<std::mutex> lock(g_cpu_mutex);
    g_cpu_recorder = this;
  }
}
MemoryRecorder::~MemoryRecorder() {
  if (device_ == Device::kMeta) {
    if (t_meta_recorder == this) t_meta_recorder = nullptr;
  } else {
    std::lock_guard<std::mutex> lock(g_cpu_mutex);
    if (g_cpu_recorder == this) g_cpu_recorder = nullptr;
  }
}
void MemoryRecorder::on_alloc(uint64_t id, int64_t bytes) {
  if (bytes == 0) return;  // nothing to place (a CUDA allocator does not allocate either)
  events_.push_back({id, bytes, current_op});
  live_ += bytes;
  peak_ = std::max(peak_, live_);
}
void MemoryRecorder::on_free(uint64_t id, int64_t bytes) {
  if (bytes == 0) return;
  events_.push_back({id, -bytes, current_op});
  live_ -= bytes;
}

void account_meta_resize(const at::Tensor& t) {
  if (!t.defined() || !t.is_meta() || !t.has_storage()) return;
  const c10::Storage& storage = t.storage();
  const c10::DataPtr& data = storage.data_ptr();
  if (data.get_deleter() != &meta_free || !data.get_context()) return;
  auto* block = static_cast<Block*>(data.get_context());
  int64_t now = static_cast<int64_t>(storage.nbytes());
  if (now <= block->bytes) return;
  // As a CPU or CUDA resize_ does: the larger block is allocated, then the old one freed.
  uint64_t old_id = block->id;
  int64_t old_bytes = block->bytes;
  bool mine = t_meta_recorder && block->generation == t_meta_recorder->generation();
  block->id = g_next_id++;
  block->bytes = now;
  if (mine) {
    t_meta_recorder->on_alloc(block->id, now);
    t_meta_recorder->on_free(old_id, old_bytes);
  }
}

void install_meta_runtime() {
  static bool installed = [] {
    constexpr uint8_t kPriority = 100;  // above LibTorch's own meta allocator (0)
    c10::SetAllocator(c10::DeviceType::Meta, &g_meta_allocator, kPriority);
    register_missing_meta_kernels();
    return true;
  }();
  (void)installed;
}

void install_cpu_tracking() {
  static bool installed = [] {
    constexpr uint8_t kPriority = 100;  // above the default CPU allocator (0)
    c10::SetCPUAllocator(&g_cpu_tracker, kPriority);
    return true;
  }();
  (void)installed;
}

void claim_fallback(c10::DispatchKey key, const std::function<torch::CppFunction()>& make,
                    const std::string& what) {
  static std::mutex mutex;
  static auto* claimed = new std::map<c10::DispatchKey, std::string>;  // key -> failure, or ""
  static auto* libraries = new std::vector<std::unique_ptr<torch::Library>>;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = claimed->find(key);
  if (it == claimed->end()) {
    std::string failure;
    if (c10::Dispatcher::singleton().hasBackendFallbackForDispatchKey(key)) {
      failure = fmt::format("a library in this process uses {}, the dispatch key footprint needs",
                            c10::toString(key));
    } else {
      libraries->push_back(
          std::make_unique<torch::Library>(torch::Library::IMPL, "_", key, __FILE__, __LINE__));
      libraries->back()->fallback(make());
    }
    it = claimed->emplace(key, failure).first;
  }
  if (!it->second.empty()) throw Error(what + ": " + it->second);
}

void limit_cpu_memory(int64_t bytes) {
  install_cpu_tracking();
  std::lock_guard<std::mutex> lock(g_cpu_mutex);
  g_cpu_limit = bytes;
  g_cpu_violation.clear();
  if (bytes == 0) {  // what was made under the limit no longer counts against a later one
    for (auto& [p, b] : cpu_blocks()) b.limited = false;
    g_cpu_limited_live = 0;
  }
}

std::optional<std::string> take_cpu_limit_violation() {
  std::lock_guard<std::mutex> lock(g_cpu_mutex);
  if (g_cpu_violation.empty()) return std::nullopt;
  return std::exchange(g_cpu_violation, {});
}

void to_meta(torch::jit::Module& module, std::optional<c10::ScalarType> dtype) {
  for (const auto& p : module.parameters()) swap_to_meta(p, dtype);
  for (const auto& b : module.buffers()) swap_to_meta(b, dtype);
}

void to_meta(torch::nn::Module& module, std::optional<c10::ScalarType> dtype) {
  for (const auto& p : module.parameters()) swap_to_meta(p, dtype);
  for (const auto& b : module.buffers()) swap_to_meta(b, dtype);
}

}  // namespace footprint::detail
