// The caching allocator (see caching_allocator.h). One mutex guards the free lists, the pieces, the private pools
// and the counters: a small allocation is a hash lookup and a vector pop, a large one a lookup in an ordered set
// and at most two insertions, all far cheaper than the kernel that uses the memory.
#include "backends/caching_allocator.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iterator>

#include "backends/error.h"

namespace atelier {

namespace {
constexpr size_t kStep = 512;
constexpr size_t kSmallLimit = size_t{256} << 10;  // requests up to this: exact buckets; above it: pieces
constexpr size_t kSmallSegment = size_t{2} << 20;  // a segment for requests below half of it (a few share it)

bool is_large(size_t size) { return size > kSmallLimit; }
// What the system is asked for when no free piece fits `size`: larger requests get a segment of their own, which
// may later serve smaller ones.
size_t segment_bytes(size_t size) { return size < kSmallSegment / 2 ? kSmallSegment : size; }
}  // namespace

size_t CachingAllocator::bucket_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  ATELIER_CHECK(bytes <= SIZE_MAX - kStep, "allocator: request of " << bytes << " bytes is too large");
  return (bytes + kStep - 1) / kStep * kStep;
}

CachingAllocator::~CachingAllocator() { empty_cache(); }

void* CachingAllocator::take(FreeLists& lists, size_t size) {
  const auto list = lists.find(size);
  if (list == lists.end() || list->second.empty()) return nullptr;
  void* ptr = list->second.back();
  list->second.pop_back();
  return ptr;
}

void* CachingAllocator::carve(FreePieces& from, size_t& size, uint64_t pool) {
  const auto fit = from.lower_bound({size, nullptr});
  if (fit == from.end()) return nullptr;
  char* ptr = fit->second;
  const auto it = pieces_.find(ptr);
  Piece& piece = it->second;
  const size_t rest = piece.size - size;
  if (rest >= kSmallLimit) {
    // The rest becomes a free piece of its own, right after this one, of the same owner. Both insertions may
    // throw: undo the first.
    const auto tail = pieces_.emplace_hint(std::next(it), ptr + size, Piece{piece.segment, rest, true, piece.pool, {}});
    try {
      from.emplace(rest, ptr + size);
    } catch (...) {
      pieces_.erase(tail);
      throw;
    }
    piece.size = size;
  }
  piece.entry = from.extract(fit);
  piece.entry.value().first = piece.size;
  piece.free = false;
  piece.pool = pool;
  size = piece.size;
  return ptr;
}

void CachingAllocator::add_segment(char* base, size_t bytes, size_t size, uint64_t pool) {
  // The first piece needs an entry of free_pieces_ to hold while in use: made in a set of its own and taken out.
  FreePieces maker;
  maker.emplace(size, base);
  const auto first = pieces_.emplace(base, Piece{base, size, false, pool, maker.extract(maker.begin())}).first;
  if (bytes == size) return;
  try {
    const auto rest = pieces_.emplace_hint(std::next(first), base + size, Piece{base, bytes - size, true, 0, {}});
    try {
      free_pieces_.emplace(bytes - size, base + size);
    } catch (...) {
      pieces_.erase(rest);
      throw;
    }
  } catch (...) {
    pieces_.erase(first);
    throw;
  }
}

CachingAllocator::FreePieces& CachingAllocator::free_pieces_of(uint64_t pool) noexcept {
  // A piece's pool is live: release_pool() makes its pieces shared before the pool goes.
  return pool == 0 ? free_pieces_ : pools_.find(pool)->second.free_pieces;
}

