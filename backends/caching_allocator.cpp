// The caching allocator (see caching_allocator.h). One mutex guards the free lists, the private pools and the
// counters: an allocation is a hash lookup and a vector pop, far cheaper than the kernel that uses the memory.
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

void* CachingAllocator::take(FreeLists& lists, size_t size) {
  auto it = lists.find(size);
  if (it == lists.end() || it->second.empty()) return nullptr;
  void* ptr = it->second.back();
  it->second.pop_back();
  return ptr;
}

void* CachingAllocator::take_larger(size_t size, size_t& taken) {
  // The smallest cached block of a bucket above `size`, up to twice it. A linear scan of the buckets: it runs only
  // when the exact bucket is empty, and a BEGAN step has a few dozen buckets.
  size_t best = 0;
  for (const auto& [bucket, blocks] : free_lists_) {
    if (!blocks.empty() && bucket > size && bucket <= 2 * size && (best == 0 || bucket < best)) best = bucket;
  }
  if (best == 0) return nullptr;
  void* ptr = take(free_lists_, best);
  larger_[ptr] = best;
  taken = best;
  return ptr;
}

uint64_t CachingAllocator::routing_pool() const {
  return capture_pool_ != 0 && std::this_thread::get_id() == capture_thread_ ? capture_pool_ : 0;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = bucket_size(bytes);
  uint64_t pool = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pool = routing_pool();
    // A capture takes its own pool's blocks first, then shared ones (which then belong to the pool); anyone else
    // takes only shared ones.
    void* ptr = nullptr;
    if (pool != 0) {
      Pool& p = pools_.at(pool);
      ptr = take(p.free_lists, size);
      if (ptr != nullptr) {
        p.cached -= size;
        stats_.graph_cached -= size;
      }
    }
    if (ptr == nullptr) {
      ptr = take(free_lists_, size);
      if (ptr != nullptr && pool != 0) pool_of_[ptr] = pool;
    }
    size_t taken = size;
    if (ptr == nullptr && pool == 0) ptr = take_larger(size, taken);
    if (ptr != nullptr) {
      stats_.cached -= taken;
      stats_.in_use += taken;
      stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
      ++stats_.cache_hits;
      return ptr;
    }
  }
  // A miss: ask the system outside the lock. If it refuses, give the cache back and try once more, except while a
  // capture is under way: releasing blocks then (cudaFree, which waits for the device) would break the capture, so
  // the request fails and the captured step with it (the step runner then runs eager steps, which may empty it).
  void* ptr = system_.allocate(size);
  const bool during_capture = ptr == nullptr && capturing_anywhere();
  if (ptr == nullptr && !during_capture) {
    empty_cache();
    ptr = system_.allocate(size);
  }
  ATELIER_CHECK(ptr != nullptr, system_.name << " allocator: out of memory allocating " << bytes << " bytes (block of "
                                             << size << " bytes; " << stats().in_use << " bytes in use"
                                             << (during_capture ? "; during a graph capture, so the cache of "
                                                                  "unused blocks was kept, not released"
                                                                : "")
                                             << ")");
  std::lock_guard<std::mutex> lock(mutex_);
  if (pool != 0 && pools_.count(pool) != 0) pool_of_[ptr] = pool;
  stats_.in_use += size;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  ++stats_.system_allocs;
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, size_t bytes) noexcept {
  if (ptr == nullptr) return;
  size_t size = 0;
  uint64_t pool = 0;
  try {
    size = bucket_size(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto big = larger_.find(ptr); big != larger_.end()) {
      size = big->second;
      larger_.erase(big);
    }
    auto owner = pool_of_.find(ptr);
    pool = owner != pool_of_.end() ? owner->second : routing_pool();
    if (pool != 0) {
      // A block of a live graph: back to its pool (a block freed during the capture joins it), never shared.
      pool_of_[ptr] = pool;
      Pool& p = pools_.at(pool);
      p.free_lists[size].push_back(ptr);
      p.cached += size;
      stats_.graph_cached += size;
    } else {
      free_lists_[size].push_back(ptr);
    }
    stats_.in_use -= size;
    stats_.cached += size;
    return;
  } catch (...) {
    // No room in a free list (or a size allocate never handed out).
  }
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.in_use -= std::min(stats_.in_use, size);
  if (pool != 0) {
    // A replay may still write this block: keep it (lost) rather than give it to the system.
    std::fprintf(stderr, "atelier: %s allocator: a block of a graph's pool could not be cached; it is lost\n",
                 system_.name);
    return;
  }
  system_.release(ptr);
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::empty_cache() {
  FreeLists lists;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    lists.swap(free_lists_);
    stats_.cached = stats_.graph_cached;
  }
  for (auto& [size, blocks] : lists) {
    for (void* ptr : blocks) system_.release(ptr);
  }
}

uint64_t CachingAllocator::begin_capture() {
  std::lock_guard<std::mutex> lock(mutex_);
  ATELIER_CHECK(capture_pool_ == 0, system_.name << " allocator: a capture is already under way (pool " << capture_pool_
                                                 << "); captures do not nest");
  const uint64_t id = next_pool_++;
  pools_[id];
  capture_pool_ = id;
  capture_thread_ = std::this_thread::get_id();
  return id;
}

void CachingAllocator::end_capture() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  capture_pool_ = 0;
}

bool CachingAllocator::adopt_into_capture(void* ptr) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t pool = routing_pool();
  if (pool == 0 || ptr == nullptr) return false;
  const auto [owner, adopted] = pool_of_.try_emplace(ptr, pool);
  return adopted || owner->second == pool;
}

bool CachingAllocator::capturing() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return routing_pool() != 0;
}

bool CachingAllocator::capturing_anywhere() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return capture_pool_ != 0;
}

void CachingAllocator::release_pool(uint64_t id) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = pools_.find(id);
  if (it == pools_.end()) return;
  if (capture_pool_ == id) capture_pool_ = 0;
  for (auto& [size, blocks] : it->second.free_lists) {
    for (void* ptr : blocks) {
      try {
        free_lists_[size].push_back(ptr);
      } catch (...) {
        system_.release(ptr);  // no room in the shared lists: back to the system
        stats_.cached -= size;
      }
    }
  }
  stats_.graph_cached -= it->second.cached;
  pools_.erase(it);
  std::erase_if(pool_of_, [id](const auto& entry) { return entry.second == id; });
}

GraphPool& GraphPool::operator=(GraphPool&& other) noexcept {
  if (this != &other) {
    release();
    allocator_ = other.allocator_;
    id_ = other.id_;
    other.allocator_ = nullptr;
  }
  return *this;
}

void GraphPool::release() noexcept {
  if (allocator_ != nullptr) allocator_->release_pool(id_);
  allocator_ = nullptr;
}

}  // namespace atelier
