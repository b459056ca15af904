// footprint/memory_viz.h: pictures of a memory report, drawn from its timeline (set
// MemoryOptions::timeline before analyze_memory; footprint memory --snapshot, --html).
//
//   footprint::MemoryOptions o;
//   o.timeline = true;
//   footprint::MemoryReport r = footprint::analyze_memory(model, trace, o);
//   std::string pickle = footprint::memory_snapshot(r);  // for pytorch.org/memory_viz
//   std::string page = footprint::memory_html(r);        // one file, no network
//
// docs/memory.md ("Seeing the memory") explains both and how to read them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "footprint/memory.h"

namespace footprint {

// The allocator's segments after a step of the timeline, rebuilt from its actions: each segment's
// blocks in address order, the free ranges between them as free blocks (step -1).
struct SegmentAt {
  int64_t address = 0;
  int64_t size = 0;
  bool small = false;  // the small pool's
  bool expandable = false;
  struct Block {
    int64_t address = 0;
    int64_t size = 0;       // the block (rounded)
    int64_t requested = 0;  // what the tensor asked for; 0 when free
    int step = -1;          // the step that allocated it; -1 when free
  };
  std::vector<Block> blocks;
};
std::vector<SegmentAt> segments_at(const MemoryTimeline& t, size_t step);

// The pickle that torch.cuda.memory._dump_snapshot writes (torch/cuda/memory.py's Snapshot):
// "segments" as they are at the end of the run, and "device_traces" with every alloc,
// free_requested, free_completed, segment_alloc, segment_free, segment_map and segment_unmap.
// Sizes in the trace are the sizes requested, as CUDACachingAllocator.cpp records them; each
// alloc also carries its "category" (as torch.cuda._memory_viz.profile_plot's do) and its
// "block_size" (the rounded block that max_memory_allocated counts). Frames name the op (and the
// inner op that allocated), the module and the phase. Throws Error without a timeline.
std::string memory_snapshot(const MemoryReport& r);

// One self-contained HTML page (inline SVG and JavaScript, nothing fetched): live bytes by
// category over the run with reserved and the device's limit, the peak with its op, module and
// phase, the modules live at the peak, and the allocator's segments at the peak. Throws Error
// without a timeline.
std::string memory_html(const MemoryReport& r);

}  // namespace footprint