void CachingAllocator::free_piece(Pieces::iterator piece) noexcept {
  Piece& p = piece->second;
  FreePieces& free = free_pieces_of(p.pool);
  // A neighbour joins when it lies in the same segment and is a free piece of the same owner; a piece that a
  // capture frees into its own pool also takes in shared free neighbours, which become the pool's (see the header:
  // during its capture the pool's and the shared free pieces are one free space). A pool's memory never becomes
  // shared while the pool lives.
  const bool capturing = p.pool != 0 && p.pool == routing_pool();
  const auto joins = [&](const Piece& other) {
    return other.segment == p.segment && other.free && (other.pool == p.pool || (capturing && other.pool == 0));
  };
  // Takes a joining neighbour out of its owner's free pieces; a shared one's bytes now count as the pool's.
  const auto unlist = [&](Pieces::iterator other) {
    auto entry = free_pieces_of(other->second.pool).extract({other->second.size, other->first});
    if (other->second.pool != p.pool) {
      other->second.pool = p.pool;
      pools_.find(p.pool)->second.cached += other->second.size;
      stats_.graph_cached += other->second.size;
    }
    return entry;
  };
  // The next piece, if it joins, becomes part of this one.
  if (const auto next = std::next(piece); next != pieces_.end() && joins(next->second)) {
    unlist(next);
    p.size += next->second.size;
    pieces_.erase(next);
  }
  // This one becomes part of the previous piece, if it joins.
  if (piece != pieces_.begin()) {
    const auto prev = std::prev(piece);
    if (joins(prev->second)) {
      auto entry = unlist(prev);
      prev->second.size += p.size;
      entry.value().first = prev->second.size;
      free.insert(std::move(entry));
      pieces_.erase(piece);
      return;
    }
  }
  p.free = true;
  p.entry.value().first = p.size;
  free.insert(std::move(p.entry));
}

uint64_t CachingAllocator::routing_pool() const {
  return capture_pool_ != 0 && std::this_thread::get_id() == capture_thread_ ? capture_pool_ : 0;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t bucket = bucket_size(bytes);
  const bool large = is_large(bucket);
  uint64_t pool = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pool = routing_pool();
    // Anyone but a capture takes shared blocks only: a small block of its bucket, or the best-fitting shared
    // free piece. A capture takes a small block of its pool's bucket, else a shared one, which then belongs to the
    // pool; and for a large request, the best fit of its pool's and the shared free pieces together (so that it
    // carves as an eager step would: see the header), which then belongs to the pool.
    size_t size = bucket;
    void* ptr = nullptr;
    Pool* const own = pool != 0 ? &pools_.at(pool) : nullptr;
    bool from_pool = false;  // the pool's cached bytes serve it
    if (large) {
      if (own != nullptr) {
        const auto shared = free_pieces_.lower_bound({size, nullptr});
        const auto mine = own->free_pieces.lower_bound({size, nullptr});
        from_pool = mine != own->free_pieces.end() && (shared == free_pieces_.end() || *mine < *shared);
      }
      ptr = carve(from_pool ? own->free_pieces : free_pieces_, size, pool);
    } else {
      if (own != nullptr) {
        ptr = take(own->free_lists, size);
        from_pool = ptr != nullptr;
      }
      if (ptr == nullptr) {
        ptr = take(free_lists_, size);
        if (ptr != nullptr && own != nullptr) pool_of_[ptr] = pool;
      }
    }
    if (from_pool) {
      own->cached -= size;
      stats_.graph_cached -= size;
    }
    if (ptr != nullptr) {
      stats_.cached -= size;
      stats_.in_use += size;
      stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
      ++stats_.cache_hits;
      return ptr;
    }
  }
  // A miss: ask the system outside the lock (a new segment for a large request). If it refuses, give the cache
  // back and try once more, except while a capture is under way: releasing blocks then (cudaFree, which waits for
  // the device) would break the capture, so the request fails and the captured step with it (the step runner then
  // runs eager steps, which may empty it).
  const size_t system_bytes = large ? segment_bytes(bucket) : bucket;
  void* ptr = system_.allocate(system_bytes);
  const bool during_capture = ptr == nullptr && capturing_anywhere();
  if (ptr == nullptr && !during_capture) {
    empty_cache();
    ptr = system_.allocate(system_bytes);
  }
  if (ptr == nullptr) {
    ATELIER_OUT_OF_MEMORY(system_.name << " allocator: out of memory allocating " << bytes << " bytes (block of "
                                       << system_bytes << " bytes; " << stats().in_use << " bytes in use"
                                       << (during_capture ? "; during a graph capture, so the cache of "
                                                            "unused blocks was kept, not released"
                                                          : "")
                                       << ")");
  }
  std::unique_lock<std::mutex> lock(mutex_);
  try {
    if (pool != 0 && pools_.count(pool) == 0) pool = 0;  // released while the system was asked
    if (large) {
      add_segment(static_cast<char*>(ptr), system_bytes, bucket, pool);  // on an exception it changed nothing
    } else if (pool != 0) {
      pool_of_[ptr] = pool;
    }
  } catch (...) {
    pool_of_.erase(ptr);
    lock.unlock();
    system_.release(ptr);
    throw;
  }
  stats_.in_use += bucket;
  stats_.cached += system_bytes - bucket;
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
    const auto piece = pieces_.find(static_cast<char*>(ptr));
    if (piece != pieces_.end()) {
      // A piece: back to its owner's free pieces, merged with that owner's free neighbours. One freed by the
      // capturing thread during a capture joins the capture's pool (a replay may still read it).
      size = piece->second.size;
      if (piece->second.pool == 0) piece->second.pool = routing_pool();
      pool = piece->second.pool;
      free_piece(piece);
    } else {
      // A small block of a live graph goes back to its pool (one freed during the capture joins it), never to
      // the shared lists.
      const auto owner = pool_of_.find(ptr);
      pool = owner != pool_of_.end() ? owner->second : routing_pool();
      if (pool != 0) {
        pool_of_[ptr] = pool;
        pools_.at(pool).free_lists[size].push_back(ptr);
      } else {
        free_lists_[size].push_back(ptr);
      }
    }
    if (pool != 0) {
      pools_.at(pool).cached += size;
      stats_.graph_cached += size;
    }
    stats_.in_use -= size;
    stats_.cached += size;
    return;
  } catch (...) {
    // No room in a free list (or a size allocate never handed out).
  }
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.in_use -= std::min(stats_.in_use, size);
  if (pool != 0 || pieces_.count(static_cast<char*>(ptr)) != 0) {
    // A replay may still write this block, or it is part of a segment: keep it (lost) rather than give it to the
    // system.
    std::fprintf(stderr, "atelier: %s allocator: a block could not be cached; it is lost\n", system_.name);
    return;
  }
  system_.release(ptr);
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak_in_use() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_in_use = stats_.in_use;
}

