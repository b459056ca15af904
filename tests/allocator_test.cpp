// The CUDA caching allocator model (src/core/allocator.cpp), rule by rule, on hand-built
// sequences. Every expected number is worked out in the comment beside it from the rules quoted
// at the top of allocator.cpp (PyTorch's CUDACachingAllocator.cpp).
#include "footprint/allocator.h"

#include <gtest/gtest.h>

#include "footprint/error.h"
#include "footprint/memory_viz.h"

namespace fp = footprint;

namespace {
constexpr int64_t KiB = 1024, MiB = 1024 * 1024;
}

TEST(Allocator, RoundsToMultiplesOf512) {
  fp::CachingAllocator a({});
  EXPECT_EQ(a.round_size(1), 512);
  EXPECT_EQ(a.round_size(512), 512);
  EXPECT_EQ(a.round_size(513), 1024);
  // A 4-byte tensor counts 512 B in allocated_bytes; the small pool's first segment is 2 MiB.
  a.allocate(4);
  EXPECT_EQ(a.stats().allocated, 512);
  EXPECT_EQ(a.stats().reserved, 2 * MiB);
  EXPECT_EQ(a.stats().requested_peak, 4);
}

TEST(Allocator, SmallPoolCarvesTwoMiBSegments) {
  fp::CachingAllocator a({});
  // 1 MiB is still "small" (<= kSmallSize): two fit one 2 MiB segment (the remainder of 1 MiB is
  // >= 512 B, so the first block is split); a third needs a second segment.
  a.allocate(MiB);
  a.allocate(MiB);
  EXPECT_EQ(a.stats().reserved, 2 * MiB);
  a.allocate(MiB);
  EXPECT_EQ(a.stats().reserved, 4 * MiB);
  EXPECT_EQ(a.stats().segments, 2);
}

TEST(Allocator, LargePoolSegmentSizes) {
  EXPECT_EQ(fp::CachingAllocator::segment_size(512), 2 * MiB);         // small pool
  EXPECT_EQ(fp::CachingAllocator::segment_size(MiB + 512), 20 * MiB);  // < 10 MiB: kLargeBuffer
  EXPECT_EQ(fp::CachingAllocator::segment_size(10 * MiB), 10 * MiB);   // >= 10 MiB: to 2 MiB
  EXPECT_EQ(fp::CachingAllocator::segment_size(15 * MiB + 1), 16 * MiB);
}

TEST(Allocator, LargeBlocksSplitOnlyWhenMoreThanOneMiBRemains) {
  fp::CachingAllocator a({});
  // 3 MiB from a new 20 MiB segment: 17 MiB remain (> 1 MiB), so it splits and a second 3 MiB
  // request reuses the segment.
  a.allocate(3 * MiB);
  a.allocate(3 * MiB);
  EXPECT_EQ(a.stats().reserved, 20 * MiB);
  EXPECT_EQ(a.stats().allocated, 6 * MiB);
  // 15 MiB + 512 B gets a 16 MiB segment; the 1 MiB - 512 B left is not split off, so the block
  // and allocated_bytes are the whole 16 MiB.
  fp::CachingAllocator b({});
  int64_t h = b.allocate(15 * MiB + 512);
  EXPECT_EQ(b.block_size(h), 16 * MiB);
  EXPECT_EQ(b.stats().allocated, 16 * MiB);
  EXPECT_EQ(b.stats().requested_peak, 15 * MiB + 512);
}

TEST(Allocator, BestFitAndCoalescing) {
  fp::CachingAllocator a({});
  // Three 3 MiB blocks in one 20 MiB segment; freeing the first two merges them into one free
  // 6 MiB block, where a 5 MiB request fits (no new segment). The 1 MiB left is not more than
  // 1 MiB, so the block is not split: the request gets all 6 MiB.
  int64_t x = a.allocate(3 * MiB), y = a.allocate(3 * MiB);
  a.allocate(3 * MiB);
  a.free(x);
  a.free(y);
  int64_t z = a.allocate(5 * MiB);
  EXPECT_EQ(a.stats().reserved, 20 * MiB);
  EXPECT_EQ(a.block_size(z), 6 * MiB);
}

