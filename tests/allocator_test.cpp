// The CUDA caching allocator model (src/core/allocator.cpp), rule by rule, on hand-built
// sequences. Every expected number is worked out in the comment beside it from the rules quoted
// at the top of allocator.cpp (PyTorch's CUDACachingAllocator.cpp).
#include "footprint/allocator.h"

#include <gtest/gtest.h>

#include "footprint/error.h"

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
