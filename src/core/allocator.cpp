// A model of PyTorch's CUDA caching allocator (c10/cuda/CUDACachingAllocator.cpp, PyTorch 2.x; the
// rules are unchanged since 1.13 except where noted). One device, one stream, no CUDA graphs.
//
// The rules, each with the function of CUDACachingAllocator.cpp it follows:
//   1. round_size: a request under 512 B becomes 512 B; a larger one is rounded up to a multiple
//      of 512 B (kMinBlockSize). With roundup_power2_divisions N > 1 and a request above 512*N B,
//      it is rounded up to the next of N equal divisions between two powers of two
//      (roundup_power2_next_division); a power of two stays as it is.
//   2. get_pool: a rounded size up to 1 MiB (kSmallSize) is served from the small pool, a larger
//      one from the large pool.
//   3. get_free_block: the smallest free block of the pool that is large enough (best fit; ties
//      go to the lower address). With max_split_size set, a request below it does not take a
//      free block of max_split_size or more, and a request at or above it does not take a block
//      larger than the request + 20 MiB (max_non_split_rounding_size's default, kLargeBuffer).
//   4. get_allocation_size: with no free block, a new segment is cudaMalloc'd: 2 MiB
//      (kSmallBuffer) for the small pool; 20 MiB (kLargeBuffer) for a request under 10 MiB
//      (kMinLargeAlloc); else the request rounded up to 2 MiB (kRoundLarge).
//   5. should_split: the block handed out is split when the remainder is at least 512 B (small
//      pool, or expandable segments) or more than 1 MiB (large pool, and only for requests below
//      max_split_size). The remainder goes back to the pool as a free block.
//   6. free_block: a freed block merges with its free neighbours in the same segment
//      (try_merge_blocks) and goes back to its pool. Segments are kept (cached), never released,
//      until the process needs the memory (rule 7).
//   7. When cudaMalloc would exceed the device (the capacity), release_cached_blocks frees every
//      segment with nothing allocated in it, and the allocation is tried again; if it still does
//      not fit, it is an out-of-memory error.
//   8. Statistics: allocated_bytes counts block sizes (the rounded sizes, so a 4-byte tensor
//      counts 512 B); reserved_bytes counts segment sizes. max_memory_allocated/reserved are their
//      peaks; "requested" is the sum of the sizes asked for.
//   9. expandable_segments:True: each pool has one segment that grows by mapping pages (2 MiB for
//      the small pool, 20 MiB for the large) at its end when no free block fits; the free block at
//      its end is extended rather than a new segment made. Reserved is the mapped size.
#include "footprint/allocator.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "footprint/error.h"