TEST(Allocator, BestFitPicksTheSmallestBlockThatFits) {
  fp::CachingAllocator a({});
  // Segment A (20 MiB): [4 MiB used][16 MiB free]. 17 MiB does not fit there: segment B of
  // 18 MiB (17 rounded up to 2 MiB; the 1 MiB left is not split off), then freed.
  a.allocate(4 * MiB);
  int64_t big = a.allocate(17 * MiB);
  EXPECT_EQ(a.block_size(big), 18 * MiB);
  EXPECT_EQ(a.stats().reserved, 38 * MiB);
  a.free(big);
  // 5 MiB takes the smaller free block (A's 16 MiB), split to exactly 5 MiB...
  int64_t h = a.allocate(5 * MiB);
  EXPECT_EQ(a.block_size(h), 5 * MiB);
  // ...so B's 18 MiB is still whole for an 18 MiB request: no new segment.
  a.allocate(18 * MiB);
  EXPECT_EQ(a.stats().reserved, 38 * MiB);
  EXPECT_EQ(a.stats().segments, 2);
}

TEST(Allocator, MaxSplitSizeKeepsLargeBlocksWhole) {
  auto config = fp::parse_allocator_config("max_split_size_mb:4");
  EXPECT_EQ(config.max_split_size, 4 * MiB);
  fp::CachingAllocator a(config);
  // An 8 MiB block (a 20 MiB segment, not split: requests >= max_split_size never split) is
  // freed. A 3 MiB request (< max_split_size) may not take a block >= max_split_size: new segment.
  int64_t h = a.allocate(8 * MiB);
  EXPECT_EQ(a.block_size(h), 20 * MiB);
  a.free(h);
  a.allocate(3 * MiB);
  EXPECT_EQ(a.stats().reserved, 40 * MiB);
  // An 8 MiB request may take the free 20 MiB block: 20 < 8 + 20.
  a.allocate(8 * MiB);
  EXPECT_EQ(a.stats().reserved, 40 * MiB);
}

TEST(Allocator, RoundupPowerOfTwoDivisions) {
  fp::CachingAllocator a(fp::parse_allocator_config("roundup_power2_divisions:4"));
  // 1.3 MiB lies between 1 MiB and 2 MiB, cut in 4 divisions of 256 KiB: up to 1.5 MiB.
  EXPECT_EQ(a.round_size(1363149), 1536 * KiB);
  EXPECT_EQ(a.round_size(2 * MiB), 2 * MiB);  // a power of two stays
  // At or below 512 * 4 = 2 KiB the plain 512 B rounding applies.
  EXPECT_EQ(a.round_size(1500), 1536);
}

TEST(Allocator, ExpandableSegmentsGrowInPlace) {
  fp::CachingAllocator e(fp::parse_allocator_config("expandable_segments:True"));
  // 3 MiB maps one 20 MiB page; 30 MiB more needs 13 MiB beyond the 17 MiB free at the end: one
  // more page. Reserved 40 MiB, where fixed segments reserve 20 + 30 = 50 MiB.
  e.allocate(3 * MiB);
  EXPECT_EQ(e.stats().reserved, 20 * MiB);
  e.allocate(30 * MiB);
  EXPECT_EQ(e.stats().reserved, 40 * MiB);
  fp::CachingAllocator f({});
  f.allocate(3 * MiB);
  f.allocate(30 * MiB);
  EXPECT_EQ(f.stats().reserved, 50 * MiB);
}

