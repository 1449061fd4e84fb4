// The caching allocator (see caching_allocator.h). One mutex guards the free lists and the counters: an
// allocation is a hash lookup and a vector pop, far cheaper than the kernel that uses the memory.
#include "backends/caching_allocator.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>

#include "backends/error.h"

namespace atelier {

namespace {
constexpr size_t kSmallStep = 512;
constexpr size_t kSmallLimit = size_t{1} << 20;
}  // namespace

size_t CachingAllocator::bucket_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  size_t step = kSmallStep;
  if (bytes > kSmallLimit) step = std::bit_floor(bytes) / 4;
  ATELIER_CHECK(bytes <= SIZE_MAX - step, "allocator: request of " << bytes << " bytes is too large");
  return (bytes + step - 1) / step * step;
}

CachingAllocator::~CachingAllocator() { empty_cache(); }

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = bucket_size(bytes);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_lists_.find(size);
    if (it != free_lists_.end() && !it->second.empty()) {
      void* ptr = it->second.back();
      it->second.pop_back();
      stats_.cached -= size;
      stats_.in_use += size;
      stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
      ++stats_.cache_hits;
      return ptr;
    }
  }
  // A miss: ask the system outside the lock. If it refuses, give the cache back and try once more.
  void* ptr = system_.allocate(size);
  if (ptr == nullptr) {
    empty_cache();
    ptr = system_.allocate(size);
  }
  ATELIER_CHECK(ptr != nullptr, system_.name << " allocator: out of memory allocating " << bytes << " bytes (block of "
                                             << size << " bytes; " << stats().in_use << " bytes in use)");
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.in_use += size;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  ++stats_.system_allocs;
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, size_t bytes) noexcept {
  if (ptr == nullptr) return;
  size_t size = 0;
  try {
    size = bucket_size(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    free_lists_[size].push_back(ptr);
    stats_.in_use -= size;
    stats_.cached += size;
    return;
  } catch (...) {
    // No room in the free list (or a size allocate never handed out): give the block straight back.
  }
  system_.release(ptr);
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.in_use -= std::min(stats_.in_use, size);
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::empty_cache() {
  std::unordered_map<size_t, std::vector<void*>> lists;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    lists.swap(free_lists_);
    stats_.cached = 0;
  }
  for (auto& [size, blocks] : lists) {
    for (void* ptr : blocks) system_.release(ptr);
  }
}

}  // namespace atelier