void CachingAllocator::empty_cache() {
  FreeLists lists;
  Pieces segments;  // the wholly free segments, moved here node by node (nothing allocated)
  {
    std::lock_guard<std::mutex> lock(mutex_);
    lists.swap(free_lists_);
    for (auto& [bucket, blocks] : lists) stats_.cached -= bucket * blocks.size();
    for (auto it = free_pieces_.begin(); it != free_pieces_.end();) {
      const auto piece = pieces_.find(it->second);
      const auto next = std::next(piece);
      const bool whole =
          piece->second.segment == piece->first && (next == pieces_.end() || next->second.segment != piece->first);
      if (!whole) {
        ++it;
        continue;
      }
      stats_.cached -= piece->second.size;
      it = free_pieces_.erase(it);
      segments.insert(pieces_.extract(piece));
    }
  }
  for (auto& [size, blocks] : lists) {
    for (void* ptr : blocks) system_.release(ptr);
  }
  for (auto& [base, piece] : segments) system_.release(base);
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
  if (const auto piece = pieces_.find(static_cast<char*>(ptr)); piece != pieces_.end()) {
    // A piece in use: from now on it belongs to the pool, and returns to it when freed.
    if (piece->second.pool == 0) piece->second.pool = pool;
    return piece->second.pool == pool;
  }
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
  Pool& pool = it->second;
  // Every piece of the pool becomes shared, in address order: a piece in use simply changes owner (it goes to the
  // shared pieces when freed); a free one leaves the pool's set and is freed again as a shared piece, which merges
  // it with its shared free neighbours, including the pool's pieces before it that this loop already made shared.
  // A free piece of the pool after it is still the pool's, so nothing merges with it until its own turn.
  for (auto piece = pieces_.begin(); piece != pieces_.end();) {
    Piece& p = piece->second;
    char* const address = piece->first;
    if (p.pool == id) {
      p.pool = 0;
      if (p.free) {
        p.free = false;
        p.entry = pool.free_pieces.extract({p.size, address});
        free_piece(piece);  // may erase this piece or the next: go on from the address
      }
    }
    piece = pieces_.upper_bound(address);
  }
  for (auto& [size, blocks] : pool.free_lists) {
    for (void* ptr : blocks) {
      try {
        free_lists_[size].push_back(ptr);
      } catch (...) {
        system_.release(ptr);  // no room in the shared lists: back to the system
        stats_.cached -= size;
      }
    }
  }
  stats_.graph_cached -= pool.cached;
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