TEST(Allocator, ReleasesCachedSegmentsBeforeRunningOutOfMemory) {
  fp::AllocatorConfig c;
  c.capacity = 40 * MiB;
  fp::CachingAllocator a(c);
  // A freed 20 MiB segment stays reserved; a 30 MiB segment would make 50 > 40 MiB, so the
  // cached segment is released first and the request fits (reserved 30 MiB).
  a.free(a.allocate(3 * MiB));
  EXPECT_EQ(a.stats().reserved, 20 * MiB);
  EXPECT_GE(a.allocate(30 * MiB), 0);
  EXPECT_EQ(a.stats().reserved, 30 * MiB);
  EXPECT_EQ(a.stats().reserved_peak, 30 * MiB);
  EXPECT_FALSE(a.stats().out_of_memory);
  // 16 MiB more cannot fit (46 > 40) and nothing is cached: out of memory.
  EXPECT_EQ(a.allocate(15 * MiB + 512), -1);
  EXPECT_TRUE(a.stats().out_of_memory);
}

TEST(Allocator, ReplayAndPeaks) {
  // Two 3 MiB tensors, one freed before a third: allocated peaks at 6 MiB, reserved at 20 MiB.
  std::vector<fp::AllocEvent> events{{1, 3 * MiB}, {2, 3 * MiB}, {1, -3 * MiB}, {3, 3 * MiB}};
  auto s = fp::replay(events, {});
  EXPECT_EQ(s.allocated_peak, 6 * MiB);
  EXPECT_EQ(s.reserved_peak, 20 * MiB);
  EXPECT_EQ(s.segments, 1);
}

TEST(Allocator, ConfigErrorsNameTheOption) {
  EXPECT_THROW(fp::parse_allocator_config("garbage_collection_threshold:0.5"), fp::Error);
  EXPECT_THROW(fp::parse_allocator_config("max_split_size_mb:-3"), fp::Error);
  EXPECT_THROW(fp::parse_allocator_config("roundup_power2_divisions:3"), fp::Error);
  EXPECT_THROW(fp::parse_allocator_config("expandable_segments:yes"), fp::Error);
  try {
    fp::parse_allocator_config("max_split_size_mb");
    FAIL();
  } catch (const fp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_split_size_mb"), std::string::npos);
  }
}

// The action log (AllocatorAction), which memory_viz snapshots are written from: a 3 MiB request
// is a new 20 MiB large-pool segment (rule 4: under 10 MiB) and a 3 MiB block at its start; its
// free gives the block back; a 100 B request opens a 2 MiB small-pool segment with a 512 B block.
TEST(Allocator, RecordsItsActions) {
  fp::CachingAllocator a({});
  std::vector<fp::AllocatorAction> log;
  a.record(&log);
  int64_t h = a.allocate(3 * MiB);
  a.free(h);
  a.allocate(100);
  a.record(nullptr);
  a.allocate(100);  // not recorded
  using K = fp::AllocatorAction;
  ASSERT_EQ(log.size(), 5u);
  const int64_t base = fp::CachingAllocator::kBaseAddress;
  EXPECT_EQ(log[0].kind, K::kSegmentAlloc);
  EXPECT_EQ(log[0].address, base);
  EXPECT_EQ(log[0].size, 20 * MiB);
  EXPECT_FALSE(log[0].small);
  EXPECT_EQ(log[1].kind, K::kAlloc);
  EXPECT_EQ(log[1].address, base);
  EXPECT_EQ(log[1].size, 3 * MiB);
  EXPECT_EQ(log[1].requested, 3 * MiB);
  EXPECT_EQ(log[2].kind, K::kFree);
  EXPECT_EQ(log[2].address, base);
  EXPECT_EQ(log[3].kind, K::kSegmentAlloc);
  EXPECT_EQ(log[3].address, base + 20 * MiB);  // segments are laid out one after another
  EXPECT_EQ(log[3].size, 2 * MiB);
  EXPECT_TRUE(log[3].small);
  EXPECT_EQ(log[4].kind, K::kAlloc);
  EXPECT_EQ(log[4].size, 512);
  EXPECT_EQ(log[4].requested, 100);
}