namespace footprint {
namespace {

constexpr int64_t kMinBlockSize = 512;
constexpr int64_t kSmallSize = 1 << 20;
constexpr int64_t kSmallBuffer = 2 << 20;
constexpr int64_t kLargeBuffer = 20 << 20;
constexpr int64_t kMinLargeAlloc = 10 << 20;
constexpr int64_t kRoundLarge = 2 << 20;

int64_t round_up(int64_t n, int64_t m) {
  return (n + m - 1) / m * m;
}

bool is_power_of_two(uint64_t n) {
  return n && !(n & (n - 1));
}

uint64_t power_of_two_floor(uint64_t n) {
  uint64_t p = 1;
  while (p <= n / 2) p <<= 1;
  return p;
}

// c10's roundup_power2_next_division.
int64_t roundup_power2_next_division(int64_t size, int64_t divisions) {
  if (is_power_of_two(uint64_t(size))) return size;
  uint64_t floor = power_of_two_floor(uint64_t(size));
  uint64_t division = floor >> (63 - __builtin_clzll(uint64_t(divisions)));
  if (division == 0) return int64_t(floor << 1);
  uint64_t below = uint64_t(size) & ~(division - 1);
  return int64_t(below == uint64_t(size) ? below : below + division);
}

}  // namespace

struct CachingAllocator::Block {
  int64_t address = 0;
  int64_t size = 0;
  bool allocated = false;
  int64_t requested = 0;  // while allocated
  int64_t handle = -1;    // while allocated
  Block* prev = nullptr;
  Block* next = nullptr;
  Segment* segment = nullptr;
};

struct CachingAllocator::Segment {
  int64_t base = 0;  // where its address range starts
  int64_t size = 0;  // mapped bytes
  bool expandable = false;
  bool small = false;
  std::vector<std::unique_ptr<Block>> blocks;  // owned; linked through prev/next
  Block* first = nullptr;
};

struct CachingAllocator::Pool {
  bool small = false;
  struct BySize {
    bool operator()(const Block* a, const Block* b) const {
      return a->size != b->size ? a->size < b->size : a->address < b->address;
    }
  };
  std::set<Block*, BySize> free;
  Segment* expandable = nullptr;
};

CachingAllocator::CachingAllocator(AllocatorConfig config)
    : config_(config), small_(std::make_unique<Pool>()), large_(std::make_unique<Pool>()) {
  small_->small = true;
}

CachingAllocator::~CachingAllocator() = default;

int64_t CachingAllocator::round_size(int64_t bytes) const {
  if (bytes < kMinBlockSize) return kMinBlockSize;
  int64_t d = config_.roundup_power2_divisions;
  if (d > 1 && bytes > kMinBlockSize * d) return roundup_power2_next_division(bytes, d);
  return round_up(bytes, kMinBlockSize);
}

int64_t CachingAllocator::segment_size(int64_t rounded) {
  if (rounded <= kSmallSize) return kSmallBuffer;
  if (rounded < kMinLargeAlloc) return kLargeBuffer;
  return round_up(rounded, kRoundLarge);
}

CachingAllocator::Block* CachingAllocator::find_free(Pool& pool, int64_t size) {
  Block key;
  key.size = size;
  key.address = -1;
  auto it = pool.free.lower_bound(&key);
  if (it == pool.free.end()) return nullptr;
  int64_t max_split = config_.max_split_size;
  if (max_split > 0 && !(*it)->segment->expandable) {
    if (size < max_split && (*it)->size >= max_split) return nullptr;
    if (size >= max_split && (*it)->size >= size + kLargeBuffer) return nullptr;
  }
  Block* b = *it;
  pool.free.erase(it);
  return b;
}

CachingAllocator::Block* CachingAllocator::new_segment(Pool& pool, int64_t size) {
  int64_t bytes = segment_size(size);
  if (config_.capacity > 0 && stats_.reserved + bytes > config_.capacity) return nullptr;
  auto seg = std::make_unique<Segment>();
  seg->size = bytes;
  seg->small = pool.small;
  auto block = std::make_unique<Block>();
  block->address = next_address_;
  block->size = bytes;
  block->segment = seg.get();
  next_address_ += bytes;
  seg->first = block.get();
  Block* b = block.get();
  seg->blocks.push_back(std::move(block));
  segments_.push_back(std::move(seg));
  stats_.reserved += bytes;
  stats_.reserved_peak = std::max(stats_.reserved_peak, stats_.reserved);
  ++stats_.segments;
  log(AllocatorAction::kSegmentAlloc, b->address, bytes, 0, -1, pool.small);
  return b;
}

// Rule 9: map more pages at the end of the pool's one segment; the free block there grows.
CachingAllocator::Block* CachingAllocator::grow_expandable(Pool& pool, int64_t size) {
  int64_t page = pool.small ? kSmallBuffer : kLargeBuffer;
  if (!pool.expandable) {
    auto seg = std::make_unique<Segment>();
    seg->expandable = true;
    seg->small = pool.small;
    pool.expandable = seg.get();
    // A range of its own, far beyond any fixed segment's: addresses only order blocks.
    seg->base = next_address_;
    next_address_ += int64_t(1) << 50;
    segments_.push_back(std::move(seg));
  }
  Segment* seg = pool.expandable;
  Block* tail = seg->first;
  while (tail && tail->next) tail = tail->next;
  int64_t have = tail && !tail->allocated ? tail->size : 0;
  int64_t grow = round_up(size - have, page);
  if (config_.capacity > 0 && stats_.reserved + grow > config_.capacity) return nullptr;
  stats_.reserved += grow;
  stats_.reserved_peak = std::max(stats_.reserved_peak, stats_.reserved);
  ++stats_.segments;
  int64_t base = tail ? tail->address + tail->size : seg->base;
  seg->size += grow;
  log(AllocatorAction::kSegmentMap, base, grow, 0, -1, pool.small);
  if (have > 0) {
    pool.free.erase(tail);
    tail->size += grow;
    return tail;
  }
  auto block = std::make_unique<Block>();
  block->address = base;
  block->size = grow;
  block->segment = seg;
  block->prev = tail;
  if (tail) tail->next = block.get();
  if (!seg->first) seg->first = block.get();
  Block* b = block.get();
  seg->blocks.push_back(std::move(block));
  return b;
}

// Rule 7: release every segment with nothing allocated in it.
bool CachingAllocator::release_cached() {
  int64_t released = 0;
  for (auto it = segments_.begin(); it != segments_.end();) {
    Segment* seg = it->get();
    Pool& pool = seg->small ? *small_ : *large_;
    if (seg->expandable) {
      // Unmap the free pages at the end.
      Block* tail = seg->first;
      while (tail && tail->next) tail = tail->next;
      int64_t page = seg->small ? kSmallBuffer : kLargeBuffer;
      if (tail && !tail->allocated && tail->size >= page) {
        int64_t unmap = tail->size / page * page;
        pool.free.erase(tail);
        log(AllocatorAction::kSegmentUnmap, tail->address + tail->size - unmap, unmap, 0, -1,
            seg->small);
        tail->size -= unmap;
        seg->size -= unmap;
        released += unmap;
        if (tail->size > 0)
          pool.free.insert(tail);
        else {
          if (tail->prev) tail->prev->next = nullptr;
          if (seg->first == tail) seg->first = nullptr;
        }
      }
      ++it;
      continue;
    }
    if (seg->first->next == nullptr && !seg->first->allocated) {
      pool.free.erase(seg->first);
      released += seg->size;
      log(AllocatorAction::kSegmentFree, seg->first->address, seg->size, 0, -1, seg->small);
      it = segments_.erase(it);
    } else {
      ++it;
    }
  }
  stats_.reserved -= released;
  return released > 0;
}

CachingAllocator::Block* CachingAllocator::split(Pool& pool, Block* b, int64_t size) {
  int64_t remaining = b->size - size;
  bool split = pool.small || b->segment->expandable
                   ? remaining >= kMinBlockSize
                   : (config_.max_split_size == 0 || size < config_.max_split_size) &&
                         remaining > kSmallSize;
  if (split) {
    auto rest = std::make_unique<Block>();
    rest->address = b->address + size;
    rest->size = remaining;
    rest->segment = b->segment;
    rest->prev = b;
    rest->next = b->next;
    if (b->next) b->next->prev = rest.get();
    b->next = rest.get();
    b->size = size;
    pool.free.insert(rest.get());
    b->segment->blocks.push_back(std::move(rest));
  }
  b->allocated = true;
  return b;
}

void CachingAllocator::count_alloc(int64_t rounded, int64_t requested) {
  stats_.allocated += rounded;
  stats_.allocated_peak = std::max(stats_.allocated_peak, stats_.allocated);
  requested_ += requested;
  stats_.requested_peak = std::max(stats_.requested_peak, requested_);
}

int64_t CachingAllocator::allocate(int64_t bytes) {
  int64_t size = round_size(bytes);
  Pool& pool = size <= kSmallSize ? *small_ : *large_;
  Block* b = find_free(pool, size);
  auto fresh = [&]() -> Block* {
    return config_.expandable_segments ? grow_expandable(pool, size) : new_segment(pool, size);
  };
  if (!b) b = fresh();
  if (!b && config_.capacity > 0 && release_cached()) b = find_free(pool, size);
  if (!b && config_.capacity > 0) b = fresh();
  if (!b) {
    stats_.out_of_memory = true;
    if (!stats_.oom_request) stats_.oom_request = bytes;
    log(AllocatorAction::kOom, 0, 0, bytes);
    return -1;
  }
  split(pool, b, size);
  count_alloc(b->size, bytes);
  int64_t handle = next_handle_++;
  live_[handle] = {b, bytes};
  b->requested = bytes;
  b->handle = handle;
  log(AllocatorAction::kAlloc, b->address, b->size, bytes, handle);
  return handle;
}

void CachingAllocator::free(int64_t handle) {
  auto it = live_.find(handle);
  if (it == live_.end()) return;
  auto [b, requested] = it->second;
  live_.erase(it);
  stats_.allocated -= b->size;
  requested_ -= requested;
  log(AllocatorAction::kFree, b->address, b->size, requested, handle);
  b->allocated = false;
  b->requested = 0;
  b->handle = -1;
  Pool& pool = b->segment->small ? *small_ : *large_;
  // Rule 6: merge with free neighbours.
  for (Block* n : {b->prev, b->next}) {
    if (!n || n->allocated) continue;
    pool.free.erase(n);
    if (n == b->prev) {
      n->size += b->size;
      n->next = b->next;
      if (b->next) b->next->prev = n;
      b->size = 0;  // b is absorbed; n carries on as the merged block
      b = n;
    } else {
      b->size += n->size;
      b->next = n->next;
      if (n->next) n->next->prev = b;
      n->size = 0;
    }
  }
  pool.free.insert(b);
}

int64_t CachingAllocator::block_size(int64_t handle) const {
  auto it = live_.find(handle);
  return it == live_.end() ? 0 : it->second.first->size;
}

std::vector<SegmentState> CachingAllocator::segments() const {
  std::vector<SegmentState> out;
  for (const auto& seg : segments_) {
    if (!seg->first) continue;  // an expandable segment with nothing mapped
    SegmentState s;
    s.address = seg->first->address;
    s.size = seg->size;
    s.small = seg->small;
    s.expandable = seg->expandable;
    for (const Block* b = seg->first; b; b = b->next)
      s.blocks.push_back(
          {b->address, b->size, b->allocated ? b->requested : 0, b->allocated ? b->handle : -1});
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const SegmentState& a, const SegmentState& b) { return a.address < b.address; });
  return out;
}

