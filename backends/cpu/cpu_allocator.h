// The CPU's caching allocator (backends/caching_allocator.h) over 64-byte aligned system memory: a steady-state
// training step asks the system for nothing new, and large activations never page-fault twice.
#pragma once

#include "backends/caching_allocator.h"

namespace atelier {

class CpuAllocator : public CachingAllocator {
 public:
  static constexpr size_t kAlignment = 64;

  CpuAllocator();
};

}  // namespace atelier