// Expandable segments map pages at the end (rule 9) and, near the limit, unmap the free pages at
// the end (rule 7). With a 41 MiB limit: 30 MiB maps two 20 MiB pages of the large pool; after it
// is freed, 100 B needs a 2 MiB page of the small pool, which would make 42 MiB, so the 40 free
// MiB are unmapped first.
TEST(Allocator, RecordsMappedAndUnmappedPages) {
  fp::AllocatorConfig c;
  c.expandable_segments = true;
  c.capacity = 41 * MiB;
  fp::CachingAllocator a(c);
  std::vector<fp::AllocatorAction> log;
  a.record(&log);
  a.free(a.allocate(30 * MiB));
  a.allocate(100);
  using K = fp::AllocatorAction;
  ASSERT_EQ(log.size(), 6u);
  EXPECT_EQ(log[0].kind, K::kSegmentMap);
  EXPECT_EQ(log[0].size, 40 * MiB);
  EXPECT_EQ(log[1].kind, K::kAlloc);
  EXPECT_EQ(log[2].kind, K::kFree);
  EXPECT_EQ(log[3].kind, K::kSegmentUnmap);
  EXPECT_EQ(log[3].address, log[0].address);
  EXPECT_EQ(log[3].size, 40 * MiB);
  EXPECT_EQ(log[4].kind, K::kSegmentMap);
  EXPECT_EQ(log[4].size, 2 * MiB);
  EXPECT_TRUE(log[4].small);
  EXPECT_EQ(log[5].kind, K::kAlloc);
  EXPECT_EQ(a.stats().reserved, 2 * MiB);
}

// segments_at (footprint/memory_viz.h) rebuilds the allocator's state from its actions alone; on
// long random sequences it must equal the allocator's own segments, block for block, whatever the
// settings (this is what makes a snapshot's "segments" and its trace agree).
TEST(Allocator, SegmentsRebuiltFromActionsEqualTheAllocators) {
  for (int setting = 0; setting < 4; ++setting) {
    fp::AllocatorConfig c;
    if (setting == 1) c.max_split_size = 40 * MiB;
    if (setting == 2) c.expandable_segments = true;
    if (setting == 3) c.capacity = 300 * MiB;  // releases cached segments (rule 7)
    fp::CachingAllocator a(c);
    fp::MemoryTimeline t;
    std::vector<fp::AllocatorAction> log;
    a.record(&log);
    std::vector<int64_t> live;
    uint64_t x = 12345 + setting;
    auto next = [&] { return x = x * 6364136223846793005ull + 1442695040888963407ull, x >> 33; };
    for (int i = 0; i < 3000; ++i) {
      if (!live.empty() && next() % 3 == 0) {
        size_t k = next() % live.size();
        a.free(live[k]);
        live.erase(live.begin() + long(k));
      } else {
        int64_t sizes[] = {100, 4000, 700 * KiB, 3 * MiB, 11 * MiB, 37 * MiB};
        int64_t h = a.allocate(sizes[next() % 6] + int64_t(next() % 5000));
        if (h >= 0) live.push_back(h);
      }
    }
    for (const auto& action : log) t.actions.push_back({action, 0});
    auto rebuilt = fp::segments_at(t, 0);
    auto real = a.segments();
    ASSERT_EQ(rebuilt.size(), real.size()) << "setting " << setting;
    for (size_t s = 0; s < real.size(); ++s) {
      EXPECT_EQ(rebuilt[s].address, real[s].address);
      EXPECT_EQ(rebuilt[s].size, real[s].size);
      EXPECT_EQ(rebuilt[s].expandable, real[s].expandable);
      ASSERT_EQ(rebuilt[s].blocks.size(), real[s].blocks.size()) << "segment " << s;
      for (size_t b = 0; b < real[s].blocks.size(); ++b) {
        EXPECT_EQ(rebuilt[s].blocks[b].address, real[s].blocks[b].address);
        EXPECT_EQ(rebuilt[s].blocks[b].size, real[s].blocks[b].size);
        EXPECT_EQ(rebuilt[s].blocks[b].requested, real[s].blocks[b].requested);
        EXPECT_EQ(rebuilt[s].blocks[b].step >= 0, real[s].blocks[b].handle >= 0);
      }
    }
    int64_t reserved = 0;
    for (const auto& s : rebuilt) reserved += s.size;
    EXPECT_EQ(reserved, a.stats().reserved);
  }
}
