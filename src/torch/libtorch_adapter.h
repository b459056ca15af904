// What footprint needs from LibTorch that changed between versions, in one place. footprint
// builds against the LibTorch of the pinned PyPI wheel (requirements.txt: torch 2.11.0); 1.13
// (Debian's libtorch-dev) is no longer supported. Each entry names the version that changed it.
#pragma once

#include <c10/core/Allocator.h>

#include <cstddef>

namespace footprint::detail {

// c10::Allocator (c10/core/Allocator.h). From 2.3, allocate() is not const and copy_data() is
// pure virtual: a tracking allocator derives from this and implements take().
struct TrackingAllocator : c10::Allocator {
  virtual c10::DataPtr take(size_t bytes) = 0;
  c10::DataPtr allocate(size_t bytes) final { return take(bytes); }
};

}  // namespace footprint::detail
