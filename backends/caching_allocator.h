// The caching allocator both backends use: freed blocks go to a free list per size bucket and are handed out
// again, so a steady-state training step (the same sizes every step) asks the system for nothing new. On the CPU
// large activations then never page-fault twice; on the GPU a step makes no cudaMalloc (which synchronises the
// device).
//
// The system memory behind it is two functions (SystemMemory): the CPU's aligned_alloc/free, the GPU's
// cudaMalloc/cudaFree. Reuse without waiting is safe on the GPU because every kernel and copy runs on the one
// stream of the CUDA context: work that used a freed block was queued before any work that reuses it.
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "backends/backend.h"

namespace atelier {

// Where the blocks come from. allocate returns nullptr when the system is out of memory (the allocator then
// returns its cache and tries once more) and throws atelier::Error on any other failure; release must not throw
// (it is reached from destructors): it reports a failure and goes on.
struct SystemMemory {
  const char* name;  // "cpu", "cuda": named in error messages
  void* (*allocate)(size_t bytes);
  void (*release)(void* ptr) noexcept;
};

class CachingAllocator {
 public:
  explicit CachingAllocator(SystemMemory system) : system_(system) {}
  // Returns the cached blocks (blocks still in use belong to their owners).
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Uninitialised, aligned as the system memory aligns. allocate(0) returns a real (minimum-size) block, unique
  // and non-null.
  void* allocate(size_t bytes);
  // `bytes` must be the size given to allocate; nullptr is ignored. Never throws.
  void deallocate(void* ptr, size_t bytes) noexcept;
  // Byte counters count whole bucket sizes, i.e. what the blocks really occupy.
  AllocatorStats stats() const;
  // Returns every cached block to the system.
  void empty_cache();

  // The size of the block that serves a request: multiples of 512 bytes up to 1 MiB, then steps of a quarter
  // of the power of two below (at most 25% waste, and few distinct buckets for large tensors).
  static size_t bucket_size(size_t bytes);

 private:
  SystemMemory system_;
  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_lists_;  // bucket size -> cached blocks
  AllocatorStats stats_;
};

}  // namespace atelier
