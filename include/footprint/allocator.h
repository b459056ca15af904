// footprint/allocator.h: a model of PyTorch's CUDA caching allocator, replaying a sequence of
// allocations and frees (src/core/allocator.cpp documents each rule and the source it follows).
//
//   footprint::CachingAllocator a({});
//   auto x = a.allocate(3 << 20);        // a 20 MiB segment, a 3 MiB block
//   a.free(x);
//   a.stats().reserved_peak;             // torch.cuda.max_memory_reserved()
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

namespace footprint {

// PYTORCH_CUDA_ALLOC_CONF's options that change sizes.
struct AllocatorConfig {
  int64_t max_split_size = 0;  // bytes; 0 = unlimited (the default)
  // roundup_power2_divisions: one value for all sizes (0 or 1 = off, the default).
  int64_t roundup_power2_divisions = 0;
  bool expandable_segments = false;
  // Bytes the allocator may reserve before an allocation fails (0 = unlimited).
  int64_t capacity = 0;
};

// "max_split_size_mb:128,roundup_power2_divisions:4,expandable_segments:True", as in
// PYTORCH_CUDA_ALLOC_CONF. Throws Error naming the option it does not know.
AllocatorConfig parse_allocator_config(std::string_view text);

struct AllocatorStats {
  int64_t allocated = 0;       // bytes in blocks handed out (rounded sizes)
  int64_t allocated_peak = 0;  // torch.cuda.max_memory_allocated()
  int64_t reserved = 0;        // bytes in segments (cudaMalloc'd)
  int64_t reserved_peak = 0;   // torch.cuda.max_memory_reserved()
  int64_t requested_peak = 0;  // the peak of the sizes asked for, before rounding
  int64_t segments = 0;        // cudaMalloc calls
  bool out_of_memory = false;  // an allocation failed: capacity was too small
  int64_t oom_request = 0;     // the request that failed
};

// What the allocator did, in the order it did it: the actions of PyTorch's allocator trace
// (torch.cuda.memory._record_memory_history; footprint/memory_viz.h writes them as its snapshot).
struct AllocatorAction {
  enum Kind {
    kAlloc,         // a block handed out: address, size (the block), requested
    kFree,          // a block given back (before it merges with free neighbours)
    kSegmentAlloc,  // cudaMalloc: a new segment at address, of size
    kSegmentFree,   // cudaFree of a whole cached segment (rule 7)
    kSegmentMap,    // expandable segments: pages mapped at address
    kSegmentUnmap,  // expandable segments: pages unmapped at address
    kOom,           // a request that could not be met: requested
  };
  Kind kind = kAlloc;
  int64_t address = 0;
  int64_t size = 0;
  int64_t requested = 0;
  int64_t handle = -1;  // kAlloc, kFree
  bool small = false;   // the small pool's (segment actions)
};

// A segment as it is now, its blocks in address order (torch.cuda.memory._snapshot()'s view).
struct SegmentState {
  int64_t address = 0;
  int64_t size = 0;
  bool small = false;  // the small pool's (2 MiB segments)
  bool expandable = false;
  struct Block {
    int64_t address = 0;
    int64_t size = 0;
    int64_t requested = 0;  // 0 when free
    int64_t handle = -1;    // -1 when free
  };
  std::vector<Block> blocks;
};

class CachingAllocator {
 public:
  explicit CachingAllocator(AllocatorConfig config);
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Returns a handle for free(), or -1 when the request cannot be met within the capacity (the
  // stats say so; later calls keep working).
  int64_t allocate(int64_t bytes);
  void free(int64_t handle);
  // The size of the block behind a handle: the rounded request, or more when the remainder of a
  // block was too small to split off (what allocated_bytes counts).
  int64_t block_size(int64_t handle) const;
  const AllocatorStats& stats() const { return stats_; }
  // Every action from now on is appended to `log` (nullptr stops it). Addresses start at
  // kBaseAddress, so that no block sits at 0.
  void record(std::vector<AllocatorAction>* log) { log_ = log; }
  std::vector<SegmentState> segments() const;
  static constexpr int64_t kBaseAddress = int64_t(0x7f00) << 32;

  // The size a request is rounded to, and the segment a new block of that size would get.
  int64_t round_size(int64_t bytes) const;
  static int64_t segment_size(int64_t rounded);

 private:
  struct Block;
  struct Segment;
  struct Pool;
  Block* find_free(Pool& pool, int64_t size);
  Block* new_segment(Pool& pool, int64_t size);
  Block* grow_expandable(Pool& pool, int64_t size);
  bool release_cached();
  Block* split(Pool& pool, Block* block, int64_t size);
  void count_alloc(int64_t rounded, int64_t requested);
  void log(AllocatorAction::Kind kind, int64_t address, int64_t size, int64_t requested = 0,
           int64_t handle = -1, bool small = false) {
    if (log_) log_->push_back({kind, address, size, requested, handle, small});
  }

  AllocatorConfig config_;
  std::unique_ptr<Pool> small_, large_;
  std::vector<std::unique_ptr<Segment>> segments_;
  std::map<int64_t, std::pair<Block*, int64_t>> live_;  // handle -> block, requested bytes
  int64_t next_handle_ = 0;
  int64_t next_address_ = kBaseAddress;
  int64_t requested_ = 0;
  AllocatorStats stats_;
  std::vector<AllocatorAction>* log_ = nullptr;
};

// Replays allocation events (bytes > 0 allocates, < 0 frees the same id) and returns the stats.
struct AllocEvent {
  uint64_t id = 0;
  int64_t bytes = 0;
};
AllocatorStats replay(const std::vector<AllocEvent>& events, const AllocatorConfig& config);

}  // namespace footprint
