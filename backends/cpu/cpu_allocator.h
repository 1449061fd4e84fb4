// The CPU caching allocator: freed blocks go to a free list per size bucket and are handed out again, so a
// steady-state training step (the same sizes every step) asks the system for nothing new and large
// activations never page-fault twice.
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "backends/backend.h"

namespace atelier {

class CpuAllocator {
 public:
  static constexpr size_t kAlignment = 64;

  CpuAllocator() = default;
  ~CpuAllocator();
  CpuAllocator(const CpuAllocator&) = delete;
  CpuAllocator& operator=(const CpuAllocator&) = delete;

  // 64-byte aligned, uninitialised. allocate(0) returns a real (minimum-size) block, unique and non-null.
  void* allocate(size_t bytes);
  // `bytes` must be the size given to allocate; nullptr is ignored.
  void deallocate(void* ptr, size_t bytes);
  // Byte counters count whole bucket sizes, i.e. what the blocks really occupy.
  AllocatorStats stats() const;
  void empty_cache();

  // The size of the block that serves a request: multiples of 512 bytes up to 1 MiB, then steps of a quarter
  // of the power of two below (at most 25% waste, and few distinct buckets for large tensors).
  static size_t bucket_size(size_t bytes);

 private:
  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_lists_;  // bucket size -> cached blocks
  AllocatorStats stats_;
};

}  // namespace atelier