AllocatorStats replay(const std::vector<AllocEvent>& events, const AllocatorConfig& config) {
  CachingAllocator a(config);
  std::map<uint64_t, int64_t> handles;
  for (const auto& e : events) {
    if (e.bytes > 0) {
      handles[e.id] = a.allocate(e.bytes);
    } else {
      auto it = handles.find(e.id);
      if (it == handles.end()) continue;
      a.free(it->second);
      handles.erase(it);
    }
  }
  return a.stats();
}

AllocatorConfig parse_allocator_config(std::string_view text) {
  AllocatorConfig c;
  std::string s(text);
  size_t at = 0;
  while (at < s.size()) {
    size_t comma = s.find(',', at);
    std::string item = s.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    at = comma == std::string::npos ? s.size() : comma + 1;
    if (item.empty()) continue;
    auto colon = item.find(':');
    if (colon == std::string::npos)
      throw Error(
          fmt::format("allocator option '{}': expected name:value, as in "
                      "max_split_size_mb:128",
                      item));
    std::string name = item.substr(0, colon), value = item.substr(colon + 1);
    auto number = [&]() -> int64_t {
      try {
        size_t used = 0;
        long long v = std::stoll(value, &used);
        if (used != value.size() || v < 0) throw std::invalid_argument(value);
        return v;
      } catch (const std::exception&) {
        throw Error(fmt::format("allocator option {}: '{}' is not a non-negative whole number",
                                name, value));
      }
    };
    if (name == "max_split_size_mb") {
      c.max_split_size = number() << 20;
    } else if (name == "roundup_power2_divisions") {
      c.roundup_power2_divisions = number();
      if (c.roundup_power2_divisions > 1 && !is_power_of_two(c.roundup_power2_divisions))
        throw Error(
            fmt::format("allocator option roundup_power2_divisions: {} is not a power of "
                        "two, which PyTorch requires",
                        value));
    } else if (name == "expandable_segments") {
      if (value != "True" && value != "False")
        throw Error(
            fmt::format("allocator option expandable_segments: '{}' is not True or False", value));
      c.expandable_segments = value == "True";
    } else {
      throw Error(
          fmt::format("allocator option '{}' is not one footprint models; known: "
                      "max_split_size_mb, roundup_power2_divisions, expandable_segments",
                      name));
    }
  }
  return c;
}

}  // namespace footprint
