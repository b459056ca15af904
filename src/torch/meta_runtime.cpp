// The meta allocator, the recorder and the module conversion.
//
// A c10::Allocator for the Meta device sees every tensor allocation with its exact bytes and no
// view. It returns a null data pointer and a non-null context: only then does the free reach the
// deleter. An allocator cannot be uninstalled (SetAllocator keeps the highest priority), so it is
// installed once and records only into the thread's current MetaRecorder, if any.
#include <c10/core/Allocator.h>

#include <atomic>

#include "torch/meta.h"

namespace footprint::detail {

void register_missing_meta_kernels();  // meta_kernels.cpp

namespace {

thread_local MetaRecorder* t_recorder = nullptr;
std::atomic<uint64_t> g_next_id{1};
std::atomic<uint64_t> g_generation{0};

// What a meta allocation remembers until it is freed.
struct MetaBlock {
  uint64_t id;
  int64_t bytes;
  uint64_t generation;  // of the recorder alive when it was made; 0 for none
};

void meta_free(void* ctx) {
  auto* block = static_cast<MetaBlock*>(ctx);
  if (t_recorder && block->generation == t_recorder->generation())
    t_recorder->on_free(block->id, block->bytes);
  delete block;
}

struct MetaAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) const override {
    auto* block = new MetaBlock{g_next_id++, static_cast<int64_t>(n),
                                t_recorder ? t_recorder->generation() : 0};
    if (t_recorder) t_recorder->on_alloc(block->id, block->bytes);
    return {nullptr, block, &meta_free, c10::Device(c10::DeviceType::Meta)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }
};

MetaAllocator g_meta_allocator;

at::Tensor meta_like(const at::Tensor& t) {
  return at::empty_strided(t.sizes(), t.strides(), t.options().device(at::kMeta));
}

void swap_to_meta(const at::Tensor& t) {
  if (!t.defined() || t.is_meta()) return;
  // shallow_copy_from keeps the tensor's autograd metadata: requires_grad and leaf status stay.
  t.unsafeGetTensorImpl()->shallow_copy_from(meta_like(t).getIntrusivePtr());
}

}  // namespace

MetaRecorder::MetaRecorder() : generation_(++g_generation) {
  t_recorder = this;
}
MetaRecorder::~MetaRecorder() {
  if (t_recorder == this) t_recorder = nullptr;
}
void MetaRecorder::on_alloc(uint64_t id, int64_t bytes) {
  events_.push_back({id, bytes});
  live_ += bytes;
  peak_ = std::max(peak_, live_);
}
void MetaRecorder::on_free(uint64_t id, int64_t bytes) {
  events_.push_back({id, -bytes});
  live_ -= bytes;
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

void to_meta(torch::jit::Module& module) {
  for (const auto& p : module.parameters()) swap_to_meta(p);
  for (const auto& b : module.buffers()) swap_to_meta(b);
}

void to_meta(torch::nn::Module& module) {
  for (const auto& p : module.parameters()) swap_to_meta(p);
  for (const auto& b : module.buffers()) swap_to_meta(b);
}

}  // namespace footprint::detail
